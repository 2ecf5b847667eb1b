"""Where a batch's brackets run: local worker processes, or tasks on a Ray cluster.

``local`` runs brackets in ``workers`` processes started with ``spawn`` (never
``fork``: forking a process whose OpenMP or torch threads already run can deadlock
the child; and a fresh interpreter takes its thread counts from the environment we
give it, which a ``forkserver`` started earlier would not). While one worker fuses,
the others decode, align and write, so with 2+ workers I/O overlaps fusion; workers
sharing a GPU take turns at the fusion stage (:class:`~uhdfuse.batch.worker.GpuLock`).
``ray`` runs each bracket as a Ray task (optional dependency:
``pip install "uhdfuse[ray]"``), asking for one GPU per task when the cluster has
GPUs and the engine uses one; paths must be shared.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from uhdfuse.batch.jobs import Job, Outcome
from uhdfuse.batch.options import BatchOptions
from uhdfuse.batch.plan import uses_gpu
from uhdfuse.batch.worker import init_worker, run_job
from uhdfuse.config import Executor, MergeConfig
from uhdfuse.errors import UsageError, first_line, param
from uhdfuse.threads import THREAD_VARIABLES


class BracketExecutor(Protocol):
    """Runs jobs somewhere and yields their outcomes as they finish."""

    def run(self, jobs: Sequence[Job]) -> Iterator[Outcome]: ...

    def stop(self) -> None:
        """Interrupt: cancel queued jobs, make running ones abandon their output."""

    def close(self) -> None:
        """Wait for the workers to end and release them."""

    def finished(self) -> list[Outcome]:
        """After :meth:`close`: the outcomes of every job that ran to its end, yielded or not."""


@contextmanager
def _thread_env(threads: int) -> Iterator[None]:
    """The thread-count variables (:data:`uhdfuse.threads.THREAD_VARIABLES`) for the
    workers about to start; OpenMP and OpenBLAS read them when loaded, before any
    initializer could run. The caller's values come back."""
    saved = {var: os.environ.get(var) for var in THREAD_VARIABLES}
    os.environ.update({var: str(threads) for var in THREAD_VARIABLES})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


class LocalExecutor:
    """``workers`` processes on this machine (concurrent.futures, spawn), each with
    its share of the cores."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.futures: dict = {}
        self.pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker, initargs=(self.threads,)
        )

    def run(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        from concurrent.futures import as_completed

        with _thread_env(self.threads):  # workers are spawned during submit and copy this environment
            self.futures = {self.pool.submit(run_job, job): job for job in jobs}
        for future in as_completed(self.futures):
            yield self._outcome(future)

    def _outcome(self, future) -> Outcome:  # noqa: ANN001 - concurrent.futures.Future
        job = self.futures[future]
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - a worker died (out of memory, segfault)
            return Outcome.failed(job, f"worker process failed: {type(exc).__name__}: {exc}")
        except BaseException:  # noqa: BLE001 - interrupted between its work and its report
            return Outcome.interrupted(job, "interrupted")

    def stop(self) -> None:
        # Read the processes before shutdown() forgets them; SIGTERM becomes a
        # KeyboardInterrupt in a running job, whose writer then removes its temp file.
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        for future in self.futures:
            future.cancel()
        for process in processes:
            if process.is_alive():
                process.terminate()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def finished(self) -> list[Outcome]:
        return [self._outcome(f) for f in self.futures if f.done() and not f.cancelled()]


class RayExecutor:
    """Each bracket a Ray task; a GPU per task when the cluster has GPUs and the engine uses one."""

    def __init__(self, address: str | None, config: MergeConfig) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(f'{param("executor", Executor.RAY.value)} needs Ray: pip install "uhdfuse[ray]"') from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a new local instance"
                raise UsageError(f"cannot reach the Ray cluster at {where} ({first_line(exc)})") from None
            self.started = True
        gpus = 1 if uses_gpu(config) and ray.cluster_resources().get("GPU", 0) >= 1 else 0
        self.task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(run_job)
        self.refs: list = []
        self.pending: list = []

    def run(self, jobs: Sequence[Job]) -> Iterator[Outcome]:
        refs = {self.task.remote(job): job for job in jobs}
        self.refs = list(refs)
        self.pending = list(refs)
        while self.pending:
            ready, self.pending = self.ray.wait(self.pending, num_returns=1)
            job = refs[ready[0]]
            try:
                yield self.ray.get(ready[0])
            except Exception as exc:  # noqa: BLE001 - the task's worker died, or the node
                yield Outcome.failed(job, f"Ray task failed: {type(exc).__name__}: {first_line(exc)}")

    def stop(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref)  # KeyboardInterrupt in a running task: the writer cleans up

    def finished(self) -> list[Outcome]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(self.refs, num_returns=len(self.refs), timeout=0)
        found = []
        for ref in ready:
            try:
                found.append(self.ray.get(ref))
            except Exception:  # noqa: BLE001, S112 - cancelled or failed: nothing was written
                continue
        return found

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()


def make_executor(options: BatchOptions, config: MergeConfig) -> BracketExecutor:
    """The executor ``options.executor`` names, for jobs fused with ``config``."""
    if options.executor is Executor.RAY:
        return RayExecutor(options.address, config)
    return LocalExecutor(options.workers)
