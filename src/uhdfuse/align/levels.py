"""What registration compares: rank luma, its trust mask, and its levels.

A frame becomes *rank luma* (:func:`rank_luma`): each pixel's luma replaced by the
fraction of the frame's pixels that are darker. Exposure, gain and any monotone
tone curve (sRGB, a camera's S-curve, a JPEG engine's) change a pixel's value but
not its rank, so the same scene point has the same rank in every frame of a
bracket without trusting the EVs or a response curve. What breaks the order is
where the sensor saturates or records nothing: the mask leaves clipped pixels and
the black floor out. :func:`prepare_frame` builds a :class:`Pyramid` from it: a
coarse level for the global search and a proxy for the sub-pixel fit. Matrices of
each level relate to full resolution through :attr:`Level.S`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from uhdfuse.colour import REC709_LUMA

CLIP_LEVEL = 0.97  # linear value at or above which a channel may be clipped
# Linear luma at or below which a pixel holds no scene structure: about 1.5 codes of
# an 8-bit sRGB file (code 1 is 0.0003). Dark 8-bit frames of wide brackets hold
# most of their structure in codes 2-10, which registration needs.
NOISE_FLOOR = 0.0005
RANK_BINS = 4096  # histogram bins (of square-root luma) the ranks are read from
COARSE_SIZE = 256  # long side, in pixels, of the level the global search runs on
# About the long side, in pixels, of the finest level a fit runs on: the frame reduced
# by the whole factor that brings its long side nearest this (a 4K frame by 2, a 24 MP
# one by 3). A whole factor is a plain block average, several times faster to make
# from the full-resolution frame than an arbitrary size.
FINE_SIZE = 2048
FINE_FROM = 1.5  # a fine level is made when the frame is this many times the proxy or more
# Largest float32 below CLIP_LEVEL and smallest above NOISE_FLOOR: the inclusive
# bounds that give rank_luma's strict comparisons.
_BELOW_CLIP = float(np.nextafter(np.float32(CLIP_LEVEL), np.float32(-np.inf)))
_ABOVE_NOISE = float(np.nextafter(np.float32(NOISE_FLOOR), np.float32(np.inf)))
# Square-root luma up to which an untrusted pixel is taken as black, not clipped:
# half way, since untrusted pixels are either near 0 or near 1.
_DARK_TONE = 0.5


def frame_luma(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Square-root luma of a linear frame, in its own scale, and its trust mask.

    Args:
        image: (H, W, 3) float32 linear RGB, 1.0 = clipping level of the frame.

    Returns:
        ``(tone, mask)``: (H, W) float32 ``sqrt(clip(Y, 0, 1))`` of Rec.709 luma Y
        (square root: shadows and highlights weigh alike); and (H, W) uint8, 255
        where the pixel is trustworthy: no channel at or above CLIP_LEVEL and luma
        above NOISE_FLOOR.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    img = np.asarray(image, dtype=np.float32)
    # cv2.transform and cv2.inRange: several times faster than numpy reductions over
    # the last axis on full-resolution frames.
    y = cv2.transform(img, np.array([REC709_LUMA], dtype=np.float32))
    if y.ndim == 3:  # cv2 keeps a trailing length-1 axis on some shapes
        y = y[..., 0]
    # The bounds are the float32 neighbours of the limits, so "<= just below
    # CLIP_LEVEL" is exactly "< CLIP_LEVEL"; NaN fails every bound.
    unclipped = cv2.inRange(img, (-np.inf,) * 3, (_BELOW_CLIP,) * 3)
    above_noise = cv2.inRange(y, _ABOVE_NOISE, np.inf)
    np.clip(y, 0.0, 1.0, out=y)
    cv2.sqrt(y, dst=y)
    return y, cv2.bitwise_and(unclipped, above_noise)


def rank_luma(tone: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the mid-rank of each pixel of ``tone`` (H, W) in [0, 1]
    among the frame's pixels, quantised to RANK_BINS levels."""
    index = np.minimum((tone * RANK_BINS).astype(np.int32), RANK_BINS - 1)
    counts = np.bincount(index.ravel(), minlength=RANK_BINS).astype(np.float64)
    below = np.cumsum(counts) - counts  # pixels in darker bins
    mid_rank = ((below + 0.5 * counts) / max(1, index.size)).astype(np.float32)
    return mid_rank[index]


def warp_plane(plane: np.ndarray, M: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A level's (h', w') float32 ``plane`` seen on a reference level of ``shape`` (h, w)
    through level matrix M (reference pixel -> plane pixel): bilinear, edges replicated."""
    h, w = shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpPerspective(plane, M, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def warp_mask(mask: np.ndarray, M: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """:func:`warp_plane` for a uint8 mask: nearest pixel, 0 outside the frame."""
    h, w = shape[:2]
    return cv2.warpPerspective(mask, M, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)


@dataclass
class Level:
    """One resolution of a frame's rank luma; coordinates relate by ``S``."""

    luma: np.ndarray  # (h, w) float32 rank luma: what matching and fitting compare
    tone: np.ndarray  # (h, w) float32 square-root luma: what the residual is measured on
    mask: np.ndarray  # (h, w) uint8, 255 = trusted
    S: np.ndarray  # (3, 3) float64: full-resolution pixel -> level pixel (pixel centres)
    # Ranks that bound what the frame resolves: below ``floor`` lies its black floor,
    # above ``ceiling`` what it clipped (clipped pixels are ranked brightest).
    floor: float = 0.0
    ceiling: float = 1.0

    def from_full(self, M: np.ndarray) -> np.ndarray:
        """A full-resolution (3, 3) reference -> moving matrix, in this level's pixels."""
        return self.S @ M @ np.linalg.inv(self.S)

    def to_full(self, M: np.ndarray) -> np.ndarray:
        """A (3, 3) matrix in this level's pixels, at full resolution (normalised, M[2, 2] = 1)."""
        out = np.linalg.inv(self.S) @ M @ self.S
        return out / out[2, 2]


@dataclass(frozen=True)
class Pyramid:
    """A frame ready for registration: its coarse level, proxy and fine level."""

    full_size: tuple[int, int]  # (W, H)
    coarse: Level
    proxy: Level
    # Makes the fine level, for frames much larger than the proxy (None: there is none).
    make_fine: Callable[[], Level] | None = field(default=None, repr=False, compare=False)

    @cached_property
    def fine(self) -> Level | None:
        """The level of the last refinement of a frame much larger than the proxy (long
        side about FINE_SIZE: a proxy pixel of a 4K frame is four of the frame's), made
        when first asked for: a frame that did not move never needs it."""
        return None if self.make_fine is None else self.make_fine()


def level(tone: np.ndarray, mask: np.ndarray, long_side: int, S: np.ndarray | None = None) -> Level:
    """``tone`` and ``mask`` (h, w) downscaled so the long side is at most ``long_side``,
    with their rank luma; ``S`` maps full-resolution pixels to those of ``tone`` (None:
    it is full resolution)."""
    S = np.eye(3) if S is None else S
    h, w = tone.shape
    s = min(1.0, long_side / max(h, w))
    if s < 1.0:
        lw, lh = max(1, round(w * s)), max(1, round(h * s))
        tone = cv2.resize(tone, (lw, lh), interpolation=cv2.INTER_AREA)
        # A level pixel is trusted only if (nearly) all the pixels it averages are.
        mask = np.where(cv2.resize(mask, (lw, lh), interpolation=cv2.INTER_AREA) >= 250, 255, 0).astype(np.uint8)
        S = _scaling((w, h), (lw, lh)) @ S
    untrusted = mask == 0
    dark = untrusted & (tone <= _DARK_TONE)
    clipped = untrusted & ~dark
    # Clipped pixels ranked brightest whatever their luma: a pixel with one clipped
    # channel is not darker than one with none.
    luma = rank_luma(np.where(clipped, np.float32(1.0), tone))
    n = max(1, tone.size)
    return Level(luma, tone, mask, S, floor=float(dark.sum()) / n, ceiling=1.0 - float(clipped.sum()) / n)


def _scaling(size: tuple[int, int], to: tuple[int, int]) -> np.ndarray:
    """(3, 3) pixel-centre mapping from an image of ``size`` (w, h) to one of ``to``."""
    sx, sy = to[0] / size[0], to[1] / size[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def prepare_frame(image: np.ndarray, proxy_size: int) -> Pyramid:
    """The levels of a linear (H, W, 3) frame.

    The frame is downscaled to the finest level before its luma is computed, the
    mask then eroded by a pixel (an average of clipped and unclipped pixels can fall
    below CLIP_LEVEL); coarser levels are made from that one.
    """
    h, w = image.shape[:2]
    if max(h, w) >= FINE_FROM * proxy_size:
        # The full-resolution pixels are read once: the proxy is made from the fine
        # level's luma and mask, its ranks only when a fit needs them.
        factor = max(1, round(max(h, w) / FINE_SIZE))
        size = (max(1, round(w / factor)), max(1, round(h / factor)))
        tone, mask, S = _reduced(image, size)
        proxy = level(tone, mask, proxy_size, S)
        coarse = level(proxy.tone, proxy.mask, COARSE_SIZE, proxy.S)
        return Pyramid((w, h), coarse, proxy, lambda: level(tone, mask, max(size), S))
    s = min(1.0, proxy_size / max(h, w))
    size = (max(1, round(w * s)), max(1, round(h * s)))
    tone, mask, S = _reduced(image, size)
    proxy = level(tone, mask, max(size), S)
    return Pyramid((w, h), level(proxy.tone, proxy.mask, COARSE_SIZE, proxy.S), proxy)


def _reduced(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A linear (H, W, 3) frame area-averaged down to ``size`` (w, h): its square-root
    luma and trust mask (:func:`frame_luma`, the mask eroded by a pixel where the frame
    was reduced) and the (3, 3) matrix from full-resolution pixels to its pixels."""
    h, w = image.shape[:2]
    if size == (w, h):
        return (*frame_luma(image), np.eye(3))
    # Halving exactly, bilinear sampling at the pixel-centre mapping reads the mean of
    # each 2x2 block, as the area average does, several times faster.
    halving = (2 * size[0], 2 * size[1]) == (w, h)
    how = cv2.INTER_LINEAR if halving else cv2.INTER_AREA
    tone, mask = frame_luma(cv2.resize(np.asarray(image, np.float32), size, interpolation=how))
    return tone, cv2.erode(mask, np.ones((3, 3), np.uint8)), _scaling((w, h), size)
