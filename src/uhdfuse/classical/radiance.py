"""Weighted linear merge of a bracket into one radiance map.

Every frame, divided by its relative exposure 2**ev, estimates the same
radiance (in the reference frame's units). The estimates are averaged with
weights that say how far each frame's pixel can be trusted: not at all when
clipped or lost in black, most in the mid-tones (display sources) or in
proportion to exposure (RAW, where shot noise makes the longest unclipped
exposure the cleanest).

The clipping test looks at a pixel's brightest channel, so all three channels
of a pixel come from the same frames; per-channel tests would take a clipped
highlight's red from one frame and its green from another, and tint it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InconsistentBracket
from ..colour import srgb_encode
from .mertens import check_stack

# Linear value (1.0 = clipping) from which a pixel counts as clipped: a little
# below 1.0 because demosaicing, compression and resampling smear the clip.
CLIP_LEVEL = 0.98
# Display-encoded value under which a display-referred pixel counts as black
# (about linear 0.0015: quantisation and noise, no usable signal).
BLACK_LEVEL = 0.02
# For RAW frames the weight fades out linearly over the last stretch below
# CLIP_LEVEL, so that the hand-over to the next darker frame has no seam.
_RAW_FADE_START = 0.85


def _display_weight(brightest: np.ndarray) -> np.ndarray:
    """Hat weight of display-referred pixels from their brightest channel (linear), (H, W)."""
    encoded = srgb_encode(brightest)  # brightest is >= 0 here; above 1 it is clipped anyway
    weight = 1.0 - np.abs(2.0 * encoded - 1.0)
    weight[(brightest >= CLIP_LEVEL) | (encoded <= BLACK_LEVEL)] = 0.0
    return weight.astype(np.float32, copy=False)


def _raw_weight(brightest: np.ndarray, exposure: float) -> np.ndarray:
    """Exposure-proportional weight of sensor-linear pixels, zero when clipped, (H, W)."""
    fade = (CLIP_LEVEL - brightest) / np.float32(CLIP_LEVEL - _RAW_FADE_START)
    return (np.clip(fade, 0.0, 1.0) * np.float32(exposure)).astype(np.float32, copy=False)


def merge_radiance(
    images: np.ndarray, ev: Sequence[float], *, reference: int, raw: bool = False
) -> np.ndarray:
    """Merge an aligned bracket into linear radiance, in the reference frame's units.

    ``images``: (N, H, W, 3) float32 linear, 1.0 = each frame's clipping level.
    ``ev``: log2 exposure of each frame relative to the reference (re-based on
    ``ev[reference]`` should it not be 0). ``raw``: the frames are sensor data
    (noise-aware weights) rather than decoded display files (hat weights).

    Pixels with no trustworthy frame take the brightest frame in which they
    are not clipped (black everywhere: the brightest frame), or the darkest
    frame where they are clipped in all of them. Returns (H, W, 3) float32 >= 0.
    """
    images = check_stack(images)
    count = images.shape[0]
    if len(ev) != count:
        raise InconsistentBracket(f"{count} frames but {len(ev)} exposure values")
    if not 0 <= reference < count:
        raise InconsistentBracket(f"reference index {reference} is outside the {count} frames")
    relative = np.asarray(ev, dtype=np.float64) - float(ev[reference])
    if not np.all(np.isfinite(relative)):
        raise InconsistentBracket(f"exposure values must be finite, got {list(ev)}")

    height, width = images.shape[1:3]
    total = np.zeros((height, width, 3), dtype=np.float32)
    weight_sum = np.zeros((height, width), dtype=np.float32)
    fallback = np.zeros((height, width, 3), dtype=np.float32)
    fallback_set = np.zeros((height, width), dtype=bool)

    # Darkest to brightest, so the fallback ends up as the brightest unclipped frame.
    for i in np.argsort(relative, kind="stable"):
        exposure = float(2.0 ** relative[i])
        frame = np.nan_to_num(np.asarray(images[i], dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        np.maximum(frame, 0.0, out=frame)
        brightest = frame.max(axis=2)
        weight = _raw_weight(brightest, exposure) if raw else _display_weight(brightest)

        estimate = frame / np.float32(exposure)
        total += estimate * weight[..., None]
        weight_sum += weight

        usable = (brightest < CLIP_LEVEL) | ~fallback_set  # the darkest frame is the last resort
        np.copyto(fallback, estimate, where=usable[..., None])
        fallback_set |= usable

    covered = (weight_sum > 0)[..., None]
    return np.divide(total, weight_sum[..., None], out=fallback, where=covered)
