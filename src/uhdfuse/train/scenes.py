"""The scenes training draws radiance from, split into training and held-out scenes.

Scene radiance comes from the HDR maps in ``../shared/data`` (OpenEXR samples,
Poly Haven HDRIs, Debevec's memorial) and from :func:`uhdfuse.synthetic.procedural_scene`.
Some of them are held out (:data:`HELDOUT_FILES`, :data:`HELDOUT_SEEDS`) and never
reach training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from uhdfuse.errors import Message
from uhdfuse.synthetic import procedural_scene
from uhdfuse.train.radiance import read_radiance
from uhdfuse.train.recipe import Recipe

Split = Literal["train", "heldout"]

# ../shared/data seen from a source checkout (src/uhdfuse/train/scenes.py -> repository -> its parent)
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


def _present_files(names: tuple[str, ...], data_dir: Path) -> tuple[list[Path], tuple[Message, ...]]:
    """The files of ``names`` found in ``data_dir`` that can be read, and notes on what is missing."""
    present = [Path(data_dir) / n for n in names if (Path(data_dir) / n).is_file()]
    if not present:
        return [], (Message(f"{data_dir}: no shared HDR radiance maps found; using procedural scenes only"),)
    try:
        import OpenEXR  # noqa: F401
    except ModuleNotFoundError:
        kept = [p for p in present if p.suffix.lower() != ".exr"]
        return kept, (Message("the OpenEXR package is missing: skipping the .exr radiance maps"),)
    return present, ()


class SceneLibrary:
    """Scene radiance of one split: HDR files (loaded lazily, kept) and procedural seeds (rendered lazily, kept).

    ``data_dir=None`` or a missing folder means procedural scenes only. ``notes``: what
    the library could not use (the folder was given but holds no maps, OpenEXR is
    missing), for the caller to report.
    """

    def __init__(self, split: Split, data_dir: Path | None, *, procedural_seeds: tuple[int, ...], real_share: float) -> None:
        self.split = split
        self.procedural_seeds = procedural_seeds
        names = TRAIN_FILES if split == "train" else HELDOUT_FILES
        self.files: list[Path] = []
        self.notes: tuple[Message, ...] = ()
        if data_dir is not None:
            self.files, self.notes = _present_files(names, data_dir)
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


__all__ = [
    "DEFAULT_DATA_DIR", "HELDOUT_FILES", "HELDOUT_SEEDS", "TRAIN_FILES", "TRAIN_SEED_LIMIT", "SceneLibrary",
    "heldout_library", "training_library",
]
