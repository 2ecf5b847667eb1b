"""Exposure fusion after Mertens, Kautz & Van Reeth (2007).

Each frame gets a per-pixel weight (local contrast x colour saturation x
closeness to mid-grey); the frames are blended in a Laplacian pyramid with a
Gaussian pyramid of the weights, so that the weight maps' sharp edges do not
show as seams. Everything runs in float32 on display-encoded (sRGB) values:
the measures, "well exposed = close to 0.5" above all, are defined on what
a viewer sees, not on linear light.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from ..colour import srgb_encode
from ..config import MertensWeights
from ..errors import InconsistentBracket, UsageError

# Added to every frame's weight before normalising (as OpenCV does): where all
# weights are zero this turns the blend into a plain average instead of 0/0.
_EPSILON = 1e-12
# Floors of the contrast and saturation measures. Without them a flat region
# (contrast 0 in every frame: a clipped sky is exactly flat) or a grey scene
# (saturation 0) gets all-zero weights, and the fusion falls back to averaging
# the clipped frame with the good one. With them, well-exposedness still
# decides there. They are well below what texture or 8-bit noise produces
# (a Laplacian of ~1/255), so on ordinary photographs they change little.
_CONTRAST_FLOOR = 1e-3
_SATURATION_FLOOR = 1e-3


def _to_display(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB display values in [0, 1], float32, same shape.

    Out-of-range values and NaN are clipped/zeroed first: a display image
    cannot show them, and the Mertens measures assume [0, 1].
    """
    x = np.nan_to_num(np.asarray(linear, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return srgb_encode(np.clip(x, 0.0, 1.0, out=x))


def _check_stack(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
        raise InconsistentBracket(f"expected frames shaped (N, H, W, 3), got {images.shape}")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise InconsistentBracket(f"frames are empty: {images.shape}")
    return images


def max_levels(height: int, width: int) -> int:
    """The deepest pyramid for an image: down to about one pixel on the short side.

    Counts the full-resolution level, so a 1x1 image has 1 level. Matches the
    depth OpenCV's MergeMertens uses (floor(log2(min side)) reductions).
    """
    return 1 + int(math.floor(math.log2(max(1, min(height, width)))))


def mertens_weights(encoded: np.ndarray, weights: MertensWeights = MertensWeights()) -> np.ndarray:
    """Unnormalised Mertens weight of one display-encoded frame.

    ``encoded``: (H, W, 3) float32 sRGB values in [0, 1]. Returns (H, W) float32 >= 0.
    """
    # Rec.601 luma of the encoded values, as OpenCV's MergeMertens uses.
    grey = cv2.cvtColor(np.ascontiguousarray(encoded, dtype=np.float32), cv2.COLOR_RGB2GRAY)
    result = np.ones(grey.shape, dtype=np.float32)

    if weights.contrast != 0:
        contrast = np.abs(cv2.Laplacian(grey, cv2.CV_32F))  # 3x3 kernel, reflected borders
        contrast += np.float32(_CONTRAST_FLOOR)
        if weights.contrast != 1:
            np.power(contrast, np.float32(weights.contrast), out=contrast)
        result *= contrast

    r, g, b = encoded[..., 0], encoded[..., 1], encoded[..., 2]
    if weights.saturation != 0:
        mean = (r + g + b) / np.float32(3.0)
        variance = np.square(r - mean)
        variance += np.square(g - mean)
        variance += np.square(b - mean)
        variance /= np.float32(3.0)
        saturation = np.sqrt(variance, out=variance)
        saturation += np.float32(_SATURATION_FLOOR)
        if weights.saturation != 1:
            np.power(saturation, np.float32(weights.saturation), out=saturation)
        result *= saturation

    if weights.exposedness != 0:
        # prod_c exp(-(v_c - 0.5)^2 / 2 sigma^2), raised to the exponent, in one exp.
        half = np.float32(0.5)
        distance = np.square(r - half)
        distance += np.square(g - half)
        distance += np.square(b - half)
        distance *= np.float32(-weights.exposedness / (2.0 * weights.sigma**2))
        result *= np.exp(distance, out=distance)

    return result


def fuse_mertens(
    images: np.ndarray, weights: MertensWeights = MertensWeights(), *, levels: int | None = None
) -> np.ndarray:
    """Fuse an aligned bracket into one display image (Mertens exposure fusion).

    ``images``: (N, H, W, 3) float32 linear light, 1.0 = clipping level, any
    frame order. ``levels``: pyramid levels counting the full-resolution one
    (None or too many = down to about one pixel; 1 = per-pixel blend without a
    pyramid). Returns (H, W, 3) float32 sRGB-encoded values in [0, 1].

    Memory: the N weight maps, one frame's current pyramid level and the
    blended pyramid (~1.33 x one frame) are held; frames are encoded again
    for the blending pass rather than all kept encoded.
    """
    images = _check_stack(images)
    if weights.sigma <= 0:
        raise UsageError(f"Mertens sigma must be positive, got {weights.sigma}")
    count, height, width = images.shape[:3]
    depth = max_levels(height, width)
    if levels is not None:
        if levels < 1:
            raise UsageError(f"Mertens pyramid levels must be at least 1, got {levels}")
        depth = min(depth, levels)

    frame_weights = np.empty((count, height, width), dtype=np.float32)
    for i in range(count):
        frame_weights[i] = mertens_weights(_to_display(images[i]), weights)
    frame_weights += np.float32(_EPSILON)
    frame_weights /= frame_weights.sum(axis=0, dtype=np.float32)

    blended: list[np.ndarray | None] = [None] * depth
    for i in range(count):
        level = _to_display(images[i])
        weight = frame_weights[i]
        for k in range(depth):
            if k == depth - 1:
                detail = level * weight[..., None]  # the coarsest level keeps the Gaussian itself
            else:
                smaller = cv2.pyrDown(level)
                detail = cv2.pyrUp(smaller, dstsize=(level.shape[1], level.shape[0]))
                np.subtract(level, detail, out=detail)
                detail *= weight[..., None]
                level, weight = smaller, cv2.pyrDown(weight)
            if blended[k] is None:
                blended[k] = detail
            else:
                blended[k] += detail  # type: ignore[operator]

    fused = blended[depth - 1]
    for k in range(depth - 2, -1, -1):
        finer = blended[k]
        fused = cv2.pyrUp(fused, dstsize=(finer.shape[1], finer.shape[0]))  # type: ignore[union-attr]
        fused += finer
        blended[k + 1] = None
    assert fused is not None
    return np.clip(fused, 0.0, 1.0).astype(np.float32, copy=False)
