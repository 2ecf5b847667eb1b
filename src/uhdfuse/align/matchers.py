"""The coarse search: a first guess of the motion between two frames, which ECC refines.

A matcher looks at the proxies of the reference and the moving frame and returns a
:class:`Guess`, or None when it finds nothing it trusts. :func:`coarse_guess` asks
the matchers of :data:`MATCHERS` in turn: SIFT features matched with a ratio test
and a MAGSAC homography (robust to large motion), then phase correlation (a
translation, for flat or repetitive content), which always answers. A new matcher
is a function ``(reference, moving) -> Guess | None`` placed in that tuple; what it
computes per frame goes in :meth:`Pyramid.memo`, since an anchor frame is matched
against more than one neighbour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from uhdfuse.align.checks import RegistrationFailure
from uhdfuse.align.levels import Level, Pyramid
from uhdfuse.config import AlignModel

SIFT_FEATURES = 4000  # most keypoints detected per proxy
RATIO_TEST = 0.75  # a match is kept when its distance is below this fraction of the second best's
MIN_MATCHES = 12  # fewest ratio-tested matches, and fewest homography inliers, for a guess


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
    elif model == "affine":
        A, _ = cv2.estimateAffine2D(src, dst, method=cv2.LMEDS)
        if A is None:
            raise RegistrationFailure("could not fit an affine transform to the matched features")
        M[:2] = A
    else:
        raise ValueError(model)
    return M


@dataclass(frozen=True)
class Guess:
    """A first estimate of the proxy motion, reference pixel -> moving pixel."""

    matrix: np.ndarray  # (3, 3) on the proxy
    # (reference, moving) points (K, 2) on the proxy the matrix was fitted to, if any
    matches: tuple[np.ndarray, np.ndarray] | None = None

    def start(self, model: str) -> np.ndarray:
        """Where ECC of ``model`` starts: ``model`` fitted to the matches, else the matrix."""
        if self.matches is None or model == AlignModel.HOMOGRAPHY:
            init = self.matrix.copy()
        else:
            init = fit_model(*self.matches, model)
        if model != AlignModel.HOMOGRAPHY:
            init[2] = (0, 0, 1)
        return init


Matcher = Callable[[Pyramid, Pyramid], "Guess | None"]


def _sift(proxy: Level) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoint positions (K, 2) and descriptors (K, 128) on a proxy."""
    img8 = np.round(proxy.luma * 255.0).astype(np.uint8)
    # Keypoints next to clipped or noisy areas describe the clipping, not the scene.
    mask = cv2.erode(proxy.mask, np.ones((5, 5), np.uint8))
    sift = cv2.SIFT_create(nfeatures=SIFT_FEATURES)
    kps, desc = sift.detectAndCompute(img8, mask)
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    return pts, desc


def sift_guess(ref: Pyramid, mov: Pyramid) -> Guess | None:
    """Proxy homography from matched SIFT features, with its inlier points, or None."""
    pr, dr = ref.memo("sift", lambda: _sift(ref.proxy))
    pm, dm = mov.memo("sift", lambda: _sift(mov.proxy))
    if dr is None or dm is None or len(pr) < 8 or len(pm) < 8:
        return None
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(dr, dm, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < RATIO_TEST * m[1].distance]
    if len(good) < MIN_MATCHES:
        return None
    src = pr[[m.queryIdx for m in good]]
    dst = pm[[m.trainIdx for m in good]]
    H, inl = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 2.0, maxIters=5000, confidence=0.999)
    if H is None or inl is None or int(inl.sum()) < MIN_MATCHES:
        return None
    keep = inl.ravel().astype(bool)
    return Guess(H / H[2, 2], (src[keep], dst[keep]))


def _trusted_or_mean(proxy: Level) -> np.ndarray:
    """(h, w) luma with untrusted pixels set to the trusted mean, so clipping edges do not dominate."""
    trusted = proxy.mask > 0
    return np.where(trusted, proxy.luma, proxy.luma[trusted].mean() if proxy.mask.any() else 0)


def phase_guess(ref: Pyramid, mov: Pyramid) -> Guess:
    """Translation from phase correlation on the proxies."""
    a, b = _trusted_or_mean(ref.proxy), _trusted_or_mean(mov.proxy)
    win = cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F)
    (dx, dy), _ = cv2.phaseCorrelate(a.astype(np.float32), b.astype(np.float32), win)
    M = np.eye(3)
    M[:2, 2] = (dx, dy)
    return Guess(M)


MATCHERS: tuple[Matcher, ...] = (sift_guess, phase_guess)


def coarse_guess(ref: Pyramid, mov: Pyramid, matchers: tuple[Matcher, ...] = MATCHERS) -> Guess:
    """The first guess of the first matcher that has one."""
    for matcher in matchers:
        guess = matcher(ref, mov)
        if guess is not None:
            return guess
    raise RegistrationFailure("no first guess of the motion (no matcher found one)")
