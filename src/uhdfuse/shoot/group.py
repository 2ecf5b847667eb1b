"""A group of files and why they were put together; the groups of a whole shoot."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from uhdfuse.errors import Message
from uhdfuse.shoot.frames import FrameInfo, camera_name

GroupKind = Literal["bracket", "single", "leftover", "unreadable"]


@dataclass(frozen=True)
class Group:
    """A set of files and why they were put together.

    ``frames`` are in capture order (then name order). ``kind``: ``bracket`` (fused),
    ``single``, ``leftover`` or ``unreadable`` (reported only). ``reason`` is a
    :class:`~uhdfuse.errors.Message`: where it names a setting, the CLI spells its flag.
    """

    kind: GroupKind
    frames: tuple[FrameInfo, ...]
    reason: Message

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", Message(self.reason))

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.frames)

    def to_json(self, spell: Callable[[str], str] = str) -> dict:
        """The dry-run line and report entry; ``spell`` words the reason (the CLI's flags;
        by default the Python parameters)."""
        first = self.frames[0]
        return {
            "kind": self.kind,
            "files": [str(p) for p in self.paths],
            "n": len(self.frames),
            "camera": camera_name(first.camera),
            "time": first.time.isoformat() if first.time else None,
            "bias_ev": [f.exposure.bias_ev for f in self.frames],
            "reason": spell(self.reason),
        }


@dataclass(frozen=True)
class Shoot:
    """The groups of a shoot, and what discovery left out of them (one note per kind)."""

    groups: list[Group]
    notes: tuple[str, ...] = ()


def unreadable(frames: Sequence[FrameInfo]) -> list[Group]:
    """One ``unreadable`` group per file whose metadata could not be read, in the given order."""
    return [Group("unreadable", (f,), f.error or "unreadable") for f in frames if f.error is not None]
