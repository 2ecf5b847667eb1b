"""What registration compares: exposure-normalised luma, its trust mask, and its levels.

A frame becomes exposure-normalised luma (:func:`normalised_luma`), from which
:func:`prepare` builds a :class:`Pyramid`: a proxy for the coarse search and a
finer level for the last refinement. Matrices of each level relate to full
resolution through :attr:`Level.S`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import cv2
import numpy as np

from uhdfuse.colour import REC709_LUMA

CLIP_LEVEL = 0.97  # linear value at or above which a channel may be clipped
NOISE_FLOOR = 0.002  # linear luma below which a pixel is mostly noise
GAMMA = 1.0 / 2.2  # encoding of normalised luma: shadows and highlights weigh alike
REFINE_SIZE = 2048  # long side, in pixels, of the finest level ECC runs on
# Largest float32 below CLIP_LEVEL and smallest above NOISE_FLOOR: the inclusive
# bounds that give normalised_luma's strict comparisons.
_BELOW_CLIP = float(np.nextafter(np.float32(CLIP_LEVEL), np.float32(-np.inf)))
_ABOVE_NOISE = float(np.nextafter(np.float32(NOISE_FLOOR), np.float32(np.inf)))

T = TypeVar("T")


def normalised_luma(image: np.ndarray, ev: float) -> tuple[np.ndarray, np.ndarray]:
    """Exposure-normalised, gamma-encoded luma of a linear frame and its trust mask.

    Args:
        image: (H, W, 3) float32 linear RGB, 1.0 = clipping level of the frame.
        ev: exposure of the frame relative to the reference (log2 units).

    Returns:
        ``(luma, mask)``: (H, W) float32 ``clip(Y / 2**ev, 0, 1) ** (1/2.2)`` where Y
        is Rec.709 luma, so the same scene light gives the same value in every
        frame; values are clipped at 1 (the reference's clipping level, beyond
        which the reference has nothing to compare with). ``mask`` is (H, W) uint8,
        255 where the pixel is trustworthy: no channel at or above 0.97 (clipped)
        and luma above 0.002 (noise floor), both in the frame's own linear scale.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    img = np.asarray(image, dtype=np.float32)
    # cv2.transform and per-channel maxima: several times faster than numpy reductions
    # over the last axis on full-resolution frames.
    y = cv2.transform(img, np.array([REC709_LUMA], dtype=np.float32))
    if y.ndim == 3:  # cv2 keeps a trailing length-1 axis on some shapes
        y = y[..., 0]
    # The mask straight as uint8 0/255 from cv2.inRange (inclusive bounds on
    # float32): about twice as fast as numpy comparisons on strided channels.
    # The bounds are the float32 neighbours of the limits, so "<= just below
    # CLIP_LEVEL" is exactly "< CLIP_LEVEL"; NaN fails every bound.
    unclipped = cv2.inRange(img, (-np.inf,) * 3, (_BELOW_CLIP,) * 3)
    above_noise = cv2.inRange(y, _ABOVE_NOISE, np.inf)
    mask = cv2.bitwise_and(unclipped, above_noise)
    y *= np.float32(2.0 ** (-ev))
    np.clip(y, 0.0, 1.0, out=y)
    cv2.pow(y, GAMMA, dst=y)
    return y, mask


def as_mask(mask: np.ndarray) -> np.ndarray:
    """Any mask (nonzero = trusted) as uint8 0/255, the form OpenCV's masked calls take."""
    return np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)


@dataclass
class Level:
    """One resolution of a frame's normalised luma; coordinates relate by ``S``."""

    luma: np.ndarray  # (h, w) float32
    mask: np.ndarray  # (h, w) uint8, 255 = trusted
    S: np.ndarray  # (3, 3) float64: full-resolution pixel -> level pixel (pixel centres)

    def from_full(self, M: np.ndarray) -> np.ndarray:
        """A full-resolution (3, 3) reference -> moving matrix, in this level's pixels."""
        return self.S @ M @ np.linalg.inv(self.S)

    def to_full(self, M: np.ndarray) -> np.ndarray:
        """A (3, 3) matrix in this level's pixels, at full resolution (normalised, M[2, 2] = 1)."""
        out = np.linalg.inv(self.S) @ M @ self.S
        return out / out[2, 2]


@dataclass
class Pyramid:
    """A frame ready for registration: its proxy, its refinement level, and a memo in
    which matchers keep what they computed on it (an anchor frame meets several others)."""

    full_size: tuple[int, int]  # (W, H)
    proxy: Level
    refine: Level | None  # None when the proxy already is the finest level
    _memo: dict[str, object] = field(default_factory=dict, repr=False)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()``, run once per frame and ``key``."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[return-value]


def level(luma: np.ndarray, mask: np.ndarray, long_side: int) -> Level:
    """``luma`` and ``mask`` (H, W) downscaled so the long side is at most ``long_side``."""
    h, w = luma.shape
    s = min(1.0, long_side / max(h, w))
    if s >= 1.0:
        return Level(luma, mask, np.eye(3))
    lw, lh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(luma, (lw, lh), interpolation=cv2.INTER_AREA)
    # A proxy pixel is trusted only if (nearly) all the pixels it averages are.
    small_mask = cv2.resize(mask, (lw, lh), interpolation=cv2.INTER_AREA)
    small_mask = np.where(small_mask >= 250, 255, 0).astype(np.uint8)
    sx, sy = lw / w, lh / h
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return Level(small, small_mask, S)


def prepare(luma: np.ndarray, mask: np.ndarray, proxy_size: int) -> Pyramid:
    """The levels of one frame's normalised luma (H, W) and uint8 mask (H, W)."""
    h, w = luma.shape
    proxy = level(luma, mask, proxy_size)
    refine = None
    if max(h, w) > proxy_size:
        refine = level(luma, mask, max(proxy_size, REFINE_SIZE))
    return Pyramid((w, h), proxy, refine)


def prepare_frame(image: np.ndarray, ev: float, proxy_size: int) -> Pyramid:
    """The levels of a linear (H, W, 3) frame at relative exposure ``ev``."""
    return prepare(*normalised_luma(image, ev), proxy_size)
