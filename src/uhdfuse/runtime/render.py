"""IPL's render stage at inference: token maps + the frames -> the fused display image.

The same computation as :meth:`uhdfuse.nn.ipl.IPL.render` (which training
differentiates through), run with OpenCV and numpy on the CPU through the blend of
:mod:`uhdfuse.pyramid` that the classical engine uses: lift the maps to pixels, replace what each frame's
keep gate rejects by the reference at that frame's exposure (in display values), weight by Mertens's
measures times exp(logit), blend in a Laplacian pyramid. Each frame is substituted
and encoded once, where it lies (:func:`~uhdfuse.pyramid.working_frames`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from uhdfuse.pyramid import (
    blend_pyramid,
    encode_frame,
    max_levels,
    mertens_weights,
    normalise_weights,
    to_display,
    working_frames,
)
from uhdfuse.threads import in_row_blocks


def lift_channel(maps: np.ndarray, channel: int, patch: int, height: int, width: int) -> np.ndarray:
    """One channel of (Ht, Wt, C) token maps at pixel resolution: (height, width) float32, bilinear."""
    Ht, Wt = maps.shape[:2]
    plane = np.ascontiguousarray(maps[..., channel], dtype=np.float32)
    up = cv2.resize(plane, (Wt * patch, Ht * patch), interpolation=cv2.INTER_LINEAR)
    return up[:height, :width]


def render_maps(
    images: np.ndarray,
    maps: np.ndarray,
    ev: Sequence[float],
    reference: int,
    patch: int,
    *,
    overwrite: bool = False,
) -> np.ndarray:
    """Fuse aligned frames with IPL's maps.

    images: (N, H, W, 3) float32 linear (1 = clipping); maps: (Ht, Wt, 2N) float32
    (logits, then keep gates) with Ht = ceil(H / patch), Wt = ceil(W / patch);
    ev: N EVs relative to the reference. ``overwrite``: use ``images`` (float32,
    C-contiguous) as the render's working memory instead of a copy; their values
    afterwards are unspecified (memory is handed back as the blend goes).
    Returns (H, W, 3) float32 display sRGB in [0, 1].
    """
    count, height, width = images.shape[:3]
    frames = working_frames(images, overwrite)
    ref = frames[reference]

    def substitute(i: int) -> None:
        """Frame i's display values, where its gate rejects it those of the exposure-matched reference."""
        keep = lift_channel(maps, count + i, patch, height, width)
        gain = np.float32(2.0 ** float(ev[i]))
        frame = frames[i]

        def block(rows: slice) -> None:
            stand_in = to_display(ref[rows] * gain)  # clipped like the frame's own exposure
            shown = to_display(frame[rows])
            shown -= stand_in
            shown *= keep[rows, :, None]
            shown += stand_in
            frame[rows] = shown

        in_row_blocks(block, height, width)

    for i in range(count):
        if i != reference:
            substitute(i)
    encode_frame(ref, ref)  # last: every other frame's substitute reads it linear
    weights = np.empty((count, height, width), np.float32)
    for i in range(count):
        mertens_weights(frames[i], out=weights[i])
        weights[i] *= cv2.exp(lift_channel(maps, i, patch, height, width))
    normalise_weights(weights)
    return blend_pyramid(frames, weights, max_levels(height, width), release_frames=True)


__all__ = ["lift_channel", "render_maps"]
