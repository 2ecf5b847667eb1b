"""The sRGB transfer curve and Rec. 709 luma: the one place every module takes them from.

All functions are vectorised over numpy arrays of any shape and return float32.
"""

from __future__ import annotations

import numpy as np

# IEC 61966-2-1 constants. The encoding threshold is the linear value where the
# two pieces of the curve meet; the decoding threshold is its encoded value.
_LINEAR_THRESHOLD = 0.0031308
_ENCODED_THRESHOLD = 0.04045
_SLOPE = 12.92
_GAMMA = 2.4
_OFFSET = 0.055

REC709_LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Encode linear light with the exact sRGB piecewise curve.

    ``linear``: any shape, nominally in [0, 1]. Values above 1 follow the power
    piece (no clipping); negative values follow the linear piece.
    Returns float32 of the same shape.
    """
    x = np.asarray(linear, dtype=np.float32)
    power = (1.0 + _OFFSET) * np.power(np.maximum(x, _LINEAR_THRESHOLD), 1.0 / _GAMMA) - _OFFSET
    return np.where(x <= _LINEAR_THRESHOLD, _SLOPE * x, power).astype(np.float32, copy=False)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """Decode sRGB-encoded values to linear light (inverse of :func:`srgb_encode`).

    ``encoded``: any shape, nominally in [0, 1]. Returns float32 of the same shape.
    """
    e = np.asarray(encoded, dtype=np.float32)
    power = np.power((np.maximum(e, _ENCODED_THRESHOLD) + _OFFSET) / (1.0 + _OFFSET), _GAMMA)
    return np.where(e <= _ENCODED_THRESHOLD, e / _SLOPE, power).astype(np.float32, copy=False)


def luma(linear: np.ndarray) -> np.ndarray:
    """Rec. 709 luminance of a linear RGB image: (H, W, 3) -> (H, W) float32."""
    rgb = np.asarray(linear, dtype=np.float32)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"luma needs an (..., 3) RGB array, got shape {rgb.shape}")
    return (rgb @ REC709_LUMA).astype(np.float32, copy=False)
