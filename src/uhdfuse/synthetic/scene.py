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

import numpy as np

from uhdfuse.synthetic.building import building
from uhdfuse.synthetic.draw import (
    ASPECT,
    Canvas,
    Grid,
    disc,
    element_rng,
    grid,
    polygon,
    ramp,
    rect,
    smoothstep,
    value_noise,
    value_noise_1d,
)


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
    g = grid(height, width)
    c = Canvas(g)
    lay = element_rng(seed, "layout")

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
    building(g, c, seed, lay, bx0, bx1, eave, base, peak_y)
    _street_lamp(g, c, lay, bx0, base)
    _bunting(g, c, lay, bx0, eave)
    return c.radiance()


def _sky(g: Grid, c: Canvas, seed: int, horizon: float, sun_x: float, sun_y: float) -> None:
    t = np.clip(g.y / horizon, 0.0, 1.0) ** 1.5
    zenith = np.array([0.25, 0.42, 1.05], np.float32)
    low = np.array([1.05, 1.2, 1.45], np.float32)
    sky = zenith + t[..., None] * (low - zenith)
    dist = np.sqrt((g.x - sun_x) ** 2 + (g.y - sun_y) ** 2)
    glow = 6.0 * np.exp(-dist / 0.03) + 1.2 * np.exp(-dist / 0.2)
    sky = sky + glow[..., None] * np.array([1.0, 0.93, 0.8], np.float32)

    n = value_noise(g, element_rng(seed, "clouds"), cells=2.5, octaves=7)
    cover = smoothstep(0.05, 0.8, n + 0.25 * element_rng(seed, "cloudiness").uniform(-1, 1))
    cover *= smoothstep(0.0, 0.25, horizon - g.y)  # thin out towards the horizon
    thickness = smoothstep(0.3, 1.6, n)
    lit = np.array([3.4, 3.3, 3.15], np.float32) * (1.0 + 0.6 * glow[..., None])
    dark = np.array([1.3, 1.35, 1.5], np.float32)
    cloud = lit + thickness[..., None] * (dark - lit)
    sky = sky + cover[..., None] * (cloud - sky)
    c.paint(np.ones((g.height, g.width), np.float32), albedo=0.0, emit=sky)

    # The sun: a limb-darkened disc far above everything else, over the clouds.
    r = 0.018
    sun_disc = disc(g, sun_x, sun_y, r)
    limb = np.sqrt(np.clip(1.0 - (dist / r) ** 2, 0.0, 1.0))
    sun = (8000.0 * (0.4 + 0.6 * limb))[..., None] * np.array([1.0, 0.97, 0.9], np.float32)
    c.paint(sun_disc, albedo=0.0, emit=sun)


def _hills(g: Grid, c: Canvas, seed: int, horizon: float) -> None:
    ridge = horizon - 0.035 - 0.03 * value_noise_1d(g, element_rng(seed, "ridge"), cells=3, octaves=6)
    mask = ramp(g.y - ridge, g.px)
    tex = value_noise(g, element_rng(seed, "hill texture"), cells=12, octaves=5)
    haze = np.array([0.1, 0.13, 0.15], np.float32)
    albedo = haze * (1.0 + 0.25 * tex)[..., None]
    c.paint(mask, albedo=albedo, emit=np.array([0.12, 0.15, 0.2], np.float32))


def _ground(g: Grid, c: Canvas, seed: int, horizon: float, vanish_x: float) -> None:
    """A plaza of square stone tiles seen in perspective, with two cast shadows."""
    mask = ramp(g.y - horizon, g.px)
    dz = np.maximum(g.y - horizon, 1e-3)
    depth = 0.12 / dz  # (H, 1) distance on the ground plane
    gx = (g.x - vanish_x) * depth * 12.0  # (H, W) across, in tiles
    gz = depth * 12.0  # (H, 1) along, in tiles
    ix, iz = np.floor(gx).astype(np.int64), np.floor(gz).astype(np.int64)
    table = element_rng(seed, "tiles").uniform(-1.0, 1.0, (64, 64)).astype(np.float32)
    tone = table[iz % 64, ix % 64]
    fx, fz = gx - ix, gz - iz
    # Joints as image-space distances: tile-unit distance over the gradient length.
    grad_z = gz / dz
    grad_x = gz * np.sqrt(1.0 + ((g.x - vanish_x) / dz) ** 2)
    half = 0.04  # joint half-width, in tiles
    joint = np.maximum(
        ramp((half - np.minimum(fx, 1 - fx)) / grad_x, g.px),
        ramp((half - np.minimum(fz, 1 - fz)) / grad_z, g.px),
    )
    # Where a pixel covers more than a quarter tile the joints would alias: fade them.
    fade = np.clip(1.5 - g.px * np.maximum(grad_x, grad_z) / 0.25, 0.0, 1.0)
    joint = joint * fade + (1 - fade) * (2 * half)
    tone = tone * fade
    grain = value_noise(g, element_rng(seed, "stone grain"), cells=80, octaves=3)
    dirt = value_noise(g, element_rng(seed, "dirt"), cells=4, octaves=3)
    stone = np.array([0.3, 0.28, 0.25], np.float32) * (1.0 + 0.15 * tone + 0.12 * grain + 0.08 * dirt)[..., None]
    albedo = stone * (1.0 - 0.6 * joint)[..., None]
    c.paint(mask, albedo=albedo)

    # Shadow of an off-frame building across the lower left, and of a wall to the right.
    sh = element_rng(seed, "ground shadow")
    x0 = sh.uniform(0.2, 0.5)
    c.shade(mask * polygon(g, [(-0.1, 1.1), (-0.1, horizon + 0.12), (x0, 1.1)]))
    x1 = sh.uniform(1.15, 1.35)
    c.shade(mask * polygon(g, [(x1, 1.1), (ASPECT + 0.1, horizon + 0.1), (ASPECT + 0.1, 1.1)]))


def _tree(g: Grid, c: Canvas, seed: int, lay: np.random.Generator, horizon: float, bx0: float) -> None:
    tx = lay.uniform(0.12, bx0 - 0.2)
    foot = horizon + lay.uniform(0.05, 0.1)
    radius = lay.uniform(0.12, 0.17)
    cy = foot - 0.16 - radius * 0.8
    trunk = polygon(g, [(tx - 0.012, foot), (tx + 0.012, foot), (tx + 0.007, cy), (tx - 0.007, cy)])
    bark = value_noise(g, element_rng(seed, "bark"), cells=60, octaves=3)
    c.paint(trunk, albedo=np.array([0.09, 0.06, 0.04], np.float32) * (1 + 0.3 * bark)[..., None])

    leaves = value_noise(g, element_rng(seed, "leaves"), cells=45, octaves=4)
    crown_shape = value_noise(g, element_rng(seed, "crown"), cells=6, octaves=3)
    r = np.sqrt(((g.x - tx) / 1.1) ** 2 + (g.y - cy) ** 2) / radius
    density = 1.0 - r + 0.2 * crown_shape + 0.15 * leaves
    cover = smoothstep(0.0, 0.12, density)
    # Leaves facing the sun (upper left) are lit; deep inside the crown is dark.
    light = np.clip(0.35 + 0.9 * leaves + 1.2 * ((cy - g.y) + 0.5 * (tx - g.x)) / radius, 0.15, 1.3)
    green = np.array([0.07, 0.16, 0.035], np.float32)
    c.paint(cover, albedo=green * light[..., None])


def _street_lamp(g: Grid, c: Canvas, lay: np.random.Generator, bx0: float, base: float) -> None:
    lx = bx0 - lay.uniform(0.06, 0.12)
    foot = base + 0.06
    top = foot - 0.42
    c.paint(rect(g, lx - 0.004, top, lx + 0.004, foot), albedo=np.array([0.04, 0.045, 0.05], np.float32))
    # The post's shadow falls to the lower right on the plaza: a thin oblique line.
    c.shade(polygon(g, [(lx - 0.003, foot), (lx + 0.004, foot), (lx + 0.25, foot + 0.14), (lx + 0.242, foot + 0.14)]))
    c.paint(rect(g, lx - 0.004, top, lx + 0.05, top + 0.006), albedo=np.array([0.04, 0.045, 0.05], np.float32))
    head = polygon(g, [(lx + 0.03, top + 0.006), (lx + 0.05, top + 0.006), (lx + 0.055, top + 0.03), (lx + 0.025, top + 0.03)])
    c.paint(head, albedo=np.array([0.05, 0.05, 0.05], np.float32))
    c.paint(disc(g, lx + 0.04, top + 0.03, 0.007), emit=np.array([120.0, 95.0, 60.0], np.float32))


def _bunting(g: Grid, c: Canvas, lay: np.random.Generator, bx0: float, eave: float) -> None:
    """A sagging string of saturated triangular flags from the left edge to the house."""
    xa, ya = -0.02, lay.uniform(0.25, 0.4)
    xb, yb = bx0, eave + lay.uniform(0.08, 0.14)
    sag = 0.06

    def string_y(x):
        t = (x - xa) / (xb - xa)
        return ya + t * (yb - ya) + 4 * sag * t * (1 - t)

    # The string: a thin band around the sagging curve (vertical distance is close
    # enough to the true distance for such a shallow curve).
    line = ramp(0.0015 - np.abs(g.y - string_y(g.x)), g.px) * ramp(np.minimum(g.x - xa, xb - g.x), g.px)
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
        flag = polygon(g, [(fx0, string_y(fx0)), (fx1, string_y(fx1)), (apex_x, apex_y)])
        c.paint(flag, albedo=colours[(start + i) % len(colours)])


__all__ = ["ASPECT", "procedural_scene"]
