"""The align stage: a :class:`~uhdfuse.types.Bracket` registered, warped and cropped
into an :class:`~uhdfuse.types.AlignedBracket`.

Frames are registered in a chain towards the reference (:func:`register_chain`),
the common area is chosen (:func:`crop_box`) and the frames are warped into the
reference geometry at full resolution (:func:`warp_frames`); a frame that did not
move is copied, not resampled.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from uhdfuse.align.checks import (
    MIN_OVERLAP,
    RegistrationFailure,
    check_plausible,
    corner_distance,
    coverage,
    largest_rectangle,
    luma_residual,
)
from uhdfuse.align.levels import Pyramid, prepare_frame
from uhdfuse.align.register import HINT, refine_from, register
from uhdfuse.config import AlignConfig, AlignModel
from uhdfuse.errors import AlignmentFailed, InconsistentBracket
from uhdfuse.memory import release
from uhdfuse.threads import worker_threads
from uhdfuse.types import AlignedBracket, Bracket

# Largest motion between any two neighbouring frames (at the corners, as a fraction of
# the frame's long side: an angle, like the camera's) that leaves the bracket still
# enough for a frame nothing places to be taken as unmoved relative to its
# neighbour: a tripod's vibration (about 0.1 degree with a normal lens), not a
# hand-held shake.
STILL_STEP = 0.0025
# The models a bracket can end up with, simplest first.
_COMPLEXITY = (AlignModel.NONE, AlignModel.TRANSLATION, AlignModel.EUCLIDEAN, AlignModel.AFFINE, AlignModel.HOMOGRAPHY)


def align_bracket(bracket: Bracket, config: AlignConfig, *, release_frames: bool = False) -> AlignedBracket:
    """Register every frame of ``bracket`` to its reference frame and warp it there.

    Frames (sorted by exposure) are registered in a chain: each to its neighbour
    on the reference's side, the matrices composed, because frames many stops
    from the reference share too few well-exposed pixels with it. For brackets
    of up to three frames around the reference this is direct registration.

    Args:
        bracket: frames (H, W, 3) float32 linear, all the same size.
        config: motion model (NONE keeps the frames as they are; AUTO uses,
            per frame, the simplest of translation < euclidean < homography that
            does about as well as a homography), proxy size, residual limit, crop.
        release_frames: hand each decoded frame's memory back once it is warped
            (:func:`uhdfuse.memory.release`): for a caller done with ``bracket``'s
            images, whose values are unspecified afterwards.

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
        of the registration that placed frame i (see
        :func:`~uhdfuse.align.register.estimate_transform`), against its neighbour
        on the reference's side (the reference itself for adjacent frames); with
        model NONE it measures the unaligned frames the same way (inf where two
        frames share too few trusted pixels to measure).

    Raises:
        AlignmentFailed: a frame cannot be registered reliably (the message names
            the file and suggests ``align.model='none'``).
        InconsistentBracket: frames of different sizes.
    """
    _check_sizes(bracket)
    chain = register_chain(bracket, config)
    registered = config.model is not AlignModel.NONE
    crop = crop_box(bracket, chain.transforms, crop=config.crop and registered)
    images = warp_frames(
        bracket, chain.transforms if registered else None, crop, fill=not config.crop, release_frames=release_frames
    )
    return AlignedBracket(
        images=images,
        ev=bracket.ev,
        reference=bracket.reference,
        model=chain.model,
        transforms=chain.transforms,
        residuals=chain.residuals,
        crop=crop,
    )


def _check_sizes(bracket: Bracket) -> None:
    size = bracket.frames[bracket.reference].size
    for f in bracket.frames:
        if f.size != size:
            raise InconsistentBracket(f"frame size {f.size} differs from the reference {size}", f.path)


@dataclass(frozen=True)
class Chain:
    """Where each frame of a bracket lies relative to the reference frame."""

    transforms: tuple[np.ndarray, ...]  # (3, 3) each: reference pixel -> frame pixel
    residuals: tuple[float, ...]  # per frame, against the frame it was registered to
    model: AlignModel  # the most complex model any frame needed (NONE: not registered)


def _links(count: int, reference: int) -> Iterator[tuple[int, int]]:
    """(frame, its neighbour on the reference's side), nearest frames first, so each
    frame's neighbour has been placed when it comes."""
    for i in sorted(range(count), key=lambda k: abs(k - reference)):
        if i != reference:
            yield i, (i + 1 if i < reference else i - 1)


def register_chain(bracket: Bracket, config: AlignConfig) -> Chain:
    """Each frame registered to its neighbour on the reference's side, matrices composed;
    with model NONE only the residuals of the frames as they are.

    A frame that no model fits, whose frames as they are nothing contradicts but
    nothing shows either (a frame many stops from its neighbour, sharing few
    pixels with it), is taken as unmoved relative to its neighbour unless another
    frame of the bracket moved more than STILL_STEP from its own (then it was
    hand-held, and the frame cannot be placed). Raises AlignmentFailed naming the
    first frame that cannot be placed.
    """
    frames, ref_i = bracket.frames, bracket.reference
    reference = prepare_frame(frames[ref_i].image, config.proxy_size)
    transforms = [np.eye(3) for _ in frames]
    residuals = [0.0] * len(frames)
    models = [AlignModel.NONE] * len(frames)
    unshown: dict[int, RegistrationFailure] = {}  # frames taken as unmoved for now

    def side(links: list[tuple[int, int]]) -> tuple[int, AlignmentFailed] | None:
        """The frames of one side of the reference, nearest first; the first failure
        (the frame's index and the error)."""
        # Rank luma does not depend on the partner frame, so a frame's levels serve
        # both when it is registered and when the next frame out is registered to it.
        anchor = reference
        for i, j in links:
            moving = prepare_frame(frames[i].image, config.proxy_size)
            if config.model is AlignModel.NONE:
                residuals[i] = luma_residual(anchor.proxy, moving.proxy, np.eye(3))
            else:
                try:
                    transforms[i], residuals[i], models[i] = _place(anchor, moving, transforms[j], config, reference)
                except RegistrationFailure as failure:
                    if failure.unmoved is None:
                        return i, AlignmentFailed(f"{failure}; {HINT}", frames[i].path)
                    transforms[i], residuals[i], unshown[i] = transforms[j].copy(), failure.unmoved, failure
            anchor = moving
        return None

    links = list(_links(len(frames), ref_i))
    sides = [[(i, j) for i, j in links if i < ref_i], [(i, j) for i, j in links if i > ref_i]]
    # The two sides share nothing but the reference: registered at once when cores allow.
    with ThreadPoolExecutor(max_workers=max(1, min(2, worker_threads()))) as pool:
        failures = list(pool.map(side, sides))
    # The failure nearest the reference, the darker side first: the same whichever finished first.
    failed = [f for f in failures if f is not None]
    if failed:
        raise min(failed, key=lambda f: (abs(f[0] - ref_i), f[0]))[1]
    steps = [corner_distance(transforms[i] @ np.linalg.inv(transforms[j]), np.eye(3), frames[i].size)
             for i, j in links if i not in unshown]  # fmt: skip
    if unshown and steps and max(steps) > STILL_STEP * max(frames[ref_i].size):
        i = min(unshown, key=lambda k: abs(k - ref_i))
        why = f"other frames moved by up to {max(steps):.1f} px"
        raise AlignmentFailed(f"{unshown[i]}; it cannot be taken as unmoved ({why}); {HINT}", frames[i].path)
    return Chain(tuple(transforms), tuple(residuals), max(models, key=_COMPLEXITY.index))


def _place(
    anchor: Pyramid, moving: Pyramid, anchor_transform: np.ndarray, config: AlignConfig, reference: Pyramid
) -> tuple[np.ndarray, float, AlignModel]:
    """``moving`` registered to ``anchor``, whose reference -> anchor matrix is
    ``anchor_transform``: its reference -> frame matrix, residual and model. Raises
    RegistrationFailure.

    A frame registered through a neighbour is then refined against the reference
    itself from that estimate, and the refinement kept when the reference agrees
    with it at least as well: errors of a chain add up, a direct fit's do not.
    """
    size = anchor.full_size
    registration = register(anchor, moving, config.model, config.max_residual)
    transform = registration.matrix @ anchor_transform  # reference -> anchor -> frame
    check_plausible(transform, size)
    if coverage(transform, size) < MIN_OVERLAP:
        raise RegistrationFailure("the frame overlaps the reference on less than half the frame")
    if anchor is not reference and registration.model != AlignModel.NONE:
        try:
            direct = refine_from(reference, moving, transform, config.model, config.max_residual)
        except RegistrationFailure:
            pass
        else:
            chained = luma_residual(reference.proxy, moving.proxy, reference.proxy.from_full(transform))
            if direct.residual <= chained:
                return direct.matrix, registration.residual, AlignModel(max(direct.model, registration.model, key=_COMPLEXITY.index))
    return transform, registration.residual, AlignModel(registration.model)


def crop_box(bracket: Bracket, transforms: Sequence[np.ndarray], *, crop: bool) -> tuple[int, int, int, int]:
    """(x, y, w, h) kept of the reference frame: the area every frame covers, or
    without ``crop`` the whole frame. Raises AlignmentFailed when nothing is common."""
    ref_frame = bracket.frames[bracket.reference]
    w, h = ref_frame.size
    others = [t for i, t in enumerate(transforms) if i != bracket.reference]
    if crop and not all(np.array_equal(t, np.eye(3)) for t in others):
        x0, y0, cw, ch = largest_rectangle(others, (w, h))
    else:
        x0, y0, cw, ch = 0, 0, w, h
    if cw < 1 or ch < 1:
        raise AlignmentFailed(f"the registered frames have no common area; {HINT}", ref_frame.path)
    return x0, y0, cw, ch


def warp_frames(
    bracket: Bracket,
    transforms: Sequence[np.ndarray] | None,
    crop: tuple[int, int, int, int],
    *,
    fill: bool,
    release_frames: bool = False,
) -> np.ndarray:
    """(N, h, w, 3) float32: each frame warped by ``transforms`` (None: taken as it is)
    into the reference geometry, cut to ``crop``; with ``fill``, what a frame does not
    cover taken from the reference at the frame's exposure. ``release_frames``: each
    decoded frame's memory handed back once it is placed (the reference's last)."""
    frames, ref_i = bracket.frames, bracket.reference
    x0, y0, cw, ch = crop
    out = np.empty((len(frames), ch, cw, 3), dtype=np.float32)
    shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])

    def one(i: int) -> None:
        f = frames[i]
        if i == ref_i or transforms is None or np.array_equal(transforms[i], np.eye(3)):
            out[i] = f.image[y0 : y0 + ch, x0 : x0 + cw]  # no motion: copied, never resampled
            return
        Mc = transforms[i] @ shift
        top = float(f.image.max())
        _warp_into(f.image, Mc, out[i])
        np.clip(out[i], 0.0, top, out=out[i])
        if fill:
            reference = frames[ref_i].image[y0 : y0 + ch, x0 : x0 + cw]
            _fill_uncovered(out[i], f.image.shape[:2], Mc, reference, bracket.ev[i] - bracket.ev[ref_i], top)

    # a frame whose memory another frame may use too is kept until the end
    alone = [not any(np.may_share_memory(f.image, g.image) for g in frames if g is not f) for f in frames]

    def placed(i: int) -> None:
        one(i)
        if release_frames and i != ref_i and alone[i]:
            release(frames[i].image)

    # Each frame is written alone, and OpenCV and numpy let go of the GIL on whole
    # frames: the frames are warped (or copied) at once where cores allow.
    with ThreadPoolExecutor(max_workers=max(1, min(len(frames), worker_threads()))) as pool:
        list(pool.map(placed, range(len(frames))))
    if release_frames:
        for f in frames:  # every fill has read the reference
            release(f.image)
    return out


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


def _fill_uncovered(
    warped: np.ndarray, source_shape: tuple[int, int], M: np.ndarray, reference: np.ndarray, ev: float, top: float
) -> None:
    """Pixels of ``warped`` (h, w, 3) that its source frame (``source_shape`` (H, W),
    ref->source matrix M) does not cover, set to ``reference`` (h, w, 3) scaled by
    ``2**ev`` and clipped at ``top``."""
    h, w = warped.shape[:2]
    covered = cv2.warpPerspective(
        np.ones(source_shape, np.uint8), M, (w, h),
        flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0,
    )
    hole = covered == 0
    if hole.any():
        warped[hole] = np.minimum(reference[hole] * np.float32(2.0**ev), top)
