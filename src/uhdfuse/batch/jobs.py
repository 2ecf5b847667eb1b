"""A bracket to fuse (:class:`Job`) and what became of it (:class:`Outcome`).

Both cross process boundaries (to a worker or a Ray task and back), so both pickle;
an outcome's ``error`` is a :class:`~uhdfuse.errors.Message`, which keeps its
template on the way, so the CLI can still spell the settings it names as flags.
"""

from __future__ import annotations

from collections.abc import Callable

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from uhdfuse.config import MergeConfig
from uhdfuse.errors import Message, UhdfuseError

if TYPE_CHECKING:
    from uhdfuse.types import FuseResult

Status = Literal["ok", "skipped", "failed", "interrupted"]
STATUSES: tuple[Status, ...] = ("ok", "skipped", "failed", "interrupted")


@dataclass(frozen=True)
class Job:
    """One bracket to fuse; picklable, so it can travel to a worker or a Ray task."""

    index: int  # 1-based position among the batch's brackets
    name: str  # output path relative to the output folder
    inputs: tuple[str, ...]  # absolute paths, capture order
    output: str  # absolute path
    config: MergeConfig
    reason: Message  # why these frames form a bracket
    gpu_lock: str | None = None  # lock file serialising the fusion stage on a shared GPU


@dataclass(frozen=True)
class Outcome:
    """What happened to one bracket; ``to_json`` is the ``--json`` line and report entry.

    Built by its constructors, one per status: :meth:`of`, :meth:`skipped`,
    :meth:`failed`, :meth:`interrupted`.
    """

    index: int
    name: str
    status: Status
    output: str
    inputs: tuple[str, ...]
    reason: Message
    error: Message | None = None
    seconds: float = 0.0
    result: dict | None = None  # FuseResult.to_json() of a fused bracket
    hashes: tuple[dict, ...] = ()  # input fingerprints, for the manifest

    @classmethod
    def of(cls, job: Job, result: FuseResult, hashes: tuple[dict, ...], seconds: float) -> Outcome:
        """A fused bracket; ``hashes`` are its inputs' fingerprints, taken before the merge."""
        return cls._for(job, "ok", None, seconds, result.to_json(), hashes)

    @classmethod
    def skipped(cls, job: Job, result: dict | None) -> Outcome:
        """A bracket whose output is up to date; ``result`` is what the manifest recorded of it."""
        return cls._for(job, "skipped", None, 0.0, result)

    @classmethod
    def failed(cls, job: Job, error: str | UhdfuseError, seconds: float = 0.0) -> Outcome:
        """A bracket that could not be fused; a UhdfuseError's message keeps its template."""
        return cls._for(job, "failed", error.message if isinstance(error, UhdfuseError) else error, seconds)

    @classmethod
    def interrupted(cls, job: Job, why: str, seconds: float = 0.0) -> Outcome:
        """A bracket the batch's interruption stopped (or never started); nothing was written."""
        return cls._for(job, "interrupted", why, seconds)

    @classmethod
    def _for(
        cls, job: Job, status: Status, error: str | None, seconds: float,
        result: dict | None = None, hashes: tuple[dict, ...] = (),
    ) -> Outcome:  # fmt: skip
        message = Message(error) if error is not None else None
        return cls(job.index, job.name, status, job.output, job.inputs, job.reason, message, seconds, result, hashes)

    def to_json(self, spell: Callable[[str], str] = str) -> dict:
        """The ``--json`` line and report entry; ``spell`` words the messages (the CLI's
        flags; by default the Python parameters)."""
        done = self.status in ("ok", "skipped")
        result = self.result
        if result is not None and result.get("warnings"):
            result = result | {"warnings": [spell(w) for w in result["warnings"]]}
        return {
            "index": self.index,
            "status": self.status,
            "output": self.output if done else None,  # `jq -r .output` lists only real files
            "target": self.output,
            "inputs": list(self.inputs),
            "reason": spell(self.reason),
            "error": spell(self.error) if self.error is not None else None,
            "seconds": round(self.seconds, 3),
            "result": result,
        }
