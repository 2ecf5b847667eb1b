"""Exposure fusion after Mertens, Kautz & Van Reeth (2007).

Each frame gets a per-pixel weight (local contrast x colour saturation x
closeness to mid-grey); the frames are blended in a Laplacian pyramid with a
Gaussian pyramid of the weights, so that the weight maps' sharp edges do not
show as seams. The measures and the blend live in :mod:`uhdfuse.pyramid`, which
IPL's render shares.
"""

from __future__ import annotations

import numpy as np

from uhdfuse.config import MertensWeights
from uhdfuse.errors import InconsistentBracket, UsageError, param
from uhdfuse.pyramid import (
    blend_pyramid,
    encode_frame,
    max_levels,
    mertens_weights,
    normalise_weights,
    working_frames,
)


def check_stack(images: np.ndarray) -> np.ndarray:
    """``images`` as an array; InconsistentBracket unless shaped (N, H, W, 3) with non-empty frames."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 1:
        raise InconsistentBracket(f"expected frames shaped (N, H, W, 3), got {images.shape}")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise InconsistentBracket(f"frames are empty: {images.shape}")
    return images


def fuse_mertens(
    images: np.ndarray,
    weights: MertensWeights = MertensWeights(),
    *,
    levels: int | None = None,
    overwrite: bool = False,
) -> np.ndarray:
    """Fuse an aligned bracket into one display image (Mertens exposure fusion).

    ``images``: (N, H, W, 3) float32 linear light, 1.0 = clipping level, any
    frame order. ``levels``: pyramid levels counting the full-resolution one
    (None or too many = down to about one pixel; 1 = per-pixel blend without a
    pyramid). Returns (H, W, 3) float32 sRGB-encoded values in [0, 1].
    ``overwrite``: use float32 C-contiguous ``images`` as working memory instead of a
    copy; their values afterwards are unspecified (memory is handed back as the
    blend goes).

    Memory beyond the frames: the N weight maps, one frame's current pyramid level
    and the blended pyramid (~1.33 x one frame). Per-pixel work runs in row blocks
    on :func:`~uhdfuse.threads.worker_threads` threads; the result does not depend
    on their number.
    """
    images = check_stack(images)
    if weights.sigma <= 0:
        raise UsageError(f"{param('mertens.sigma')} must be positive, got {weights.sigma}")
    count, height, width = images.shape[:3]
    depth = max_levels(height, width)
    if levels is not None:
        if levels < 1:
            raise UsageError(f"{param('levels')} (pyramid levels) must be at least 1, got {levels}")
        depth = min(depth, levels)

    display = working_frames(images, overwrite)
    frame_weights = np.empty((count, height, width), dtype=np.float32)
    for i in range(count):
        mertens_weights(encode_frame(display[i], display[i]), weights, out=frame_weights[i])
    normalise_weights(frame_weights)
    return blend_pyramid(display, frame_weights, depth, release_frames=True)
