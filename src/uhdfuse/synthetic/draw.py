"""Anti-aliased drawing on a resolution-independent grid: coverage masks, value noise, a canvas.

Shapes are functions of normalised coordinates (:class:`Grid`: ``y`` 0..1 from top
to bottom, ``x`` 0..``ASPECT`` from left to right), so every pixel grid samples the
same picture. Coverage is anti-aliased over one pixel (:func:`ramp`); noise octaves
and patterns finer than a pixel fade out (:func:`value_noise`, :func:`detail_fade`).
Each scene element draws from its own generator (:func:`element_rng`), so elements
never shift each other's random draws.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

ASPECT = 1.5  # width / height of the canonical scene (a 3:2 photograph)

# Illumination, multiplied with reflectance: direct sun, open shade (sky only).
SUN = 3.0
SHADE = 0.35


@dataclass(frozen=True)
class Grid:
    """Normalised pixel-centre coordinates of one render."""

    x: np.ndarray  # (1, W) float32, 0..ASPECT
    y: np.ndarray  # (H, 1) float32, 0..1
    px: float  # the larger pixel pitch, in normalised units (anti-aliasing width)
    height: int
    width: int


def grid(height: int, width: int) -> Grid:
    """The pixel-centre grid of a ``height`` x ``width`` render."""
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width * ASPECT)[None, :]
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    return Grid(x=x, y=y, px=max(1.0 / height, ASPECT / width), height=height, width=width)


def element_rng(seed: int, name: str) -> np.random.Generator:
    """A generator private to one scene element, so elements do not shift each other's draws."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def ramp(distance: np.ndarray, px: float) -> np.ndarray:
    """Coverage from a signed distance (positive inside), anti-aliased over one pixel."""
    return np.clip(distance / px + 0.5, 0.0, 1.0).astype(np.float32, copy=False)


def smoothstep(lo: float, hi: float, v: np.ndarray) -> np.ndarray:
    """Hermite step of ``v`` from 0 at ``lo`` to 1 at ``hi``, float32."""
    t = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32, copy=False)


def rect(g: Grid, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """(H, W) coverage of an axis-aligned rectangle."""
    cx = ramp(np.minimum(g.x - x0, x1 - g.x), g.px)
    cy = ramp(np.minimum(g.y - y0, y1 - g.y), g.px)
    return cy * cx


def polygon(g: Grid, points: list[tuple[float, float]]) -> np.ndarray:
    """(H, W) coverage of a convex polygon given by its corners in either winding order."""
    pts = np.asarray(points, dtype=np.float32)
    area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    sign = 1.0 if area > 0 else -1.0
    inside = None
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
        length = float(np.hypot(bx - ax, by - ay))
        d = sign * ((g.y - ay) * (bx - ax) - (g.x - ax) * (by - ay)) / length
        inside = d if inside is None else np.minimum(inside, d)
    return ramp(inside, g.px)


def disc(g: Grid, cx: float, cy: float, r: float) -> np.ndarray:
    """(H, W) coverage of a disc of radius ``r`` around (``cx``, ``cy``)."""
    return ramp(r - np.sqrt((g.x - cx) ** 2 + (g.y - cy) ** 2), g.px)


def value_noise(g: Grid, rng: np.random.Generator, cells: float, octaves: int, gain: float = 0.5) -> np.ndarray:
    """(H, W) fractal value noise, zero mean, std roughly 0.6.

    ``cells``: lattice cells over the image height for the coarsest octave; each
    further octave doubles it. Octaves whose cells are under two pixels fade out.
    """
    out = np.zeros((g.height, g.width), np.float32)
    norm = 0.0
    amp = 1.0
    for k in range(octaves):
        ny = max(1, int(round(cells * 2**k)))
        nx = max(1, int(round(cells * 2**k * ASPECT)))
        lattice = rng.standard_normal((ny + 1, nx + 1), dtype=np.float32)  # drawn at every size
        norm += amp * amp
        weight = float(np.clip(g.height / ny - 1.0, 0.0, 1.0))
        if weight > 0:
            # cv2.resize maps pixel centres with the half-pixel convention, so the
            # interpolated field is a function of the normalised coordinate only.
            out += (amp * weight) * cv2.resize(lattice, (g.width, g.height), interpolation=cv2.INTER_CUBIC)
        amp *= gain
    return out / np.float32(np.sqrt(norm))


def value_noise_1d(g: Grid, rng: np.random.Generator, cells: float, octaves: int) -> np.ndarray:
    """(1, W) fractal value noise along x (for skylines), zero mean."""
    out = np.zeros((1, g.width), np.float32)
    amp, norm = 1.0, 0.0
    for k in range(octaves):
        nx = max(1, int(round(cells * 2**k * ASPECT)))
        lattice = rng.standard_normal((1, nx + 1), dtype=np.float32)
        norm += amp * amp
        weight = float(np.clip(g.width / nx - 1.0, 0.0, 1.0))
        if weight > 0:
            out += (amp * weight) * cv2.resize(lattice, (g.width, 1), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
    return out / np.float32(np.sqrt(norm))


def detail_fade(g: Grid, period: float) -> float:
    """1 when a pattern's period spans >= 3 pixels, falling to 0 at 1.5 pixels (anti-moire)."""
    return float(np.clip((period / g.px - 1.5) / 1.5, 0.0, 1.0))


def bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest (rows, columns) slices holding every nonzero pixel of ``mask``, or None."""
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].max(axis=0) > 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


class Canvas:
    """Reflectance, illumination and emitted light, composed into radiance at the end."""

    def __init__(self, g: Grid) -> None:
        shape = (g.height, g.width)
        self.albedo = np.zeros(shape + (3,), np.float32)
        self.emit = np.zeros(shape + (3,), np.float32)
        self.light = np.full(shape, SUN, np.float32)

    def paint(self, mask: np.ndarray, albedo: float | np.ndarray = 0.0, emit: float | np.ndarray = 0.0) -> None:
        """Cover ``mask`` (H, W) with a surface; ``albedo``/``emit`` are (3,) or broadcast to (H, W, 3)."""
        mask = np.broadcast_to(mask, self.light.shape)
        box = bbox(mask)
        if box is None:
            return
        m = mask[box][..., None]
        for layer, value in ((self.albedo, albedo), (self.emit, emit)):
            v = np.asarray(value, np.float32)
            if v.ndim == 3:  # per-pixel (or per-row / per-column) values: take the same box
                v = v[tuple(sl if n > 1 else slice(None) for sl, n in zip(box, v.shape[:2]))]
            layer[box] += m * (v - layer[box])

    def shade(self, mask: np.ndarray, level: float = SHADE) -> None:
        """Put ``mask`` into shadow: direct sun replaced by ``level``."""
        self.light += mask * (np.minimum(self.light, level) - self.light)

    def radiance(self) -> np.ndarray:
        """(H, W, 3) float32: albedo times illumination, plus emitted light."""
        return self.albedo * self.light[..., None] + self.emit


__all__ = [
    "ASPECT", "SHADE", "SUN", "Canvas", "Grid", "bbox", "detail_fade", "disc", "element_rng", "grid", "polygon",
    "ramp", "rect", "smoothstep", "value_noise", "value_noise_1d",
]
