"""Finding the brackets of a whole shoot from metadata alone (no pixel is decoded).

Three ways to group files:

* ``auto`` (:func:`group_auto`): each camera body's frames, sorted by capture time
  (then name), form a bracket while they share the lens, at the same focal
  length, resolution and orientation, each within ``gap`` seconds of the previous
  one, and each with an exposure not yet seen in the bracket (bias or exposure
  value). A repeated exposure starts a new bracket, which is how back-to-back
  auto-brackets (0/-2/+2, 0/-2/+2) and single shots after a bracket are told apart.
* ``frames`` (:func:`group_fixed`): consecutive runs of exactly N frames, in capture
  order, as Luminance HDR and Photomatix expect; what is left at the end is a leftover.
* ``folders`` (:func:`group_folders`): every folder holding images is one bracket.

Every :class:`Group` says why it was formed (``reason``), so a dry run can show it.
Groups of one frame (``single``), unfinished fixed-size runs (``leftover``) and
files whose metadata cannot be read (``unreadable``) are reported, never fused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import exiv2

from uhdfuse.errors import UnsupportedInput, UsageError
from uhdfuse.io import list_inputs, read_metadata
from uhdfuse.types import CameraInfo, ExposureInfo

GroupKind = Literal["bracket", "single", "leftover", "unreadable"]
Mode = Literal["auto", "frames", "folders"]

DEFAULT_GAP = 3.0  # seconds between consecutive frames of one bracket (HDRMerge's default too)
EV_TOLERANCE = 1 / 6  # exposures closer than this (EV) count as the same; bias steps are >= 1/3


@dataclass(frozen=True)
class FrameInfo:
    """What grouping knows of one file: its metadata, never its pixels."""

    path: Path
    exposure: ExposureInfo
    camera: CameraInfo
    size: tuple[int, int] | None  # (width, height) as stored, None when unknown
    time: datetime | None  # capture time (DateTimeOriginal), None when absent
    error: str | None = None  # why the file cannot be used (then the rest is defaults)

    @property
    def body(self) -> tuple:
        """What must be equal for two frames to belong to one bracket."""
        c = self.camera
        focal = round(c.focal_length, 1) if c.focal_length is not None else None
        return (c.make, c.model, c.lens, focal, self.size, c.orientation)

    @property
    def ev_value(self) -> float | None:
        """log2 of the exposure (t * ISO / N^2), the bracket's ordering quantity."""
        return self.exposure.log2_exposure()


@dataclass(frozen=True)
class Group:
    """A set of files and why they were put together.

    ``frames`` are in capture order (then name order). ``kind``: ``bracket`` (fused),
    ``single``, ``leftover`` or ``unreadable`` (reported only).
    """

    kind: GroupKind
    frames: tuple[FrameInfo, ...]
    reason: str

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(f.path for f in self.frames)

    def to_json(self) -> dict:
        first = self.frames[0]
        return {
            "kind": self.kind,
            "files": [str(p) for p in self.paths],
            "n": len(self.frames),
            "camera": " ".join(x for x in (first.camera.make, first.camera.model) if x) or None,
            "time": first.time.isoformat() if first.time else None,
            "bias_ev": [f.exposure.bias_ev for f in self.frames],
            "reason": self.reason,
        }


# --------------------------------------------------------------------------- metadata


def scan(paths: Sequence[Path]) -> list[FrameInfo]:
    """Read the metadata of every file (about 1-2 ms each); files keep the given order.

    A file whose metadata libexiv2 cannot parse (corrupt, truncated header, not really
    an image) gets ``error`` set instead of raising, so one bad file never stops a shoot.
    """
    return [_frame_info(Path(p)) for p in paths]


def _frame_info(path: Path) -> FrameInfo:
    try:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
        width, height = int(image.pixelWidth()), int(image.pixelHeight())
        exposure, camera = read_metadata(path)
    except (exiv2.Exiv2Error, UnsupportedInput, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return FrameInfo(path, ExposureInfo(), CameraInfo(), None, None, error=f"cannot read metadata ({reason})")
    size = (width, height) if width > 0 and height > 0 else None
    return FrameInfo(path, exposure, camera, size, _parse_time(camera.datetime))


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def capture_sorted(frames: Sequence[FrameInfo]) -> list[FrameInfo]:
    """Frames by capture time, then by name; frames without a time keep name order, last."""
    return sorted(frames, key=lambda f: (f.time is None, f.time or datetime.min, f.path.name, str(f.path)))


# --------------------------------------------------------------------------- grouping


def _same_exposure(a: FrameInfo, b: FrameInfo) -> bool:
    """Equal bias and equal exposure value, where an unknown value matches anything.

    Both must agree: manual brackets keep the bias at 0 and vary the shutter, and in
    aperture priority the metered shutter of two brackets may differ at equal bias.
    """
    def close(x: float | None, y: float | None) -> bool:
        return x is None or y is None or abs(x - y) < EV_TOLERANCE

    return close(a.exposure.bias_ev, b.exposure.bias_ev) and close(a.ev_value, b.ev_value)


def _has_exposure(f: FrameInfo) -> bool:
    return f.ev_value is not None or f.exposure.bias_ev is not None


def _why_not_joined(prev: FrameInfo, nxt: FrameInfo, run: Sequence[FrameInfo], gap: float) -> str | None:
    """None when ``nxt`` continues the bracket ``run`` (whose last frame is ``prev``), else why not."""
    if nxt.body != prev.body:
        return "different camera, lens, focal length, resolution or orientation"
    if prev.time is None or nxt.time is None:
        return "no capture time"
    delta = (nxt.time - prev.time).total_seconds()
    if delta > gap:
        return f"{delta:g} s after the previous frame (gap {gap:g} s)"
    if not _has_exposure(nxt) or not _has_exposure(prev):
        return "no exposure metadata"
    if any(_same_exposure(f, nxt) for f in run):
        return "repeats an exposure of the bracket"
    return None


def group_auto(frames: Sequence[FrameInfo], *, gap: float = DEFAULT_GAP) -> list[Group]:
    """Group by camera, time gap and exposure pattern (see the module docstring).

    Returns groups in capture order; unreadable files come last, in the given order.
    """
    if not (gap >= 0 and math.isfinite(gap)):
        raise UsageError(f"--gap must be a non-negative number of seconds, got {gap}")
    # Each camera body is its own stream: a second shooter's frames, interleaved in
    # time, must not break the first one's brackets.
    streams: dict[tuple, list[FrameInfo]] = {}
    for f in capture_sorted([f for f in frames if f.error is None]):
        streams.setdefault((f.camera.make, f.camera.model), []).append(f)
    groups: list[Group] = []
    for stream in streams.values():
        groups.extend(_group_stream(stream, gap))
    order = {id(f): i for i, f in enumerate(capture_sorted([f for g in groups for f in g.frames]))}
    groups.sort(key=lambda g: order[id(g.frames[0])])
    return groups + _unreadable(frames)


def _group_stream(usable: Sequence[FrameInfo], gap: float) -> list[Group]:
    """Group the capture-sorted frames of one camera body."""
    groups: list[Group] = []
    run: list[FrameInfo] = []
    ended = ""  # why the previous run stopped, for a single's reason

    def close_run(why_next: str) -> None:
        nonlocal ended
        if len(run) >= 2:
            groups.append(Group("bracket", tuple(run), _bracket_reason(run, gap)))
        elif run:
            groups.append(Group("single", tuple(run), _single_reason(run[0], ended, why_next)))
        ended = why_next

    for f in usable:
        why = _why_not_joined(run[-1], f, run, gap) if run else "first frame"
        if why is None:
            run.append(f)
            continue
        close_run(why)
        run = [f]
    close_run("last frame")
    return groups


def _bracket_reason(run: Sequence[FrameInfo], gap: float) -> str:
    spans = [(b.time - a.time).total_seconds() for a, b in zip(run, run[1:]) if a.time and b.time]
    biases = [f.exposure.bias_ev for f in run]
    if all(b is not None for b in biases):
        pattern = "bias " + "/".join(f"{b:+g}" for b in biases)  # type: ignore[str-format]
    else:
        evs = [f.ev_value for f in run]
        base = evs[0] or 0.0
        pattern = "EV " + "/".join(f"{(e or 0.0) - base:+.2g}" for e in evs)
    return (
        f"{len(run)} frames, same camera and lens, {pattern}, "
        f"at most {max(spans, default=0):g} s apart (gap {gap:g} s)"
    )


def _single_reason(f: FrameInfo, before: str, after: str) -> str:
    if not _has_exposure(f):
        return "no exposure metadata (use --frames N or one folder per bracket)"
    if f.time is None:
        return "no capture time (use --frames N or one folder per bracket)"
    return f"no bracket: before it, {before}; after it, {after}"


def _unreadable(frames: Sequence[FrameInfo]) -> list[Group]:
    return [Group("unreadable", (f,), f.error or "unreadable") for f in frames if f.error is not None]


def group_fixed(frames: Sequence[FrameInfo], n: int) -> list[Group]:
    """Consecutive runs of ``n`` frames in capture order; a shorter run at the end is a leftover."""
    if n < 2:
        raise UsageError(f"--frames must be at least 2, got {n}")
    usable = capture_sorted([f for f in frames if f.error is None])
    groups = []
    for start in range(0, len(usable), n):
        chunk = tuple(usable[start : start + n])
        if len(chunk) == n:
            groups.append(Group("bracket", chunk, f"--frames {n}: frames {start + 1}-{start + n} in capture order"))
        else:
            groups.append(Group("leftover", chunk, f"--frames {n}: {len(chunk)} frame(s) left at the end"))
    return groups + _unreadable(frames)


def group_folders(folders: Sequence[Path]) -> list[Group]:
    """One bracket per folder holding images: the given folders or, when a folder holds
    no images itself, each of its subfolders (sorted by name)."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError("folder mode needs folders; this is not one", folder)
        if _holds_images(folder):
            found.append(folder)
        else:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            found.extend(p for p in subs if _holds_images(p))
    groups: list[Group] = []
    for folder in found:
        frames = scan(list_inputs([folder]))
        good = [f for f in frames if f.error is None]
        if len(good) >= 2:
            groups.append(Group("bracket", tuple(good), f"folder {folder.name}/ holds {len(good)} images"))
        elif good:
            groups.append(Group("single", tuple(good), f"folder {folder.name}/ holds one image"))
        groups.extend(_unreadable(frames))
    return groups


def _holds_images(folder: Path) -> bool:
    try:
        list_inputs([folder])
    except UnsupportedInput:
        return False
    return True


def find_groups(
    inputs: Sequence[Path], *, mode: Mode = "auto", gap: float = DEFAULT_GAP, frames: int | None = None
) -> list[Group]:
    """Files or folders -> groups, by ``mode``. Folders are expanded non-recursively.

    Raises :class:`UnsupportedInput` for a missing path or a folder without images,
    :class:`UsageError` for bad settings.
    """
    if mode == "folders":
        return group_folders(inputs)
    paths = list(dict.fromkeys(p.absolute() for p in list_inputs([Path(p) for p in inputs])))
    infos = scan(paths)
    if mode == "frames":
        if frames is None:
            raise UsageError("fixed-size grouping needs --frames N")
        return group_fixed(infos, frames)
    return group_auto(infos, gap=gap)
