"""Sub-pixel refinement: a first guess made precise by robust, sparse,
inverse-compositional Lucas-Kanade (Baker and Matthews 2004).

The reference level's luma is the template, and the fit runs on its trusted pixels
of most detail (at most POINTS of them), so its cost does not grow with the frame.
Inverse compositional: the template's gradients and the warp's Jacobian are
computed once; each iteration samples the moving luma at the warped points, fits
a gain and an offset between the two, and solves a small normal system with Huber
weights, so points that disagree (something moved, one frame clipped) weigh
little. The two levels come in comparable (:func:`~uhdfuse.align.compare.matched`).
Coordinates are normalised to the level's centre and half size, which keeps the
system well conditioned for every model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import cv2
import numpy as np

from uhdfuse.align.checks import RegistrationFailure
from uhdfuse.align.levels import Level
from uhdfuse.config import AlignModel

POINTS = 16384  # most template pixels a fit runs on
MAX_ITERS = 40  # iterations of one fit at most (it usually stops within 15)
STEP_TOL = 0.005  # level px: a fit stops when an update moves no corner by more than this
BLUR_SIGMA = 1.0  # level px: both lumas are smoothed by this much, for their gradients
HUBER_K = 1.345  # Huber threshold, in robust standard deviations of the residual
COST_CAP = 0.1  # residuals are capped at this in a fit's cost (fits from different starts are compared)
MIN_GAIN = 0.05  # a fitted gain below this means the frames do not correlate
# Fewest points a fit needs, and the fraction of its points that must land inside
# the moving frame.
MIN_POINTS = 64
MIN_INSIDE = 0.5
CELL = 32  # px of a level: template points are shared out among blocks of this side
BORDER = 2  # px of a level's edge where no template point is taken (gradients need neighbours)

# Parameters of each motion model the fit knows.
PARAMETERS: Mapping[str, int] = MappingProxyType({
    AlignModel.TRANSLATION: 2,
    AlignModel.EUCLIDEAN: 3,
    AlignModel.AFFINE: 6,
    AlignModel.HOMOGRAPHY: 8,
})
MOTION_MODELS: tuple[str, ...] = tuple(m.value for m in PARAMETERS)


@dataclass(frozen=True)
class Fit:
    """The result of one refinement."""

    matrix: np.ndarray  # (3, 3) level matrix, reference pixel -> moving pixel
    cost: float  # RMS of the capped residuals over every template point (outside: the cap)


def _normaliser(shape: tuple[int, int]) -> np.ndarray:
    """(3, 3) from level pixels to coordinates centred on the level, half size 1."""
    h, w = shape
    s = max(h, w) / 2.0
    return np.array([[1 / s, 0.0, -(w - 1) / (2 * s)], [0.0, 1 / s, -(h - 1) / (2 * s)], [0.0, 0.0, 1.0]])


def _jacobian(u: np.ndarray, v: np.ndarray, model: str) -> np.ndarray:
    """(K, 2, P) derivative of the warped point with respect to the P parameters of
    ``model`` at the identity, at normalised points u, v (K,)."""
    one, zero = np.ones_like(u), np.zeros_like(u)
    if model == AlignModel.TRANSLATION:
        rows = [[one, zero], [zero, one]]
    elif model == AlignModel.EUCLIDEAN:  # (angle, tx, ty)
        rows = [[-v, one, zero], [u, zero, one]]
    elif model == AlignModel.AFFINE:
        rows = [[u, v, one, zero, zero, zero], [zero, zero, zero, u, v, one]]
    else:
        rows = [[u, v, one, zero, zero, zero, -u * u, -u * v], [zero, zero, zero, u, v, one, -u * v, -v * v]]
    return np.stack([np.stack(r, axis=1) for r in rows], axis=1)


def _warp(delta: np.ndarray, model: str) -> np.ndarray:
    """(3, 3) normalised warp of parameters ``delta`` (P,)."""
    W = np.eye(3)
    if model == AlignModel.TRANSLATION:
        W[:2, 2] = delta
    elif model == AlignModel.EUCLIDEAN:
        c, s = np.cos(delta[0]), np.sin(delta[0])
        W[:2] = [[c, -s, delta[1]], [s, c, delta[2]]]
    elif model == AlignModel.AFFINE:
        W[:2] += delta.reshape(2, 3)
    else:
        W += np.append(delta, 0.0).reshape(3, 3)
    return W


@dataclass(frozen=True)
class Template:
    """Where and what a fit compares on the reference level (:func:`template`): made
    once per level, it serves every fit on that level (each model tried, each start)."""

    points: np.ndarray  # (K, 2) float64 pixel positions (x, y)
    values: np.ndarray  # (K,) float64 smoothed luma there
    gradient: np.ndarray  # (K, 2) float64 its gradient there, per pixel
    shape: tuple[int, int]  # (h, w) of the level


def template(ref: Level, limit: int = POINTS) -> Template:
    """Where a fit runs: ``ref``'s trusted pixels of most gradient, at most ``limit``
    and spread over the frame (each CELL x CELL block gets its share, so a homography
    is pinned down at the corners too, not only where the strongest edges are), with
    the smoothed luma and its gradient there."""
    smooth = cv2.GaussianBlur(ref.luma, (0, 0), BLUR_SIGMA)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    strength = cv2.magnitude(gx, gy)
    keep = ref.mask > 0
    keep[:BORDER], keep[-BORDER:], keep[:, :BORDER], keep[:, -BORDER:] = False, False, False, False
    h, w = strength.shape
    if not keep.any():
        return Template(np.empty((0, 2)), np.empty(0), np.empty((0, 2)), (h, w))
    # Flat pixels carry only noise: candidates have at least the median gradient.
    candidates = strength[keep]
    floor = float(np.median(candidates[:: max(1, len(candidates) // 65536)]))
    # Each block's strongest pixels are the smallest of the gradients negated: -gradient
    # where a pixel is a candidate, 1 elsewhere and in the padding to whole blocks.
    rows, columns = -(-h // CELL), -(-w // CELL)
    negated = np.ones((rows * CELL, columns * CELL), np.float32)
    np.negative(strength, out=negated[:h, :w], where=keep & (strength >= max(floor, 1e-6)))
    blocks = negated.reshape(rows, CELL, columns, CELL).transpose(0, 2, 1, 3).reshape(rows * columns, CELL * CELL)
    quota = min(CELL * CELL, max(1, limit // (rows * columns)))
    best = np.argpartition(blocks, quota - 1, axis=1)[:, :quota]
    taken = np.take_along_axis(blocks, best, axis=1) < 0
    block = np.broadcast_to(np.arange(rows * columns)[:, None], best.shape)[taken]
    inner = best[taken]
    ys = (block // columns) * CELL + inner // CELL
    xs = (block % columns) * CELL + inner % CELL
    points = np.stack([xs, ys], axis=1).astype(np.float64)
    gradient = np.stack([gx[ys, xs], gy[ys, xs]], axis=1).astype(np.float64)
    return Template(points, smooth[ys, xs].astype(np.float64), gradient, (h, w))


@dataclass(frozen=True)
class Problem:
    """Two levels as a fit compares them (:func:`problem`): what every fit between
    them shares, made once whichever models and starts are tried."""

    template: Template  # the reference level's
    moving: np.ndarray  # (h', w') float32: the moving level's luma, smoothed as the template is


def problem(ref: Level, mov: Level) -> Problem:
    """``ref``'s :func:`template` and ``mov``'s luma smoothed alike."""
    return Problem(template(ref), cv2.GaussianBlur(mov.luma, (0, 0), BLUR_SIGMA))


def refine(pair: Problem, M: np.ndarray, model: str, iters: int = MAX_ITERS) -> Fit:
    """Level matrix ``M`` (3, 3, reference pixel -> moving pixel) refined with ``model``.

    Raises RegistrationFailure when too few template points fall inside the moving
    frame, the system is singular, or the frames do not correlate.
    """
    ref, smooth_mov = pair.template, pair.moving
    points, values, gradient = ref.points, ref.values, ref.gradient
    if len(points) < max(MIN_POINTS, 4 * PARAMETERS[AlignModel(model)]):
        raise RegistrationFailure("too little detail in common to register the frames")
    N = _normaliser(ref.shape)
    Ninv = np.linalg.inv(N)
    homogeneous = np.c_[points, np.ones(len(points))]
    n = homogeneous @ N.T
    J = _jacobian(n[:, 0], n[:, 1], model)
    g = gradient / N[0, 0]  # per normalised unit
    steepest = g[:, :1] * J[:, 0] + g[:, 1:] * J[:, 1]  # (K, P)
    corners = _corners(ref.shape) @ N.T
    Mn = N @ M @ Ninv
    cost = np.inf
    weights = np.ones(len(points))  # of the last iteration's residuals: the first weighs all alike
    for _ in range(iters):
        sampled, inside = _sample(smooth_mov, homogeneous @ (Ninv @ Mn @ N).T)
        count = int(np.count_nonzero(inside))
        if count < max(MIN_POINTS, MIN_INSIDE * len(points)):
            raise RegistrationFailure("registration left the frame (too little overlap)")
        if count == len(points):  # the usual case: no copies
            t, i, sd, w = values, sampled, steepest, weights
        else:
            t, i, sd, w = values[inside], sampled[inside], steepest[inside], weights[inside]
        # Gain and offset with the weights of the last iteration's residuals.
        gain, offset = _photometric(t, i, w)
        if not gain > MIN_GAIN:
            raise RegistrationFailure("frames do not correlate")
        error = i - (gain * t + offset)
        w = _huber(error)
        weights = w if count == len(points) else np.zeros(len(points))
        if count < len(points):
            weights[inside] = w
        cost = _cost(error, len(points) - count)
        weighted = sd.T * w  # (P, K)
        try:
            delta = np.linalg.solve(weighted @ sd * gain, weighted @ error)
        except np.linalg.LinAlgError:
            raise RegistrationFailure("too little detail in common to register the frames") from None
        if not np.all(np.isfinite(delta)):
            raise RegistrationFailure("registration diverged")
        update = np.linalg.inv(_warp(delta, model))
        Mn = Mn @ update
        moved = corners @ update.T
        step = np.max(np.linalg.norm(moved[:, :2] / moved[:, 2:] - corners[:, :2], axis=1)) / N[0, 0]
        if step < STEP_TOL:
            break
    Mn /= Mn[2, 2]
    if model != AlignModel.HOMOGRAPHY:
        Mn[2] = (0.0, 0.0, 1.0)
    out = Ninv @ Mn @ N
    return Fit(out / out[2, 2], cost)


def _corners(shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], dtype=np.float64)


def _sample(image: np.ndarray, mapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image`` (h, w) read bilinearly at homogeneous points ``mapped`` (K, 3): values
    (K,) float64 and whether each point lies inside the image (K,) bool."""
    w_ = mapped[:, 2]
    x = (mapped[:, 0] / w_).astype(np.float32)
    y = (mapped[:, 1] / w_).astype(np.float32)
    # Maps of one row: OpenCV remaps row by row, and K rows of one point cost ten times more.
    border = {"borderMode": cv2.BORDER_CONSTANT, "borderValue": np.nan}
    values = cv2.remap(image, x.reshape(1, -1), y.reshape(1, -1), cv2.INTER_LINEAR, **border)
    values = values.ravel().astype(np.float64)
    h, w = image.shape
    inside = np.isfinite(values) & (x >= 0) & (y >= 0) & (x <= w - 1) & (y <= h - 1)
    return values, inside


def _photometric(t: np.ndarray, i: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares gain and offset of i ~ gain * t + offset."""
    # Products summed, not dot products: BLAS would wake its threads for each.
    sw = weights.sum()
    mt, mi = (weights * t).sum() / sw, (weights * i).sum() / sw
    var = (weights * (t - mt) ** 2).sum()
    gain = (weights * (t - mt) * (i - mi)).sum() / var if var > 1e-12 else 0.0
    return float(gain), float(mi - gain * mt)


def _huber(error: np.ndarray) -> np.ndarray:
    """Huber weights (K,) of residuals (K,), scaled by their median absolute value
    (the offset is fitted, so the residuals are about centred)."""
    a = np.abs(error)
    sigma = max(1.4826 * float(np.partition(a, len(a) // 2)[len(a) // 2]), 1e-4)
    # 1 up to HUBER_K sigma, falling as 1 / |error| beyond.
    return np.minimum(1.0, HUBER_K * sigma / np.maximum(a, 1e-12))


def _cost(error: np.ndarray, outside: int) -> float:
    capped = np.minimum(error * error, COST_CAP * COST_CAP)
    return float(np.sqrt((capped.sum() + outside * COST_CAP * COST_CAP) / (len(error) + outside)))
