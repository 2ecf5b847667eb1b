"""What makes a registration acceptable, and the area every registered frame covers.

A matrix (3, 3) maps reference pixel coordinates to moving pixel coordinates.
:func:`accept` rejects a registration whose matrix no hand-held bracket produces,
whose frames overlap too little, or whose residual is too high (a garbage
registration is never returned); :func:`largest_rectangle` is the crop.
"""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np

from uhdfuse.align.levels import Level, Pyramid, warp_mask, warp_plane

MIN_OVERLAP = 0.5  # fraction of the reference frame a moving frame must cover
MAX_SCALE_CHANGE = 1.25  # singular values of the linear part must lie in [1/x, x]
MAX_PERSPECTIVE = 0.25  # largest change of the homogeneous w across the frame
# Largest rotation between two frames: hand-held brackets turn by a degree or two;
# a larger fit is self-similar content matched to itself (foliage, tiles, blobs).
MAX_ROTATION_DEG = 5.0
# Largest fraction of the spread of one frame's luma that the other, registered and
# tone-mapped, may leave unexplained (1 = unrelated frames). Measured on the real
# brackets of ../shared/data: registered pairs 0.02-0.62 (the noisiest dark frames).
MAX_UNEXPLAINED = 0.75
TONE_BINS = 64  # bins of the tone curve fitted between two frames when measuring residuals
RESIDUAL_QUANTILE = 0.9  # the residual is measured on the best-matching 90% of pixels
MIN_TRUSTED = 1024  # fewest trusted overlapping proxy pixels a residual is measured on
# Largest ratio of a registration's residuals to those of the same frames misplaced
# by a quarter of the frame ("chance"), on the coarse levels (see chance_ratio),
# above which a fit also needs the support of features. Measured: registered real
# pairs in ../shared/data up to 0.63, true motions of generated hand-held brackets
# mostly below 0.6 but up to 0.91 (mostly clipped frames), fits to an unrelated
# scene 0.93-1.05: alone it cannot tell, so it only asks for more evidence.
MAX_CHANCE_RATIO = 0.8
DETAIL_FRACTION = 0.25  # chance is measured on the most detailed quarter of the trusted pixels


class RegistrationFailure(Exception):
    """A registration failed; align_bracket turns it into AlignmentFailed naming the file.

    ``unmoved`` is the residual of the frames as they are when nothing contradicts
    that they did not move (it is within the limit), though nothing shows it either:
    the bracket decides (a tripod bracket's other frames did not move).
    """

    def __init__(self, message: str, unmoved: float | None = None) -> None:
        super().__init__(message)
        self.unmoved = unmoved


# ------------------------------------------------------------------------ geometry


def apply_matrix(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (K, 2) mapped by the (3, 3) matrix M, (K, 2)."""
    p = np.c_[pts, np.ones(len(pts))] @ M.T
    return p[:, :2] / p[:, 2:3]


def grid_points(shape: tuple[int, ...]) -> np.ndarray:
    """(25, 2) points on a 5x5 grid spanning an image of ``shape`` (h, w, ...)."""
    h, w = shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def frame_quad(M: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4, 2) corners of the moving frame's pixel area, in reference coordinates."""
    w, h = size
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
    p = corners @ np.linalg.inv(M).T
    return p[:, :2] / p[:, 2:3]


def coverage(M: np.ndarray, size: tuple[int, int]) -> float:
    """Fraction of the reference frame that the moving frame covers under full-res M."""
    w, h = size
    quad = frame_quad(M, size)
    rect = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float32)
    if not cv2.isContourConvex(quad.astype(np.float32)):
        return 0.0
    area, _ = cv2.intersectConvexConvex(quad.astype(np.float32), rect)
    return float(area) / (w * h)


def corner_distance(A: np.ndarray, B: np.ndarray, size: tuple[int, int]) -> float:
    """Largest distance (full-res px) between where A and B send the reference corners."""
    w, h = size
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], dtype=np.float64)
    pa, pb = c @ A.T, c @ B.T
    return float(np.max(np.linalg.norm(pa[:, :2] / pa[:, 2:] - pb[:, :2] / pb[:, 2:], axis=1)))


# -------------------------------------------------------------------------- checks


def check_plausible(M: np.ndarray, size: tuple[int, int]) -> None:
    """Reject matrices no hand-held bracket produces (scale, shear, strong perspective)."""
    w, h = size
    sv = np.linalg.svd(M[:2, :2] / M[2, 2], compute_uv=False)
    if np.linalg.det(M[:2, :2]) <= 0 or sv.max() > MAX_SCALE_CHANGE or sv.min() < 1 / MAX_SCALE_CHANGE:
        raise RegistrationFailure(f"implausible transform (scale/shear {sv.min():.2f}..{sv.max():.2f})")
    angle = abs(np.degrees(np.arctan2(M[1, 0] - M[0, 1], M[0, 0] + M[1, 1])))
    if angle > MAX_ROTATION_DEG:
        raise RegistrationFailure(f"implausible transform (rotation {angle:.1f} degrees)")
    persp = (abs(M[2, 0]) * w + abs(M[2, 1]) * h) / abs(M[2, 2])
    if persp > MAX_PERSPECTIVE:
        raise RegistrationFailure(f"implausible transform (perspective change {persp:.2f} across the frame)")


def luma_residual(ref: Level, mov: Level, M: np.ndarray) -> float:
    """Robust RMS square-root-luma residual over the trusted overlap of ``mov`` warped
    by level matrix M: the first of :func:`residuals`."""
    return residuals(ref, mov, M)[0]


def residuals(ref: Level, mov: Level, M: np.ndarray) -> tuple[float, float]:
    """``(residual, unexplained)`` of ``mov`` warped by level matrix M onto ``ref``.

    One luma is predicted from the other through the tone curve that fits best
    (the mean value in each of TONE_BINS bins of the other's values), in the
    direction that predicts better: from the finer-quantised frame to the coarser
    one, where the curve is a function (a dark 8-bit frame holds a shadow in a few
    codes that the brighter frame resolves; predicting the bright frame from those
    few codes would count that quantisation as misregistration). Exposure and tone
    curves do not count; misplaced structure does, in both directions. The worst
    (1 - RESIDUAL_QUANTILE) of the pixels are left out: things that moved in the
    scene (people, leaves) are not a registration error.

    ``residual`` is the RMS error of that prediction; ``unexplained`` the same as a
    fraction of the spread of what is predicted (1 = unrelated frames). Both are inf
    when fewer than MIN_TRUSTED pixels overlap.
    """
    shape = ref.tone.shape
    valid = (ref.mask > 0) & (warp_mask(mov.mask, M, shape) > 0)
    n = int(valid.sum())
    if n < MIN_TRUSTED:
        return math.inf, math.inf
    a = ref.tone[valid].astype(np.float64)
    b = warp_plane(mov.tone, M, shape)[valid].astype(np.float64)
    keep = max(1, int(n * RESIDUAL_QUANTILE))
    trimmed = [np.partition(e, keep - 1)[:keep].mean() for e in (_tone_error2(a, b), _tone_error2(b, a))]
    relative = [t / max(v, 1e-12) for t, v in zip(trimmed, (b.var(), a.var()))]
    return float(np.sqrt(min(trimmed))), float(np.sqrt(min(relative)))


def _tone_error2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared errors (K,) of predicting y (K,) from x (K,) in [0, 1] by a binned tone curve."""
    bins = np.minimum((x * TONE_BINS).astype(np.int64), TONE_BINS - 1)
    counts = np.bincount(bins, minlength=TONE_BINS)
    curve = np.bincount(bins, weights=y, minlength=TONE_BINS) / np.maximum(counts, 1)
    return (y - curve[bins]) ** 2


def chance_ratio(ref: Level, mov: Level, M: np.ndarray) -> float:
    """How much better than chance level matrix M explains ``mov``: its residual over
    the mean residual of the same frames shifted by a quarter of the frame each way,
    about 1 when M does no better than a random placement.

    Both :func:`residuals` are compared, and the smaller ratio is returned: the
    absolute one hardly changes on a dark frame (everything is small), the relative
    one is noisy where the shifted overlaps differ in spread. nan when it cannot be
    measured: too few trusted pixels in common under M or any of the shifts (a frame
    whose detail is in one small area, the windows of a dark frame).
    """
    h, w = ref.tone.shape
    ref = replace(ref, mask=_detailed(ref))
    own = residuals(ref, mov, M)
    shifts = ((w // 4, 0), (-(w // 4), 0), (0, h // 4), (0, -(h // 4)))
    chance = [residuals(ref, mov, M @ np.array([[1.0, 0.0, dx], [0.0, 1.0, dy], [0.0, 0.0, 1.0]])) for dx, dy in shifts]
    values = np.array([own, *chance])
    if not np.all(np.isfinite(values)) or np.any(values[1:].mean(axis=0) <= 0):
        return math.nan
    return float(np.min(values[0] / values[1:].mean(axis=0)))


def _detailed(level: Level) -> np.ndarray:
    """``level.mask`` (h, w) uint8 left with the trusted pixels of most detail (the top
    DETAIL_FRACTION of gradient magnitude): where misplacement shows."""
    gx = cv2.Sobel(level.tone, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(level.tone, cv2.CV_32F, 0, 1)
    gradient = cv2.magnitude(gx, gy)
    trusted = level.mask > 0
    if not trusted.any():
        return level.mask
    limit = np.quantile(gradient[trusted], 1 - DETAIL_FRACTION)
    return np.where(trusted & (gradient >= limit), 255, 0).astype(np.uint8)


def accept(M: np.ndarray, ref: Pyramid, mov: Pyramid, max_residual: float) -> float:
    """The residual of full-resolution matrix M, measured on the proxies; raises
    RegistrationFailure for an implausible matrix, too little overlap, too few pixels
    to measure on, a residual above ``max_residual``, or frames that explain too
    little of each other (MAX_UNEXPLAINED)."""
    size = ref.full_size
    check_plausible(M, size)
    cover = coverage(M, size)
    if cover < MIN_OVERLAP:
        raise RegistrationFailure(f"frames overlap on only {cover:.0%} of the frame")
    residual, unexplained = residuals(ref.proxy, mov.proxy, ref.proxy.from_full(M))
    if residual == math.inf:
        raise RegistrationFailure("too few well-exposed pixels in common with the frame it is registered to")
    if not residual <= max_residual:
        raise RegistrationFailure(f"registration residual {residual:.3f} exceeds {max_residual:.3f}")
    if not unexplained <= MAX_UNEXPLAINED:
        raise RegistrationFailure(f"frames do not match ({unexplained:.0%} of the luma unexplained after registration)")
    return residual


def better_than_chance(M: np.ndarray, ref: Pyramid, mov: Pyramid) -> float:
    """:func:`chance_ratio` of full-resolution M on the coarse levels (nan: not measurable)."""
    return chance_ratio(ref.coarse, mov.coarse, ref.coarse.from_full(M))


# ---------------------------------------------------------------------------- crop


def largest_rectangle(transforms: list[np.ndarray], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the largest axis-aligned pixel rectangle every frame covers.

    A reference pixel counts as covered by a frame when its centre maps inside
    that frame's pixel area. Each covered area is a convex quadrilateral, so the
    common area is the intersection of half-planes ``a*x + b*y <= c``; per row it
    is one run of columns, and the best rectangle is found over all row ranges.
    """
    w, h = size
    rows = np.arange(h, dtype=np.float64)
    left = np.zeros(h)
    right = np.full(h, w - 1.0)
    for M in transforms:
        quad = frame_quad(M, size)
        x, y = quad[:, 0], quad[:, 1]
        orient = 1.0 if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0 else -1.0
        for i in range(4):
            px, py = quad[i]
            ex, ey = quad[(i + 1) % 4] - quad[i]
            a, b, c = orient * ey, -orient * ex, orient * (ey * px - ex * py)
            bound = c - b * rows  # a * x <= bound
            if abs(a) > 1e-12:
                if a > 0:
                    right = np.minimum(right, bound / a)
                else:
                    left = np.maximum(left, bound / a)
            else:
                left = np.where(bound >= 0, left, np.inf)
    lo = np.ceil(left - 1e-6)
    hi = np.floor(right + 1e-6)
    best = (0, 0, 0, 0)
    best_area = 0.0
    for y0 in range(h):
        # No rectangle from row y0 is wider than row y0 nor taller than the rows left:
        # rows that cannot beat the best are skipped (most of them, once a large one is found).
        if (hi[y0] - lo[y0] + 1) * (h - y0) <= best_area:
            continue
        width = np.minimum.accumulate(hi[y0:]) - np.maximum.accumulate(lo[y0:]) + 1
        area = np.clip(width, 0, None) * np.arange(1, h - y0 + 1)
        k = int(np.argmax(area))
        if area[k] > best_area:
            best_area = float(area[k])
            x0 = int(np.maximum.accumulate(lo[y0:])[k])
            best = (x0, y0, int(width[k]), k + 1)
    return best
