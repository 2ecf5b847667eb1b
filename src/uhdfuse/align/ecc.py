"""ECC refinement: a guess made precise by maximising the masked correlation of the lumas.

``cv2.findTransformECCWithMask`` runs with both frames' trust masks, on the proxy
from the coarse guess and then once more on the refinement level, the matrix
scaled between levels (see :class:`~uhdfuse.align.levels.Level`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import cv2
import numpy as np

from uhdfuse.align.checks import RegistrationFailure
from uhdfuse.align.levels import Level
from uhdfuse.config import AlignModel

PROXY_ITERS = 30  # ECC iterations on the proxy (converges in far fewer from a feature guess)
TRIAL_ITERS = 20  # ECC iterations of a simpler model tried by "auto" (a wrong one never converges)
REFINE_ITERS = 10  # ECC iterations on the finest level, starting from the proxy result
ECC_EPS = 1e-5  # ECC stops when the correlation improves by less than this
MIN_CORRELATION = 0.3  # ECC correlation below which frames are taken as unrelated
GAUSS_SIZE = 5  # side of the Gaussian ECC blurs both lumas with

# The motion models ECC fits (AUTO tries translation, euclidean and homography).
ECC_MOTION: Mapping[str, int] = MappingProxyType({
    AlignModel.TRANSLATION.value: cv2.MOTION_TRANSLATION,
    AlignModel.EUCLIDEAN.value: cv2.MOTION_EUCLIDEAN,
    AlignModel.AFFINE.value: cv2.MOTION_AFFINE,
    AlignModel.HOMOGRAPHY.value: cv2.MOTION_HOMOGRAPHY,
})
MOTION_MODELS: tuple[str, ...] = tuple(ECC_MOTION)


def ecc(ref: Level, mov: Level, M: np.ndarray, model: str, iters: int) -> tuple[np.ndarray, float]:
    """ECC of ``model`` from level matrix ``M`` (3, 3); returns (matrix, correlation)."""
    homography = model == AlignModel.HOMOGRAPHY
    warp = (M if homography else M[:2]).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, iters, ECC_EPS)
    try:
        rho, warp = cv2.findTransformECCWithMask(
            ref.luma, mov.luma, ref.mask, mov.mask, warp, ECC_MOTION[model], criteria, GAUSS_SIZE
        )
    except cv2.error as exc:
        raise RegistrationFailure(
            "ECC registration did not converge (images uncorrelated or not overlapping)"
        ) from exc
    out = np.eye(3)
    if homography:
        out[:] = warp
        out /= out[2, 2]
    else:
        out[:2] = warp
    if not np.all(np.isfinite(out)):
        raise RegistrationFailure("ECC registration diverged")
    return out, float(rho)


def ecc_matching(ref: Level, mov: Level, M: np.ndarray, model: str, iters: int) -> np.ndarray:
    """:func:`ecc`'s matrix; raises RegistrationFailure when the frames do not correlate."""
    out, rho = ecc(ref, mov, M, model, iters)
    if rho < MIN_CORRELATION:
        raise RegistrationFailure(f"frames do not match (correlation {rho:.2f} after registration)")
    return out
