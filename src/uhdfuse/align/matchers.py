"""The coarse search: first guesses of the motion between two frames, which the
fit refines (:mod:`~uhdfuse.align.lk`).

A matcher looks at two frames made comparable (:func:`~uhdfuse.align.compare.clipped_alike`)
and proposes a :class:`Guess`, or None when it finds nothing it trusts. The direct
matchers (:data:`DIRECT_MATCHERS`) are cheap: no motion at all (a tripod bracket)
and the translation that best correlates the coarse levels over every shift
(:func:`ncc_guess`, any distance, flat content included). The feature matcher, a
homography from SIFT features matched with a ratio test and MAGSAC (large
rotation, perspective), runs only when the fit from those fails. A new matcher is
a function ``(reference, moving) -> Guess | None`` placed in one of the tuples;
:func:`proposals` drops what no hand-held bracket does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from uhdfuse.align.checks import MIN_OVERLAP, RegistrationFailure, apply_matrix, check_plausible, coverage
from uhdfuse.align.levels import Level, Pyramid
from uhdfuse.config import AlignModel

SIFT_SCALE = 0.5  # SIFT runs on the proxy downscaled by this
SIFT_FEATURES = 2000  # most keypoints detected per proxy
RATIO_TEST = 0.75  # a match is kept when its distance is below this fraction of the second best's
MIN_MATCHES = 12  # fewest ratio-tested matches, and fewest homography inliers, for a guess
SUPPORT_TOL = 2.0  # proxy px: a match supports a matrix that carries it this close
MIN_SHARED = 256  # fewest trusted coarse pixels two frames must share for a shift to be scored


def fit_model(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray:
    """``model`` fitted to map src (K,2) -> dst (K,2) points, as a (3,3) matrix.

    Translation: median shift; euclidean: least squares (Kabsch); affine: LMedS.
    """
    M = np.eye(3)
    if model == AlignModel.TRANSLATION:
        M[:2, 2] = np.median(dst - src, axis=0)
    elif model == AlignModel.EUCLIDEAN:
        # Kabsch: rotation + translation without scale.
        cs, cd = src.mean(axis=0), dst.mean(axis=0)
        u, _, vt = np.linalg.svd((src - cs).T @ (dst - cd))
        R = (u @ vt).T
        if np.linalg.det(R) < 0:
            vt[-1] *= -1
            R = (u @ vt).T
        M[:2, :2] = R
        M[:2, 2] = cd - R @ cs
    elif model == AlignModel.AFFINE:
        A, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
        if A is None:
            raise RegistrationFailure("could not fit an affine transform to the matched features")
        M[:2] = A
    else:
        raise ValueError(model)
    return M


@dataclass(frozen=True)
class Guess:
    """A first estimate of the motion, reference pixel -> moving pixel, at full resolution."""

    matrix: np.ndarray  # (3, 3)
    # (reference, moving) points (K, 2), at full resolution, the matrix was fitted to, if any
    matches: tuple[np.ndarray, np.ndarray] | None = None

    def start(self, model: str) -> np.ndarray:
        """Where a fit of ``model`` starts: ``model`` fitted to the matches, else the matrix."""
        if self.matches is None or model == AlignModel.HOMOGRAPHY:
            init = self.matrix.copy()
        else:
            init = fit_model(*self.matches, model)
        if model != AlignModel.HOMOGRAPHY:
            init[2] = (0, 0, 1)
        return init


Matcher = Callable[[Pyramid, Pyramid], "Guess | None"]


def identity_guess(ref: Pyramid, mov: Pyramid) -> Guess:
    """No motion: what a tripod bracket has, and the start a fit needs for small shakes."""
    return Guess(np.eye(3))


def ncc_guess(ref: Pyramid, mov: Pyramid) -> Guess | None:
    """The translation that maximises the normalised cross-correlation of the coarse
    levels over their trusted overlap, among shifts that keep MIN_OVERLAP of the frame
    (masked NCC in the Fourier domain, after Padfield 2012)."""
    a, b = ref.coarse, mov.coarse
    h, w = a.luma.shape
    if b.luma.shape != (h, w):
        return None
    shape = (2 * h, 2 * w)  # room for every shift without wrap-around
    fm, gm = (a.mask > 0).astype(np.float64), (b.mask > 0).astype(np.float64)
    f, g = a.luma * fm, b.luma * gm
    spectra = [np.fft.rfft2(x, s=shape) for x in (fm, gm, f, g, f * f, g * g)]
    FM, GM, F, G, FF, GG = spectra

    def corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.fft.irfft2(np.conj(x) * y, s=shape)

    n = corr(FM, GM)
    sf, sg = corr(F, GM), corr(FM, G)
    enough = n >= max(MIN_SHARED, MIN_OVERLAP * h * w * float(fm.mean() * gm.mean()))
    n = np.where(enough, n, 1.0)
    num = corr(F, G) - sf * sg / n
    var = (corr(FF, GM) - sf * sf / n) * (corr(FM, GG) - sg * sg / n)
    ncc = np.where(enough & (var > 1e-12), num / np.sqrt(np.maximum(var, 1e-12)), -1.0)
    ty, tx = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
    if ncc[ty, tx] <= 0:
        return None
    shift = np.eye(3)
    shift[:2, 2] = (tx if tx < w else tx - 2 * w, ty if ty < h else ty - 2 * h)
    return Guess(a.to_full(shift))


def _sift(proxy: Level) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoint positions (K, 2), in the proxy's pixels, and descriptors (K, 128)."""
    # At half the proxy's size: a first guess, which the fit makes precise, from a
    # quarter of the pixels.
    h, w = proxy.luma.shape
    size = (max(1, round(w * SIFT_SCALE)), max(1, round(h * SIFT_SCALE)))
    luma = cv2.resize(proxy.luma, size, interpolation=cv2.INTER_AREA)
    mask = cv2.resize(proxy.mask, size, interpolation=cv2.INTER_NEAREST)
    img8 = np.round(luma * 255.0).astype(np.uint8)
    # Keypoints next to clipped or noisy areas describe the clipping, not the scene.
    mask = cv2.erode(mask, np.ones((5, 5), np.uint8))
    sift = cv2.SIFT_create(nfeatures=SIFT_FEATURES)
    kps, desc = sift.detectAndCompute(img8, mask)
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    return (pts + 0.5) / SIFT_SCALE - 0.5, desc  # in proxy pixels


def _matches(ref: Level, mov: Level) -> tuple[np.ndarray, np.ndarray]:
    """Ratio-tested SIFT matches between two proxies: (reference, moving) points (K, 2)
    in their pixels."""
    pr, dr = _sift(ref)
    pm, dm = _sift(mov)
    if dr is None or dm is None or len(pr) < 8 or len(pm) < 8:
        return np.empty((0, 2)), np.empty((0, 2))
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(dr, dm, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance]
    return pr[[m.queryIdx for m in good]].reshape(-1, 2), pm[[m.trainIdx for m in good]].reshape(-1, 2)


def feature_support(ref: Pyramid, mov: Pyramid, M: np.ndarray) -> int:
    """How many SIFT matches between the proxies full-resolution M carries to within
    SUPPORT_TOL proxy pixels: evidence for M that does not depend on how it was fitted."""
    src, dst = _matches(ref.proxy, mov.proxy)
    if len(src) == 0:
        return 0
    predicted = apply_matrix(ref.proxy.from_full(M), src)
    return int((np.linalg.norm(predicted - dst, axis=1) <= SUPPORT_TOL).sum())


def sift_guess(ref: Pyramid, mov: Pyramid) -> Guess | None:
    """Homography from matched SIFT features, with its inlier points, or None."""
    src, dst = _matches(ref.proxy, mov.proxy)
    if len(src) < MIN_MATCHES:
        return None
    H, inl = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 2.0, maxIters=5000, confidence=0.999)
    if H is None or inl is None or int(inl.sum()) < MIN_MATCHES:
        return None
    keep = inl.ravel().astype(bool)
    to_full = (apply_matrix(np.linalg.inv(p.S), pts) for p, pts in ((ref.proxy, src[keep]), (mov.proxy, dst[keep])))
    return Guess(ref.proxy.to_full(H / H[2, 2]), tuple(to_full))


# Tried first: cheap, and enough for most brackets (tripod, shake without much rotation).
DIRECT_MATCHERS: tuple[Matcher, ...] = (identity_guess, ncc_guess)
# Tried when those fail: large rotation, perspective, little overlap.
FEATURE_MATCHERS: tuple[Matcher, ...] = (sift_guess,)
MATCHERS: tuple[Matcher, ...] = DIRECT_MATCHERS + FEATURE_MATCHERS


def proposals(ref: Pyramid, mov: Pyramid, matchers: tuple[Matcher, ...]) -> list[Guess]:
    """What the matchers propose, less what no hand-held bracket does (see
    :func:`~uhdfuse.align.checks.check_plausible`) or what leaves too little overlap."""
    found = []
    for guess in (m(ref, mov) for m in matchers):
        if guess is None or not np.all(np.isfinite(guess.matrix)):
            continue
        try:
            check_plausible(guess.matrix, ref.full_size)  # first: a singular matrix fails here
        except RegistrationFailure:
            continue
        if coverage(guess.matrix, ref.full_size) >= MIN_OVERLAP:
            found.append(guess)
    return found
