"""Finding the brackets of a whole shoot from metadata alone (no pixel is decoded).

Three ways to group files:

* ``auto`` (:func:`group_auto`): each camera body's frames of one file format, sorted by capture time
  (then name), form a bracket while they share the lens, at the same focal
  length, resolution and orientation, each starting within ``gap`` seconds of the
  end of the previous exposure (capture time with SubSec, plus its exposure time),
  and each with an exposure not yet seen in the bracket (bias or exposure value).
  A repeated exposure starts a new bracket, which is how back-to-back auto-brackets
  (0/-2/+2, 0/-2/+2) and single shots after a bracket are told apart.

  A bracket triggered by hand (a tripod, a remote, the shutter changed between
  frames) pauses longer: a frame that *continues the bracket's EV progression*
  (the same direction and a similar step) by a *deliberate* change (the camera in
  manual exposure, or another exposure compensation) joins across up to
  ``SLOW_GAP_FACTOR`` times ``gap`` (30 s by default), and such a bracket needs at
  least ``MIN_SLOW_FRAMES`` frames to stand (two frames of different exposure
  half a minute apart are as likely two singles). Frames of one exposure, exposures
  that turn back, and the metered exposures of singles shot in an auto mode never
  join over such a pause; two brackets of one scene a minute apart stay two (the
  second repeats the first's exposures, and its pause is longer).

  The camera's own mark comes first: where EXIF ExposureMode says "auto bracket"
  for some frames of a body, a marked frame and an unmarked one never share a bracket.
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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

import exiv2

from uhdfuse.config import Prefer
from uhdfuse.errors import UnsupportedInput, UsageError
from uhdfuse.io import RAW_EXTENSIONS, list_inputs, read_metadata
from uhdfuse.io.discover import discover
from uhdfuse.io.metadata import find_datum
from uhdfuse.types import CameraInfo, ExposureInfo

GroupKind = Literal["bracket", "single", "leftover", "unreadable"]
Mode = Literal["auto", "frames", "folders"]

DEFAULT_GAP = 3.0  # seconds between consecutive frames of one bracket (HDRMerge's default too)
# Changing the shutter by hand and pressing the remote again takes 5-25 s, ten times
# the pause of a camera's own bracket; a longer pause is a new intention (another
# composition, another bracket). 30 s with the default gap.
SLOW_GAP_FACTOR = 10.0
MIN_SLOW_FRAMES = 3  # the EV progression is the only evidence: two steps of it, at least
EV_TOLERANCE = 1 / 6  # exposures closer than this (EV) count as the same; bias steps are >= 1/3
# A hand-made bracket's steps: the photographer counts dial clicks, so steps repeat,
# give or take one 1/3 EV click... or a slip; a step more than twice (or less than half)
# the previous one is not the same progression.
STEP_RATIO = 2.0
AUTO_BRACKET_MODE = 2  # EXIF ExposureMode: 0 auto, 1 manual, 2 auto bracket
MANUAL_PROGRAM = 1  # EXIF ExposureProgram: 1 manual, 2 program, 3 aperture priority, ...


@dataclass(frozen=True)
class FrameInfo:
    """What grouping knows of one file: its metadata, never its pixels."""

    path: Path
    exposure: ExposureInfo
    camera: CameraInfo
    size: tuple[int, int] | None  # (width, height) as stored, None when unknown
    time: datetime | None  # capture time (DateTimeOriginal + SubSecTimeOriginal), None when absent
    error: str | None = None  # why the file cannot be used (then the rest is defaults)
    auto_bracket: bool | None = None  # EXIF ExposureMode says auto bracket; None when not recorded
    manual: bool | None = None  # EXIF ExposureProgram says manual; None when not recorded

    @property
    def format(self) -> str:
        """The kind of file, for keeping brackets to one: "raw", "jpeg", "png" or "tiff"."""
        suffix = self.path.suffix.lower()
        if suffix in RAW_EXTENSIONS:
            return "raw"
        return {".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}.get(suffix, suffix.lstrip("."))

    @property
    def end(self) -> datetime | None:
        """When the exposure ended: the capture time plus the exposure time."""
        if self.time is None:
            return None
        t = self.exposure.exposure_time
        return self.time + timedelta(seconds=t) if t is not None and 0 < t < 86400 else self.time

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
            "camera": camera_name(first.camera),
            "time": first.time.isoformat() if first.time else None,
            "bias_ev": [f.exposure.bias_ev for f in self.frames],
            "reason": self.reason,
        }


def camera_name(camera: CameraInfo) -> str | None:
    """'Canon EOS 30D', not 'Canon Canon EOS 30D': most models already start with the make."""
    make, model = camera.make, camera.model
    if make and model and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(x for x in (make, model) if x) or None


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
        exif = image.exifData()
        subsec = _exif_text(exif, "Exif.Photo.SubSecTimeOriginal")
        mode = _exif_text(exif, "Exif.Photo.ExposureMode")
        program = _exif_text(exif, "Exif.Photo.ExposureProgram")
    except (exiv2.Exiv2Error, UnsupportedInput, OSError) as exc:
        return FrameInfo(path, ExposureInfo(), CameraInfo(), None, None, error=f"cannot read metadata ({_plain(exc)})")
    size = (width, height) if width > 0 and height > 0 else None
    auto_bracket = int(mode) == AUTO_BRACKET_MODE if mode and mode.isdigit() else None
    manual = int(program) == MANUAL_PROGRAM if program and program.isdigit() else None
    time = _parse_time(camera.datetime, subsec)
    return FrameInfo(path, exposure, camera, size, time, auto_bracket=auto_bracket, manual=manual)


def _exif_text(exif: exiv2.ExifData, key: str) -> str | None:
    datum = find_datum(exif, key)
    if datum is None:
        return None
    return datum.toString().strip() or None


def _plain(exc: BaseException) -> str:
    """An error's reason in plain words: exiv2 raises with (code, message) tuples."""
    args = getattr(exc, "args", ())
    text = next((a for a in reversed(args) if isinstance(a, str) and a.strip()), None) or str(exc)
    lines = text.strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _parse_time(text: str | None, subsec: str | None = None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if subsec and subsec.isdigit():
        when += timedelta(seconds=int(subsec) / 10 ** len(subsec))
    return when


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
    """None when ``nxt`` continues the bracket ``run`` (whose last frame is ``prev``), else why not.

    "slow" when it continues it only as a hand-triggered bracket (see the module docstring).
    """
    if nxt.body != prev.body:
        return "different camera, lens, focal length, resolution or orientation"
    if prev.time is None or nxt.time is None:
        return "no capture time"
    if None not in (prev.auto_bracket, nxt.auto_bracket) and prev.auto_bracket != nxt.auto_bracket:
        return "the camera marks one of the two as an auto-bracket frame and not the other"
    pause = (nxt.time - prev.end).total_seconds()  # type: ignore[operator]
    slow = pause > gap
    if slow and not (pause <= SLOW_GAP_FACTOR * gap and _deliberate(prev, nxt) and _continues_progression(run, nxt)):
        return f"{_seconds(pause)} s after the previous exposure ended (gap {gap:g} s)"
    if not _has_exposure(nxt) or not _has_exposure(prev):
        return "no exposure metadata"
    if any(_same_exposure(f, nxt) for f in run):
        return "repeats an exposure of the bracket"
    return "slow" if slow else None


def _seconds(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _ev(f: FrameInfo) -> float | None:
    """The frame's exposure in EV for comparing steps: the exposure value, else the bias."""
    return f.ev_value if f.ev_value is not None else f.exposure.bias_ev


def _deliberate(prev: FrameInfo, nxt: FrameInfo) -> bool:
    """True when the photographer changed the exposure, not the meter: manual mode, or
    another exposure compensation."""
    a, b = prev.exposure.bias_ev, nxt.exposure.bias_ev
    return bool(prev.manual and nxt.manual) or (a is not None and b is not None and abs(a - b) >= EV_TOLERANCE)


def _continues_progression(run: Sequence[FrameInfo], nxt: FrameInfo) -> bool:
    """True when ``nxt`` is the next step of ``run``'s EV progression: every step so far
    goes the same way, ``nxt``'s too, and its size is within ``STEP_RATIO`` of the last."""
    evs = [_ev(f) for f in [*run, nxt]]
    if any(e is None for e in evs):
        return False
    steps = [b - a for a, b in zip(evs, evs[1:])]  # type: ignore[operator]
    if any(abs(step) < EV_TOLERANCE for step in steps):
        return False
    if len({step > 0 for step in steps}) != 1:
        return False
    if len(steps) >= 2:
        ratio = abs(steps[-1]) / abs(steps[-2])
        return 1 / STEP_RATIO <= ratio <= STEP_RATIO
    return True


def group_auto(frames: Sequence[FrameInfo], *, gap: float = DEFAULT_GAP) -> list[Group]:
    """Group by camera, time gap and exposure pattern (see the module docstring).

    Returns groups in capture order; unreadable files come last, in the given order.
    """
    if not (gap >= 0 and math.isfinite(gap)):
        raise UsageError(f"--gap must be a non-negative number of seconds, got {gap}")
    # Each camera body and file format is its own stream: a second shooter's frames,
    # interleaved in time, must not break the first one's brackets, and a bracket is
    # fused from one kind of file (RAWs whose JPEGs were renamed or exported elsewhere
    # form their own brackets).
    streams: dict[tuple, list[FrameInfo]] = {}
    for f in capture_sorted([f for f in frames if f.error is None]):
        streams.setdefault((f.camera.make, f.camera.model, f.format), []).append(f)
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

    def close_slow_run(why_next: str) -> None:
        """A run held together by slow joins needs MIN_SLOW_FRAMES; else it falls apart at them."""
        nonlocal run
        if not any(slow_joins) or len(run) >= MIN_SLOW_FRAMES:
            close_run(why_next)
            return
        whole, run = run, run[:1]
        for prev, f, slow in zip(whole, whole[1:], slow_joins[1:]):
            if slow:
                pause = (f.time - prev.end).total_seconds()  # type: ignore[operator]
                close_run(
                    f"{_seconds(pause)} s after the previous exposure ended (gap {gap:g} s; "
                    f"a hand-triggered bracket needs {MIN_SLOW_FRAMES} frames)"
                )
                run = []
            run.append(f)
        close_run(why_next)

    slow_joins: list[bool] = []  # per frame of the run: did it join as a hand-triggered step
    for f in usable:
        why = _why_not_joined(run[-1], f, run, gap) if run else "first frame"
        if why in (None, "slow"):
            run.append(f)
            slow_joins.append(why == "slow")
            continue
        close_slow_run(why)
        run, slow_joins = [f], [False]
    close_slow_run("last frame")
    return groups


def _bracket_reason(run: Sequence[FrameInfo], gap: float) -> str:
    spans = [(b.time - a.end).total_seconds() for a, b in zip(run, run[1:]) if a.end and b.time]
    biases = [f.exposure.bias_ev for f in run]
    if all(b is not None for b in biases):
        pattern = "bias " + "/".join(f"{b:+g}" for b in biases)  # type: ignore[str-format]
    else:
        evs = [f.ev_value for f in run]
        base = evs[0] or 0.0
        pattern = "EV " + "/".join(f"{(e or 0.0) - base:+.2g}" for e in evs)
    longest = max(spans, default=0.0)
    slow = (
        f", hand-triggered: its pauses (up to {SLOW_GAP_FACTOR * gap:g} s) follow one EV progression"
        if longest > gap else ""
    )  # fmt: skip
    return (
        f"{len(run)} frames, same camera and lens, {pattern}, "
        f"pauses at most {_seconds(max(longest, 0.0))} s (gap {gap:g} s){slow}"
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


def group_folders(folders: Sequence[Path], *, prefer: Prefer = "raw", exclude: Sequence[Path] = ()) -> Shoot:
    """One bracket per folder holding images: the given folders or, when a folder holds
    no images itself, each of its subfolders (sorted by name)."""
    found: list[Path] = []
    excluded = {Path(p).absolute() for p in exclude}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError("folder mode needs folders; this is not one", folder)
        if _holds_images(folder):
            found.append(folder)
        else:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            found.extend(p for p in subs if p.absolute() not in excluded and _holds_images(p))
    groups: list[Group] = []
    notes: list[str] = []
    for folder in found:
        discovery = discover([folder], prefer=prefer)
        notes.extend(discovery.notes)
        frames = scan(discovery.files)
        good = [f for f in frames if f.error is None]
        if len(good) >= 2:
            groups.append(Group("bracket", tuple(good), f"folder {folder.name}/ holds {len(good)} images"))
        elif good:
            groups.append(Group("single", tuple(good), f"folder {folder.name}/ holds one image"))
        groups.extend(_unreadable(frames))
    return Shoot(groups, tuple(notes))


def _holds_images(folder: Path) -> bool:
    try:
        list_inputs([folder])
    except UnsupportedInput:
        return False
    return True


@dataclass(frozen=True)
class Shoot:
    """The groups of a shoot, and what discovery left out of them (one note per kind)."""

    groups: list[Group]
    notes: tuple[str, ...] = ()


def find_groups(
    inputs: Sequence[Path],
    *,
    mode: Mode = "auto",
    gap: float = DEFAULT_GAP,
    frames: int | None = None,
    recursive: bool = True,
    prefer: Prefer = "raw",
    exclude: Sequence[Path] = (),
) -> Shoot:
    """Files or folders -> groups, by ``mode``.

    Folders are searched with :func:`uhdfuse.io.discover.discover`: into subfolders
    unless ``recursive`` is False (hidden ones and those in ``exclude``, such as the
    batch's output folder, never), one half of each RAW+JPEG pair (``prefer``), and
    never a file uhdfuse wrote. Raises :class:`UnsupportedInput` for a missing path
    or a folder without images, :class:`UsageError` for bad settings.
    """
    if mode == "folders":
        return group_folders(inputs, prefer=prefer, exclude=exclude)
    discovery = discover(inputs, recursive=recursive, prefer=prefer, exclude=exclude)
    paths = list(dict.fromkeys(p.absolute() for p in discovery.files))
    infos = scan(paths)
    if mode == "frames":
        if frames is None:
            raise UsageError("fixed-size grouping needs --frames N")
        return Shoot(group_fixed(infos, frames), discovery.notes)
    return Shoot(group_auto(infos, gap=gap), discovery.notes)
