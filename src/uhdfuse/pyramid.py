"""Mertens's quality measures and the Laplacian-pyramid blend, on numpy and OpenCV.

Shared by the classical fusion (:func:`uhdfuse.classical.fuse_mertens`), IPL's
inference render (:mod:`uhdfuse.runtime.render`), which steers the same blend with
the model's maps, and the torch blend IPL is trained through
(:mod:`uhdfuse.nn.blend`), which takes its constants from here so that training
sees what inference renders.

Everything runs in float32 on display-encoded (sRGB) values: the measures, "well
exposed = close to 0.5" above all, are defined on what a viewer sees, not on
linear light. Per-pixel work on full frames runs in row blocks on a few threads
(:func:`uhdfuse.threads.in_row_blocks`); every pixel is computed by the same operations as on the
whole frame, so the result does not depend on their number.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from uhdfuse.colour import srgb_encode
from uhdfuse.config import MertensWeights
from uhdfuse.memory import release
from uhdfuse.threads import in_row_blocks

# Added to every frame's weight before normalising (as OpenCV does): where all
# weights are zero this turns the blend into a plain average instead of 0/0.
EPSILON = 1e-12
# Floors of the contrast and saturation measures. Without them a flat region
# (contrast 0 in every frame: a clipped sky is exactly flat) or a grey scene
# (saturation 0) gets all-zero weights, and the fusion falls back to averaging
# the clipped frame with the good one. With them, well-exposedness still
# decides there. They are well below what texture or 8-bit noise produces
# (a Laplacian of ~1/255), so on ordinary photographs they change little.
CONTRAST_FLOOR = 1e-3
SATURATION_FLOOR = 1e-3


def to_display(linear: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Linear light -> sRGB display values in [0, 1], float32, same shape.

    Out-of-range values and NaN are clipped/zeroed first: a display image
    cannot show them, and the Mertens measures assume [0, 1]. ``out``: optional
    float32 array of the same shape to write the result into.
    """
    # fmax/fmin return the other operand for NaN, so these two passes give what
    # nan_to_num(nan=0, posinf=1, neginf=0) + clip(0, 1) gives, at a fraction of
    # the cost on 4K frames.
    x = np.fmax(np.asarray(linear, dtype=np.float32), np.float32(0.0))
    np.fmin(x, np.float32(1.0), out=x)
    return srgb_encode(x, out=out)


def working_frames(images: np.ndarray, overwrite: bool) -> np.ndarray:
    """The (N, H, W, 3) frames a fusion may use as working memory (encode in place,
    release): ``images`` itself when ``overwrite`` and it is a writable C-contiguous
    float32 array, else a float32 copy.

    Encoding the frames where they lie, once, is what keeps a fusion's memory at the
    frames plus their weights and pyramid (the callers own the choice: the pipeline's
    aligned frames are its own, a library caller's are not).
    """
    usable = images.dtype == np.float32 and images.flags.c_contiguous and images.flags.writeable
    return images if overwrite and usable else np.array(images, dtype=np.float32, order="C")


def encode_frame(linear: np.ndarray, out: np.ndarray) -> np.ndarray:
    """:func:`to_display` of an (H, W, 3) frame into ``out`` (H, W, 3) float32, in row
    blocks; ``out`` may be ``linear`` itself (each block is encoded into a temporary)."""

    def block(rows: slice) -> None:
        to_display(linear[rows], out=out[rows])

    in_row_blocks(block, linear.shape[0], linear.shape[1])
    return out


def max_levels(height: int, width: int) -> int:
    """The deepest pyramid for an image: down to about one pixel on the short side.

    Counts the full-resolution level, so a 1x1 image has 1 level. Matches the
    depth OpenCV's MergeMertens uses (floor(log2(min side)) reductions).
    """
    return 1 + int(math.floor(math.log2(max(1, min(height, width)))))


def mertens_weights(
    encoded: np.ndarray, weights: MertensWeights = MertensWeights(), *, out: np.ndarray | None = None
) -> np.ndarray:
    """Unnormalised Mertens weight of one display-encoded frame.

    ``encoded``: (H, W, 3) float32 sRGB values in [0, 1]. ``out``: optional
    C-contiguous (H, W) float32 array to write into. Returns (H, W) float32 >= 0
    (``out`` when given).
    """
    encoded = np.ascontiguousarray(encoded, dtype=np.float32)
    result = np.empty(encoded.shape[:2], dtype=np.float32) if out is None else out
    if weights.contrast != 0:
        # Rec.601 luma of the encoded values, as OpenCV's MergeMertens uses.
        grey = cv2.cvtColor(encoded, cv2.COLOR_RGB2GRAY)
        laplacian = cv2.Laplacian(grey, cv2.CV_32F, dst=result)  # 3x3 kernel, reflected borders
        if laplacian is not result:
            result[...] = laplacian
    else:
        result.fill(1.0)

    def block(rows: slice) -> None:
        if weights.contrast != 0:
            # The product of the measures starts with the contrast (1 x contrast).
            contrast = np.abs(result[rows], out=result[rows])
            contrast += np.float32(CONTRAST_FLOOR)
            if weights.contrast != 1:
                np.power(contrast, np.float32(weights.contrast), out=contrast)
        _multiply_colour_measures(encoded[rows], weights, result[rows])

    in_row_blocks(block, encoded.shape[0], encoded.shape[1])
    return result


def _multiply_colour_measures(encoded: np.ndarray, weights: MertensWeights, result: np.ndarray) -> None:
    """Multiply ``result`` (h, w) in place by the saturation and well-exposedness
    measures of ``encoded`` (h, w, 3): per-pixel, so it runs on row blocks.
    """
    # Contiguous planes: numpy is several times slower on the strided channel
    # views of an interleaved image.
    r, g, b = cv2.split(encoded)
    scratch = np.empty_like(r)
    if weights.saturation != 0:
        mean = np.add(r, g)
        mean += b
        mean /= np.float32(3.0)
        variance = np.square(np.subtract(r, mean, out=scratch))
        variance += np.square(np.subtract(g, mean, out=scratch), out=scratch)
        variance += np.square(np.subtract(b, mean, out=scratch), out=scratch)
        variance /= np.float32(3.0)
        saturation = np.sqrt(variance, out=variance)
        saturation += np.float32(SATURATION_FLOOR)
        if weights.saturation != 1:
            np.power(saturation, np.float32(weights.saturation), out=saturation)
        result *= saturation

    if weights.exposedness != 0:
        # prod_c exp(-(v_c - 0.5)^2 / 2 sigma^2), raised to the exponent, in one exp.
        half = np.float32(0.5)
        distance = np.square(np.subtract(r, half, out=r), out=r)
        distance += np.square(np.subtract(g, half, out=scratch), out=scratch)
        distance += np.square(np.subtract(b, half, out=scratch), out=scratch)
        distance *= np.float32(-weights.exposedness / (2.0 * weights.sigma**2))
        result *= cv2.exp(distance, dst=distance)  # OpenCV's exp: several times numpy's speed


def normalise_weights(frame_weights: np.ndarray) -> None:
    """Make the (N, H, W) weights sum to 1 over the frames at every pixel, in place."""

    def block(rows: slice) -> None:
        weights = frame_weights[:, rows]
        weights += np.float32(EPSILON)
        weights /= weights.sum(axis=0, dtype=np.float32)

    in_row_blocks(block, frame_weights.shape[1], frame_weights.shape[0] * frame_weights.shape[2])


def _add_weighted_detail(
    level: np.ndarray, upsampled: np.ndarray, weight: np.ndarray, blended: np.ndarray | None
) -> None:
    """One Laplacian level of one frame, weighted, added into the blended pyramid.

    ``level``, ``upsampled``: (h, w, 3) float32, a Gaussian level and its
    reduced-then-expanded copy; ``weight``: (h, w). ``upsampled`` is
    overwritten with the weighted detail ``(level - upsampled) * weight``,
    which is also added to ``blended`` (h, w, 3) unless that is None.
    """

    def block(rows: slice) -> None:
        detail = np.subtract(level[rows], upsampled[rows], out=upsampled[rows])
        detail *= weight[rows, :, None]
        if blended is not None:
            blended[rows] += detail

    in_row_blocks(block, level.shape[0], level.shape[1])


def blend_pyramid(
    frames: np.ndarray, frame_weights: np.ndarray, depth: int, *, release_frames: bool = False
) -> np.ndarray:
    """Blend N display frames in a Laplacian pyramid with Gaussian pyramids of their weights.

    ``frames``: (N, H, W, 3) float32 display values, read only unless
    ``release_frames``: then each frame's memory is handed back once its pyramid is
    blended (:func:`uhdfuse.memory.release`; it reads as zeros afterwards).
    ``frame_weights``: (N, H, W) float32 summing to 1 over the frames (see
    :func:`normalise_weights`); it is consumed (overwritten, released). ``depth``:
    pyramid levels counting the full-resolution one (at most :func:`max_levels`).
    Returns (H, W, 3) float32 display values clipped to [0, 1].
    """
    count = frame_weights.shape[0]
    blended: list[np.ndarray | None] = [None] * depth
    # The finest detail of every frame after the first, then the collapsed
    # image, go into this one full-size buffer: fresh 4K arrays cost as much in
    # page faults as the pyramid filters take to fill them.
    spare: np.ndarray | None = None
    for i in range(count):
        level = frames[i]
        weight = frame_weights[i]
        for k in range(depth):
            if k < depth - 1:
                smaller = cv2.pyrDown(level)
                size = (level.shape[1], level.shape[0])
                detail = cv2.pyrUp(smaller, dst=spare if k == 0 else None, dstsize=size)
                _add_weighted_detail(level, detail, weight, blended[k])
                level, weight = smaller, cv2.pyrDown(weight)
                if k == 0:
                    # the full-resolution frame and weight are done with: only the
                    # blended pyramid and the coarser levels are still needed
                    release(frame_weights[i])
                    if release_frames:
                        release(frames[i])
                    if blended[0] is not None:
                        spare = detail
            else:
                detail = level * weight[..., None]  # the coarsest level keeps the Gaussian itself
                if blended[k] is not None:
                    blended[k] += detail  # type: ignore[operator]
            if blended[k] is None:
                blended[k] = detail
    del frame_weights

    fused = blended[depth - 1]
    for k in range(depth - 2, -1, -1):
        finer = blended[k]
        size = (finer.shape[1], finer.shape[0])  # type: ignore[union-attr]
        fused = cv2.pyrUp(fused, dst=spare if k == 0 else None, dstsize=size)
        fused += finer
        blended[k + 1] = None
    assert fused is not None
    return np.clip(fused, 0.0, 1.0, out=fused)


__all__ = [
    "CONTRAST_FLOOR",
    "EPSILON",
    "SATURATION_FLOOR",
    "blend_pyramid",
    "encode_frame",
    "max_levels",
    "mertens_weights",
    "normalise_weights",
    "to_display",
    "working_frames",
]
