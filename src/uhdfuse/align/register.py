"""Global registration of bracket frames to the reference frame.

Every non-reference frame is registered to the reference with one global motion
model (translation, euclidean, affine or homography). The matrices map
*reference* pixel coordinates to *moving* frame pixel coordinates, so::

    cv2.warpPerspective(moving, M, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)

brings a moving frame into the reference geometry.

How a frame is registered (:func:`estimate_transform`):

1. Both frames become exposure-normalised luma (:func:`normalised_luma`): luma
   divided by ``2**ev`` so equal scene light gives equal values, gamma-encoded so
   shadows and highlights weigh alike, with a mask of trustworthy (unclipped,
   above-noise) pixels.
2. On a proxy (long side ``proxy_size``), SIFT features matched with a ratio test
   and a MAGSAC homography give a first guess robust to large motion; when that
   fails (flat or repetitive content) phase correlation gives a translation.
3. ECC (``cv2.findTransformECCWithMask``, masked with both validity masks) refines
   the guess on the proxy, then once more on a level whose long side is at most
   :data:`REFINE_SIZE` (full resolution for smaller images), the matrix scaled
   between levels. Measured on synthetic textured scenes 2 EV apart with
   clipping: corner error below 0.12 px at 208x144 to 320x240, and below
   0.03 px on a 3840x2160 bracket refined at 2048 px.
4. The result is rejected (:class:`~uhdfuse.errors.AlignmentFailed`) when ECC
   does not converge, the correlation or the residual is poor, the frames overlap
   on less than half the frame, or the matrix has an absurd scale, shear or
   perspective: a garbage registration is never returned.

:func:`align_bracket` registers a whole :class:`~uhdfuse.types.Bracket` (frames
far from the reference through their neighbours), warps the frames at full
resolution and crops them to the area every frame covers. A 3-frame 4K bracket
takes about 3 s on 2 cores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from uhdfuse.config import AlignConfig
from uhdfuse.errors import AlignmentFailed, InconsistentBracket
from uhdfuse.types import AlignedBracket, Bracket

REC709 = (0.2126, 0.7152, 0.0722)
CLIP_LEVEL = 0.97  # linear value at or above which a channel may be clipped
NOISE_FLOOR = 0.002  # linear luma below which a pixel is mostly noise
GAMMA = 1.0 / 2.2  # encoding of normalised luma: shadows and highlights weigh alike
REFINE_SIZE = 2048  # long side, in pixels, of the finest level ECC runs on
PROXY_ITERS = 30  # ECC iterations on the proxy (converges in far fewer from a feature guess)
TRIAL_ITERS = 20  # ECC iterations of a simpler model tried by "auto" (a wrong one never converges)
REFINE_ITERS = 10  # ECC iterations on the finest level, starting from the proxy result
ECC_EPS = 1e-5  # ECC stops when the correlation improves by less than this
MIN_CORRELATION = 0.5  # ECC correlation below which frames are taken as unrelated
MIN_OVERLAP = 0.5  # fraction of the reference frame a moving frame must cover
MAX_SCALE_CHANGE = 1.25  # singular values of the linear part must lie in [1/x, x]
MAX_PERSPECTIVE = 0.25  # largest change of the homogeneous w across the frame
AUTO_CORNER_TOL = 0.5  # px: a simpler model this close to the homography is enough
AUTO_RESIDUAL_TOL = 0.002  # a simpler model with a residual within this (absolute)...
AUTO_RESIDUAL_REL = 0.05  # ...plus this fraction of the homography's residual is enough
TONE_BINS = 64  # bins of the tone curve fitted between two frames when measuring residuals
RESIDUAL_QUANTILE = 0.9  # the residual is measured on the best-matching 90% of pixels
MIN_TRUSTED = 1024  # fewest trusted overlapping proxy pixels a residual is measured on
HINT = "if the frames are already aligned, use --align none"
# Largest float32 below CLIP_LEVEL and smallest above NOISE_FLOOR: the inclusive
# bounds that give normalised_luma's strict comparisons.
_BELOW_CLIP = float(np.nextafter(np.float32(CLIP_LEVEL), np.float32(-np.inf)))
_ABOVE_NOISE = float(np.nextafter(np.float32(NOISE_FLOOR), np.float32(np.inf)))

MODELS = ("translation", "euclidean", "affine", "homography")
_ECC_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}
_COMPLEXITY = {"none": 0, "translation": 1, "euclidean": 2, "affine": 3, "homography": 4}


class _Failure(Exception):
    """A registration failed; the caller turns it into AlignmentFailed with the file name."""


def normalised_luma(image: np.ndarray, ev: float) -> tuple[np.ndarray, np.ndarray]:
    """Exposure-normalised, gamma-encoded luma of a linear frame and its trust mask.

    Args:
        image: (H, W, 3) float32 linear RGB, 1.0 = clipping level of the frame.
        ev: exposure of the frame relative to the reference (log2 units).

    Returns:
        ``(luma, mask)``: (H, W) float32 ``clip(Y / 2**ev, 0, 1) ** (1/2.2)`` where Y
        is Rec.709 luma, so the same scene light gives the same value in every
        frame; values are clipped at 1 (the reference's clipping level, beyond
        which the reference has nothing to compare with). ``mask`` is (H, W) uint8,
        255 where the pixel is trustworthy: no channel at or above 0.97 (clipped)
        and luma above 0.002 (noise floor), both in the frame's own linear scale.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    img = np.asarray(image, dtype=np.float32)
    # cv2.transform and per-channel maxima: several times faster than numpy reductions
    # over the last axis on full-resolution frames.
    y = cv2.transform(img, np.array([REC709], dtype=np.float32))
    if y.ndim == 3:  # cv2 keeps a trailing length-1 axis on some shapes
        y = y[..., 0]
    # The mask straight as uint8 0/255 from cv2.inRange (inclusive bounds on
    # float32): about twice as fast as numpy comparisons on strided channels.
    # The bounds are the float32 neighbours of the limits, so "<= just below
    # CLIP_LEVEL" is exactly "< CLIP_LEVEL"; NaN fails every bound, as before.
    unclipped = cv2.inRange(img, (-np.inf,) * 3, (_BELOW_CLIP,) * 3)
    above_noise = cv2.inRange(y, _ABOVE_NOISE, np.inf)
    mask = cv2.bitwise_and(unclipped, above_noise)
    y *= np.float32(2.0 ** (-ev))
    np.clip(y, 0.0, 1.0, out=y)
    cv2.pow(y, GAMMA, dst=y)
    return y, mask


# --------------------------------------------------------------------------- pyramid


@dataclass
class _Level:
    """One resolution of a frame's normalised luma; coordinates relate by ``S``."""

    luma: np.ndarray  # (h, w) float32
    mask: np.ndarray  # (h, w) uint8, 255 = trusted
    S: np.ndarray  # (3, 3) float64: full-resolution pixel -> level pixel (pixel centres)


@dataclass
class _Prepared:
    """A frame ready for registration: its proxy and refinement levels, features cached."""

    full_size: tuple[int, int]  # (W, H)
    proxy: _Level
    refine: _Level | None  # None when the proxy already is the finest level
    _features: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)

    def features(self) -> tuple[np.ndarray, np.ndarray | None]:
        """SIFT keypoint positions (K, 2) and descriptors (K, 128) on the proxy."""
        if self._features is None:
            img8 = np.round(self.proxy.luma * 255.0).astype(np.uint8)
            # Keypoints next to clipped or noisy areas describe the clipping, not the scene.
            mask = cv2.erode(self.proxy.mask, np.ones((5, 5), np.uint8))
            sift = cv2.SIFT_create(nfeatures=4000)
            kps, desc = sift.detectAndCompute(img8, mask)
            pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
            self._features = (pts, desc)
        return self._features


def _level(luma: np.ndarray, mask: np.ndarray, long_side: int) -> _Level:
    h, w = luma.shape
    s = min(1.0, long_side / max(h, w))
    if s >= 1.0:
        return _Level(luma, mask, np.eye(3))
    lw, lh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(luma, (lw, lh), interpolation=cv2.INTER_AREA)
    # A proxy pixel is trusted only if (nearly) all the pixels it averages are.
    small_mask = cv2.resize(mask, (lw, lh), interpolation=cv2.INTER_AREA)
    small_mask = np.where(small_mask >= 250, 255, 0).astype(np.uint8)
    sx, sy = lw / w, lh / h
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return _Level(small, small_mask, S)


def _prepare(luma: np.ndarray, mask: np.ndarray, proxy_size: int) -> _Prepared:
    h, w = luma.shape
    proxy = _level(luma, mask, proxy_size)
    refine = None
    if max(h, w) > proxy_size:
        refine = _level(luma, mask, max(proxy_size, REFINE_SIZE))
    return _Prepared((w, h), proxy, refine)


def _to_level(M: np.ndarray, lev: _Level) -> np.ndarray:
    return lev.S @ M @ np.linalg.inv(lev.S)


def _from_level(M: np.ndarray, lev: _Level) -> np.ndarray:
    out = np.linalg.inv(lev.S) @ M @ lev.S
    return out / out[2, 2]


# ------------------------------------------------------------------ initial guesses


def _fit_model(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray:
    """``model`` fitted to map src (K,2) -> dst (K,2) points, as a (3,3) matrix.

    Translation: median shift; euclidean: least squares (Kabsch); affine: LMedS.
    """
    M = np.eye(3)
    if model == "translation":
        M[:2, 2] = np.median(dst - src, axis=0)
    elif model == "euclidean":
        # Kabsch: rotation + translation without scale.
        cs, cd = src.mean(axis=0), dst.mean(axis=0)
        u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
        R = (u @ vt).T
        if np.linalg.det(R) < 0:
            vt[-1] *= -1
            R = (u @ vt).T
        M[:2, :2] = R
        M[:2, 2] = cd - R @ cs
    elif model == "affine":
        A, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
        if A is None:
            raise _Failure("could not fit an affine transform to the matched features")
        M[:2] = A
    else:
        raise ValueError(model)
    return M


def _feature_homography(ref: _Prepared, mov: _Prepared) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Proxy homography from matched SIFT features and its inlier points, or None."""
    pr, dr = ref.features()
    pm, dm = mov.features()
    if dr is None or dm is None or len(pr) < 8 or len(pm) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(dr, dm, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.75 * m[1].distance]
    if len(good) < 12:
        return None
    src = pr[[m.queryIdx for m in good]]
    dst = pm[[m.trainIdx for m in good]]
    H, inl = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 2.0, maxIters=5000, confidence=0.999)
    if H is None or inl is None or int(inl.sum()) < 12:
        return None
    keep = inl.ravel().astype(bool)
    return H / H[2, 2], src[keep], dst[keep]


def _phase_translation(ref: _Level, mov: _Level) -> np.ndarray:
    """Translation from phase correlation on the proxy (fallback when features fail)."""
    # Untrusted pixels set to each image's trusted mean so clipping edges do not dominate.
    a = np.where(ref.mask > 0, ref.luma, ref.luma[ref.mask > 0].mean() if ref.mask.any() else 0)
    b = np.where(mov.mask > 0, mov.luma, mov.luma[mov.mask > 0].mean() if mov.mask.any() else 0)
    win = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), win)
    M = np.eye(3)
    M[:2, 2] = (dx, dy)
    return M


# ------------------------------------------------------------------------ ECC, checks


def _ecc(
    ref: _Level, mov: _Level, M: np.ndarray, model: str, iters: int, eps: float
) -> tuple[np.ndarray, float]:
    """ECC refinement of level matrix ``M``; returns (matrix, correlation)."""
    warp = (M if model == "homography" else M[:2]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iters, eps)
    try:
        rho, warp = cv2.findTransformECCWithMask(
            ref.luma, mov.luma, ref.mask, mov.mask, warp, _ECC_MOTION[model], criteria, 5
        )
    except cv2.error as exc:
        raise _Failure("ECC registration did not converge (images uncorrelated or not overlapping)") from exc
    out = np.eye(3)
    if model == "homography":
        out[:] = warp
        out /= out[2, 2]
    else:
        out[:2] = warp
    if not np.all(np.isfinite(out)):
        raise _Failure("ECC registration diverged")
    return out, float(rho)


def _residual(ref: _Level, mov: _Level, M: np.ndarray) -> float:
    """Robust RMS luma residual over the trusted overlap of ``mov`` warped by level matrix M.

    Each luma is first predicted from the other through the tone curve that fits
    best (the mean value in each of TONE_BINS bins of the other's values), and
    the two squared errors averaged, so a slightly wrong EV or a camera tone
    curve that is not sRGB does not count as misregistration while misplaced
    structure does. The worst (1 - RESIDUAL_QUANTILE) of the pixels are left
    out: things that moved in the scene (people, leaves) are not a registration
    error. Returns inf when fewer than MIN_TRUSTED pixels overlap.
    """
    h, w = ref.luma.shape
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(mov.luma, M, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    wmask = cv2.warpPerspective(
        mov.mask, M, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0
    )
    valid = (ref.mask > 0) & (wmask > 0)
    n = int(valid.sum())
    if n < MIN_TRUSTED:
        return math.inf
    a = ref.luma[valid].astype(np.float64)
    b = warped[valid].astype(np.float64)
    err2 = 0.5 * (_tone_error2(a, b) + _tone_error2(b, a))
    keep = max(1, int(n * RESIDUAL_QUANTILE))
    return float(np.sqrt(np.partition(err2, keep - 1)[:keep].mean()))


def _tone_error2(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Squared errors (K,) of predicting y (K,) from x (K,) in [0, 1] by a binned tone curve."""
    bins = np.minimum((x * TONE_BINS).astype(np.int64), TONE_BINS - 1)
    counts = np.bincount(bins, minlength=TONE_BINS)
    curve = np.bincount(bins, weights=y, minlength=TONE_BINS) / np.maximum(counts, 1)
    return (y - curve[bins]) ** 2


def _coverage(M: np.ndarray, size: tuple[int, int]) -> float:
    """Fraction of the reference frame that the moving frame covers under full-res M."""
    w, h = size
    quad = _frame_quad(M, size)
    rect = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]], np.float32)
    if not cv2.isContourConvex(quad.astype(np.float32)):
        return 0.0
    area, _ = cv2.intersectConvexConvex(quad.astype(np.float32), rect)
    return float(area) / (w * h)


def _frame_quad(M: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(4, 2) corners of the moving frame's pixel area, in reference coordinates."""
    w, h = size
    corners = np.array([[-0.5, -0.5, 1], [w - 0.5, -0.5, 1], [w - 0.5, h - 0.5, 1], [-0.5, h - 0.5, 1]])
    p = corners @ np.linalg.inv(M).T
    return p[:, :2] / p[:, 2:3]


def _check_plausible(M: np.ndarray, size: tuple[int, int]) -> None:
    """Reject matrices no hand-held bracket produces (scale, shear, strong perspective)."""
    w, h = size
    sv = np.linalg.svd(M[:2, :2] / M[2, 2], compute_uv=False)
    if np.linalg.det(M[:2, :2]) <= 0 or sv.max() > MAX_SCALE_CHANGE or sv.min() < 1 / MAX_SCALE_CHANGE:
        raise _Failure(f"implausible transform (scale/shear {sv.min():.2f}..{sv.max():.2f})")
    persp = (abs(M[2, 0]) * w + abs(M[2, 1]) * h) / abs(M[2, 2])
    if persp > MAX_PERSPECTIVE:
        raise _Failure(f"implausible transform (perspective change {persp:.2f} across the frame)")


def _corner_distance(A: np.ndarray, B: np.ndarray, size: tuple[int, int]) -> float:
    """Largest distance (full-res px) between where A and B send the reference corners."""
    w, h = size
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], dtype=np.float64)
    pa, pb = c @ A.T, c @ B.T
    return float(np.max(np.linalg.norm(pa[:, :2] / pa[:, 2:] - pb[:, :2] / pb[:, 2:], axis=1)))


# ---------------------------------------------------------------------- registration


def _register(
    ref: _Prepared, mov: _Prepared, model: str, max_residual: float
) -> tuple[np.ndarray, float, str]:
    """Full-resolution matrix, residual and the model used; raises _Failure."""
    if ref.full_size != mov.full_size:
        raise _Failure(f"frame size {mov.full_size} differs from the reference {ref.full_size}")
    if model not in (*MODELS, "auto"):
        raise ValueError(f"unknown motion model {model!r}")
    size = ref.full_size
    rp, mp = ref.proxy, mov.proxy
    fit = _feature_homography(ref, mov)
    guess = fit[0] if fit is not None else _phase_translation(rp, mp)

    def on_proxy(m: str) -> np.ndarray:
        """ECC of model m on the proxy, started from the feature (or phase) guess."""
        init = guess.copy() if fit is None or m == "homography" else _fit_model(fit[1], fit[2], m)
        if m != "homography":
            init[2] = (0, 0, 1)
        M, rho = _ecc(rp, mp, init, m, iters=PROXY_ITERS, eps=ECC_EPS)
        if rho < MIN_CORRELATION:
            raise _Failure(f"frames do not match (correlation {rho:.2f} after registration)")
        return M

    if model == "auto":
        chosen, Mp = _auto_on_proxy(rp, mp, on_proxy, size)
    else:
        chosen, Mp = model, on_proxy(model)

    M = _from_level(Mp, rp)
    if mov.refine is not None:
        rl, ml = ref.refine, mov.refine
        assert rl is not None and ml is not None
        Ml, rho = _ecc(rl, ml, _to_level(M, rl), chosen, iters=REFINE_ITERS, eps=ECC_EPS)
        if rho < MIN_CORRELATION:
            raise _Failure(f"frames do not match (correlation {rho:.2f} after registration)")
        M = _from_level(Ml, rl)
    if chosen != "homography":
        M[2] = (0, 0, 1)

    _check_plausible(M, size)
    cover = _coverage(M, size)
    if cover < MIN_OVERLAP:
        raise _Failure(f"frames overlap on only {cover:.0%} of the frame")
    residual = _residual(rp, mp, _to_level(M, rp))
    if residual == math.inf:
        raise _Failure("too few well-exposed pixels in common with the frame it is registered to")
    if not residual <= max_residual:
        raise _Failure(f"registration residual {residual:.3f} exceeds {max_residual:.3f}")
    return M, residual, chosen


def _auto_on_proxy(
    rp: _Level, mp: _Level, on_proxy: Callable[[str], np.ndarray], size: tuple[int, int]
) -> tuple[str, np.ndarray]:
    """The simplest model (translation < euclidean < homography) that does about as well
    as a homography, and its proxy matrix.

    A simpler model is enough when it lands within AUTO_CORNER_TOL px of the
    homography at the frame corners, or when its residual is barely higher (on
    low-texture content the homography's extra freedom fits noise).
    """
    try:
        Mh = on_proxy("homography")
    except _Failure:
        # A homography can fail to converge where fewer parameters still work (flat content).
        for m in ("euclidean", "translation"):
            try:
                return m, on_proxy(m)
            except _Failure:
                pass
        raise
    rh = _residual(rp, mp, Mh)
    Mh_full = _from_level(Mh, rp)
    grid = _grid_points(rp.luma.shape)
    for m in ("translation", "euclidean"):
        # Start from the homography, which already absorbed any large motion.
        try:
            Mm, rho = _ecc(rp, mp, _fit_model(grid, _apply(Mh, grid), m), m, iters=TRIAL_ITERS, eps=ECC_EPS)
        except _Failure:
            continue
        if rho < MIN_CORRELATION:
            continue
        close = _corner_distance(_from_level(Mm, rp), Mh_full, size) <= AUTO_CORNER_TOL
        if close or _residual(rp, mp, Mm) <= rh * (1 + AUTO_RESIDUAL_REL) + AUTO_RESIDUAL_TOL:
            return m, Mm
    return "homography", Mh


def _grid_points(shape: tuple[int, ...]) -> np.ndarray:
    h, w = shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, w - 1, 5), np.linspace(0, h - 1, 5))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def _apply(M: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ M.T
    return p[:, :2] / p[:, 2:3]


def estimate_transform(
    reference_luma: np.ndarray,
    moving_luma: np.ndarray,
    reference_mask: np.ndarray,
    moving_mask: np.ndarray,
    *,
    model: str,
    proxy_size: int = AlignConfig.proxy_size,
    max_residual: float = AlignConfig.max_residual,
) -> tuple[np.ndarray, float]:
    """Register a moving frame's luma to the reference's.

    Args:
        reference_luma, moving_luma: (H, W) float32 from :func:`normalised_luma`.
        reference_mask, moving_mask: (H, W) uint8 or bool, nonzero = trusted pixel.
        model: "translation", "euclidean", "affine", "homography" or "auto" (the
            simplest model that does about as well as a homography).
        proxy_size: long side of the proxy used for the coarse search.
        max_residual: residual above which the registration is rejected.

    Returns:
        ``(M, residual)``: M is (3, 3) float64 mapping reference pixel coordinates
        to moving pixel coordinates; residual is the RMS normalised-luma difference
        over the trusted overlap after warping, measured on the proxy, once a
        fitted tone curve has absorbed exposure and response differences, and
        over the best-matching 90% of pixels (scene motion is not a registration
        error).

    Raises:
        AlignmentFailed: the frames cannot be registered reliably.
    """
    ref = _prepare(reference_luma, _as_mask(reference_mask), proxy_size)
    mov = _prepare(moving_luma, _as_mask(moving_mask), proxy_size)
    try:
        M, residual, _ = _register(ref, mov, model, max_residual)
    except _Failure as exc:
        raise AlignmentFailed(f"{exc}; {HINT}") from None
    return M, residual


def _as_mask(mask: np.ndarray) -> np.ndarray:
    return np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)


# ------------------------------------------------------------------------- cropping


def _largest_rectangle(transforms: list[np.ndarray], size: tuple[int, int]) -> tuple[int, int, int, int]:
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
        quad = _frame_quad(M, size)
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
        if hi[y0] < lo[y0]:
            continue
        width = np.minimum.accumulate(hi[y0:]) - np.maximum.accumulate(lo[y0:]) + 1
        area = np.clip(width, 0, None) * np.arange(1, h - y0 + 1)
        k = int(np.argmax(area))
        if area[k] > best_area:
            best_area = float(area[k])
            x0 = int(np.maximum.accumulate(lo[y0:])[k])
            best = (x0, y0, int(width[k]), k + 1)
    return best


# ---------------------------------------------------------------------- the bracket


def align_bracket(bracket: Bracket, config: AlignConfig) -> AlignedBracket:
    """Register every frame of ``bracket`` to its reference frame and warp it there.

    Frames (sorted by exposure) are registered in a chain: each to its neighbour
    on the reference's side, the matrices composed, because frames many stops
    from the reference share too few well-exposed pixels with it. For brackets
    of up to three frames around the reference this is direct registration.

    Args:
        bracket: frames (H, W, 3) float32 linear, all the same size.
        config: motion model ("none" keeps the frames as they are; "auto" uses,
            per frame, the simplest of translation < euclidean < homography that
            does about as well as a homography), proxy size, residual limit, crop.

    Returns:
        An :class:`AlignedBracket` whose ``images`` are (N, h, w, 3) float32 in the
        reference geometry. Frames are warped with bicubic interpolation, clipped
        to [0, frame max] against overshoot. With ``config.crop`` the images are
        cropped to the largest axis-aligned rectangle every warped frame covers;
        without it they keep the full frame and pixels a frame does not cover are
        filled from the reference scaled by ``2**(ev_i - ev_ref)`` and clipped at
        the frame's clipping level, so the fusion sees consistent data there.
        ``model`` is the most complex model used by any frame. ``transforms[i]``
        maps reference pixels to frame-i pixels. ``residuals[i]`` is the residual
        of the registration that placed frame i (see :func:`estimate_transform`),
        against its neighbour on the reference's side (the reference itself for
        adjacent frames); with model "none" it measures the unaligned frames the
        same way (inf where two frames share too few trusted pixels to measure).

    Raises:
        AlignmentFailed: a frame cannot be registered reliably (the message names
            the file and suggests ``--align none``).
        InconsistentBracket: frames of different sizes.
    """
    frames = bracket.frames
    ref_i = bracket.reference
    ref_frame = frames[ref_i]
    size = ref_frame.size
    for f in frames:
        if f.size != size:
            raise InconsistentBracket(f"frame size {f.size} differs from the reference {size}", f.path)
    n = len(frames)
    w, h = size

    # Nearest frames first, so each frame's neighbour on the reference's side is placed.
    anchors: dict[int, _Prepared] = {}  # registration targets, luma in their own exposure

    def anchor(j: int) -> _Prepared:
        if j not in anchors:
            anchors[j] = _prepare(*normalised_luma(frames[j].image, 0.0), config.proxy_size)
        return anchors[j]

    transforms = [np.eye(3) for _ in range(n)]
    residuals = [0.0] * n
    used = "none"
    for i in sorted(range(n), key=lambda k: abs(k - ref_i)):
        if i == ref_i:
            continue
        j = i + 1 if i < ref_i else i - 1
        moving = _prepare(*normalised_luma(frames[i].image, bracket.ev[i] - bracket.ev[j]), config.proxy_size)
        if config.model == "none":
            residuals[i] = _residual(anchor(j).proxy, moving.proxy, np.eye(3))
        else:
            try:
                M, residuals[i], m = _register(anchor(j), moving, config.model, config.max_residual)
                transforms[i] = M @ transforms[j]  # reference -> frame j -> frame i
                _check_plausible(transforms[i], size)
                if _coverage(transforms[i], size) < MIN_OVERLAP:
                    raise _Failure("the frame overlaps the reference on less than half the frame")
            except _Failure as exc:
                raise AlignmentFailed(f"{exc}; {HINT}", frames[i].path) from None
            if _COMPLEXITY[m] > _COMPLEXITY[used]:
                used = m
        if j != ref_i:
            del anchors[j]  # frame j anchors no other frame; free its luma levels

    if config.crop and config.model != "none":
        x0, y0, cw, ch = _largest_rectangle([transforms[i] for i in range(n) if i != ref_i], size)
    else:
        x0, y0, cw, ch = 0, 0, w, h
    if cw < 1 or ch < 1:
        raise AlignmentFailed(f"the registered frames have no common area; {HINT}", ref_frame.path)

    out = np.empty((n, ch, cw, 3), dtype=np.float32)
    ref_img = ref_frame.image
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])
    for i, f in enumerate(frames):
        if i == ref_i or config.model == "none":
            out[i] = f.image[y0 : y0 + ch, x0 : x0 + cw]
            continue
        Mc = transforms[i] @ shift
        top = float(f.image.max())
        _warp_into(f.image, Mc, out[i])
        np.clip(out[i], 0.0, top, out=out[i])
        if not config.crop:
            covered = cv2.warpPerspective(
                np.ones(f.image.shape[:2], np.uint8), Mc, (cw, ch),
                flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0,
            )
            hole = covered == 0
            if hole.any():
                scale = np.float32(2.0 ** (bracket.ev[i] - bracket.ev[ref_i]))
                out[i][hole] = np.minimum(ref_img[y0 : y0 + ch, x0 : x0 + cw][hole] * scale, top)

    return AlignedBracket(
        images=out,
        ev=bracket.ev,
        reference=ref_i,
        model=used,
        transforms=tuple(transforms),
        residuals=tuple(residuals),
        crop=(x0, y0, cw, ch),
    )


def _warp_into(src: np.ndarray, M: np.ndarray, dst: np.ndarray) -> None:
    """Warp ``src`` by ref->src matrix M into the preallocated ``dst`` (h, w, 3) float32."""
    h, w = dst.shape[:2]
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    # Border replicate: pixels near the frame edge need neighbours just outside it;
    # pixels truly outside the frame are cropped or filled by the caller.
    if np.allclose(M[2], (0, 0, 1)):
        res = cv2.warpAffine(src, M[:2], (w, h), dst=dst, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    else:
        res = cv2.warpPerspective(src, M, (w, h), dst=dst, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    if res is not dst:
        dst[...] = res
