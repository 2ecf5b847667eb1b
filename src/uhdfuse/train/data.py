"""Training brackets for IPL, rendered from scene radiance we can trust.

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

Scene radiance comes from the HDR maps in ``../shared/data`` (OpenEXR samples,
Poly Haven HDRIs, Debevec's memorial) and from :func:`uhdfuse.synthetic.procedural_scene`.
Some of them are held out (:data:`HELDOUT_FILES`, :data:`HELDOUT_SEEDS`) and only
reach :func:`heldout_cases`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from uhdfuse.align import align_bracket
from uhdfuse.classical import fuse_mertens
from uhdfuse.colour import luma, srgb_decode
from uhdfuse.config import AlignConfig
from uhdfuse.errors import AlignmentFailed, UnsupportedInput, UsageError
from uhdfuse.synthetic import (
    MovingObject,
    expose,
    paste_moving_object,
    procedural_scene,
    random_shake,
    warp_homography,
)
from uhdfuse.types import Bracket, Frame

Split = Literal["train", "heldout"]

# ../shared/data seen from a source checkout (src/uhdfuse/train/data.py -> repository -> its parent)
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"

TRAIN_FILES: tuple[str, ...] = (
    "openexr_hdr/MtTamWest.exr",
    "openexr_hdr/Desk.exr",
    "openexr_hdr/StillLife.exr",
    "openexr_hdr/GoldenGate.exr",
    "polyhaven_cc0_hdri/city.exr",
    "polyhaven_cc0_hdri/forest.exr",
    "polyhaven_cc0_hdri/interior.exr",
    "polyhaven_cc0_hdri/night.exr",
    "polyhaven_cc0_hdri/studio.exr",
    "polyhaven_cc0_hdri/sunrise.exr",
    "polyhaven_cc0_hdri/sunset.exr",
)
# Never used in training. The memorial is also one of the real static brackets of the
# quality benchmark, so training on its radiance would leak that scene.
HELDOUT_FILES: tuple[str, ...] = (
    "debevec_memorial/memorial.hdr",
    "openexr_hdr/Tree.exr",
    "polyhaven_cc0_hdri/courtyard.exr",
)
# Procedural seeds: training draws from [0, TRAIN_SEED_LIMIT); these are held out.
TRAIN_SEED_LIMIT = 1_000_000
HELDOUT_SEEDS: tuple[int, ...] = tuple(range(1_000_000, 1_000_008))

_PROCEDURAL_SIZE = (360, 540)  # rendered once per seed, then cropped like a photograph


@dataclass(frozen=True)
class Recipe:
    """How brackets are drawn; recorded in the weights manifest. Ranges are (low, high)."""

    crop: int = 160  # S, sample side in pixels
    frames: tuple[int, int] = (2, 9)
    ev_step: tuple[float, float] = (1.0, 3.0)  # rounded to 1/3 EV, as cameras step
    max_span: float = 12.0  # largest EV range of a bracket
    random_reference: float = 0.2  # share of brackets whose reference is not the middle frame
    key: tuple[float, float] = (0.04, 0.4)  # median linear luma of the reference frame (log-uniform)
    scale: tuple[float, float] = (0.3, 1.0)  # crop resampling of the radiance maps (1 = native pixels)
    moving: float = 0.5  # share of brackets with moving objects
    objects: tuple[int, int] = (1, 3)
    speed: tuple[float, float] = (0.03, 0.15)  # object motion per frame, in crop heights
    shake: float = 0.5  # share of hand-held brackets
    shake_px: float = 3.0
    shake_deg: float = 0.4
    real_align: float = 0.5  # share of hand-held brackets re-aligned by uhdfuse.align (else a simulated residual)
    residual_px: float = 1.0  # simulated misalignment left by registration, per axis
    motion_blur: float = 0.5  # share of brackets whose longer exposures show motion blur
    raw: float = 0.25  # share of linear RAW-like brackets (12 or 14 bits)
    jpeg: float = 0.3  # share of display brackets saved as JPEG (quality 70-95)
    full_well: tuple[float, float] = (3000.0, 60000.0)  # electrons at clipping (log-uniform)
    read_noise: tuple[float, float] = (1.0, 10.0)  # electrons
    real_share: float = 0.6  # share of samples from the shared HDR maps (0 when they are absent)
    ev_error: float = 0.0  # EVs given to the model are off by up to this (uniform, per non-reference frame)
    procedural_scenes: int = 24  # training seeds rendered per run

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Recipe:
        """A recipe from JSON values (lists become tuples); UsageError on unknown keys."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UsageError(f"unknown data recipe keys {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


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


# -- radiance files ----------------------------------------------------------------------

def read_radiance(path: Path) -> np.ndarray:
    """An HDR radiance map (.exr via the OpenEXR package, .hdr Radiance RGBE) as (H, W, 3) float32 >= 0."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".exr":
        try:
            import OpenEXR  # optional: only training needs it
        except ModuleNotFoundError:
            raise UnsupportedInput("reading EXR needs the OpenEXR package (pip install OpenEXR)", path) from None
        try:
            channels = OpenEXR.File(str(path)).channels()
        except (OSError, RuntimeError, ValueError) as exc:  # OpenEXR raises RuntimeError for corrupt files
            raise UnsupportedInput(f"not a readable EXR file ({exc})", path) from None
        key = "RGB" if "RGB" in channels else "RGBA" if "RGBA" in channels else None
        if key is None:
            raise UnsupportedInput(f"EXR without RGB channels (has {sorted(channels)})", path)
        image = np.asarray(channels[key].pixels)[..., :3].astype(np.float32)
    elif suffix == ".hdr":
        image = _read_rgbe(path)
    else:
        raise UnsupportedInput("not an HDR radiance map (.exr or .hdr)", path)
    # Lossy EXR compression leaves tiny negative values; a file may hold NaN/inf.
    return np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0).clip(0.0, None)


def _read_rgbe(path: Path) -> np.ndarray:
    """Radiance RGBE (.hdr), new-style run-length encoded or flat, as (H, W, 3) float32."""
    data = path.read_bytes()
    end = data.find(b"\n\n")
    # the "#?" magic is usually first, but some writers put other header lines before it
    if end < 0 or (b"#?" not in data[:end] and b"FORMAT=32-bit_rle_rgbe" not in data[:end]):
        raise UnsupportedInput("not a Radiance RGBE file", path)
    line_end = data.index(b"\n", end + 2)
    size = data[end + 2: line_end].split()
    if len(size) != 4 or size[0] != b"-Y" or size[2] != b"+X":
        raise UnsupportedInput(f"unsupported RGBE orientation {b' '.join(size).decode(errors='replace')}", path)
    height, width = int(size[1]), int(size[3])
    raw = data[line_end + 1:]  # bytes: scalar reads as Python ints (fast, no uint8 overflow)
    buf = np.frombuffer(raw, np.uint8)
    rgbe = np.empty((height, width, 4), np.uint8)
    pos = 0
    try:
        for y in range(height):
            if 8 <= width < 32768 and raw[pos] == 2 and raw[pos + 1] == 2 and (raw[pos + 2] << 8 | raw[pos + 3]) == width:
                pos += 4
                for c in range(4):
                    x = 0
                    while x < width:
                        count = raw[pos]
                        if count > 128:  # a run of one value
                            count -= 128
                            rgbe[y, x: x + count, c] = raw[pos + 1]
                            pos += 2
                        else:  # literal values
                            rgbe[y, x: x + count, c] = buf[pos + 1: pos + 1 + count]
                            pos += 1 + count
                        x += count
            else:
                rgbe[y] = buf[pos: pos + 4 * width].reshape(width, 4)
                pos += 4 * width
    except (IndexError, ValueError):
        raise UnsupportedInput("truncated or corrupt RGBE data", path) from None
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0).astype(np.float32)
    return (rgbe[..., :3].astype(np.float32) + 0.5) * scale[..., None]


# -- scene library -----------------------------------------------------------------------

class SceneLibrary:
    """Scene radiance of one split: HDR files (loaded lazily, kept) and procedural seeds (rendered lazily, kept).

    ``data_dir=None`` or a missing folder means procedural scenes only (with a warning
    when the folder was expected but is absent).
    """

    def __init__(self, split: Split, data_dir: Path | None, *, procedural_seeds: tuple[int, ...], real_share: float) -> None:
        self.split = split
        self.procedural_seeds = procedural_seeds
        names = TRAIN_FILES if split == "train" else HELDOUT_FILES
        self.files: list[Path] = []
        if data_dir is not None:
            present = [Path(data_dir) / n for n in names if (Path(data_dir) / n).is_file()]
            if not present:
                warnings.warn(f"{data_dir}: no shared HDR radiance maps found; using procedural scenes only",
                              UserWarning, stacklevel=2)
            else:
                try:
                    import OpenEXR  # noqa: F401
                except ModuleNotFoundError:
                    warnings.warn("the OpenEXR package is missing: skipping the .exr radiance maps", UserWarning, stacklevel=2)
                    present = [p for p in present if p.suffix.lower() != ".exr"]
            self.files = present
        self.real_share = real_share if self.files else 0.0
        self._cache: dict[str, np.ndarray] = {}

    def scene(self, key: str) -> np.ndarray:
        """Radiance of a file path or ``procedural:SEED``, (H, W, 3) float32."""
        if key not in self._cache:
            if key.startswith("procedural:"):
                # anti-aliased edges may undershoot a little below zero: no light is negative
                scene = procedural_scene(*_PROCEDURAL_SIZE, seed=int(key.split(":")[1]))
                self._cache[key] = np.maximum(scene, 0.0, out=scene)
            else:
                image = read_radiance(Path(key))
                if Path(key).parent.name == "polyhaven_cc0_hdri":
                    # equirectangular panoramas: keep the band around the horizon, the poles are stretched
                    h = image.shape[0]
                    image = image[h // 4: 3 * h // 4]
                self._cache[key] = np.ascontiguousarray(image)
        return self._cache[key]

    def draw(self, rng: np.random.Generator, size: int, scale: tuple[float, float]) -> tuple[np.ndarray, str]:
        """A random (size, size, 3) radiance crop and the name of its scene."""
        if self.files and rng.random() < self.real_share:
            key = str(self.files[rng.integers(len(self.files))])
            name = f"{Path(key).parent.name}/{Path(key).name}"
        else:
            seed = int(self.procedural_seeds[rng.integers(len(self.procedural_seeds))])
            key = name = f"procedural:{seed}"
        image = self.scene(key)
        h, w = image.shape[:2]
        s = float(np.exp(rng.uniform(math.log(scale[0]), math.log(scale[1]))))
        side = int(min(round(size / s), h, w))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = image[y: y + side, x: x + side]
        if side != size:
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        return np.ascontiguousarray(crop, dtype=np.float32), name


def training_library(data_dir: Path | None, recipe: Recipe, seed: int) -> SceneLibrary:
    """The training scenes: :data:`TRAIN_FILES` and ``recipe.procedural_scenes`` seeds below the held-out ones."""
    seeds = np.random.default_rng([seed, 11]).choice(TRAIN_SEED_LIMIT, recipe.procedural_scenes, replace=False)
    return SceneLibrary("train", data_dir, procedural_seeds=tuple(int(s) for s in seeds), real_share=recipe.real_share)


def heldout_library(data_dir: Path | None) -> SceneLibrary:
    """The held-out scenes: :data:`HELDOUT_FILES` and :data:`HELDOUT_SEEDS`, half and half."""
    return SceneLibrary("heldout", data_dir, procedural_seeds=HELDOUT_SEEDS, real_share=0.5)


# -- camera ----------------------------------------------------------------------------------

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
        from uhdfuse.colour import srgb_encode

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


def render_sample(radiance: np.ndarray, rng: np.random.Generator, recipe: Recipe, *, align: bool = True) -> Sample:
    """Photograph a radiance crop as a bracket; see the module docstring.

    ``radiance``: (S + 2m, S + 2m, 3) float32 with m = :func:`margin` (room for camera
    shake; cropped away at the end). ``align=False`` leaves hand-held frames in their
    own geometry (for tools that align themselves).
    """
    size = radiance.shape[0] - 2 * margin(recipe)
    m = margin(recipe)
    n = int(rng.integers(recipe.frames[0], recipe.frames[1] + 1))
    hi = min(recipe.ev_step[1], recipe.max_span / max(n - 1, 1))
    step = max(1.0 / 3.0, round(rng.uniform(min(recipe.ev_step[0], hi), hi) * 3.0) / 3.0)
    ref = (n - 1) // 2 if rng.random() >= recipe.random_reference else int(rng.integers(n))
    evs = [(i - ref) * step for i in range(n)]

    median = max(float(np.median(luma(radiance))), 1e-8)
    key = float(np.exp(rng.uniform(math.log(recipe.key[0]), math.log(recipe.key[1]))))
    base = key / median
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

    static_scene, _ = _scene_at(radiance, objects, 0.0, 0.0)
    frames, static, covers = [], [], []
    for i, ev in enumerate(evs):
        rel = 2.0 ** (ev - evs[ref])
        # exposure time as a share of the frame interval: the reference takes 1/20
        duration = min(0.9, 0.05 * rel) if blurred and ev > evs[ref] else 0.0
        scene, cover = _scene_at(radiance, objects, float(i - ref), duration)
        covers.append(cover)
        if shaken:
            if blurred and ev > evs[ref]:
                scene = _line_blur(scene, min(4.0, 0.5 * rel), blur_angle)
            scene = warp_homography(scene, homs[i])
        # the same noise field in both versions: they differ only where things move
        for version, src in ((frames, scene), (static, static_scene)):
            lin = expose(src, ev, base_exposure=base, rng=np.random.default_rng([noise_seed, i]),
                         full_well=full_well, read_noise=read_noise)
            version.append(_encode(lin, encoding))
    how = "none"
    if shaken and align:
        frames, how = _realign(frames, evs, ref, homs, rng, recipe, rng.random() < recipe.real_align)
    crop = (slice(m, m + size), slice(m, m + size))
    frames_a = np.stack([f[crop] for f in frames]).astype(np.float32)
    static_a = np.stack([f[crop] for f in static]).astype(np.float32)
    moving_mask = np.max(np.stack(covers), 0)[crop] if moving else np.zeros((size, size), np.float32)
    info = {"moving": moving, "shaken": shaken, "aligned_by": how, "motion_blur": blurred,
            "encoding": encoding["kind"] if encoding["kind"] == "raw" else ("jpeg" if encoding["jpeg"] else "8bit"),
            "bits": encoding.get("bits", 8), "full_well": full_well, "key": key}
    given = np.asarray(evs, np.float32)
    if recipe.ev_error > 0:
        # nominal EXIF or pixel-estimated EVs are never exact; kept below half a step so they stay ascending
        err = min(recipe.ev_error, step / 2 - 0.01)
        given = given + np.where(np.arange(n) == ref, 0.0, rng.uniform(-err, err, n)).astype(np.float32)
    return Sample(
        frames=frames_a, static=static_a, ev=given, reference=ref,
        target=fuse_mertens(static_a), moving=moving_mask.astype(np.float32), info=info,
    )


def margin(recipe: Recipe) -> int:
    """Pixels rendered around the crop so camera shake never shows the scene's border."""
    return math.ceil(recipe.shake_px * 1.5 + 2) if recipe.shake > 0 else 0


def make_sample(library: SceneLibrary, recipe: Recipe, seed: list[int] | int, *, keep_static: bool = True) -> Sample:
    """The sample of one seed: a pure function of (library, recipe, seed).

    ``keep_static=False`` drops the static bracket once the target is made (halves a pool's memory).
    """
    rng = np.random.default_rng(seed)
    radiance, name = library.draw(rng, recipe.crop + 2 * margin(recipe), recipe.scale)
    sample = render_sample(radiance, rng, recipe)
    sample.info["scene"] = name
    return sample if keep_static else replace(sample, static=None)


# -- held-out split --------------------------------------------------------------------------

HeldoutCase = tuple[np.ndarray, np.ndarray, tuple[float, ...], int]


def heldout_cases(n: int, seed: int = 0, *, size: int = 256, aligned: bool = True,
                  data_dir: Path | None = DEFAULT_DATA_DIR) -> list[HeldoutCase]:
    """``n`` moving (and, half of them, hand-held) brackets of held-out scenes, with their static counterparts.

    Returns a list of ``(moving, static, ev, ref)``: ``moving`` and ``static`` are
    (N, size, size, 3) float32 linear as the pipeline decodes them (display frames:
    8-bit codes through the inverse sRGB curve, so ``round(srgb_encode(x) * 255)``
    gives the exact 8-bit file back; no RAW-like frames here), ``ev`` ascending
    relative to the reference, ``ref`` the reference index. ``aligned=False``
    returns hand-held moving frames in their own geometry (for tools that align
    themselves); otherwise they went through ``uhdfuse.align``. Scenes:
    :data:`HELDOUT_FILES` (when ``data_dir`` has them) and :data:`HELDOUT_SEEDS`.
    """
    library = heldout_library(data_dir)
    recipe = Recipe(crop=size, moving=1.0, shake=0.5, real_align=1.0, raw=0.0, jpeg=0.0, objects=(1, 2),
                    scale=(0.5, 1.0), random_reference=0.0)
    cases = []
    for k in range(n):
        rng = np.random.default_rng([seed, 23, k])
        radiance, _ = library.draw(rng, size + 2 * margin(recipe), recipe.scale)
        s = render_sample(radiance, rng, recipe, align=aligned)
        cases.append((s.frames, s.static, tuple(float(e) for e in s.ev), s.reference))
    return cases


__all__ = [
    "DEFAULT_DATA_DIR", "HELDOUT_FILES", "HELDOUT_SEEDS", "TRAIN_FILES", "Recipe", "Sample", "SceneLibrary",
    "heldout_cases", "heldout_library", "make_sample", "margin", "read_radiance", "render_sample",
    "response_curve", "training_library",
]
