"""The brick house of the procedural street scene: facade, windows, door, awning, sign, ColorChecker.

Coordinates and units as in :mod:`uhdfuse.synthetic.scene`.
"""

from __future__ import annotations

import numpy as np

from uhdfuse.colour import srgb_decode
from uhdfuse.synthetic.draw import (
    ASPECT,
    Canvas,
    Grid,
    detail_fade,
    disc,
    element_rng,
    polygon,
    ramp,
    rect,
    smoothstep,
    value_noise,
)

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


def _bricks(g: Grid, seed: int, x0: float) -> np.ndarray:
    """(H, W, 3) brick-wall albedo: offset courses, per-brick tone, mortar, grain."""
    bh, bw, mortar = 0.016, 0.045, 0.0022
    row = np.floor(g.y / bh)
    u = (g.x - x0) / bw + 0.5 * (row % 2)
    col = np.floor(u)
    fy = g.y / bh - row
    fu = u - col
    d = np.minimum(np.minimum(fy, 1 - fy) * bh, np.minimum(fu, 1 - fu) * bw)
    fade = detail_fade(g, bh)
    joint = ramp(mortar - d, g.px) * fade + (1 - fade) * 0.25
    table = element_rng(seed, "brick tones").uniform(-1.0, 1.0, (64, 64, 3)).astype(np.float32)
    tone = table[(row.astype(np.int64) % 64), col.astype(np.int64) % 64] * fade  # (H, W, 3)
    grain = value_noise(g, element_rng(seed, "brick grain"), cells=120, octaves=2)[..., None]
    brick = np.array([0.36, 0.15, 0.09], np.float32) * (1.0 + 0.25 * tone[..., :1] + 0.08 * tone + 0.15 * grain)
    mortar_col = np.array([0.45, 0.43, 0.4], np.float32) * (1.0 + 0.1 * grain)
    j = joint[..., None]
    return brick + j * (mortar_col - brick)


def building(
    g: Grid, c: Canvas, seed: int, lay: np.random.Generator,
    bx0: float, bx1: float, eave: float, base: float, peak_y: float,
) -> None:
    """Paint the house onto ``c``: walls from ``bx0`` to ``bx1`` between ``eave`` and ``base``, gable
    up to ``peak_y``; ``lay`` is the scene's layout generator (drawn from in a fixed order)."""
    mid = 0.5 * (bx0 + bx1)
    facade = rect(g, bx0, eave, bx1, base)
    gable = polygon(g, [(bx0, eave + g.px), (mid, peak_y), (bx1, eave + g.px)])
    wall = np.maximum(facade, gable)
    c.paint(wall, albedo=_bricks(g, seed, bx0))
    # Roof trim along the gable: dark diagonal bands at two orientations.
    t, e = 0.012, eave + 0.004
    for x_out in (bx0 - 0.02, bx1 + 0.02):
        c.paint(polygon(g, [(x_out, e), (mid, peak_y - t), (mid, peak_y), (x_out, e + t)]), albedo=np.array([0.05, 0.05, 0.06], np.float32))

    # Diagonal shadow of a neighbour across the lower right of the facade.
    s0 = lay.uniform(0.45, 0.6)
    slope = lay.uniform(-0.55, -0.3)
    c.shade(wall * ramp(g.y - (s0 + slope * (g.x - bx0)), g.px))

    # Round gable window catching the sun.
    oc_r = min(0.035, 0.35 * (eave - peak_y))
    oc_y = eave - 0.3 * (eave - peak_y)
    c.paint(disc(g, mid, oc_y, oc_r + 0.006), albedo=np.array([0.8, 0.8, 0.78], np.float32))
    c.paint(disc(g, mid, oc_y, oc_r), emit=np.array([40.0, 38.0, 33.0], np.float32))

    _windows(g, c, seed, lay, bx0, bx1, eave, base)
    _door_and_front(g, c, seed, lay, bx0, bx1, base)


def _windows(
    g: Grid, c: Canvas, seed: int, lay: np.random.Generator, bx0: float, bx1: float, eave: float, base: float,
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
            frame = rect(g, wx0 - 0.007, wy0 - 0.007, x1 + 0.007, y1 + 0.007)
            c.paint(frame, albedo=np.array([0.75, 0.74, 0.7], np.float32))
            glass = rect(g, wx0, wy0, x1, y1)
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
                fade = detail_fade(g, slat)
                gap = (ramp(0.2 * slat - f * slat, g.px) * fade + (1 - fade) * 0.3)
                emit = (1.6 * (1 - gap) + 0.05 * gap)[..., None] * np.array([1.0, 0.98, 0.92], np.float32)
            c.paint(glass, albedo=0.0, emit=emit)
            # Mullions: a cross of window frame.
            cross = np.maximum(
                rect(g, wx0 + ww / 2 - 0.003, wy0, wx0 + ww / 2 + 0.003, y1),
                rect(g, wx0, wy0 + wh * 0.4 - 0.003, x1, wy0 + wh * 0.4 + 0.003),
            )
            c.paint(cross, albedo=np.array([0.75, 0.74, 0.7], np.float32), emit=0.0)
            if r == rows - 1 or (r + k) % 2 == 0:
                _flower_box(g, c, seed * 7919 + r * 97 + k, wx0 - 0.008, x1 + 0.008, y1 + 0.007, box_colours[(r + k) % 3])


def _flower_box(g: Grid, c: Canvas, key: int, x0: float, x1: float, y: float, colour: np.ndarray) -> None:
    box = rect(g, x0, y, x1, y + 0.018)
    c.paint(box, albedo=np.array([0.2, 0.1, 0.05], np.float32))
    rng = element_rng(key, "flowers")
    blossom = value_noise(g, rng, cells=70, octaves=2)
    leaves = rect(g, x0 + 0.003, y - 0.022, x1 - 0.003, y + 0.004)
    rough = smoothstep(-0.4, 0.2, blossom - 2.5 * np.maximum(y - 0.012 - g.y, 0) / 0.02)
    c.paint(leaves * rough, albedo=np.array([0.05, 0.14, 0.03], np.float32))
    flowers = leaves * smoothstep(0.25, 0.6, blossom)
    c.paint(flowers, albedo=colour)


def _door_and_front(g: Grid, c: Canvas, seed: int, lay: np.random.Generator, bx0: float, bx1: float, base: float) -> None:
    """Ground floor: an open door onto a dark interior, awning, sign and a ColorChecker."""
    dw, dh = 0.11, 0.2
    dx0 = lay.uniform(bx0 + 0.06, min(bx1, ASPECT) - dw - 0.3)
    dx1 = dx0 + dw
    dy0 = base - dh
    c.paint(rect(g, dx0 - 0.01, dy0 - 0.01, dx1 + 0.01, base), albedo=np.array([0.6, 0.58, 0.55], np.float32))
    # The interior: almost no light, a faint back room and a dim table silhouette.
    depth = np.clip((g.y - dy0) / dh, 0, 1)
    room = (0.004 + 0.004 * depth)[..., None] * np.array([1.0, 0.9, 0.8], np.float32)
    room = room * (1.0 + 0.3 * value_noise(g, element_rng(seed, "interior"), cells=20, octaves=3))[..., None]
    c.paint(rect(g, dx0, dy0, dx1, base), emit=room)
    c.paint(rect(g, dx0 + 0.05, dy0 + 0.04, dx0 + 0.07, dy0 + 0.11), emit=np.array([0.03, 0.028, 0.024], np.float32))
    c.paint(rect(g, dx0 + 0.01, base - 0.06, dx1 - 0.02, base - 0.052), emit=np.array([0.0015, 0.0013, 0.001], np.float32))
    # The open door leaf, in perspective: a parallelogram with oblique top and bottom.
    hue = lay.integers(0, 3)
    leaf_col = np.array([[0.02, 0.1, 0.45], [0.03, 0.3, 0.1], [0.45, 0.04, 0.03]], np.float32)[hue]
    leaf = polygon(g, [(dx0, dy0), (dx0 + 0.025, dy0 + 0.015), (dx0 + 0.025, base - 0.008), (dx0, base)])
    c.paint(leaf, albedo=leaf_col)

    # Striped awning above the door (two slanted sides).
    aw_col = np.array([[0.6, 0.02, 0.02], [0.02, 0.35, 0.08], [0.05, 0.1, 0.5]], np.float32)[lay.integers(0, 3)]
    ay0, ay1 = dy0 - 0.06, dy0 - 0.012
    awning = polygon(g, [(dx0 - 0.02, ay0), (dx1 + 0.02, ay0), (dx1 + 0.04, ay1), (dx0 - 0.04, ay1)])
    stripe = np.floor((g.x - dx0) / 0.012) % 2
    fade = detail_fade(g, 0.012)
    stripe = stripe * fade + (1 - fade) * 0.5
    albedo = aw_col + stripe[..., None] * (np.array([0.8, 0.78, 0.72], np.float32) - aw_col)
    c.paint(awning, albedo=albedo)
    c.shade(polygon(g, [(dx0 - 0.04, ay1), (dx1 + 0.04, ay1), (dx1 + 0.02, ay1 + 0.04), (dx0 - 0.02, ay1 + 0.04)]))

    # A yellow sign with dark "lettering" (fine bars of varied width) right of the door.
    sx0, sy0 = dx1 + 0.04, dy0 - 0.055
    sign = rect(g, sx0, sy0, sx0 + 0.12, sy0 + 0.035)
    c.paint(sign, albedo=np.array([0.75, 0.55, 0.02], np.float32))
    letters = element_rng(seed, "letters").uniform(0, 1, 25) > 0.45
    idx = np.clip(((g.x - sx0 - 0.01) / 0.004).astype(np.int64), 0, 24)
    bars = letters[idx] & (g.x > sx0 + 0.01) & (g.x < sx0 + 0.11)
    fade = detail_fade(g, 0.004)
    text = rect(g, sx0, sy0 + 0.01, sx0 + 0.12, sy0 + 0.025) * (bars * fade + (1 - fade) * 0.5)
    c.paint(text, albedo=np.array([0.03, 0.03, 0.03], np.float32))

    # A ColorChecker poster: 6x4 patches on a black board.
    px0, py0, patch = dx1 + 0.05, dy0 + 0.01, 0.022
    c.paint(rect(g, px0 - 0.004, py0 - 0.004, px0 + 6 * patch + 0.002, py0 + 4 * patch + 0.002), albedo=np.array([0.03, 0.03, 0.03], np.float32))
    colours = srgb_decode(_CHECKER_SRGB8 / 255.0)
    for i in range(24):
        qx = px0 + (i % 6) * patch
        qy = py0 + (i // 6) * patch
        c.paint(rect(g, qx, qy, qx + patch - 0.003, qy + patch - 0.003), albedo=colours[i])


__all__ = ["building"]
