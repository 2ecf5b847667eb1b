"""Fusing one bracket where the batch sends it: a local worker process or a Ray task.

A local worker process runs one :class:`Worker` for its life, installed by
:func:`init_worker`; its :meth:`Worker.on_term` is the process's SIGTERM handler, so
the handler is how :func:`run_job` finds it again. A Ray task runs in a fresh
:class:`Worker` (Ray's cancel interrupts it by itself).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType

from uhdfuse.batch.jobs import Job, Outcome
from uhdfuse.batch.manifest import fingerprint
from uhdfuse.errors import UhdfuseError


class GpuLock:
    """Holds an exclusive file lock during the fusion stage, so two workers never
    load models onto one GPU at once (decoding and writing still overlap)."""

    def __init__(self, path: str | None) -> None:
        self.path, self.fh = path, None

    def on_stage(self, name: str) -> None:
        if self.path is None:
            return
        if name == "fuse":
            import fcntl

            self.fh = open(self.path, "a")  # noqa: SIM115 - held across stages
            fcntl.flock(self.fh, fcntl.LOCK_EX)
        elif self.fh is not None:
            self.release()

    def release(self) -> None:
        if self.fh is not None:
            self.fh.close()  # closing drops the flock
            self.fh = None


class Worker:
    """Runs brackets one after another and decides what a SIGTERM does to them.

    A SIGTERM (the parent stopping the batch) interrupts the running bracket, whose
    writer then removes its temporary file, unless the bracket is already writing
    its output (see :meth:`run`); brackets after it return ``interrupted``.
    """

    def __init__(self) -> None:
        self.stopping = False  # a SIGTERM arrived: the batch is being interrupted
        self.interruptible = False  # a SIGTERM now interrupts the running bracket

    @classmethod
    def of_this_process(cls) -> Worker:
        """The worker :func:`init_worker` installed in this process, else a new one."""
        owner = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        return owner if isinstance(owner, Worker) else cls()

    def on_term(self, signum: int, frame: FrameType | None) -> None:
        """The SIGTERM handler."""
        self.stopping = True
        if self.interruptible:
            raise KeyboardInterrupt

    def run(self, job: Job) -> Outcome:
        """Fuse one bracket; never raises for a bracket's own failure (the outcome says it)."""
        from uhdfuse.pipeline import merge

        start = time.perf_counter()
        if self.stopping:
            return Outcome.interrupted(job, "batch interrupted before this bracket started")
        self.interruptible = True
        gpu = GpuLock(job.gpu_lock)

        def on_stage(name: str) -> None:
            gpu.on_stage(name)
            if name == "write":
                # Past this point the output gets renamed into place: a SIGTERM now must let
                # the write finish and the outcome be reported, or the output would exist
                # without its manifest entry and block the resumed run.
                self.interruptible = False

        try:
            hashes = tuple(fingerprint(Path(p)) for p in job.inputs)
            result = merge(job.inputs, job.output, job.config, on_stage=on_stage)
            return Outcome.of(job, result, hashes, time.perf_counter() - start)
        except UhdfuseError as exc:
            return Outcome.failed(job, exc, time.perf_counter() - start)
        except KeyboardInterrupt:
            return Outcome.interrupted(job, "interrupted; no output written", time.perf_counter() - start)
        except OSError as exc:  # an input vanished while hashing, ...
            error = f"{exc.filename or job.inputs[0]}: {exc.strerror or exc}"
            return Outcome.failed(job, error, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - a bug in one bracket must not end an unattended batch
            return Outcome.failed(job, f"internal error: {type(exc).__name__}: {exc}", time.perf_counter() - start)
        finally:
            gpu.release()
            self.interruptible = False


def run_job(job: Job) -> Outcome:
    """Fuse one bracket in this process's :class:`Worker` (what executors submit)."""
    return Worker.of_this_process().run(job)


def init_worker(threads: int) -> None:
    """Local worker start-up: ignore Ctrl-C (the parent decides), make a :class:`Worker`
    the SIGTERM handler, and give OpenCV this process's share of the cores (numpy's
    and torch's pools take theirs from the environment the process started with)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, Worker().on_term)
    import cv2

    cv2.setNumThreads(threads)
