"""Automatic grouping: brackets told apart by camera, capture time and exposure pattern.

Each camera body's frames of one file format, sorted by capture time (then name),
form a bracket while they share the lens, at the same focal length, resolution and
orientation, each starting within ``gap`` seconds of the end of the previous
exposure (capture time with SubSec, plus its exposure time), and each with an
exposure not yet seen in the bracket (bias or exposure value). A repeated exposure
starts a new bracket, which is how back-to-back auto-brackets (0/-2/+2, 0/-2/+2)
and single shots after a bracket are told apart.

A bracket triggered by hand (a tripod, a remote, the shutter changed between
frames) pauses longer: a frame that *continues the bracket's EV progression* (the
same direction and a similar step) by a *deliberate* change (the camera in manual
exposure, or another exposure compensation) joins across up to ``SLOW_GAP_FACTOR``
times ``gap`` (30 s by default), and such a bracket needs at least
``MIN_SLOW_FRAMES`` frames to stand (two frames of different exposure half a
minute apart are as likely two singles). Frames of one exposure, exposures that
turn back, and the metered exposures of singles shot in an auto mode never join
over such a pause; two brackets of one scene a minute apart stay two (the second
repeats the first's exposures, and its pause is longer).

The camera's own mark comes first: where EXIF ExposureMode says "auto bracket" for
some frames of a body, a marked frame and an unmarked one never share a bracket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from uhdfuse.errors import UsageError, param
from uhdfuse.shoot.frames import FrameInfo, capture_sorted
from uhdfuse.shoot.group import Group, unreadable

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
# What a single without exposure metadata or capture time needs to be grouped at all.
_GROUP_BY_HAND = f"use {param('frames', 'N')} or one folder per bracket"


def group_auto(frames: Sequence[FrameInfo], *, gap: float = DEFAULT_GAP) -> list[Group]:
    """Group by camera, time gap and exposure pattern (see the module docstring).

    Returns groups in capture order; unreadable files come last, in the given order.
    """
    if not (gap >= 0 and math.isfinite(gap)):
        raise UsageError(f"{param('gap')} must be a non-negative number of seconds, got {gap}")
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
    return groups + unreadable(frames)


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
        return f"no exposure metadata ({_GROUP_BY_HAND})"
    if f.time is None:
        return f"no capture time ({_GROUP_BY_HAND})"
    return f"no bracket: before it, {before}; after it, {after}"
