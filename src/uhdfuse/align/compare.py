"""Two frames made comparable before they are matched: common clipping, and the
tone curve between them.

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

from dataclasses import replace

import cv2
import numpy as np

from uhdfuse.align.levels import Level, Pyramid, warp_plane

CURVE_BINS = 64  # bins of the tone curve fitted between two frames
MIN_SHARED = 256  # fewest pixels a tone curve is fitted on
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
    return Pyramid(a.full_size, ac, ap), Pyramid(b.full_size, bc, bp)


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
    """``x`` (any shape, in [0, 1]) mapped through a :func:`tone_curve`: linear between
    the bin centres, constant beyond the outer ones."""
    at = np.clip(x * CURVE_BINS - 0.5, 0.0, CURVE_BINS - 1.0)
    low = np.minimum(at.astype(np.intp), CURVE_BINS - 2)
    return curve[low] + (at - low) * (curve[low + 1] - curve[low])


def matched(ref: Level, mov: Level, M: np.ndarray, *, moved: bool = True) -> tuple[Level, Level]:
    """``ref`` and ``mov`` as a fit should compare them under level matrix M (reference
    pixel -> ``mov`` pixel): the finer-quantised one's luma mapped through the tone
    curve onto the other's and, with ``moved``, ``ref``'s mask without what disagrees
    (only once M is close: under a rough M every edge disagrees)."""
    shape = ref.luma.shape
    warped = warp_plane(mov.luma, M, shape)
    trusted = ref.mask > 0
    if int(trusted.sum()) < MIN_SHARED:
        return ref, mov
    a, b = ref.luma[trusted], warped[trusted]
    # The direction that predicts better is from the finer frame to the coarser one:
    # the curve is a function that way.
    to_mov, to_ref = tone_curve(a, b), tone_curve(b, a)
    ref_as_mov = through(to_mov, ref.luma).astype(np.float32)
    error_as_mov = np.abs(ref_as_mov - warped)
    error_as_ref = np.abs(through(to_ref, warped) - ref.luma).astype(np.float32)
    if error_as_mov[trusted].mean() <= error_as_ref[trusted].mean():
        ref, error = replace(ref, luma=ref_as_mov), error_as_mov
    else:
        mov, error = replace(mov, luma=through(to_ref, mov.luma).astype(np.float32)), error_as_ref
    if not moved:
        return ref, mov
    error = cv2.GaussianBlur(error, (5, 5), 0)
    limit = max(MIN_DISAGREEMENT, OUTLIER_FACTOR * float(np.median(error[trusted])))
    side = 2 * MOVED_MARGIN + 1
    grown = cv2.dilate((error > limit).astype(np.uint8), np.ones((side, side), np.uint8))
    return replace(ref, mask=np.where(grown > 0, 0, ref.mask).astype(np.uint8)), mov
