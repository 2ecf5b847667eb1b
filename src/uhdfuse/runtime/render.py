"""IPL's render stage at inference: token maps + the frames -> the fused display image.

The same computation as :meth:`uhdfuse.nn.ipl.IPL.render` (which training
differentiates through), run with OpenCV and numpy on the CPU through the blend of
:mod:`uhdfuse.pyramid` that the classical engine uses: lift the maps to pixels, replace what each frame's
keep gate rejects by the reference at that frame's exposure (in display values), weight by Mertens's
measures times exp(logit), blend in a Laplacian pyramid. Only one substituted frame
exists at a time; it is rebuilt for the blending pass rather than kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from uhdfuse.pyramid import (
    blend_pyramid,
    encode_frame,
    in_row_blocks,
    max_levels,
    mertens_weights,
    normalise_weights,
    to_display,
)


def lift_channel(maps: np.ndarray, channel: int, patch: int, height: int, width: int) -> np.ndarray:
    """One channel of (Ht, Wt, C) token maps at pixel resolution: (height, width) float32, bilinear."""
    Ht, Wt = maps.shape[:2]
    plane = np.ascontiguousarray(maps[..., channel], dtype=np.float32)
    up = cv2.resize(plane, (Wt * patch, Ht * patch), interpolation=cv2.INTER_LINEAR)
    return up[:height, :width]


def render_maps(
    images: np.ndarray, maps: np.ndarray, ev: Sequence[float], reference: int, patch: int
) -> np.ndarray:
    """Fuse aligned frames with IPL's maps.

    images: (N, H, W, 3) float32 linear (1 = clipping); maps: (Ht, Wt, 2N) float32
    (logits, then keep gates) with Ht = ceil(H / patch), Wt = ceil(W / patch);
    ev: N EVs relative to the reference. Returns (H, W, 3) float32 display sRGB in [0, 1].
    """
    count, height, width = images.shape[:3]
    ref = images[reference]

    def substituted(i: int, out: np.ndarray) -> np.ndarray:
        """Frame i's display values, where its gate rejects it those of the exposure-matched reference."""
        shown = encode_frame(images[i], out)
        if i == reference:
            return shown
        keep = lift_channel(maps, count + i, patch, height, width)
        gain = np.float32(2.0 ** float(ev[i]))

        def block(rows: slice) -> None:
            stand_in = to_display(ref[rows] * gain)  # clipped like the frame's own exposure
            mixed = shown[rows]
            mixed -= stand_in
            mixed *= keep[rows, :, None]
            mixed += stand_in

        in_row_blocks(block, height, width)
        return shown

    display = np.empty((height, width, 3), np.float32)
    weights = np.empty((count, height, width), np.float32)
    for i in range(count):
        mertens_weights(substituted(i, display), out=weights[i])
        weights[i] *= np.exp(lift_channel(maps, i, patch, height, width))
    normalise_weights(weights)
    del display
    return blend_pyramid(substituted, weights, max_levels(height, width))


__all__ = ["lift_channel", "render_maps"]
