"""Running a batch: every bracket still to fuse on an executor, the manifest kept
current, the report written at the end, also when interrupted."""

from __future__ import annotations

import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from uhdfuse.batch.executors import make_executor
from uhdfuse.batch.jobs import STATUSES, Job, Outcome, Status
from uhdfuse.batch.manifest import REPORT_NAME, write_json_atomic
from uhdfuse.batch.options import BatchOptions
from uhdfuse.batch.plan import Plan, plan
from uhdfuse.version import __version__

if TYPE_CHECKING:
    from uhdfuse.shoot import Group

EXIT_OK, EXIT_NONE, EXIT_SOME, EXIT_INTERRUPTED = 0, 1, 3, 130
OnOutcome = Callable[[Outcome, int, int], None]


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

    def to_json(self, spell: Callable[[str], str] = str) -> dict:
        return {
            "uhdfuse": __version__,
            "exit_code": self.exit_code,
            "interrupted": self.interrupted,
            "exposure_anchor": self.exposure_anchor,
            "seconds": round(self.seconds, 3),
            "counts": {s: self.count(s) for s in STATUSES} | {"not_fused": len(self.not_fused)},
            "brackets": [o.to_json(spell) for o in self.outcomes],
            "not_fused": [g.to_json(spell) for g in self.not_fused],
        }


@dataclass
class _Tally:
    """The outcomes so far, each reported to ``on_outcome`` as it is recorded."""

    total: int
    on_outcome: OnOutcome | None
    outcomes: list[Outcome] = field(default_factory=list)
    interrupted: bool = False
    interrupt_code: int = EXIT_INTERRUPTED

    def record(self, o: Outcome) -> None:
        self.outcomes.append(o)
        self.interrupted = self.interrupted or o.status == "interrupted"
        if self.on_outcome is not None:
            self.on_outcome(o, len(self.outcomes), self.total)


def run_batch(
    groups: Sequence[Group], options: BatchOptions, *, on_outcome: OnOutcome | None = None,
    spell: Callable[[str], str] = str,
) -> BatchSummary:  # fmt: skip
    """Fuse every bracket among ``groups`` into ``options.output_dir``.

    ``spell`` words the messages of the report file (the CLI passes its flags).
    ``on_outcome(outcome, finished, total)`` is called in the calling process as each
    bracket finishes (skipped ones first). The manifest is updated after each fused
    bracket and the report written (atomically) at the end, also when interrupted.
    A KeyboardInterrupt stops the batch: queued brackets are dropped, running ones
    abandon their output, and the summary says ``interrupted``.
    """
    started = time.perf_counter()
    work = plan(groups, options)
    tally = _Tally(work.total, on_outcome)
    for o in work.done:
        tally.record(o)
    if work.jobs:
        _run_jobs(work, options, tally)
    finished = {o.index for o in tally.outcomes}
    outcomes = tally.outcomes + [
        Outcome.interrupted(job, "batch interrupted before this bracket finished")
        for job in work.jobs
        if job.index not in finished
    ]
    outcomes.sort(key=lambda o: o.index)
    summary = BatchSummary(
        outcomes, work.not_fused, tally.interrupted, None, work.anchor, time.perf_counter() - started,
        tally.interrupt_code,
    )  # fmt: skip
    report = options.report or work.manifest.folder / REPORT_NAME
    if work.total or options.report:
        write_json_atomic(report, summary.to_json(spell))
        summary.report = report
    return summary


def _run_jobs(work: Plan, options: BatchOptions, tally: _Tally) -> None:
    """Run ``work.jobs``, recording each outcome in ``tally`` and each fused bracket in the manifest."""
    out_dir = work.manifest.folder
    out_dir.mkdir(parents=True, exist_ok=True)
    executor = make_executor(options, work.config)
    try:
        for o in executor.run(work.jobs):
            if o.status == "ok":
                work.manifest.record([o], work.settings)
            tally.record(o)
    except KeyboardInterrupt as exc:
        tally.interrupted = True
        # the CLI raises a KeyboardInterrupt subclass carrying 143 for SIGTERM
        tally.interrupt_code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
        executor.stop()
    finally:
        executor.close()
        _remove_temps(out_dir, work.jobs)
        if work.jobs[0].gpu_lock is not None:  # the workers are gone: nobody holds it
            Path(work.jobs[0].gpu_lock).unlink(missing_ok=True)
    if tally.interrupted:
        # Every complete output must be in the manifest, or the resumed run would
        # refuse to overwrite it; that includes brackets that finished while we were
        # stopping and one whose report the interrupt caught half-recorded.
        seen = {o.index for o in tally.outcomes}
        finished_now = executor.finished()
        if ok := [o for o in finished_now if o.status == "ok"]:
            work.manifest.record(ok, work.settings)
        tally.outcomes.extend(o for o in finished_now if o.index not in seen)


def _remove_temps(out_dir: Path, jobs: Sequence[Job]) -> None:
    """Remove temporary files a killed worker may have left (the writer removes its own
    on any exception; this covers a worker that died outright)."""
    for job in jobs:
        target = out_dir / job.name
        for temp in target.parent.glob(f".{glob.escape(target.name)}.uhdfuse-*.tmp"):
            try:
                temp.unlink()
            except OSError:
                pass
