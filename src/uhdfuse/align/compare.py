"""Two frames made comparable before they are matched: common clipping, the tone
curve between them, and what moved.

Rank luma (:mod:`~uhdfuse.align.levels`) takes exposure and tone curves out; what
it leaves differing between two frames of a bracket is dealt with here:

- *Clipping.* The brighter frame clips where the darker one holds detail; the
  darker one sinks into its black floor where the brighter one holds detail.
  :func:`clipped_alike` clips both at the same ranks, so both show the same flat
  areas. Their outlines are contours of equal scene radiance: structure that both
  frames share, which matching can use instead of masking it out.
- *Quantisation and what ranks cannot undo.* A frame that resolves a tone range in
  a few codes (the shadows of a dark 8-bit frame, the highlights of an S-curve) is
  flat where the other is not, and something that moved shifts every rank a
  little. :func:`matched` maps the finer frame through the tone curve between the
  two (:func:`tone_curve`) onto the coarser one, so a fit sees the same values on
  both sides.
- *Motion in the scene.* :func:`matched` also leaves out of the reference mask the
  pixels that disagree most under the current estimate (see OUTLIER_FACTOR): a
  person walking through must not pull a global fit; the fusion deals with them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cache

import cv2
import numpy as np

from uhdfuse.align.levels import Level, Pyramid, warp_plane

CURVE_BINS = 64  # bins of the tone curve fitted between two frames
MIN_SHARED = 256  # fewest pixels a tone curve is fitted on
LUT_SIZE = 16384  # entries of the table a curve is applied through (error below 1e-4)
CURVE_SAMPLES = 65536  # about this many pixels are sampled to fit a tone curve
# Pixels left out of a fit: those that disagree by more than OUTLIER_FACTOR times the
# typical (median) difference once the tone curve is applied, and by more than
# MIN_DISAGREEMENT (sensor noise and JPEG stay below it): what moved, not what is noisy.
OUTLIER_FACTOR = 4.0
MIN_DISAGREEMENT = 0.05
MOVED_MARGIN = 2  # px of a level: what moved is grown by this, to take its edges too
_LEVELS = 1024  # resolution of the predicted value's histogram, for its median
_CENTRES = (np.arange(CURVE_BINS) + 0.5) / CURVE_BINS


def clipped_alike(a: Pyramid, b: Pyramid) -> tuple[Pyramid, Pyramid]:
    """``a`` and ``b`` with every level's rank luma clipped to the ranks both resolve
    (above both black floors, below both clipping points) and every pixel trusted.

    For matching only: residuals are measured on the frames as prepared, whose
    masks say what each frame really resolves (:func:`~uhdfuse.align.checks.residuals`).
    """
    (ac, bc), (ap, bp) = _clip_pair(a.coarse, b.coarse), _clip_pair(a.proxy, b.proxy)
    if a.make_fine is None or b.make_fine is None:
        return Pyramid(a.full_size, ac, ap), Pyramid(b.full_size, bc, bp)

    @cache
    def fine() -> tuple[Level, Level]:  # when a fit first needs one of them
        return _clip_pair(a.fine, b.fine)  # type: ignore[arg-type]

    return Pyramid(a.full_size, ac, ap, lambda: fine()[0]), Pyramid(b.full_size, bc, bp, lambda: fine()[1])


def _clip_pair(a: Level, b: Level) -> tuple[Level, Level]:
    low, high = max(a.floor, b.floor), min(a.ceiling, b.ceiling)
    if high <= low:  # nothing both resolve: left as it is, for the checks to refuse
        return a, b
    return tuple(  # type: ignore[return-value]
        replace(x, luma=np.clip(x.luma, low, high), mask=np.full_like(x.mask, 255), floor=low, ceiling=high)
        for x in (a, b)
    )


def tone_curve(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(CURVE_BINS,) the monotone curve that predicts y from x (both (K,) in [0, 1]): the
    median y in each bin of x, empty bins interpolated.

    The median, not the mean: a mapping fitted where something moved in one of the
    frames would otherwise be pulled towards what moved, and a biased curve biases
    the fit it serves.
    """
    bx = np.minimum((x * CURVE_BINS).astype(np.int64), CURVE_BINS - 1)
    by = np.minimum((y * _LEVELS).astype(np.int64), _LEVELS - 1)
    joint = np.bincount(bx * _LEVELS + by, minlength=CURVE_BINS * _LEVELS).reshape(CURVE_BINS, _LEVELS)
    counts = joint.sum(axis=1)
    have = counts > 0
    if not have.any():
        return _CENTRES.copy()
    below = np.cumsum(joint, axis=1)
    # The median's bin of y, and where in it the middle count falls.
    at = np.argmax(below >= (counts[:, None] + 1) / 2, axis=1)
    before = np.where(at > 0, below[np.arange(CURVE_BINS), np.maximum(at - 1, 0)], 0)
    inside = joint[np.arange(CURVE_BINS), at]
    median = (at + ((counts + 1) / 2 - before) / np.maximum(inside, 1)) / _LEVELS
    curve = np.interp(_CENTRES, _CENTRES[have], median[have])
    return np.maximum.accumulate(curve)


def through(curve: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` (any shape, in [0, 1]) mapped through a :func:`tone_curve`, float32: linear
    between the bin centres, constant beyond the outer ones (read from a table of
    LUT_SIZE entries: a full-resolution level is mapped in a few milliseconds)."""
    table = _between(curve, np.linspace(0.0, 1.0, LUT_SIZE))
    index = np.clip(np.asarray(x, np.float32) * np.float32(LUT_SIZE - 1) + np.float32(0.5), 0, LUT_SIZE - 1)
    return np.take(table.astype(np.float32), index.astype(np.uint16))


def _between(curve: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``curve`` between the bin centres at ``x`` (K,)."""
    at = np.clip(x * CURVE_BINS - 0.5, 0.0, CURVE_BINS - 1.0)
    low = np.minimum(at.astype(np.intp), CURVE_BINS - 2)
    return curve[low] + (at - low) * (curve[low + 1] - curve[low])


@dataclass(frozen=True)
class Match:
    """How two frames compare under one estimate: the tone curve from the finer frame
    to the coarser one, and where they disagree. Measured on one level, it applies
    to any level of the same two frames (the curve is in rank luma, the mask is
    scaled)."""

    curve: np.ndarray  # (CURVE_BINS,) see tone_curve
    maps_reference: bool  # the curve maps the reference's luma (else the moving frame's)
    moved: np.ndarray | None  # (h, w) uint8, 255 where the frames disagree; None: not measured

    def apply(self, ref: Level, mov: Level) -> tuple[Level, Level]:
        """``ref`` and ``mov`` as a fit should compare them: one luma mapped through the
        curve, what moved out of ``ref``'s mask."""
        if self.maps_reference:
            ref = replace(ref, luma=through(self.curve, ref.luma).astype(np.float32))
        else:
            mov = replace(mov, luma=through(self.curve, mov.luma).astype(np.float32))
        if self.moved is not None:
            h, w = ref.mask.shape
            moved = self.moved if self.moved.shape == (h, w) else cv2.resize(self.moved, (w, h), interpolation=cv2.INTER_NEAREST)
            ref = replace(ref, mask=np.where(moved > 0, 0, ref.mask).astype(np.uint8))
        return ref, mov


def match(ref: Level, mov: Level, M: np.ndarray, *, moved: bool = True) -> Match | None:
    """How ``ref`` and ``mov`` compare under level matrix M (reference pixel -> ``mov``
    pixel); with ``moved``, where they disagree is measured too (only once M is close:
    under a rough M every edge disagrees). None when they share too few pixels."""
    warped = warp_plane(mov.luma, M, ref.luma.shape)
    trusted = ref.mask > 0
    if int(trusted.sum()) < MIN_SHARED:
        return None
    # The curves and the direction from a sample of the trusted pixels: enough for 64 bins.
    step = max(1, int(trusted.sum()) // CURVE_SAMPLES)
    a, b = ref.luma[trusted][::step], warped[trusted][::step]
    # The direction that predicts better is from the finer frame to the coarser one:
    # the curve is a function that way.
    to_mov, to_ref = tone_curve(a, b), tone_curve(b, a)
    maps_reference = bool(np.abs(through(to_mov, a) - b).mean() <= np.abs(through(to_ref, b) - a).mean())
    curve = to_mov if maps_reference else to_ref
    if not moved:
        return Match(curve, maps_reference, None)
    error = np.abs(through(curve, ref.luma) - warped) if maps_reference else np.abs(through(curve, warped) - ref.luma)
    error = cv2.GaussianBlur(error, (5, 5), 0)
    limit = max(MIN_DISAGREEMENT, OUTLIER_FACTOR * float(np.median(error[trusted][::step])))
    side = 2 * MOVED_MARGIN + 1
    grown = cv2.dilate((error > limit).astype(np.uint8) * np.uint8(255), np.ones((side, side), np.uint8))
    return Match(curve, maps_reference, grown)


def matched(ref: Level, mov: Level, M: np.ndarray, *, moved: bool = True) -> tuple[Level, Level]:
    """``ref`` and ``mov`` as a fit should compare them under level matrix M (see
    :func:`match`); as they are when they share too few pixels."""
    found = match(ref, mov, M, moved=moved)
    return (ref, mov) if found is None else found.apply(ref, mov)


