"""Registration of one frame to another: coarse guess, ECC on the proxy and the
refinement level, choice of the motion model, acceptance.

:func:`register` works on :class:`~uhdfuse.align.levels.Pyramid` frames and raises
:class:`~uhdfuse.align.checks.RegistrationFailure`; :func:`estimate_transform` is
the same on plain luma arrays, raising :class:`~uhdfuse.errors.AlignmentFailed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from uhdfuse.align.checks import RegistrationFailure, accept, apply_matrix, corner_distance, grid_points, luma_residual
from uhdfuse.align.ecc import MIN_CORRELATION, MOTION_MODELS, PROXY_ITERS, REFINE_ITERS, TRIAL_ITERS, ecc, ecc_matching
from uhdfuse.align.levels import Level, Pyramid, prepare_frame, warp_plane
from uhdfuse.align.matchers import coarse_guess, fit_model
from uhdfuse.config import AlignConfig, AlignModel
from uhdfuse.errors import AlignmentFailed, param

AUTO_CORNER_TOL = 0.5  # px: a simpler model this close to the homography is enough
AUTO_RESIDUAL_TOL = 0.002  # a simpler model with a residual within this (absolute)...
AUTO_RESIDUAL_REL = 0.05  # ...plus this fraction of the richer model's residual is enough
# Pixels left out of the second fit: those that disagree under the first fit by more
# than OUTLIER_FACTOR times the typical (median) rank difference, and by more than
# MIN_DISAGREEMENT (sensor noise and JPEG stay below it): what moved, not what is noisy.
OUTLIER_FACTOR = 4.0
MIN_DISAGREEMENT = 0.05
# Tried by AUTO, simplest first, against the homography.
SIMPLER_MODELS = (AlignModel.TRANSLATION, AlignModel.EUCLIDEAN)
HINT = f"if the frames are already aligned, use {param('align.model', AlignModel.NONE.value)}"


@dataclass(frozen=True)
class Registration:
    """One frame registered to another."""

    matrix: np.ndarray  # (3, 3) float64, full-resolution reference pixel -> moving pixel
    residual: float  # see estimate_transform
    model: str  # the motion model fitted (AUTO's choice, NONE for identity, or the one asked for)


def _about_as_good(residual: float, best: float) -> bool:
    """Whether a simpler model's ``residual`` is as good as the ``best`` one's for AUTO
    (on low-texture content the extra freedom of a richer model fits noise)."""
    return residual <= best * (1 + AUTO_RESIDUAL_REL) + AUTO_RESIDUAL_TOL


def register(ref: Pyramid, mov: Pyramid, model: str, max_residual: float) -> Registration:
    """``mov`` registered to ``ref`` with ``model`` (one of MOTION_MODELS, or AUTO).

    AUTO returns exactly the identity (model NONE) when no motion does better than
    none: a tripod bracket is never resampled. Raises RegistrationFailure when no
    model, the identity included, explains the frames.
    """
    if ref.full_size != mov.full_size:
        raise RegistrationFailure(f"frame size {mov.full_size} differs from the reference {ref.full_size}")
    try:
        fitted = _fit(ref, mov, model, max_residual)
    except RegistrationFailure as failure:
        if model != AlignModel.AUTO:
            raise
        # No fit (frames many stops apart that share too little for ECC): the identity,
        # when it explains them.
        still = _identity(ref, mov, max_residual)
        if still is None:
            raise RegistrationFailure(f"{failure}; without motion {_measured(ref, mov)}") from None
        return still
    if model == AlignModel.AUTO:
        identity = _identity(ref, mov, max_residual)
        if identity is not None and (
            corner_distance(fitted.matrix, np.eye(3), ref.full_size) <= AUTO_CORNER_TOL
            or _about_as_good(identity.residual, fitted.residual)
        ):
            return identity
    return fitted


def _identity(ref: Pyramid, mov: Pyramid, max_residual: float) -> Registration | None:
    """The identity as a registration, or None when it does not explain the frames."""
    try:
        return Registration(np.eye(3), accept(np.eye(3), ref.proxy, mov.proxy, ref.full_size, max_residual), AlignModel.NONE)
    except RegistrationFailure:
        return None


def _measured(ref: Pyramid, mov: Pyramid) -> str:
    residual = luma_residual(ref.proxy, mov.proxy, np.eye(3))
    return "the frames share too few trusted pixels" if residual == np.inf else f"the residual is {residual:.3f}"


def _fit(ref: Pyramid, mov: Pyramid, model: str, max_residual: float) -> Registration:
    """ECC of ``model`` (AUTO: the simplest that fits) from the best coarse guess, on the
    proxy and then the refinement level; raises RegistrationFailure."""
    size = ref.full_size
    rp, mp = ref.proxy, mov.proxy
    guess = coarse_guess(ref, mov)

    def on_proxy(m: str) -> np.ndarray:
        """ECC of model m on the proxy, started from the coarse guess."""
        return ecc_matching(rp, mp, rp.from_full(guess.start(m)), m, iters=PROXY_ITERS)

    if model == AlignModel.AUTO:
        chosen, Mp = _simplest_on_proxy(rp, mp, on_proxy, size)
    else:
        chosen, Mp = model, on_proxy(model)

    # What moved in the scene pulls a global fit: fit again without the pixels that
    # disagree most under the first fit (the fusion deals with them, not the warp).
    rp_static = replace(rp, mask=_agreeing(rp, mp, Mp))
    Mp = ecc_matching(rp_static, mp, Mp, chosen, iters=PROXY_ITERS)
    M = rp.to_full(Mp)
    if mov.refine is not None:
        rl, ml = ref.refine, mov.refine
        assert rl is not None and ml is not None
        static = cv2.resize(rp_static.mask, rl.mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
        rl = replace(rl, mask=cv2.bitwise_and(rl.mask, static))
        M = rl.to_full(ecc_matching(rl, ml, rl.from_full(M), chosen, iters=REFINE_ITERS))
    if chosen != AlignModel.HOMOGRAPHY:
        M[2] = (0, 0, 1)
    return Registration(M, accept(M, rp, mp, size, max_residual), chosen)


def _agreeing(ref: Level, mov: Level, M: np.ndarray) -> np.ndarray:
    """``ref.mask`` without the pixels where ``mov``, warped by level matrix M, disagrees
    most (see OUTLIER_FACTOR), grown by a few pixels to take the edges of what moved."""
    difference = cv2.GaussianBlur(np.abs(ref.luma - warp_plane(mov.luma, M, ref.luma.shape)), (5, 5), 0)
    trusted = ref.mask > 0
    if not trusted.any():
        return ref.mask
    limit = max(MIN_DISAGREEMENT, OUTLIER_FACTOR * float(np.median(difference[trusted])))
    moved = cv2.dilate((difference > limit).astype(np.uint8), np.ones((5, 5), np.uint8))
    return np.where(moved > 0, 0, ref.mask).astype(np.uint8)


def _simplest_on_proxy(
    rp: Level, mp: Level, on_proxy: Callable[[str], np.ndarray], size: tuple[int, int]
) -> tuple[str, np.ndarray]:
    """The simplest model (translation < euclidean < homography) that does about as well
    as a homography, and its proxy matrix.

    A simpler model is enough when it lands within AUTO_CORNER_TOL px of the
    homography at the frame corners, or when its residual is barely higher.
    """
    try:
        Mh = on_proxy(AlignModel.HOMOGRAPHY)
    except RegistrationFailure:
        # A homography can fail to converge where fewer parameters still work (flat content).
        for m in reversed(SIMPLER_MODELS):
            try:
                return m, on_proxy(m)
            except RegistrationFailure:
                pass
        raise
    rh = luma_residual(rp, mp, Mh)
    Mh_full = rp.to_full(Mh)
    grid = grid_points(rp.luma.shape)
    for m in SIMPLER_MODELS:
        # Start from the homography, which already absorbed any large motion.
        try:
            Mm, rho = ecc(rp, mp, fit_model(grid, apply_matrix(Mh, grid), m), m, iters=TRIAL_ITERS)
        except RegistrationFailure:
            continue
        if rho < MIN_CORRELATION:
            continue
        close = corner_distance(rp.to_full(Mm), Mh_full, size) <= AUTO_CORNER_TOL
        if close or _about_as_good(luma_residual(rp, mp, Mm), rh):
            return m, Mm
    return AlignModel.HOMOGRAPHY, Mh


def estimate_transform(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    model: str,
    proxy_size: int = AlignConfig.proxy_size,
    max_residual: float = AlignConfig.max_residual,
) -> tuple[np.ndarray, float]:
    """Register a moving frame to the reference, whatever their exposures.

    Args:
        reference, moving: (H, W, 3) float32 linear frames, 1.0 = each one's clipping
            level; their exposures, gains and tone curves may differ (they are
            compared by rank luma, :func:`~uhdfuse.align.levels.rank_luma`).
        model: "translation", "euclidean", "affine", "homography" or "auto" (the
            simplest model that does about as well as a homography, the identity
            included).
        proxy_size: long side of the proxy used for the first fit.
        max_residual: residual above which the registration is rejected.

    Returns:
        ``(M, residual)``: M is (3, 3) float64 mapping reference pixel coordinates
        to moving pixel coordinates; residual is the RMS square-root-luma
        difference over the trusted overlap after warping, measured on the proxy,
        once a fitted tone curve has absorbed exposure and response differences,
        and over the best-matching 90% of pixels (scene motion is not a
        registration error).

    Raises:
        AlignmentFailed: the frames cannot be registered reliably.
    """
    if model not in (*MOTION_MODELS, AlignModel.AUTO):
        raise ValueError(f"unknown motion model {model!r}")
    ref = prepare_frame(reference, proxy_size)
    mov = prepare_frame(moving, proxy_size)
    try:
        registration = register(ref, mov, model, max_residual)
    except RegistrationFailure as exc:
        raise AlignmentFailed(f"{exc}; {HINT}") from None
    return registration.matrix, registration.residual
