"""What a batch will do: a :class:`Job` per bracket still to fuse, the rest decided.

The settings of every job are decided here once: the exposure anchor of a
``consistent`` batch, the settings hash the manifest compares, whether workers share
a GPU (and so its lock file).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from uhdfuse.batch.jobs import Job, Outcome
from uhdfuse.batch.manifest import Manifest, settings_hash
from uhdfuse.batch.naming import output_names
from uhdfuse.batch.options import BatchOptions
from uhdfuse.config import Device, Engine, Executor, MergeConfig, Singles
from uhdfuse.errors import Message, UsageError, joined, param
from uhdfuse.io.inputs import is_raw

if TYPE_CHECKING:
    from uhdfuse.shoot import Group

GPU_LOCK_NAME = ".uhdfuse-gpu.lock"


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
        raise UsageError(f"{param('consistent', True)} needs exposure times in the files' metadata; none has any")
    return float(statistics.median(middles))


def uses_gpu(config: MergeConfig) -> bool:
    """Whether fusing with ``config`` may put a model on a GPU."""
    return config.engine is Engine.IPL and config.device is not Device.CPU and not config.hdr


def fuses(group: Group, singles: Singles) -> bool:
    """Whether a batch fuses ``group``: every bracket; with ``Singles.VIRTUAL`` also a
    single RAW file, as a virtual bracket (:mod:`uhdfuse.virtual`). A single JPEG has no
    headroom above white to make one from, so it stays a single."""
    if group.kind == "bracket":
        return True
    return singles is Singles.VIRTUAL and group.kind == "single" and len(group.paths) == 1 and is_raw(group.paths[0])


def _reason(group: Group) -> Message:
    """Why ``group`` is fused: a bracket's own reason, or that a single becomes a virtual bracket."""
    if group.kind == "bracket":
        return group.reason
    return joined([group.reason, f"fused as a virtual bracket ({param('singles', Singles.VIRTUAL.value)})"])


@dataclass(frozen=True)
class Plan:
    """Every bracket of a batch, decided: to run, or done before running."""

    jobs: list[Job]  # to run
    done: list[Outcome]  # skipped: up to date
    not_fused: list[Group]  # singles (unless made virtual), leftovers, unreadable files
    anchor: float | None  # the exposure anchor of a consistent batch
    config: MergeConfig  # the settings of every job (force aside: see plan)
    settings: str  # their hash, as the manifest records it
    manifest: Manifest  # the output folder's, as loaded

    @property
    def total(self) -> int:
        return len(self.jobs) + len(self.done)


def plan(groups: Sequence[Group], options: BatchOptions) -> Plan:
    """Name every bracket's output and decide, from the manifest, what is left to do.

    An output this batch wrote earlier (it is in the manifest) from other inputs or
    settings is redone with ``force``; any other existing output is left to the
    writer, which refuses it unless ``options.config.force``.
    """
    brackets = [g for g in groups if fuses(g, options.singles)]
    config = options.config
    anchor = None
    if options.consistent:
        anchor = exposure_anchor(brackets)
        config = dataclasses.replace(config, exposure_anchor=anchor)
    out_dir = Path(options.output_dir).absolute()
    names = output_names(brackets, options.template, options.format)
    manifest = Manifest.load(out_dir)
    settings = settings_hash(config, options.suffix)
    shared_gpu = uses_gpu(config) and options.executor is Executor.LOCAL and options.workers > 1
    lock = str(out_dir / GPU_LOCK_NAME) if shared_gpu else None

    jobs, done = [], []
    for i, (group, name) in enumerate(zip(brackets, names, strict=True), start=1):
        inputs = tuple(str(p.absolute()) for p in group.paths)
        job = Job(i, name, inputs, str(out_dir / name), config, _reason(group), lock)
        entry = manifest.written(name) if options.resume else None
        if entry is not None and manifest.up_to_date(entry, inputs, settings):
            done.append(Outcome.skipped(job, entry.get("result")))
            continue
        if entry is not None:  # our own earlier output, from other inputs or settings: redo it
            job = dataclasses.replace(job, config=dataclasses.replace(config, force=True))
        jobs.append(job)
    not_fused = [g for g in groups if not fuses(g, options.singles)]
    return Plan(jobs, done, not_fused, anchor, config, settings, manifest)
