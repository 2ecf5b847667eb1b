"""A simple camera: exposure with sensor noise, hand shake, and things that move.

Pixel coordinates follow OpenCV: ``(x, y)`` = (column, row) with pixel centres at
integers. A homography ``H`` maps a reference pixel to a frame pixel, i.e. the
content at reference position ``p`` appears in the frame at ``H @ p``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from uhdfuse.colour import luma

__all__ = [
    "MovingObject",
    "RenderedBracket",
    "expose",
    "paste_moving_object",
    "random_moving_objects",
    "random_shake",
    "reference_index",
    "render_bracket",
    "warp_homography",
]

BASE_EXPOSURE_TIME = 1.0 / 250.0  # seconds, of the EV 0 frame
MIDDLE_GREY = 0.18


def expose(
    radiance: np.ndarray,
    ev: float,
    *,
    base_exposure: float,
    rng: np.random.Generator,
    noise: bool = True,
    full_well: float = 20000.0,
    read_noise: float = 4.0,
    bits: int | None = None,
) -> np.ndarray:
    """Simulate one linear sensor exposure of ``radiance``.

    ``radiance``: (H, W, 3) float32 scene light. The signal is
    ``radiance * base_exposure * 2**ev`` in units of the full well (1.0 = clipping).
    Noise is Poisson shot noise (Gaussian approximation, variance = electrons)
    plus Gaussian read noise, both in electrons, so brighter exposures have a
    better signal-to-noise ratio, as on a real sensor. ``bits`` quantises the
    result to ``2**bits - 1`` levels. Returns (H, W, 3) float32 in [0, 1].
    """
    signal = np.asarray(radiance, np.float32) * np.float32(base_exposure * 2.0**ev)
    if noise:
        # Clamp before computing the noise: far above clipping it no longer matters
        # and the sun would otherwise need huge variances.
        electrons = np.minimum(signal, 2.0) * np.float32(full_well)
        sigma = np.sqrt(electrons + np.float32(read_noise**2))
        noisy = electrons + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
        signal = np.where(signal >= 2.0, signal, noisy / np.float32(full_well))
    out = np.clip(signal, 0.0, 1.0)
    if bits is not None:
        levels = np.float32(2**bits - 1)
        out = np.round(out * levels) / levels
    return out.astype(np.float32, copy=False)


def warp_homography(image: np.ndarray, homography: np.ndarray) -> np.ndarray:
    """Resample ``image`` as a camera moved by ``homography`` (reference -> frame) sees it.

    ``image``: (H, W) or (H, W, C) float32 in reference geometry. Returns the
    same shape in frame geometry: ``out[H @ p] = image[p]``. Areas the reference
    does not cover are filled by mirroring its border (alignment crops them).
    """
    hom = np.asarray(homography, np.float64)
    if np.allclose(hom, np.eye(3)):
        return np.array(image, dtype=np.float32, copy=True)
    height, width = image.shape[:2]
    return cv2.warpPerspective(
        np.asarray(image, np.float32), hom, (width, height),
        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101,
    )


def random_shake(
    rng: np.random.Generator, height: int, width: int, max_shift_px: float, max_rot_deg: float
) -> np.ndarray:
    """Draw a hand-held camera motion as a (3, 3) float64 homography (reference -> frame).

    A rotation about the image centre of up to ``max_rot_deg``, a translation of
    up to ``max_shift_px`` on each axis, and a slight keystone (perspective tilt)
    that moves the corners by at most a quarter of ``max_shift_px``. Zero limits
    give the identity.
    """
    angle = math.radians(rng.uniform(-max_rot_deg, max_rot_deg)) if max_rot_deg > 0 else 0.0
    tx, ty = (rng.uniform(-max_shift_px, max_shift_px, 2) if max_shift_px > 0 else (0.0, 0.0))
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # Perspective terms p, q in centred coordinates: a corner moves by about
    # r * (p * rx + q * ry), so scale them to the corner radius squared.
    tilt = 0.25 * max_shift_px
    p, q = (rng.uniform(-1, 1, 2) * tilt / (cx * cx + cy * cy) if tilt > 0 else (0.0, 0.0))
    cos, sin = math.cos(angle), math.sin(angle)
    to_centre = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], np.float64)
    keystone = np.array([[1, 0, 0], [0, 1, 0], [p, q, 1]], np.float64)
    rotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]], np.float64)
    hom = back @ rotate @ keystone @ to_centre
    return hom / hom[2, 2]


@dataclass(frozen=True)
class MovingObject:
    """A textured ellipse that moves in a straight line (a ball, a passer-by's bag, a car).

    Positions and sizes are in normalised coordinates (fractions of the image
    height, x measured from the left edge); ``velocity`` is per unit of frame time.
    """

    centre: tuple[float, float]  # (x, y) at time 0 (the reference frame)
    velocity: tuple[float, float]
    radii: tuple[float, float]  # (rx, ry)
    angle: float  # radians, orientation of the ellipse and its stripes
    colour: tuple[float, float, float]  # reflectance of the base colour
    stripe_colour: tuple[float, float, float]
    stripe_period: float  # in units of ry
    brightness: float = 3.0  # illumination (3.0 = full sun in the procedural scene)


def random_moving_objects(rng: np.random.Generator, count: int) -> list[MovingObject]:
    """``count`` random objects placed over the lower two thirds of a 3:2 frame."""
    objects = []
    for _ in range(count):
        hue = rng.uniform(0.0, 1.0, 3)
        colour = 0.05 + 0.6 * (hue / hue.max()) ** 2  # saturated, reflectance <= 0.65
        speed = rng.uniform(0.05, 0.12)
        direction = rng.uniform(0, 2 * math.pi)
        ry = rng.uniform(0.04, 0.08)
        objects.append(
            MovingObject(
                centre=(float(rng.uniform(0.2, 1.3)), float(rng.uniform(0.35, 0.85))),
                velocity=(speed * math.cos(direction), 0.5 * speed * math.sin(direction)),
                radii=(float(ry * rng.uniform(0.6, 1.6)), float(ry)),
                angle=float(rng.uniform(-0.6, 0.6)),
                colour=tuple(float(v) for v in colour),
                stripe_colour=tuple(float(v) for v in rng.uniform(0.02, 0.8, 3)),
                stripe_period=float(rng.uniform(0.25, 0.6)),
                brightness=float(rng.choice([3.0, 0.35])),
            )
        )
    return objects


def paste_moving_object(radiance: np.ndarray, obj: MovingObject, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``obj`` at time ``t`` over ``radiance`` (H, W, 3), without modifying it.

    Returns (new radiance (H, W, 3) float32, coverage (H, W) float32 in [0, 1]).
    The object is anti-aliased and striped so registration and deghosting see
    texture, not a flat blob.
    """
    height, width = radiance.shape[:2]
    scale = float(height)  # normalised units -> pixels
    cx = (obj.centre[0] + obj.velocity[0] * t) * scale - 0.5
    cy = (obj.centre[1] + obj.velocity[1] * t) * scale - 0.5
    rx, ry = obj.radii[0] * scale, obj.radii[1] * scale
    reach = max(rx, ry) + 2
    x0, x1 = max(0, int(cx - reach)), min(width, int(cx + reach) + 1)
    y0, y1 = max(0, int(cy - reach)), min(height, int(cy + reach) + 1)
    out = np.array(radiance, dtype=np.float32, copy=True)
    cover = np.zeros((height, width), np.float32)
    if x0 >= x1 or y0 >= y1:
        return out, cover
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    cos, sin = math.cos(obj.angle), math.sin(obj.angle)
    u = (xs * cos + ys * sin) / rx
    v = (-xs * sin + ys * cos) / ry
    r = np.sqrt(u * u + v * v)
    # Distance to the rim in pixels, roughly, for one pixel of anti-aliasing.
    mask = np.clip((1.0 - r) * min(rx, ry) + 0.5, 0.0, 1.0).astype(np.float32)
    stripes = 0.5 + 0.5 * np.sin(2 * math.pi * v / obj.stripe_period)
    stripes = np.clip((stripes - 0.5) * 4.0 + 0.5, 0.0, 1.0)[..., None]
    base, stripe = np.array(obj.colour, np.float32), np.array(obj.stripe_colour, np.float32)
    shading = np.clip(1.0 - 0.35 * (u + v), 0.4, 1.3)[..., None]  # lit from the upper left
    colour = (base + stripes * (stripe - base)) * shading * np.float32(obj.brightness)
    m = mask[..., None]
    out[y0:y1, x0:x1] += m * (colour - out[y0:y1, x0:x1])
    cover[y0:y1, x0:x1] = mask
    return out, cover


@dataclass(frozen=True, eq=False)
class RenderedBracket:
    """A simulated exposure bracket with its ground truth.

    ``frames``, ``evs``, ``homographies``, ``exposure_times`` and ``object_masks``
    are in the order of the ``evs`` given to :func:`render_bracket`.
    """

    frames: list[np.ndarray]  # (H, W, 3) float32 linear, clipped to [0, 1]
    evs: list[float]
    homographies: list[np.ndarray]  # (3, 3): reference pixel -> frame pixel; identity for the reference
    exposure_times: list[float]  # seconds
    reference: int  # index of the reference (middle-EV) frame
    base_exposure: float  # frame = clip(scene * base_exposure * 2**ev) before noise
    radiance: np.ndarray = field(repr=False)  # (H, W, 3) float32 scene at the reference time, reference geometry
    object_masks: list[np.ndarray] = field(default_factory=list, repr=False)  # (H, W) moving-object coverage per frame, frame geometry

    def ground_truth(self) -> np.ndarray:
        """(H, W, 3) float32 linear HDR in the reference frame's units (1.0 = its clipping level)."""
        return self.radiance * np.float32(self.base_exposure * 2.0 ** self.evs[self.reference])


def reference_index(evs: Sequence[float]) -> int:
    """Index of the middle exposure: the lower median of the EVs (the darker one of two)."""
    order = sorted(range(len(evs)), key=lambda i: evs[i])
    return order[(len(evs) - 1) // 2]


def render_bracket(
    radiance: np.ndarray,
    evs: Sequence[float],
    *,
    seed: int,
    base_exposure: float | None = None,
    shake_px: float = 0.0,
    shake_deg: float = 0.0,
    moving_objects: int = 0,
    noise: bool = True,
) -> RenderedBracket:
    """Photograph ``radiance`` (H, W, 3) as an exposure bracket.

    ``evs``: exposure of each frame in stops relative to ``base_exposure``.
    ``base_exposure`` defaults to the value that puts the scene's median luma at
    middle grey (0.18) in the reference frame. Each non-reference frame gets its
    own random hand shake (``shake_px``, ``shake_deg``); ``moving_objects``
    objects move between frames (one unit of time per frame index). Noise,
    shake and objects use separate generators derived from ``seed``.
    """
    if len(evs) < 1:
        raise ValueError("render_bracket needs at least one EV")
    scene = np.asarray(radiance, np.float32)
    if scene.ndim != 3 or scene.shape[2] != 3:
        raise ValueError(f"render_bracket needs (H, W, 3) radiance, got shape {scene.shape}")
    height, width = scene.shape[:2]
    evs = [float(e) for e in evs]
    ref = reference_index(evs)
    if base_exposure is None:
        median = float(np.median(luma(scene)))
        base_exposure = MIDDLE_GREY / (max(median, 1e-12) * 2.0 ** evs[ref])

    shake_rng = np.random.default_rng([seed, 1])
    objects = random_moving_objects(np.random.default_rng([seed, 2]), moving_objects)
    noise_rng = np.random.default_rng([seed, 3])

    frames, homographies, masks = [], [], []
    ref_scene = scene
    for i, ev in enumerate(evs):
        t = float(i - ref)
        frame_scene = scene
        cover = np.zeros((height, width), np.float32)
        for obj in objects:
            frame_scene, c = paste_moving_object(frame_scene, obj, t)
            cover = np.maximum(cover, c)
        if i == ref:
            ref_scene = frame_scene
            hom = np.eye(3)
        else:
            hom = random_shake(shake_rng, height, width, shake_px, shake_deg)
        frame_scene = warp_homography(frame_scene, hom)
        cover = warp_homography(cover, hom)
        frames.append(expose(frame_scene, ev, base_exposure=base_exposure, rng=noise_rng, noise=noise))
        homographies.append(hom)
        masks.append(cover)

    return RenderedBracket(
        frames=frames,
        evs=evs,
        homographies=homographies,
        exposure_times=[BASE_EXPOSURE_TIME * 2.0**ev for ev in evs],
        reference=ref,
        base_exposure=float(base_exposure),
        radiance=ref_scene,
        object_masks=masks,
    )
