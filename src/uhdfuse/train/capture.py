"""A training bracket photographed from scene radiance, with the target it should produce.

A *sample* is what the pipeline would hand the model for one bracket, plus the
target it should produce:

* ``frames`` (N, S, S, 3) float32: linear light as the pipeline decodes it (display
  files through the inverse sRGB curve, whatever curve the camera really used;
  RAW-like frames as quantised linear values), aligned to the reference frame;
* ``ev`` (N,) relative to the reference, ascending; ``reference`` its index;
* ``static`` (N, S, S, 3): the same bracket of the *static* scene (moving objects
  frozen where the reference frame saw them, no camera shake), same exposures,
  noise, response and quantisation;
* ``target`` (S, S, 3) display sRGB: our Mertens fusion of ``static``, what
  ``uhdfuse merge --engine mertens`` gives for it (see docs/training.md).

Every random choice is drawn from the generator given to :func:`render_sample` in
a fixed order (:func:`_draw_shot`, then registration, then the EV error), so a
sample is a pure function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from uhdfuse.align import align_bracket
from uhdfuse.classical import fuse_mertens
from uhdfuse.colour import luma, srgb_decode, srgb_encode
from uhdfuse.config import AlignConfig
from uhdfuse.errors import AlignmentFailed
from uhdfuse.synthetic import MovingObject, expose, paste_moving_object, random_shake, warp_homography
from uhdfuse.train.recipe import Recipe, margin
from uhdfuse.types import Bracket, Frame


@dataclass(frozen=True, eq=False)
class Sample:
    """One training bracket; see the module docstring. Arrays are float32."""

    frames: np.ndarray  # (N, S, S, 3) linear, aligned, what the model gets
    static: np.ndarray | None  # (N, S, S, 3) linear, the static scene, reference geometry; None when dropped
    ev: np.ndarray  # (N,) ascending, ev[reference] == 0
    reference: int
    target: np.ndarray  # (S, S, 3) display sRGB, fuse_mertens(static)
    moving: np.ndarray  # (S, S) coverage of the moving objects over the bracket's time, reference geometry
    info: dict  # source scene, encoding, flags (for logs and tests)


@dataclass(frozen=True, eq=False)
class _Shot:
    """The random choices of one bracket (see :func:`_draw_shot`)."""

    evs: list[float]  # (N,) ascending, evs[ref] == 0
    ref: int
    step: float  # EV between neighbouring frames
    key: float  # median linear luma of the reference frame
    base: float  # exposure that puts the scene's median radiance at ``key``
    moving: bool
    shaken: bool
    blurred: bool  # longer exposures show motion blur
    objects: list[MovingObject]
    full_well: float  # electrons at clipping
    read_noise: float  # electrons
    encoding: dict  # {"kind": "raw", "bits"} or {"kind": "display", "curve", "jpeg" (quality, 0: none)}
    homs: list[np.ndarray]  # (3, 3) reference -> frame, identity for the reference and tripod shots
    blur_angle: float  # radians, direction of camera-shake blur
    noise_seed: int


def response_curve(rng: np.random.Generator) -> np.ndarray:
    """A random camera response: (65536,) float32 display values for linear inputs linspace(0, 1).

    Monotone, 0 -> 0, 1 -> 1. A gamma between 1/1.7 and 1/2.6, or the sRGB curve,
    optionally followed by a contrast S-curve (a camera's picture style) or a
    highlight shoulder (filmic roll-off); the pipeline decodes every one of them with
    the sRGB curve, as it does for real JPEGs.
    """
    x = np.linspace(0.0, 1.0, 65536, dtype=np.float64)
    kind = rng.integers(3)
    if kind == 0:
        y = srgb_encode(x.astype(np.float32)).astype(np.float64)
    else:
        y = x ** (1.0 / rng.uniform(1.7, 2.6))
    shape = rng.integers(3)
    if shape == 1:  # S-curve around mid-grey, strength 0..0.6
        k = rng.uniform(0.0, 0.6)
        y = y + k * y * (1.0 - y) * (2.0 * y - 1.0) * 2.0
    elif shape == 2:  # shoulder: compress the highlights, Reinhard-like, renormalised to 1
        w = rng.uniform(0.8, 3.0)
        y = y * (1.0 + y / (w * w)) / (1.0 + y)
        y = y / y[-1]
    y = np.maximum.accumulate(np.clip(y, 0.0, 1.0))
    return y.astype(np.float32)


def _encode(linear: np.ndarray, encoding: dict) -> np.ndarray:
    """What the pipeline decodes from one captured frame: (H, W, 3) linear in [0, 1] -> float32 linear."""
    if encoding["kind"] == "raw":
        levels = float(2 ** encoding["bits"] - 1)
        return (np.round(linear * levels) / levels).astype(np.float32)
    curve = encoding["curve"]
    # a lookup (16-bit index) instead of np.interp: ten times faster, exact enough before 8-bit rounding
    display = curve[np.rint(linear * np.float32(curve.size - 1)).astype(np.int32)]
    codes = np.round(display * 255.0).astype(np.uint8)
    if encoding["jpeg"]:
        _, buf = cv2.imencode(".jpg", codes[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, encoding["jpeg"]])
        codes = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return srgb_decode(codes.astype(np.float32) / np.float32(255.0))


def _objects(rng: np.random.Generator, recipe: Recipe, median: float) -> list[MovingObject]:
    """Textured ellipses inside a square frame, lit relative to the scene's median radiance."""
    count = int(rng.integers(recipe.objects[0], recipe.objects[1] + 1))
    out = []
    for _ in range(count):
        hue = rng.uniform(0.0, 1.0, 3)
        speed = rng.uniform(*recipe.speed)
        direction = rng.uniform(0, 2 * math.pi)
        ry = rng.uniform(0.06, 0.18)
        out.append(MovingObject(
            centre=(float(rng.uniform(0.15, 0.85)), float(rng.uniform(0.15, 0.85))),
            velocity=(speed * math.cos(direction), speed * math.sin(direction)),
            radii=(float(ry * rng.uniform(0.6, 1.6)), float(ry)),
            angle=float(rng.uniform(-1.0, 1.0)),
            colour=tuple(float(v) for v in 0.05 + 0.6 * (hue / hue.max()) ** 2),
            stripe_colour=tuple(float(v) for v in rng.uniform(0.02, 0.8, 3)),
            stripe_period=float(rng.uniform(0.2, 0.6)),
            # reflectance ~0.3 x this: from 2 stops below to 3 above the scene's median
            brightness=float(median / 0.3 * 2.0 ** rng.uniform(-2.0, 3.0)),
        ))
    return out


def _scene_at(radiance: np.ndarray, objects: list[MovingObject], t: float, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """The scene at time ``t`` with objects smeared over ``duration`` (motion blur); (radiance, coverage)."""
    times = [t] if duration <= 0 or not objects else list(t + duration * np.linspace(-0.5, 0.5, 5))
    acc = np.zeros_like(radiance)
    cover = np.zeros(radiance.shape[:2], np.float32)
    for tt in times:
        scene = radiance
        for obj in objects:
            scene, c = paste_moving_object(scene, obj, tt)
            cover = np.maximum(cover, c)
        acc += scene
    return acc / np.float32(len(times)), cover


def _line_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Camera-shake blur: a box along a line of ``length`` pixels."""
    k = math.ceil(length) | 1
    kernel = np.zeros((k, k), np.float32)
    c = k // 2
    for s in np.linspace(-length / 2, length / 2, 4 * k):
        kernel[round(c + s * math.sin(angle)), round(c + s * math.cos(angle))] += 1.0
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT_101)


def _realign(frames: list[np.ndarray], evs: list[float], ref: int, homs: list[np.ndarray],
             rng: np.random.Generator, recipe: Recipe, use_aligner: bool) -> tuple[list[np.ndarray], str]:
    """Bring hand-held frames back to the reference geometry, imperfectly, as the pipeline would."""
    if use_aligner:
        bracket = Bracket(
            frames=tuple(Frame(Path(f"frame{i}"), f, "raw", 16) for i, f in enumerate(frames)),
            ev=tuple(evs), reference=ref, ev_source="user",
        )
        try:
            aligned = align_bracket(bracket, AlignConfig(model="auto", crop=False))
            return list(aligned.images), "aligner"
        except AlignmentFailed:
            pass  # too little texture in a small crop: fall back to the simulated residual
    out = []
    for i, (f, hom) in enumerate(zip(frames, homs)):
        if i == ref:
            out.append(f)
            continue
        err = np.eye(3)
        err[:2, 2] = rng.uniform(-recipe.residual_px, recipe.residual_px, 2)
        a = math.radians(rng.uniform(-0.05, 0.05))
        err[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
        estimate = hom @ err  # reference -> frame, slightly wrong
        h, w = f.shape[:2]
        back = cv2.warpPerspective(f, estimate, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_REPLICATE)
        out.append(np.clip(back, 0.0, float(f.max())))
    return out, "residual"


def _draw_shot(radiance: np.ndarray, rng: np.random.Generator, recipe: Recipe) -> _Shot:
    """Draw how one bracket of ``radiance`` (S + 2m, S + 2m, 3) is shot; the order of draws is fixed."""
    size = radiance.shape[0] - 2 * margin(recipe)
    m = margin(recipe)
    n = int(rng.integers(recipe.frames[0], recipe.frames[1] + 1))
    hi = min(recipe.ev_step[1], recipe.max_span / max(n - 1, 1))
    step = max(1.0 / 3.0, round(rng.uniform(min(recipe.ev_step[0], hi), hi) * 3.0) / 3.0)
    ref = (n - 1) // 2 if rng.random() >= recipe.random_reference else int(rng.integers(n))
    evs = [(i - ref) * step for i in range(n)]

    median = max(float(np.median(luma(radiance))), 1e-8)
    key = float(np.exp(rng.uniform(math.log(recipe.key[0]), math.log(recipe.key[1]))))
    moving = rng.random() < recipe.moving
    shaken = rng.random() < recipe.shake
    blurred = rng.random() < recipe.motion_blur
    objects = _objects(rng, recipe, median) if moving else []
    full_well = float(np.exp(rng.uniform(*np.log(recipe.full_well))))
    read_noise = float(rng.uniform(*recipe.read_noise))
    if rng.random() < recipe.raw:
        encoding: dict = {"kind": "raw", "bits": int(rng.choice([12, 14]))}
    else:
        encoding = {"kind": "display", "curve": response_curve(rng),
                    "jpeg": int(rng.integers(70, 96)) if rng.random() < recipe.jpeg else 0}
    homs = [random_shake(rng, size + 2 * m, size + 2 * m, recipe.shake_px, recipe.shake_deg)
            if shaken and i != ref else np.eye(3) for i in range(n)]
    blur_angle = rng.uniform(0, math.pi)
    noise_seed = int(rng.integers(2**63))
    return _Shot(evs=evs, ref=ref, step=step, key=key, base=key / median, moving=moving, shaken=shaken,
                 blurred=blurred, objects=objects, full_well=full_well, read_noise=read_noise, encoding=encoding,
                 homs=homs, blur_angle=blur_angle, noise_seed=noise_seed)


def _photograph(radiance: np.ndarray, shot: _Shot) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """The bracket as captured, the static scene's bracket and each frame's object coverage.

    Lists of N arrays, each (S + 2m, S + 2m, 3) linear (coverage (S + 2m, S + 2m)): frames in
    their own geometry, the static bracket and coverage in the reference geometry.
    """
    evs, ref = shot.evs, shot.ref
    static_scene, _ = _scene_at(radiance, shot.objects, 0.0, 0.0)
    frames, static, covers = [], [], []
    for i, ev in enumerate(evs):
        rel = 2.0 ** (ev - evs[ref])
        # exposure time as a share of the frame interval: the reference takes 1/20
        duration = min(0.9, 0.05 * rel) if shot.blurred and ev > evs[ref] else 0.0
        scene, cover = _scene_at(radiance, shot.objects, float(i - ref), duration)
        covers.append(cover)
        if shot.shaken:
            if shot.blurred and ev > evs[ref]:
                scene = _line_blur(scene, min(4.0, 0.5 * rel), shot.blur_angle)
            scene = warp_homography(scene, shot.homs[i])
        # the same noise field in both versions: they differ only where things move
        for version, src in ((frames, scene), (static, static_scene)):
            lin = expose(src, ev, base_exposure=shot.base, rng=np.random.default_rng([shot.noise_seed, i]),
                         full_well=shot.full_well, read_noise=shot.read_noise)
            version.append(_encode(lin, shot.encoding))
    return frames, static, covers


def _given_evs(shot: _Shot, rng: np.random.Generator, recipe: Recipe) -> np.ndarray:
    """(N,) float32 EVs the model is told: the true ones, off by up to ``recipe.ev_error`` except the reference."""
    n = len(shot.evs)
    given = np.asarray(shot.evs, np.float32)
    if recipe.ev_error > 0:
        # nominal EXIF or pixel-estimated EVs are never exact; kept below half a step so they stay ascending
        err = min(recipe.ev_error, shot.step / 2 - 0.01)
        given = given + np.where(np.arange(n) == shot.ref, 0.0, rng.uniform(-err, err, n)).astype(np.float32)
    return given


def _info(shot: _Shot, aligned_by: str) -> dict:
    """What a sample's logs and tests want to know about how it was shot."""
    encoding = shot.encoding
    return {"moving": shot.moving, "shaken": shot.shaken, "aligned_by": aligned_by, "motion_blur": shot.blurred,
            "encoding": encoding["kind"] if encoding["kind"] == "raw" else ("jpeg" if encoding["jpeg"] else "8bit"),
            "bits": encoding.get("bits", 8), "full_well": shot.full_well, "key": shot.key}


def render_sample(radiance: np.ndarray, rng: np.random.Generator, recipe: Recipe, *, align: bool = True) -> Sample:
    """Photograph a radiance crop as a bracket; see the module docstring.

    ``radiance``: (S + 2m, S + 2m, 3) float32 with m = :func:`margin` (room for camera
    shake; cropped away at the end). ``align=False`` leaves hand-held frames in their
    own geometry (for tools that align themselves).
    """
    size = radiance.shape[0] - 2 * margin(recipe)
    m = margin(recipe)
    shot = _draw_shot(radiance, rng, recipe)
    frames, static, covers = _photograph(radiance, shot)
    how = "none"
    if shot.shaken and align:
        frames, how = _realign(frames, shot.evs, shot.ref, shot.homs, rng, recipe, rng.random() < recipe.real_align)
    crop = (slice(m, m + size), slice(m, m + size))
    frames_a = np.stack([f[crop] for f in frames]).astype(np.float32)
    static_a = np.stack([f[crop] for f in static]).astype(np.float32)
    moving_mask = np.max(np.stack(covers), 0)[crop] if shot.moving else np.zeros((size, size), np.float32)
    info = _info(shot, how)
    return Sample(
        frames=frames_a, static=static_a, ev=_given_evs(shot, rng, recipe), reference=shot.ref,
        target=fuse_mertens(static_a), moving=moving_mask.astype(np.float32), info=info,
    )


__all__ = ["Sample", "render_sample", "response_curve"]
