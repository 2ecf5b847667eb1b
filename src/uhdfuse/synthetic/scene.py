"""A procedural, high-dynamic-range street scene in linear light.

The scene is a continuous function of normalised coordinates: ``y`` runs 0..1 from
top to bottom and ``x`` runs 0..``ASPECT`` from left to right, so any pixel grid
samples the same picture (a grid of another aspect ratio sees it stretched).
Random choices are drawn from generators keyed by the seed and a name, never by
the pixel count, so a 64x96 and a 640x960 render of one seed show the same layout.
Edges are anti-aliased over one pixel and noise octaves finer than a pixel are
dropped, which keeps small renders from turning into aliasing noise.

Radiance is in arbitrary linear units where a sunlit mid-grey wall is about 0.5;
the interior behind the open door is ~0.003 and the sun disc ~8000, so the scene
spans more than 20 stops, of which 14+ are in areas larger than a few pixels.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from uhdfuse.colour import srgb_decode

ASPECT = 1.5  # width / height of the canonical scene (a 3:2 photograph)

# Illumination, multiplied with reflectance: direct sun, open shade (sky only).
_SUN = 3.0
_SHADE = 0.35

# ColorChecker Classic patch colours (BabelColor averages, sRGB 8-bit), row by row.
_CHECKER_SRGB8 = np.array(
    [
        [115, 82, 68], [194, 150, 130], [98, 122, 157], [87, 108, 67], [133, 128, 177], [103, 189, 170],
        [214, 126, 44], [80, 91, 166], [193, 90, 99], [94, 60, 108], [157, 188, 64], [224, 163, 46],
        [56, 61, 150], [70, 148, 73], [175, 54, 60], [231, 199, 31], [187, 86, 149], [8, 133, 161],
        [243, 243, 242], [200, 200, 200], [160, 160, 160], [122, 122, 121], [85, 85, 85], [52, 52, 52],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class _Grid:
    """Normalised pixel-centre coordinates of one render."""

    x: np.ndarray  # (1, W) float32, 0..ASPECT
    y: np.ndarray  # (H, 1) float32, 0..1
    px: float  # the larger pixel pitch, in normalised units (anti-aliasing width)
    height: int
    width: int


def _grid(height: int, width: int) -> _Grid:
    x = ((np.arange(width, dtype=np.float32) + 0.5) / width * ASPECT)[None, :]
    y = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    return _Grid(x=x, y=y, px=max(1.0 / height, ASPECT / width), height=height, width=width)


def _rng(seed: int, name: str) -> np.random.Generator:
    """A generator private to one scene element, so elements do not shift each other's draws."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def _ramp(distance: np.ndarray, px: float) -> np.ndarray:
    """Coverage from a signed distance (positive inside), anti-aliased over one pixel."""
    return np.clip(distance / px + 0.5, 0.0, 1.0).astype(np.float32, copy=False)


def _smoothstep(lo: float, hi: float, v: np.ndarray) -> np.ndarray:
    t = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32, copy=False)


def _rect(g: _Grid, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """(H, W) coverage of an axis-aligned rectangle."""
    cx = _ramp(np.minimum(g.x - x0, x1 - g.x), g.px)
    cy = _ramp(np.minimum(g.y - y0, y1 - g.y), g.px)
    return cy * cx


def _polygon(g: _Grid, points: list[tuple[float, float]]) -> np.ndarray:
    """(H, W) coverage of a convex polygon given by its corners in either winding order."""
    pts = np.asarray(points, dtype=np.float32)
    area = np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    sign = 1.0 if area > 0 else -1.0
    inside = None
    for (ax, ay), (bx, by) in zip(pts, np.roll(pts, -1, axis=0)):
        length = float(np.hypot(bx - ax, by - ay))
        d = sign * ((g.y - ay) * (bx - ax) - (g.x - ax) * (by - ay)) / length
        inside = d if inside is None else np.minimum(inside, d)
    return _ramp(inside, g.px)


def _disc(g: _Grid, cx: float, cy: float, r: float) -> np.ndarray:
    return _ramp(r - np.sqrt((g.x - cx) ** 2 + (g.y - cy) ** 2), g.px)


def _noise(g: _Grid, rng: np.random.Generator, cells: float, octaves: int, gain: float = 0.5) -> np.ndarray:
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


def _noise_1d(g: _Grid, rng: np.random.Generator, cells: float, octaves: int) -> np.ndarray:
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


def _detail_fade(g: _Grid, period: float) -> float:
    """1 when a pattern's period spans >= 3 pixels, falling to 0 at 1.5 pixels (anti-moire)."""
    return float(np.clip((period / g.px - 1.5) / 1.5, 0.0, 1.0))


def _bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest (rows, columns) slices holding every nonzero pixel of ``mask``, or None."""
    rows = np.flatnonzero(mask.max(axis=1) > 0)
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].max(axis=0) > 0)
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


class _Canvas:
    """Reflectance, illumination and emitted light, composed into radiance at the end."""

    def __init__(self, g: _Grid) -> None:
        shape = (g.height, g.width)
        self.albedo = np.zeros(shape + (3,), np.float32)
        self.emit = np.zeros(shape + (3,), np.float32)
        self.light = np.full(shape, _SUN, np.float32)

    def paint(self, mask: np.ndarray, albedo=0.0, emit=0.0) -> None:
        """Cover ``mask`` (H, W) with a surface; ``albedo``/``emit`` are (3,) or broadcast to (H, W, 3)."""
        mask = np.broadcast_to(mask, self.light.shape)
        box = _bbox(mask)
        if box is None:
            return
        m = mask[box][..., None]
        for layer, value in ((self.albedo, albedo), (self.emit, emit)):
            v = np.asarray(value, np.float32)
            if v.ndim == 3:  # per-pixel (or per-row / per-column) values: take the same box
                v = v[tuple(sl if n > 1 else slice(None) for sl, n in zip(box, v.shape[:2]))]
            layer[box] += m * (v - layer[box])

    def shade(self, mask: np.ndarray, level: float = _SHADE) -> None:
        """Put ``mask`` into shadow: direct sun replaced by ``level``."""
        self.light += mask * (np.minimum(self.light, level) - self.light)

    def radiance(self) -> np.ndarray:
        return self.albedo * self.light[..., None] + self.emit


def procedural_scene(height: int, width: int, *, seed: int = 0) -> np.ndarray:
    """Render the procedural street scene.

    Returns (height, width, 3) float32 linear radiance: sky with sun and clouds,
    hills, a brick building with windows (dark, lit, sun glint, blinds), an open
    door onto a dark interior, an awning, flower boxes, a ColorChecker poster, a
    tree, a street lamp and a tiled plaza with cast shadows. ``seed`` varies the
    layout, colours and textures.
    """
    if height < 2 or width < 2:
        raise ValueError(f"procedural_scene needs at least 2x2 pixels, got {height}x{width}")
    g = _grid(height, width)
    c = _Canvas(g)
    lay = _rng(seed, "layout")

    horizon = lay.uniform(0.55, 0.62)
    sun_x, sun_y = lay.uniform(0.12, 0.5), lay.uniform(0.07, 0.2)
    bx0, bx1 = lay.uniform(0.6, 0.75), lay.uniform(1.35, 1.6)
    eave, base = lay.uniform(0.22, 0.3), lay.uniform(0.8, 0.86)
    peak_y = eave - lay.uniform(0.08, 0.13)
    vanish_x = lay.uniform(0.5, 1.0)

    _sky(g, c, seed, horizon, sun_x, sun_y)
    _hills(g, c, seed, horizon)
    _ground(g, c, seed, horizon, vanish_x)
    _tree(g, c, seed, lay, horizon, bx0)
    _building(g, c, seed, lay, bx0, bx1, eave, base, peak_y)
    _street_lamp(g, c, lay, bx0, base)
    _bunting(g, c, lay, bx0, eave)
    return c.radiance()


def _sky(g: _Grid, c: _Canvas, seed: int, horizon: float, sun_x: float, sun_y: float) -> None:
    t = np.clip(g.y / horizon, 0.0, 1.0) ** 1.5
    zenith = np.array([0.25, 0.42, 1.05], np.float32)
    low = np.array([1.05, 1.2, 1.45], np.float32)
    sky = zenith + t[..., None] * (low - zenith)
    dist = np.sqrt((g.x - sun_x) ** 2 + (g.y - sun_y) ** 2)
    glow = 6.0 * np.exp(-dist / 0.03) + 1.2 * np.exp(-dist / 0.2)
    sky = sky + glow[..., None] * np.array([1.0, 0.93, 0.8], np.float32)

    n = _noise(g, _rng(seed, "clouds"), cells=2.5, octaves=7)
    cover = _smoothstep(0.05, 0.8, n + 0.25 * _rng(seed, "cloudiness").uniform(-1, 1))
    cover *= _smoothstep(0.0, 0.25, horizon - g.y)  # thin out towards the horizon
    thickness = _smoothstep(0.3, 1.6, n)
    lit = np.array([3.4, 3.3, 3.15], np.float32) * (1.0 + 0.6 * glow[..., None])
    dark = np.array([1.3, 1.35, 1.5], np.float32)
    cloud = lit + thickness[..., None] * (dark - lit)
    sky = sky + cover[..., None] * (cloud - sky)
    c.paint(np.ones((g.height, g.width), np.float32), albedo=0.0, emit=sky)

    # The sun: a limb-darkened disc far above everything else, over the clouds.
    r = 0.018
    disc = _disc(g, sun_x, sun_y, r)
    limb = np.sqrt(np.clip(1.0 - (dist / r) ** 2, 0.0, 1.0))
    sun = (8000.0 * (0.4 + 0.6 * limb))[..., None] * np.array([1.0, 0.97, 0.9], np.float32)
    c.paint(disc, albedo=0.0, emit=sun)


def _hills(g: _Grid, c: _Canvas, seed: int, horizon: float) -> None:
    ridge = horizon - 0.035 - 0.03 * _noise_1d(g, _rng(seed, "ridge"), cells=3, octaves=6)
    mask = _ramp(g.y - ridge, g.px)
    tex = _noise(g, _rng(seed, "hill texture"), cells=12, octaves=5)
    haze = np.array([0.1, 0.13, 0.15], np.float32)
    albedo = haze * (1.0 + 0.25 * tex)[..., None]
    c.paint(mask, albedo=albedo, emit=np.array([0.12, 0.15, 0.2], np.float32))


def _ground(g: _Grid, c: _Canvas, seed: int, horizon: float, vanish_x: float) -> None:
    """A plaza of square stone tiles seen in perspective, with two cast shadows."""
    mask = _ramp(g.y - horizon, g.px)
    dz = np.maximum(g.y - horizon, 1e-3)
    depth = 0.12 / dz  # (H, 1) distance on the ground plane
    gx = (g.x - vanish_x) * depth * 12.0  # (H, W) across, in tiles
    gz = depth * 12.0  # (H, 1) along, in tiles
    ix, iz = np.floor(gx).astype(np.int64), np.floor(gz).astype(np.int64)
    table = _rng(seed, "tiles").uniform(-1.0, 1.0, (64, 64)).astype(np.float32)
    tone = table[iz % 64, ix % 64]
    fx, fz = gx - ix, gz - iz
    # Joints as image-space distances: tile-unit distance over the gradient length.
    grad_z = gz / dz
    grad_x = gz * np.sqrt(1.0 + ((g.x - vanish_x) / dz) ** 2)
    half = 0.04  # joint half-width, in tiles
    joint = np.maximum(
        _ramp((half - np.minimum(fx, 1 - fx)) / grad_x, g.px),
        _ramp((half - np.minimum(fz, 1 - fz)) / grad_z, g.px),
    )
    # Where a pixel covers more than a quarter tile the joints would alias: fade them.
    fade = np.clip(1.5 - g.px * np.maximum(grad_x, grad_z) / 0.25, 0.0, 1.0)
    joint = joint * fade + (1 - fade) * (2 * half)
    tone = tone * fade
    grain = _noise(g, _rng(seed, "stone grain"), cells=80, octaves=3)
    dirt = _noise(g, _rng(seed, "dirt"), cells=4, octaves=3)
    stone = np.array([0.3, 0.28, 0.25], np.float32) * (1.0 + 0.15 * tone + 0.12 * grain + 0.08 * dirt)[..., None]
    albedo = stone * (1.0 - 0.6 * joint)[..., None]
    c.paint(mask, albedo=albedo)

    # Shadow of an off-frame building across the lower left, and of a wall to the right.
    sh = _rng(seed, "ground shadow")
    x0 = sh.uniform(0.2, 0.5)
    c.shade(mask * _polygon(g, [(-0.1, 1.1), (-0.1, horizon + 0.12), (x0, 1.1)]))
    x1 = sh.uniform(1.15, 1.35)
    c.shade(mask * _polygon(g, [(x1, 1.1), (ASPECT + 0.1, horizon + 0.1), (ASPECT + 0.1, 1.1)]))


def _tree(g: _Grid, c: _Canvas, seed: int, lay: np.random.Generator, horizon: float, bx0: float) -> None:
    tx = lay.uniform(0.12, bx0 - 0.2)
    foot = horizon + lay.uniform(0.05, 0.1)
    radius = lay.uniform(0.12, 0.17)
    cy = foot - 0.16 - radius * 0.8
    trunk = _polygon(g, [(tx - 0.012, foot), (tx + 0.012, foot), (tx + 0.007, cy), (tx - 0.007, cy)])
    bark = _noise(g, _rng(seed, "bark"), cells=60, octaves=3)
    c.paint(trunk, albedo=np.array([0.09, 0.06, 0.04], np.float32) * (1 + 0.3 * bark)[..., None])

    leaves = _noise(g, _rng(seed, "leaves"), cells=45, octaves=4)
    crown_shape = _noise(g, _rng(seed, "crown"), cells=6, octaves=3)
    r = np.sqrt(((g.x - tx) / 1.1) ** 2 + (g.y - cy) ** 2) / radius
    density = 1.0 - r + 0.2 * crown_shape + 0.15 * leaves
    cover = _smoothstep(0.0, 0.12, density)
    # Leaves facing the sun (upper left) are lit; deep inside the crown is dark.
    light = np.clip(0.35 + 0.9 * leaves + 1.2 * ((cy - g.y) + 0.5 * (tx - g.x)) / radius, 0.15, 1.3)
    green = np.array([0.07, 0.16, 0.035], np.float32)
    c.paint(cover, albedo=green * light[..., None])


def _bricks(g: _Grid, seed: int, x0: float) -> np.ndarray:
    """(H, W, 3) brick-wall albedo: offset courses, per-brick tone, mortar, grain."""
    bh, bw, mortar = 0.016, 0.045, 0.0022
    row = np.floor(g.y / bh)
    u = (g.x - x0) / bw + 0.5 * (row % 2)
    col = np.floor(u)
    fy = g.y / bh - row
    fu = u - col
    d = np.minimum(np.minimum(fy, 1 - fy) * bh, np.minimum(fu, 1 - fu) * bw)
    fade = _detail_fade(g, bh)
    joint = _ramp(mortar - d, g.px) * fade + (1 - fade) * 0.25
    table = _rng(seed, "brick tones").uniform(-1.0, 1.0, (64, 64, 3)).astype(np.float32)
    tone = table[(row.astype(np.int64) % 64), col.astype(np.int64) % 64] * fade  # (H, W, 3)
    grain = _noise(g, _rng(seed, "brick grain"), cells=120, octaves=2)[..., None]
    brick = np.array([0.36, 0.15, 0.09], np.float32) * (1.0 + 0.25 * tone[..., :1] + 0.08 * tone + 0.15 * grain)
    mortar_col = np.array([0.45, 0.43, 0.4], np.float32) * (1.0 + 0.1 * grain)
    j = joint[..., None]
    return brick + j * (mortar_col - brick)


def _building(
    g: _Grid, c: _Canvas, seed: int, lay: np.random.Generator,
    bx0: float, bx1: float, eave: float, base: float, peak_y: float,
) -> None:
    mid = 0.5 * (bx0 + bx1)
    facade = _rect(g, bx0, eave, bx1, base)
    gable = _polygon(g, [(bx0, eave + g.px), (mid, peak_y), (bx1, eave + g.px)])
    wall = np.maximum(facade, gable)
    c.paint(wall, albedo=_bricks(g, seed, bx0))
    # Roof trim along the gable: dark diagonal bands at two orientations.
    t, e = 0.012, eave + 0.004
    for x_out in (bx0 - 0.02, bx1 + 0.02):
        c.paint(_polygon(g, [(x_out, e), (mid, peak_y - t), (mid, peak_y), (x_out, e + t)]), albedo=np.array([0.05, 0.05, 0.06], np.float32))

    # Diagonal shadow of a neighbour across the lower right of the facade.
    s0 = lay.uniform(0.45, 0.6)
    slope = lay.uniform(-0.55, -0.3)
    c.shade(wall * _ramp(g.y - (s0 + slope * (g.x - bx0)), g.px))

    # Round gable window catching the sun.
    oc_r = min(0.035, 0.35 * (eave - peak_y))
    oc_y = eave - 0.3 * (eave - peak_y)
    c.paint(_disc(g, mid, oc_y, oc_r + 0.006), albedo=np.array([0.8, 0.8, 0.78], np.float32))
    c.paint(_disc(g, mid, oc_y, oc_r), emit=np.array([40.0, 38.0, 33.0], np.float32))

    _windows(g, c, seed, lay, bx0, bx1, eave, base)
    _door_and_front(g, c, seed, lay, bx0, bx1, base)


def _windows(
    g: _Grid, c: _Canvas, seed: int, lay: np.random.Generator, bx0: float, bx1: float, eave: float, base: float,
) -> None:
    """Rows of framed windows, each dark, lit, glinting or with blinds (chosen per seed)."""
    ww, wh = 0.07, 0.1
    pitch_x = 0.14
    top = eave + 0.05
    rows = 2 if base - top > 0.42 else 1
    pitch_y = 0.16
    ncols = max(1, int((bx1 - bx0 - 0.05) // pitch_x))
    x_start = bx0 + 0.5 * ((bx1 - bx0) - ncols * pitch_x) + 0.5 * (pitch_x - ww)
    kinds = lay.integers(0, 4, (rows, ncols))
    box_colours = np.array([[0.6, 0.02, 0.03], [0.5, 0.03, 0.35], [0.7, 0.55, 0.02]], np.float32)

    for r in range(rows):
        wy0 = top + r * pitch_y
        for k in range(ncols):
            wx0 = x_start + k * pitch_x
            x1, y1 = wx0 + ww, wy0 + wh
            frame = _rect(g, wx0 - 0.007, wy0 - 0.007, x1 + 0.007, y1 + 0.007)
            c.paint(frame, albedo=np.array([0.75, 0.74, 0.7], np.float32))
            glass = _rect(g, wx0, wy0, x1, y1)
            kind = kinds[r, k]
            ty = np.clip((g.y - wy0) / wh, 0, 1)
            if kind == 0:  # dark room reflecting a little sky
                emit = (0.03 + 0.18 * (1 - ty))[..., None] * np.array([0.6, 0.75, 1.0], np.float32)
            elif kind == 1:  # lamp-lit room
                emit = np.broadcast_to(np.array([5.0, 3.6, 2.0], np.float32), (1, 1, 3))
            elif kind == 2:  # sun glint
                emit = np.broadcast_to(np.array([60.0, 58.0, 52.0], np.float32), (1, 1, 3))
            else:  # white blinds: fine horizontal slats
                slat = 0.006
                phase = (g.y - wy0) / slat
                f = np.minimum(phase - np.floor(phase), 1 - (phase - np.floor(phase)))
                fade = _detail_fade(g, slat)
                gap = (_ramp(0.2 * slat - f * slat, g.px) * fade + (1 - fade) * 0.3)
                emit = (1.6 * (1 - gap) + 0.05 * gap)[..., None] * np.array([1.0, 0.98, 0.92], np.float32)
            c.paint(glass, albedo=0.0, emit=emit)
            # Mullions: a cross of window frame.
            cross = np.maximum(
                _rect(g, wx0 + ww / 2 - 0.003, wy0, wx0 + ww / 2 + 0.003, y1),
                _rect(g, wx0, wy0 + wh * 0.4 - 0.003, x1, wy0 + wh * 0.4 + 0.003),
            )
            c.paint(cross, albedo=np.array([0.75, 0.74, 0.7], np.float32), emit=0.0)
            if r == rows - 1 or (r + k) % 2 == 0:
                _flower_box(g, c, seed * 7919 + r * 97 + k, wx0 - 0.008, x1 + 0.008, y1 + 0.007, box_colours[(r + k) % 3])


def _flower_box(g: _Grid, c: _Canvas, key: int, x0: float, x1: float, y: float, colour: np.ndarray) -> None:
    box = _rect(g, x0, y, x1, y + 0.018)
    c.paint(box, albedo=np.array([0.2, 0.1, 0.05], np.float32))
    rng = _rng(key, "flowers")
    blossom = _noise(g, rng, cells=70, octaves=2)
    leaves = _rect(g, x0 + 0.003, y - 0.022, x1 - 0.003, y + 0.004)
    rough = _smoothstep(-0.4, 0.2, blossom - 2.5 * np.maximum(y - 0.012 - g.y, 0) / 0.02)
    c.paint(leaves * rough, albedo=np.array([0.05, 0.14, 0.03], np.float32))
    flowers = leaves * _smoothstep(0.25, 0.6, blossom)
    c.paint(flowers, albedo=colour)


def _door_and_front(g: _Grid, c: _Canvas, seed: int, lay: np.random.Generator, bx0: float, bx1: float, base: float) -> None:
    """Ground floor: an open door onto a dark interior, awning, sign and a ColorChecker."""
    dw, dh = 0.11, 0.2
    dx0 = lay.uniform(bx0 + 0.06, min(bx1, ASPECT) - dw - 0.3)
    dx1 = dx0 + dw
    dy0 = base - dh
    c.paint(_rect(g, dx0 - 0.01, dy0 - 0.01, dx1 + 0.01, base), albedo=np.array([0.6, 0.58, 0.55], np.float32))
    # The interior: almost no light, a faint back room and a dim table silhouette.
    depth = np.clip((g.y - dy0) / dh, 0, 1)
    room = (0.004 + 0.004 * depth)[..., None] * np.array([1.0, 0.9, 0.8], np.float32)
    room = room * (1.0 + 0.3 * _noise(g, _rng(seed, "interior"), cells=20, octaves=3))[..., None]
    c.paint(_rect(g, dx0, dy0, dx1, base), emit=room)
    c.paint(_rect(g, dx0 + 0.05, dy0 + 0.04, dx0 + 0.07, dy0 + 0.11), emit=np.array([0.03, 0.028, 0.024], np.float32))
    c.paint(_rect(g, dx0 + 0.01, base - 0.06, dx1 - 0.02, base - 0.052), emit=np.array([0.0015, 0.0013, 0.001], np.float32))
    # The open door leaf, in perspective: a parallelogram with oblique top and bottom.
    hue = lay.integers(0, 3)
    leaf_col = np.array([[0.02, 0.1, 0.45], [0.03, 0.3, 0.1], [0.45, 0.04, 0.03]], np.float32)[hue]
    leaf = _polygon(g, [(dx0, dy0), (dx0 + 0.025, dy0 + 0.015), (dx0 + 0.025, base - 0.008), (dx0, base)])
    c.paint(leaf, albedo=leaf_col)

    # Striped awning above the door (two slanted sides).
    aw_col = np.array([[0.6, 0.02, 0.02], [0.02, 0.35, 0.08], [0.05, 0.1, 0.5]], np.float32)[lay.integers(0, 3)]
    ay0, ay1 = dy0 - 0.06, dy0 - 0.012
    awning = _polygon(g, [(dx0 - 0.02, ay0), (dx1 + 0.02, ay0), (dx1 + 0.04, ay1), (dx0 - 0.04, ay1)])
    stripe = np.floor((g.x - dx0) / 0.012) % 2
    fade = _detail_fade(g, 0.012)
    stripe = stripe * fade + (1 - fade) * 0.5
    albedo = aw_col + stripe[..., None] * (np.array([0.8, 0.78, 0.72], np.float32) - aw_col)
    c.paint(awning, albedo=albedo)
    c.shade(_polygon(g, [(dx0 - 0.04, ay1), (dx1 + 0.04, ay1), (dx1 + 0.02, ay1 + 0.04), (dx0 - 0.02, ay1 + 0.04)]))

    # A yellow sign with dark "lettering" (fine bars of varied width) right of the door.
    sx0, sy0 = dx1 + 0.04, dy0 - 0.055
    sign = _rect(g, sx0, sy0, sx0 + 0.12, sy0 + 0.035)
    c.paint(sign, albedo=np.array([0.75, 0.55, 0.02], np.float32))
    letters = _rng(seed, "letters").uniform(0, 1, 25) > 0.45
    idx = np.clip(((g.x - sx0 - 0.01) / 0.004).astype(np.int64), 0, 24)
    bars = letters[idx] & (g.x > sx0 + 0.01) & (g.x < sx0 + 0.11)
    fade = _detail_fade(g, 0.004)
    text = _rect(g, sx0, sy0 + 0.01, sx0 + 0.12, sy0 + 0.025) * (bars * fade + (1 - fade) * 0.5)
    c.paint(text, albedo=np.array([0.03, 0.03, 0.03], np.float32))

    # A ColorChecker poster: 6x4 patches on a black board.
    px0, py0, patch = dx1 + 0.05, dy0 + 0.01, 0.022
    c.paint(_rect(g, px0 - 0.004, py0 - 0.004, px0 + 6 * patch + 0.002, py0 + 4 * patch + 0.002), albedo=np.array([0.03, 0.03, 0.03], np.float32))
    colours = srgb_decode(_CHECKER_SRGB8 / 255.0)
    for i in range(24):
        qx = px0 + (i % 6) * patch
        qy = py0 + (i // 6) * patch
        c.paint(_rect(g, qx, qy, qx + patch - 0.003, qy + patch - 0.003), albedo=colours[i])


def _street_lamp(g: _Grid, c: _Canvas, lay: np.random.Generator, bx0: float, base: float) -> None:
    lx = bx0 - lay.uniform(0.06, 0.12)
    foot = base + 0.06
    top = foot - 0.42
    c.paint(_rect(g, lx - 0.004, top, lx + 0.004, foot), albedo=np.array([0.04, 0.045, 0.05], np.float32))
    # The post's shadow falls to the lower right on the plaza: a thin oblique line.
    c.shade(_polygon(g, [(lx - 0.003, foot), (lx + 0.004, foot), (lx + 0.25, foot + 0.14), (lx + 0.242, foot + 0.14)]))
    c.paint(_rect(g, lx - 0.004, top, lx + 0.05, top + 0.006), albedo=np.array([0.04, 0.045, 0.05], np.float32))
    head = _polygon(g, [(lx + 0.03, top + 0.006), (lx + 0.05, top + 0.006), (lx + 0.055, top + 0.03), (lx + 0.025, top + 0.03)])
    c.paint(head, albedo=np.array([0.05, 0.05, 0.05], np.float32))
    c.paint(_disc(g, lx + 0.04, top + 0.03, 0.007), emit=np.array([120.0, 95.0, 60.0], np.float32))


def _bunting(g: _Grid, c: _Canvas, lay: np.random.Generator, bx0: float, eave: float) -> None:
    """A sagging string of saturated triangular flags from the left edge to the house."""
    xa, ya = -0.02, lay.uniform(0.25, 0.4)
    xb, yb = bx0, eave + lay.uniform(0.08, 0.14)
    sag = 0.06

    def string_y(x):
        t = (x - xa) / (xb - xa)
        return ya + t * (yb - ya) + 4 * sag * t * (1 - t)

    # The string: a thin band around the sagging curve (vertical distance is close
    # enough to the true distance for such a shallow curve).
    line = _ramp(0.0015 - np.abs(g.y - string_y(g.x)), g.px) * _ramp(np.minimum(g.x - xa, xb - g.x), g.px)
    c.paint(line, albedo=np.array([0.1, 0.1, 0.1], np.float32))
    colours = np.array(
        [[0.65, 0.03, 0.03], [0.75, 0.6, 0.02], [0.03, 0.12, 0.6], [0.04, 0.45, 0.08], [0.6, 0.05, 0.4]], np.float32
    )
    n = 14
    width = (xb - xa) / n * 0.8
    start = lay.integers(0, len(colours))
    for i in range(n):
        fx0 = xa + (i + 0.1) * (xb - xa) / n
        fx1 = fx0 + width
        apex_x = 0.5 * (fx0 + fx1) + lay.uniform(-0.008, 0.008)  # flags swing a little
        apex_y = string_y(apex_x) + 0.05
        flag = _polygon(g, [(fx0, string_y(fx0)), (fx1, string_y(fx1)), (apex_x, apex_y)])
        c.paint(flag, albedo=colours[(start + i) % len(colours)])
