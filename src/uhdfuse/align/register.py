"""Registration of one frame to another: first guesses, fits on the coarse level,
the proxy and the fine level, choice of the motion model, acceptance.

:func:`register` works on :class:`~uhdfuse.align.levels.Pyramid` frames and raises
:class:`~uhdfuse.align.checks.RegistrationFailure`; :func:`estimate_transform` is
the same on plain luma arrays, raising :class:`~uhdfuse.errors.AlignmentFailed`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from uhdfuse.align.compare import clipped_alike, match, matched
from uhdfuse.align.checks import (
    MAX_CHANCE_RATIO,
    RegistrationFailure,
    accept,
    apply_matrix,
    better_than_chance,
    corner_distance,
    grid_points,
    luma_residual,
)
from uhdfuse.align.levels import Level, Pyramid, prepare_frame
from uhdfuse.align.lk import MOTION_MODELS, Fit, Problem, problem, refine
from uhdfuse.align.matchers import (
    DIRECT_MATCHERS,
    FEATURE_MATCHERS,
    MIN_MATCHES,
    SUPPORT_TOL,
    Guess,
    feature_support,
    fit_model,
    proposals,
)
from uhdfuse.config import AlignConfig, AlignModel
from uhdfuse.errors import AlignmentFailed, param

AUTO_CORNER_TOL = 0.5  # px: a simpler model this close to the homography is enough
# px: a rigid fit from no motion that stays this close to it shows a still frame at once
# (well inside AUTO_CORNER_TOL: a frame near that limit gets the whole search).
STILL_CORNER_TOL = 0.25
# The identity is enough when its residual is within this (absolute)...
IDENTITY_RESIDUAL_TOL = 0.002
IDENTITY_RESIDUAL_REL = 0.05  # ...plus this fraction of the fitted model's residual.
# A simpler model is enough when its fit's cost is within this fraction of the
# homography's: on content that does not pin a homography down (flat, one plane
# of texture) the extra freedom fits noise at no gain.
SIMPLER_COST_REL = 0.02
# The proxy fit is repeated, the tone curve and what moved measured anew under the
# last fit, until it moves no corner by more than ROUND_TOL px (at most MAX_ROUNDS).
MAX_ROUNDS = 4
ROUND_TOL = 0.05
# Fits on the fine level, each from the one before with the comparison measured anew
# (over 8 generated UHD brackets the second takes the mean worst corner error from
# 0.59 to 0.41 px, for about 60 ms a frame).
FINE_FITS = 2
# Below this fraction of trusted pixels in either frame, the feature matcher is
# tried even when the direct guesses gave an acceptable fit.
SPARSE_TRUSTED = 0.6
# Tried by AUTO, simplest first, against the homography, with this many iterations at most.
SIMPLER_MODELS = (AlignModel.TRANSLATION, AlignModel.EUCLIDEAN)
TRIAL_ITERS = 12
HINT = f"if the frames are already aligned, use {param('align.model', AlignModel.NONE.value)}"


@dataclass(frozen=True)
class Registration:
    """One frame registered to another."""

    matrix: np.ndarray  # (3, 3) float64, full-resolution reference pixel -> moving pixel
    residual: float  # see estimate_transform
    model: str  # the motion model fitted (AUTO's choice, NONE for identity, or the one asked for)


def refine_from(ref: Pyramid, mov: Pyramid, start: np.ndarray, model: str, max_residual: float) -> Registration:
    """``mov`` registered to ``ref`` from full-resolution ``start`` (a close estimate: no
    search), with ``model`` (AUTO: the simplest that fits, never the identity); raises
    RegistrationFailure when the fit fails or is not accepted."""
    pair = clipped_alike(ref, mov)
    M, chosen = _on_proxy(*pair, start, model)
    return Registration(M, _accepted_fit(M, ref, mov, pair, max_residual), chosen)


def register(ref: Pyramid, mov: Pyramid, model: str, max_residual: float) -> Registration:
    """``mov`` registered to ``ref`` with ``model`` (one of MOTION_MODELS, or AUTO).

    AUTO returns exactly the identity (model NONE) when no motion does better than
    none: a tripod bracket is never resampled. Raises RegistrationFailure when no
    model, the identity included, explains the frames.
    """
    size = ref.full_size
    if size != mov.full_size:
        raise RegistrationFailure(f"frame size {mov.full_size} differs from the reference {size}")

    def measure(M: np.ndarray) -> float:
        """Residual of full-resolution matrix M on the frames as prepared: on the coarse
        levels (it ranks first guesses), on the proxies where those share too little."""
        coarse = luma_residual(ref.coarse, mov.coarse, ref.coarse.from_full(M))
        return coarse if coarse != np.inf else luma_residual(ref.proxy, mov.proxy, ref.proxy.from_full(M))

    try:
        pair = clipped_alike(ref, mov)
        guesses = proposals(*pair, DIRECT_MATCHERS)
        if model == AlignModel.AUTO and (still := _still(ref, mov, pair, guesses, max_residual)) is not None:
            return still
        trusted = min(float((level.mask > 0).mean()) for level in (ref.proxy, mov.proxy))
        fitted = _registered(
            pair, model, measure, lambda M: _accepted_fit(M, ref, mov, pair, max_residual), trusted, guesses
        )
    except RegistrationFailure as failure:
        if model != AlignModel.AUTO:
            raise
        # No fit (frames many stops apart that share too little): the identity, when
        # it explains them clearly better than chance; else whether anything
        # contradicts it, for the bracket to decide.
        still = _identity(ref, mov, max_residual)
        if still is not None and better_than_chance(np.eye(3), ref, mov) <= MAX_CHANCE_RATIO:
            return still
        raise RegistrationFailure(
            f"{failure}; without motion {_measured(ref, mov, still)}", unmoved=None if still is None else still.residual
        ) from None
    if model == AlignModel.AUTO:
        # The fit showed the frames match; the identity need only do as well.
        identity = _identity(ref, mov, max_residual)
        if identity is not None and (
            corner_distance(fitted.matrix, np.eye(3), size) <= AUTO_CORNER_TOL
            or identity.residual <= fitted.residual * (1 + IDENTITY_RESIDUAL_REL) + IDENTITY_RESIDUAL_TOL
        ):
            return identity
    return fitted


def _still(
    ref: Pyramid, mov: Pyramid, pair: tuple[Pyramid, Pyramid], guesses: list[Guess], max_residual: float
) -> Registration | None:
    """The identity when the frames did not move: what AUTO returns for a tripod
    bracket, shown without the search for a motion that such a bracket does not need
    (coarse fits from every guess, proxy rounds, features). None when that is not
    shown (the search then decides).

    Shown when the direct ``guesses`` all see no motion, a rigid fit on the proxies
    ``pair`` started from the identity stays within STILL_CORNER_TOL px of it (and,
    beyond half that, explains the frames no better than the identity), and the
    frames as they are are accepted and agree better than by chance. (Rigid: a
    homography's perspective wanders by a pixel on a still frame; a rotation does not.)
    """
    if not all(np.allclose(guess.matrix, np.eye(3)) for guess in guesses):
        return None
    rp, mp = matched(pair[0].proxy, pair[1].proxy, np.eye(3))
    try:
        M = rp.to_full(refine(problem(rp, mp), np.eye(3), AlignModel.EUCLIDEAN).matrix)
    except RegistrationFailure:
        return None
    moved = corner_distance(M, np.eye(3), ref.full_size)
    if moved > STILL_CORNER_TOL:
        return None
    identity = _identity(ref, mov, max_residual)
    # nan (too little detail to measure) passes, as for any fit: features are not asked.
    if identity is None or better_than_chance(np.eye(3), ref, mov) > MAX_CHANCE_RATIO:
        return None
    # A fit a little off the identity must also not explain the frames better (the
    # residual test AUTO applies to any fit): a real shift of a fraction of a pixel.
    if moved > STILL_CORNER_TOL / 2:
        fitted = luma_residual(ref.proxy, mov.proxy, ref.proxy.from_full(M))
        if identity.residual > fitted * (1 + IDENTITY_RESIDUAL_REL) + IDENTITY_RESIDUAL_TOL:
            return None
    return identity


def _accepted_fit(M: np.ndarray, ref: Pyramid, mov: Pyramid, pair: tuple[Pyramid, Pyramid], max_residual: float) -> float:
    """:func:`~uhdfuse.align.checks.accept` of a fitted M, whose frames must also agree
    under it clearly better than by chance, or failing that (a frame mostly clipped,
    much of the scene moved) be supported by MIN_MATCHES SIFT matches of the frames
    made comparable, ``pair``: a fit to an unrelated frame is neither. Its residual."""
    residual = accept(M, ref, mov, max_residual)
    ratio = better_than_chance(M, ref, mov)
    if ratio > MAX_CHANCE_RATIO and feature_support(*pair, M) < MIN_MATCHES:  # nan passes: not measurable
        raise RegistrationFailure(
            f"frames do not match (they agree hardly better than by chance, {ratio:.2f}, and no features support the fit)"
        )
    return residual


def _identity(ref: Pyramid, mov: Pyramid, max_residual: float) -> Registration | None:
    """The identity as a registration, or None when it does not explain the frames
    (:func:`~uhdfuse.align.checks.accept`)."""
    try:
        return Registration(np.eye(3), accept(np.eye(3), ref, mov, max_residual), AlignModel.NONE)
    except RegistrationFailure:
        return None


def _measured(ref: Pyramid, mov: Pyramid, identity: Registration | None) -> str:
    """What the frames as they are measure, for a message (``identity``: their
    registration, when it was accepted)."""
    residual = identity.residual if identity is not None else luma_residual(ref.proxy, mov.proxy, np.eye(3))
    return "the frames share too few trusted pixels" if residual == np.inf else f"the residual is {residual:.3f}"


Measure = Callable[[np.ndarray], float]  # full-resolution matrix -> residual of the frames as prepared


def _registered(
    pair: tuple[Pyramid, Pyramid], model: str, measure: Measure, acceptance: Callable[[np.ndarray], float],
    trusted: float, guesses: list[Guess],
) -> Registration:  # fmt: skip
    """The fit from the direct ``guesses``, or, when it fails or is not accepted, from
    features (slower: SIFT on both proxies); raises the direct fit's
    RegistrationFailure. When less than SPARSE_TRUSTED of a frame is ``trusted``
    (mostly clipped or black: the direct guesses have little to go on) the feature
    guess is also fitted, unless it agrees with the direct fit already (the fit from
    it would end there), and the fit with the lower residual is kept."""
    try:
        M, chosen = _fit(*pair, model, measure, guesses)
        direct = Registration(M, acceptance(M), chosen)
    except RegistrationFailure as failure:
        direct_failure, direct = failure, None
    if direct is not None and trusted >= SPARSE_TRUSTED:
        return direct
    featured = proposals(*pair, FEATURE_MATCHERS)
    if direct is not None:
        # A guess that sends no corner of the proxy further than SUPPORT_TOL px from the
        # direct fit would be refined to where that fit is: it is not fitted again.
        proxy = pair[0].proxy
        size = (proxy.luma.shape[1], proxy.luma.shape[0])
        fitted = proxy.from_full(direct.matrix)
        featured = [g for g in featured if corner_distance(proxy.from_full(g.matrix), fitted, size) > SUPPORT_TOL]
    try:
        M, chosen = _fit(*pair, model, measure, featured)
        other = Registration(M, acceptance(M), chosen)
    except RegistrationFailure:
        if direct is None:
            raise direct_failure from None  # what the direct fit found wrong says more than "no features"
        return direct
    return other if direct is None or other.residual < direct.residual else direct


def _fit(ref: Pyramid, mov: Pyramid, model: str, measure: Measure, guesses: list[Guess]) -> tuple[np.ndarray, str]:
    """``model`` (AUTO: the simplest that fits) refined from the best of ``guesses``, on
    the coarse levels and then the proxies of frames made comparable
    (:mod:`~uhdfuse.align.compare`): the full-resolution matrix and the model fitted.
    Raises RegistrationFailure."""
    if not guesses:
        raise RegistrationFailure("no first guess of the motion (no matcher found one)")
    # Coarse: few parameters fitted from every guess; of the guesses and their fits,
    # the one that explains the frames best is kept (a feature guess may already be
    # closer than a fit with fewer parameters gets).
    coarse_model = AlignModel.TRANSLATION if model == AlignModel.TRANSLATION else AlignModel.EUCLIDEAN
    candidates = [guess.matrix for guess in guesses]
    for guess in guesses:
        try:
            candidates.append(_refined(ref.coarse, mov.coarse, guess.start(coarse_model), coarse_model, moved=False))
        except RegistrationFailure:
            pass
    M = min(candidates, key=measure)
    # Then the full model on the coarse levels too: perspective moves the corners of a
    # large frame by more than the proxy fit would reach from a rigid start.
    full_model = AlignModel.HOMOGRAPHY if model == AlignModel.AUTO else model
    if full_model != coarse_model:
        try:
            M = _refined(ref.coarse, mov.coarse, M, full_model, moved=False)
        except RegistrationFailure:
            pass
    return _on_proxy(ref, mov, M, model)


def _on_proxy(ref: Pyramid, mov: Pyramid, M: np.ndarray, model: str) -> tuple[np.ndarray, str]:
    """Full-resolution M refined with ``model`` (AUTO: the simplest that fits) on the
    proxies: the matrix and the model fitted. Raises RegistrationFailure."""
    # The model, repeated with the tone curve and what moved measured anew
    # under each fit, which is closer than the one before.
    first = AlignModel.HOMOGRAPHY if model == AlignModel.AUTO else model
    try:
        for _ in range(MAX_ROUNDS):
            found = match(ref.proxy, mov.proxy, ref.proxy.from_full(M))
            if found is None:
                raise RegistrationFailure("too few well-exposed pixels in common with the frame it is registered to")
            rp, mp = found.apply(ref.proxy, mov.proxy)
            on_proxy = problem(rp, mp)
            fit = refine(on_proxy, rp.from_full(M), first)
            previous, M = M, rp.to_full(fit.matrix)
            if corner_distance(M, previous, ref.full_size) < ROUND_TOL:
                break
    except RegistrationFailure:
        if model != AlignModel.AUTO:
            raise
        # A homography can fail where fewer parameters still fit (flat content).
        for m in reversed(SIMPLER_MODELS):
            try:
                return _refined(ref.proxy, mov.proxy, M, m), m
            except RegistrationFailure:
                pass
        raise
    if model == AlignModel.AUTO and corner_distance(M, np.eye(3), ref.full_size) <= AUTO_CORNER_TOL:
        return M, first  # register takes the identity for it: a tripod needs no finer fit
    chosen = model
    if model == AlignModel.AUTO:
        M, chosen = _simplest(rp, on_proxy, fit, ref.full_size)
    if ref.fine is not None and mov.fine is not None:
        # Last, on the fine level, FINE_FITS times: compared as the proxies are under the
        # fit before (the tone curve holds on any level, what moved is scaled up), the
        # comparison measured again on the proxies under each fine fit.
        for fine_fit in range(FINE_FITS):
            if fine_fit > 0 and (found := match(ref.proxy, mov.proxy, ref.proxy.from_full(M))) is None:
                break
            fl, ml = found.apply(ref.fine, mov.fine)
            try:
                M = fl.to_full(refine(problem(fl, ml), fl.from_full(M), chosen).matrix)
            except RegistrationFailure:
                break  # the fit before stands
    return M, chosen


def _refined(ref: Level, mov: Level, M: np.ndarray, model: str, *, moved: bool = True) -> np.ndarray:
    """Full-resolution M refined with ``model`` on one level of both frames, compared
    as :func:`~uhdfuse.align.compare.matched` says under M."""
    rl, ml = matched(ref, mov, ref.from_full(M), moved=moved)
    return rl.to_full(refine(problem(rl, ml), rl.from_full(M), model).matrix)


def _simplest(rp: Level, pair: Problem, homography: Fit, size: tuple[int, int]) -> tuple[np.ndarray, str]:
    """The simplest model (translation < euclidean < homography) that does about as well
    as the ``homography`` fitted on the matched proxies ``pair`` (``rp``: the reference
    proxy): within AUTO_CORNER_TOL px of it at the frame corners, or with a cost within
    SIMPLER_COST_REL of its."""
    Mh = rp.to_full(homography.matrix)
    grid = grid_points((size[1], size[0]))
    for m in SIMPLER_MODELS:
        start = fit_model(grid, apply_matrix(Mh, grid), m)  # the homography absorbed any large motion
        try:
            # A model that cannot follow the motion never settles; TRIAL_ITERS show its
            # cost and where it lies, and only the one chosen is fitted to the end.
            fit = refine(pair, rp.from_full(start), m, iters=TRIAL_ITERS)
        except RegistrationFailure:
            continue
        near = corner_distance(rp.to_full(fit.matrix), Mh, size) <= AUTO_CORNER_TOL
        if near or fit.cost <= homography.cost * (1 + SIMPLER_COST_REL):
            try:
                fit = refine(pair, fit.matrix, m)
            except RegistrationFailure:
                pass  # the trial stands
            return rp.to_full(fit.matrix), m
    return Mh, AlignModel.HOMOGRAPHY


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
