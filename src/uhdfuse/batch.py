"""Fusing every bracket of a shoot, unattended: naming, resume, workers, Ray.

:func:`plan` turns the groups of :mod:`uhdfuse.bracket` into :class:`Job` s (one
output name each, from a template, never two alike) and decides from the resume
manifest which are already done. :func:`run_batch` runs the rest on an executor
and returns a :class:`BatchSummary` whose :attr:`~BatchSummary.exit_code` is 0 when
every bracket succeeded, 3 when some failed, 1 when none did (130 interrupted,
143 terminated by SIGTERM).

One failing bracket never stops the batch: its error is recorded and the next
bracket goes on. Outputs are written atomically by :func:`uhdfuse.io.write_image`,
so an interrupted batch leaves finished outputs and nothing half-written.

Resume manifest (``<output>/.uhdfuse-batch.json``): for every finished output, the
settings hash and, per input, its size, mtime (ns) and SHA-256. A rerun skips an
output that exists when the settings hash matches and every input is unchanged:
size and mtime equal (cheap: one ``stat``), or else, when only the mtime moved (a
copy, a ``touch``), the SHA-256 equal. Changed inputs or settings redo the bracket.

Executors: ``local`` runs brackets in ``workers`` processes started with ``spawn``
(never ``fork``: forking a process whose OpenMP or torch threads already run can
deadlock the child; and a fresh interpreter takes its thread counts from the
environment we give it, which a ``forkserver`` started earlier would not). While
one worker fuses, the others decode, align and write, so with 2+ workers I/O
overlaps fusion. ``ray`` runs each bracket as a Ray task (optional dependency:
``pip install "uhdfuse[ray]"``), asking for one GPU per task when the cluster has
GPUs and the engine uses one; paths must be shared.

This module imports nothing heavy at the top: worker processes set their thread
counts before numpy, OpenCV or torch are loaded.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
import re
import signal
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from uhdfuse import __version__
from uhdfuse.bracket import Group
from uhdfuse.config import MergeConfig
from uhdfuse.errors import UhdfuseError, UsageError

ExecutorName = Literal["local", "ray"]
Status = Literal["ok", "skipped", "failed", "interrupted"]

MANIFEST_NAME = ".uhdfuse-batch.json"
REPORT_NAME = "uhdfuse-report.json"
DEFAULT_TEMPLATE = "{date}_{first}_{n}"
TEMPLATE_FIELDS = ("date", "time", "first", "last", "n", "index", "camera")
EXIT_OK, EXIT_NONE, EXIT_SOME, EXIT_INTERRUPTED = 0, 1, 3, 130


# --------------------------------------------------------------------------- naming


def output_names(groups: Sequence[Group], template: str = DEFAULT_TEMPLATE, suffix: str = ".tif") -> list[str]:
    """One output file name per group, from ``template``; never two alike.

    Fields: ``{date}`` (YYYY-MM-DD of the first frame, or "undated"), ``{time}``
    (HHMMSS), ``{first}`` / ``{last}`` (file stems), ``{n}`` (frames), ``{index}``
    (4 digits, 1-based position among ``groups``), ``{camera}`` (model). A name
    that repeats (case-insensitively) gets ``-2``, ``-3``, ... appended.

    Raises :class:`UsageError` for an unknown field or a template that would leave
    the output folder.
    """
    names: list[str] = []
    seen: set[str] = set()
    for i, group in enumerate(groups, start=1):
        first, last = group.frames[0], group.frames[-1]
        values = {
            "date": first.time.strftime("%Y-%m-%d") if first.time else "undated",
            "time": first.time.strftime("%H%M%S") if first.time else "000000",
            "first": first.path.stem,
            "last": last.path.stem,
            "n": str(len(group.frames)),
            "index": f"{i:04d}",
            "camera": first.camera.model or "camera",
        }
        try:
            stem = template.format_map({k: _safe(v) for k, v in values.items()})
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(
                f"bad --name template {template!r} ({exc}); fields: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}"
            ) from None
        parts = Path(stem).parts
        if not stem or Path(stem).is_absolute() or ".." in parts or not stem.strip(". "):
            raise UsageError(f"--name template {template!r} gives {stem!r}, not a name inside the output folder")
        name, k = stem + suffix, 2
        while name.lower() in seen:
            name, k = f"{stem}-{k}{suffix}", k + 1
        seen.add(name.lower())
        names.append(name)
    return names


def _safe(value: str) -> str:
    """A field value that cannot add folders or odd characters to a file name."""
    return re.sub(r"[^\w.\-+]+", "-", value).strip("-") or "x"


# --------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One bracket to fuse; picklable, so it can travel to a worker or a Ray task."""

    index: int  # 1-based position among the batch's brackets
    name: str  # output path relative to the output folder
    inputs: tuple[str, ...]  # absolute paths, capture order
    output: str  # absolute path
    config: MergeConfig
    reason: str  # why these frames form a bracket
    gpu_lock: str | None = None  # lock file serialising the fusion stage on a shared GPU


@dataclass(frozen=True)
class Outcome:
    """What happened to one bracket; ``to_json`` is the ``--json`` line and report entry."""

    index: int
    name: str
    status: Status
    output: str
    inputs: tuple[str, ...]
    reason: str
    error: str | None = None
    seconds: float = 0.0
    result: dict | None = None  # FuseResult.to_json() of a fused bracket
    hashes: tuple[dict, ...] = ()  # input fingerprints, for the manifest

    def to_json(self) -> dict:
        done = self.status in ("ok", "skipped")
        return {
            "index": self.index,
            "status": self.status,
            "output": self.output if done else None,  # `jq -r .output` lists only real files
            "target": self.output,
            "inputs": list(self.inputs),
            "reason": self.reason,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "result": self.result,
        }


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch (the merge settings are in ``config``)."""

    output_dir: Path
    config: MergeConfig = MergeConfig()
    template: str = DEFAULT_TEMPLATE
    suffix: str = ".tif"
    workers: int = 1
    executor: ExecutorName = "local"
    address: str | None = None  # Ray cluster address ("auto", "ray://host:10001"); None = start a local one
    resume: bool = True
    consistent: bool = False  # one exposure normalisation for every bracket (see exposure_anchor)
    report: Path | None = None  # default: <output_dir>/uhdfuse-report.json


@dataclass
class BatchSummary:
    """Everything a batch did, in bracket order."""

    outcomes: list[Outcome]
    not_fused: list[Group]
    interrupted: bool = False
    report: Path | None = None
    exposure_anchor: float | None = None
    seconds: float = 0.0
    interrupt_code: int = EXIT_INTERRUPTED  # 143 when the interruption was a SIGTERM

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        """0 all brackets done (fused or already up to date), 3 some failed, 1 none done,
        130 interrupted (143 by SIGTERM)."""
        if self.interrupted:
            return self.interrupt_code
        done = self.count("ok") + self.count("skipped")
        if done == len(self.outcomes) and self.outcomes:
            return EXIT_OK
        return EXIT_SOME if done else EXIT_NONE

    def to_json(self) -> dict:
        return {
            "uhdfuse": __version__,
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "exposure_anchor": self.exposure_anchor,
            "seconds": round(self.seconds, 3),
            "counts": {s: self.count(s) for s in ("ok", "skipped", "failed", "interrupted")}
            | {"not_fused": len(self.not_fused)},
            "brackets": [o.to_json() for o in self.outcomes],
            "not_fused": [g.to_json() for g in self.not_fused],
        }


# --------------------------------------------------------------------------- resume


def settings_hash(config: MergeConfig, suffix: str) -> str:
    """SHA-256 of everything that changes an output's bytes (``force`` does not)."""
    settings = dataclasses.asdict(dataclasses.replace(config, force=False))
    text = json.dumps({"config": settings, "suffix": suffix, "uhdfuse": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(path: Path) -> dict:
    """size, mtime (ns) and SHA-256 of one file."""
    st = os.stat(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest.hexdigest()}


def _unchanged(recorded: dict) -> bool:
    try:
        st = os.stat(recorded["path"])
    except OSError:
        return False
    if st.st_size != recorded["size"]:
        return False
    if st.st_mtime_ns == recorded["mtime_ns"]:
        return True
    return fingerprint(Path(recorded["path"]))["sha256"] == recorded["sha256"]


def load_manifest(output_dir: Path) -> dict:
    """The resume manifest of an output folder ({} when absent or unreadable)."""
    try:
        data = json.loads((output_dir / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data.get("outputs", {}) if isinstance(data, dict) else {}


def _write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON under a temporary name, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:  # an interrupt included: never leave the temporary file behind
        temp.unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- planning


def exposure_anchor(groups: Sequence[Group]) -> float:
    """The shoot's common exposure: the median, over brackets, of the middle exposure.

    Raises :class:`UsageError` when no bracket has exposure times.
    """
    middles = []
    for g in groups:
        values = sorted(v for v in (f.ev_value for f in g.frames) if v is not None)
        if g.kind == "bracket" and values:
            middles.append(values[(len(values) - 1) // 2])
    if not middles:
        raise UsageError("--consistent needs exposure times in the files' metadata; none has any")
    return float(statistics.median(middles))


@dataclass(frozen=True)
class Plan:
    jobs: list[Job]  # to run
    done: list[Outcome]  # skipped (up to date) or failed before running
    not_fused: list[Group]
    anchor: float | None


def plan(groups: Sequence[Group], options: BatchOptions) -> Plan:
    """Name every bracket's output and decide, from the manifest, what is left to do."""
    brackets = [g for g in groups if g.kind == "bracket"]
    config = options.config
    anchor = None
    if options.consistent:
        anchor = exposure_anchor(brackets)
        config = dataclasses.replace(config, exposure_anchor=anchor)
    out_dir = Path(options.output_dir).absolute()
    names = output_names(brackets, options.template, options.suffix)
    manifest = load_manifest(out_dir) if options.resume else {}
    wanted = settings_hash(config, options.suffix)
    uses_gpu = config.engine == "ipl" and config.device != "cpu" and not config.hdr
    shared_gpu = uses_gpu and options.executor == "local" and options.workers > 1
    lock = str(out_dir / ".uhdfuse-gpu.lock") if shared_gpu else None

    jobs, done = [], []
    for i, (group, name) in enumerate(zip(brackets, names, strict=True), start=1):
        inputs = tuple(str(p.absolute()) for p in group.paths)
        output = out_dir / name
        job = Job(i, name, inputs, str(output), config, group.reason, lock)
        entry = manifest.get(name)
        ours = entry is not None and output.exists()
        if ours and entry.get("settings") == wanted and [r["path"] for r in entry["inputs"]] == list(inputs) and all(
            _unchanged(r) for r in entry["inputs"]
        ):
            done.append(Outcome(i, name, "skipped", str(output), inputs, group.reason, result=entry.get("result")))
            continue
        if ours:  # our own earlier output, from other inputs or settings: redo it
            job = dataclasses.replace(job, config=dataclasses.replace(config, force=True))
        jobs.append(job)
    not_fused = [g for g in groups if g.kind != "bracket"]
    return Plan(jobs, done, not_fused, anchor)


# --------------------------------------------------------------------------- one bracket (in a worker)

_stopping = False  # set in a worker by SIGTERM: the batch is being interrupted
_in_job = False


def run_job(job: Job) -> Outcome:
    """Fuse one bracket; never raises for a bracket's own failure (the outcome says it)."""
    global _in_job
    from uhdfuse.pipeline import merge

    start = time.perf_counter()

    def outcome(status: Status, error: str | None = None, **kw) -> Outcome:
        return Outcome(job.index, job.name, status, job.output, job.inputs, job.reason, error,
                       time.perf_counter() - start, **kw)  # fmt: skip

    if _stopping:
        return outcome("interrupted", "batch interrupted before this bracket started")
    _in_job = True  # from here on, SIGTERM interrupts the work (see _init_worker)
    gpu = _GpuLock(job.gpu_lock)

    def on_stage(name: str) -> None:
        global _in_job
        gpu.on_stage(name)
        if name == "write":
            # Past this point the output gets renamed into place: a SIGTERM now must let
            # the write finish and the outcome be reported, or the output would exist
            # without its manifest entry and block the resumed run.
            _in_job = False

    try:
        hashes = tuple(fingerprint(Path(p)) for p in job.inputs)
        result = merge(job.inputs, job.output, job.config, on_stage=on_stage)
        return outcome("ok", result=result.to_json(), hashes=hashes)
    except UhdfuseError as exc:
        return outcome("failed", str(exc))
    except KeyboardInterrupt:
        return outcome("interrupted", "interrupted; no output written")
    except OSError as exc:  # an input vanished while hashing, ...
        return outcome("failed", f"{exc.filename or job.inputs[0]}: {exc.strerror or exc}")
    except Exception as exc:  # noqa: BLE001 - a bug in one bracket must not end an unattended batch
        return outcome("failed", f"internal error: {type(exc).__name__}: {exc}")
    finally:
        gpu.release()
        _in_job = False


class _GpuLock:
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


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _thread_env(threads: int):
    """Thread-count variables for the workers about to start; OpenMP and OpenBLAS read
    them when loaded, before any initializer could run. The caller's values come back."""
    saved = {var: os.environ.get(var) for var in _THREAD_VARS}
    os.environ.update({var: str(threads) for var in _THREAD_VARS})
    try:
        yield
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


def _init_worker(threads: int) -> None:
    """Worker start-up: share the cores, ignore Ctrl-C (the parent decides), and turn
    the parent's SIGTERM into KeyboardInterrupt so the writer removes its temp file."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def on_term(signum, frame):  # noqa: ANN001
        global _stopping
        _stopping = True
        if _in_job:
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    import cv2

    cv2.setNumThreads(threads)


# --------------------------------------------------------------------------- executors


class Executor(Protocol):
    """Runs jobs somewhere and yields their outcomes as they finish."""

    def run(self, jobs: Sequence[Job]) -> Iterator[Outcome]: ...

    def stop(self) -> None:
        """Interrupt: cancel queued jobs, make running ones abandon their output."""

    def close(self) -> None:
        """Wait for the workers to end and release them."""

    def finished(self) -> list[Outcome]:
        """After :meth:`close`: the outcomes of every job that ran to its end, yielded or not."""


class LocalExecutor:
    """``workers`` processes on this machine (concurrent.futures, spawn)."""

    def __init__(self, workers: int) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if workers < 1:
            raise UsageError(f"--workers must be at least 1, got {workers}")
        self.threads = max(1, (os.cpu_count() or 1) // workers)
        self.futures: dict = {}
        self.pool = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(self.threads,)
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
            return Outcome(job.index, job.name, "failed", job.output, job.inputs, job.reason,
                           f"worker process failed: {type(exc).__name__}: {exc}")  # fmt: skip
        except BaseException:  # noqa: BLE001 - interrupted between its work and its report
            return Outcome(job.index, job.name, "interrupted", job.output, job.inputs, job.reason, "interrupted")

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
            raise UsageError('--executor ray needs Ray: pip install "uhdfuse[ray]"') from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a new local instance"
                raise UsageError(f"cannot reach the Ray cluster at {where} ({exc})") from None
            self.started = True
        wants_gpu = config.engine == "ipl" and config.device != "cpu" and not config.hdr
        gpus = 1 if wants_gpu and ray.cluster_resources().get("GPU", 0) >= 1 else 0
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
                yield Outcome(job.index, job.name, "failed", job.output, job.inputs, job.reason,
                              f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")  # fmt: skip

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


def make_executor(options: BatchOptions, config: MergeConfig) -> Executor:
    if options.executor == "local":
        return LocalExecutor(options.workers)
    if options.executor == "ray":
        return RayExecutor(options.address, config)
    raise UsageError(f"unknown executor {options.executor!r}; choose local or ray")


# --------------------------------------------------------------------------- the batch


def run_batch(
    groups: Sequence[Group],
    options: BatchOptions,
    *,
    on_outcome: Callable[[Outcome, int, int], None] | None = None,
) -> BatchSummary:
    """Fuse every bracket among ``groups`` into ``options.output_dir``.

    ``on_outcome(outcome, finished, total)`` is called in the calling process as each
    bracket finishes (skipped ones first). The manifest is updated after each fused
    bracket and the report written (atomically) at the end, also when interrupted.
    A KeyboardInterrupt stops the batch: queued brackets are dropped, running ones
    abandon their output, and the summary says ``interrupted``.
    """
    started = time.perf_counter()
    work = plan(groups, options)
    out_dir = Path(options.output_dir).absolute()
    config = options.config
    if work.anchor is not None:
        config = dataclasses.replace(config, exposure_anchor=work.anchor)
    total = len(work.jobs) + len(work.done)
    outcomes: list[Outcome] = []

    def record(o: Outcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o, len(outcomes), total)

    for o in work.done:
        record(o)
    manifest = load_manifest(out_dir)
    wanted = settings_hash(config, options.suffix)

    def remember(*done: Outcome) -> None:
        for o in done:
            manifest[o.name] = {"settings": wanted, "inputs": list(o.hashes), "result": o.result}
        _write_json_atomic(out_dir / MANIFEST_NAME, {"version": 1, "outputs": manifest})

    interrupted = False
    interrupt_code = EXIT_INTERRUPTED
    if work.jobs:
        out_dir.mkdir(parents=True, exist_ok=True)
        executor = make_executor(options, config)
        try:
            for o in executor.run(work.jobs):
                if o.status == "ok":
                    remember(o)
                record(o)
                interrupted = interrupted or o.status == "interrupted"
        except KeyboardInterrupt as exc:
            interrupted = True
            # the CLI raises a KeyboardInterrupt subclass carrying 143 for SIGTERM
            interrupt_code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
            executor.stop()
        finally:
            executor.close()
            _remove_temps(out_dir, [j.name for j in work.jobs])
            if work.jobs[0].gpu_lock is not None:  # the workers are gone: nobody holds it
                Path(work.jobs[0].gpu_lock).unlink(missing_ok=True)
        if interrupted:
            # Every complete output must be in the manifest, or the resumed run would
            # refuse to overwrite it; that includes brackets that finished while we were
            # stopping and one whose report the interrupt caught half-recorded.
            seen = {o.index for o in outcomes}
            finished_now = executor.finished()
            if ok := [o for o in finished_now if o.status == "ok"]:
                remember(*ok)
            outcomes.extend(o for o in finished_now if o.index not in seen)
    finished = {o.index for o in outcomes}
    for job in work.jobs:
        if job.index not in finished:
            outcomes.append(Outcome(job.index, job.name, "interrupted", job.output, job.inputs, job.reason,
                                    "batch interrupted before this bracket finished"))  # fmt: skip
    outcomes.sort(key=lambda o: o.index)
    summary = BatchSummary(
        outcomes, work.not_fused, interrupted, None, work.anchor, time.perf_counter() - started, interrupt_code
    )
    report = options.report or out_dir / REPORT_NAME
    if total or options.report:
        _write_json_atomic(report, summary.to_json())
        summary.report = report
    return summary


def _remove_temps(out_dir: Path, names: Sequence[str]) -> None:
    """Remove temporary files a killed worker may have left (the writer removes its own
    on any exception; this covers a worker that died outright)."""
    for name in names:
        target = out_dir / name
        for temp in target.parent.glob(f".{glob.escape(target.name)}.uhdfuse-*.tmp"):
            try:
                temp.unlink()
            except OSError:
                pass

