"""From decoded frames to a :class:`~uhdfuse.types.Bracket`: relative exposures and the reference.

A frame's relative exposure (EV) is log2 of the light it recorded relative to the
reference frame. It comes, in order of trust, from the user (``ev``), from EXIF
(shutter time, f-number, ISO), or from the pixels themselves (a robust ratio over
pixels well exposed in both frames). EXIF that is missing or contradicts the
pixels is replaced by the pixel estimate, with a note in ``Bracket.warnings``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .colour import luma
from .errors import InconsistentBracket, Message, UsageError, param
from .types import Bracket, EvSource, Frame

# Pixels between these linear levels are trusted for ratios: above the noise floor,
# below the shoulder where clipping starts in one channel.
_LOW, _HIGH = 0.01, 0.85
# Linear luma range counted as well exposed when choosing between two middle frames.
_WELL_EXPOSED = (0.02, 0.8)
_PROXY_SIDE = 256
# How far EXIF and pixels may disagree before EXIF is called contradictory. JPEG
# tone curves bend the sRGB assumption, so this is generous.
_CONTRADICTION_EV = 1.0
# Frames closer than this (EV) count as the same exposure.
_SAME_EV = 0.1

# Smaller frames hold too little to register or to build a fusion pyramid on.
MIN_SIDE = 16


def _camera_name(frame: Frame) -> str | None:
    """"Make Model" of a frame, None unless both are recorded."""
    make, model = frame.camera.make, frame.camera.model
    return f"{make} {model}" if make and model else None


def _proxy_luma(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) linear -> (h, w) linear luma of a blurred proxy, long side ~256 px.

    The blur and the downscale make the ratio robust to small hand-held shifts.
    """
    h, w = image.shape[:2]
    scale = min(1.0, _PROXY_SIDE / max(h, w))
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if small.ndim == 2:
        small = small[..., None].repeat(3, axis=2)
    return cv2.GaussianBlur(luma(small.astype(np.float32)), (0, 0), 1.5)


def estimate_relative_ev(darker: np.ndarray, brighter: np.ndarray) -> float | None:
    """log2(exposure of ``brighter`` / exposure of ``darker``) from pixels alone.

    Args:
        darker, brighter: (H, W, 3) linear frames of the same scene (any order really;
            the sign of the result says which is brighter).

    Returns:
        The median log-ratio over pixels well exposed in both. When fewer than 1% of
        the pixels qualify (night scenes, frames far apart), the ratio of mean levels
        over pixels clipped in neither frame, which is coarser but still orders the
        frames. None when the frames share no usable pixel at all.
    """
    a, b = _proxy_luma(darker), _proxy_luma(brighter)
    ok = (a > _LOW) & (a < _HIGH) & (b > _LOW) & (b < _HIGH)
    if ok.sum() >= max(16, 0.01 * ok.size):
        return float(np.median(np.log2(b[ok] / a[ok])))
    unclipped = (a < _HIGH) & (b < _HIGH)
    if not unclipped.any():
        return None
    mean_a, mean_b = float(a[unclipped].mean()), float(b[unclipped].mean())
    if min(mean_a, mean_b) <= 1e-6:
        return None
    return math.log2(mean_b / mean_a)


def _chain_pixel_evs(frames: Sequence[Frame]) -> list[float] | None:
    """EVs relative to the first frame, from pixels, chaining frames in brightness order.

    Frames far apart (e.g. -4 and +4 EV) share few well-exposed pixels, so each frame is
    compared with its neighbour in brightness and the steps are summed.
    """
    means = [float(np.mean(_proxy_luma(f.image))) for f in frames]
    order = sorted(range(len(frames)), key=lambda i: means[i])
    evs = [0.0] * len(frames)
    for prev, cur in zip(order, order[1:]):
        step = estimate_relative_ev(frames[prev].image, frames[cur].image)
        if step is None:
            return None
        evs[cur] = evs[prev] + step
    return [e - evs[0] for e in evs]


def _exif_evs(frames: Sequence[Frame]) -> list[float] | None:
    values = [f.exposure.log2_exposure() for f in frames]
    if any(v is None for v in values):
        # Bias alone (no shutter time) still says how the frames relate.
        biases = [f.exposure.bias_ev for f in frames]
        if all(b is not None and math.isfinite(b) for b in biases) and len(set(biases)) > 1:
            return [float(b) for b in biases]  # type: ignore[arg-type]
        return None
    return [v - values[0] for v in values]  # type: ignore[operator]


def _contradicts(exif: Sequence[float], pixels: Sequence[float]) -> bool:
    exif_d = np.asarray(exif) - np.mean(exif)
    pix_d = np.asarray(pixels) - np.mean(pixels)
    return bool(np.max(np.abs(exif_d - pix_d)) > _CONTRADICTION_EV)


def _well_exposed_fraction(image: np.ndarray) -> float:
    y = _proxy_luma(image)
    low, high = _WELL_EXPOSED
    return float(np.mean((y > low) & (y < high)))


def choose_reference(frames: Sequence[Frame], ev: Sequence[float]) -> int:
    """The best-exposed middle frame of frames sorted by EV.

    With an odd count that is the middle one. With an even count, of the two middle
    frames, the one with more well-exposed pixels.
    """
    n = len(frames)
    if n % 2 == 1:
        return n // 2
    lo, hi = n // 2 - 1, n // 2
    return hi if _well_exposed_fraction(frames[hi].image) > _well_exposed_fraction(frames[lo].image) else lo


def _index_of(frames: Sequence[Frame], name: str) -> int:
    for i, f in enumerate(frames):
        if name in (f.path.name, str(f.path)) or f.path.resolve() == Path(name).resolve():
            return i
    raise UsageError(f"reference {name!r} is not one of the bracket's files")


def build_bracket(
    frames: Sequence[Frame],
    *,
    ev: Sequence[float] | None = None,
    reference: int | str | None = None,
) -> Bracket:
    """Sort frames by exposure, settle their EVs and pick the reference.

    Args:
        frames: decoded frames in input order, all the same size and kind.
        ev: EVs stated by the user, one per frame in input order (any common offset).
        reference: index of the reference in the *sorted* bracket (darkest = 0), or
            the file name (or path) of one of the frames; None picks the best-exposed
            middle frame.

    Returns:
        The bracket; its ``warnings`` are the frames' read notes (input order), then
        what settling the exposures noticed, each once.

    Raises:
        InconsistentBracket: fewer than 2 frames; sizes, kinds or cameras (make and
            model, where recorded) differ; frames smaller than ``MIN_SIDE`` pixels.
        UsageError: ``ev`` has the wrong length, or ``reference`` is out of range.
    """
    check_consistent(frames)
    evs, source, ev_notes = settle_evs(frames, ev)
    order = sorted(range(len(frames)), key=lambda i: (evs[i], str(frames[i].path)))
    sorted_frames = tuple(frames[i] for i in order)
    sorted_evs = [evs[i] for i in order]
    reference = reference_index(sorted_frames, sorted_evs, reference)
    ref_ev = sorted_evs[reference]
    read_notes = [note for f in frames for note in f.notes]
    notes = [*read_notes, *ev_notes, *_same_exposure_notes(sorted_frames, sorted_evs, ref_ev)]
    return Bracket(
        frames=sorted_frames,
        ev=tuple(e - ref_ev for e in sorted_evs),
        reference=reference,
        ev_source=source,
        warnings=tuple(Message(note) for note in dict.fromkeys(notes)),
    )


def check_consistent(frames: Sequence[Frame]) -> None:
    """Raise InconsistentBracket unless ``frames`` can be fused together (see build_bracket)."""
    if len(frames) < 2:
        where = frames[0].path if frames else None
        raise InconsistentBracket(f"a bracket needs at least 2 frames, got {len(frames)}", where)
    first = frames[0]
    for f in frames[1:]:
        if f.image.shape != first.image.shape:
            raise InconsistentBracket(
                f"size {f.size[0]}x{f.size[1]} differs from {first.path.name} ({first.size[0]}x{first.size[1]})", f.path
            )
        if f.source != first.source:
            raise InconsistentBracket(f"mixes RAW and encoded images ({first.path.name} is {first.source})", f.path)
        # Two bodies never see the same scene from the same place: such a bracket is a
        # mix-up of files, not something to fuse. Frames without make/model are let be.
        camera, first_camera = _camera_name(f), _camera_name(first)
        if camera and first_camera and camera != first_camera:
            raise InconsistentBracket(
                f"shot with {camera}, but {first.path.name} with {first_camera}; a bracket comes from one camera", f.path
            )
    check_size(first)


def check_size(frame: Frame) -> None:
    """Raise InconsistentBracket when ``frame`` is smaller than ``MIN_SIDE`` on a side."""
    width, height = frame.size
    if min(width, height) < MIN_SIDE:
        raise InconsistentBracket(
            f"image is {width}x{height} pixels; fusing needs at least {MIN_SIDE}x{MIN_SIDE}", frame.path
        )


def settle_evs(
    frames: Sequence[Frame], ev: Sequence[float] | None
) -> tuple[list[float], EvSource, list[Message]]:
    """EVs of ``frames`` (input order, any common offset), where they came from, and notes.

    ``ev`` (the user's) wins; then EXIF, unless it is missing or contradicts the
    pixels, when the pixel estimate replaces it with a note.
    """
    if ev is not None:
        if len(ev) != len(frames):
            raise UsageError(f"{param('ev')} gives {len(ev)} values for {len(frames)} frames")
        if not all(math.isfinite(v) for v in ev):
            raise UsageError(f"{param('ev')} values must be finite numbers")
        return [float(v) for v in ev], "user", []
    exif = _exif_evs(frames)
    pixels = _chain_pixel_evs(frames)
    if exif is not None and (pixels is None or not _contradicts(exif, pixels)):
        return exif, "exif", []
    if pixels is not None:
        why = "is missing" if exif is None else "contradicts the pixels"
        return pixels, "pixels", [Message(f"exposure EXIF {why}; relative exposures estimated from the pixels")]
    if exif is not None:
        return exif, "exif", []
    raise InconsistentBracket(
        "no exposure EXIF and the frames share too few well-exposed pixels to estimate it; "
        f"state the EVs with {param('ev')}",
        frames[0].path,
    )


def reference_index(frames: Sequence[Frame], evs: Sequence[float], reference: int | str | None) -> int:
    """``reference`` (see build_bracket) as an index into the sorted ``frames``; a UsageError
    when it is out of range or names none of them."""
    if isinstance(reference, str):
        return _index_of(frames, reference)
    if reference is None:
        return choose_reference(frames, evs)
    if not 0 <= reference < len(frames):
        raise UsageError(f"reference index {reference} is out of range for {len(frames)} frames")
    return reference


def _same_exposure_notes(frames: Sequence[Frame], evs: Sequence[float], ref_ev: float) -> list[Message]:
    """Notes on sorted ``frames`` (EVs ``evs``, the reference's ``ref_ev``) that add no exposure."""
    if max(evs) - min(evs) < _SAME_EV:
        return [Message("all frames have the same exposure; fusing them only averages noise")]
    # EVs as every report shows them: relative to the reference.
    return [
        Message(f"{a.path.name} and {b.path.name} have the same exposure (EV {ev_a - ref_ev:+.2f})")
        for a, b, ev_a, ev_b in zip(frames, frames[1:], evs, evs[1:])
        if ev_b - ev_a < _SAME_EV
    ]
