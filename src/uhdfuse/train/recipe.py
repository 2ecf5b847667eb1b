"""How training brackets are drawn: the :class:`Recipe`, recorded in every weights manifest."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from uhdfuse.errors import UsageError


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


def margin(recipe: Recipe) -> int:
    """Pixels rendered around the crop so camera shake never shows the scene's border."""
    return math.ceil(recipe.shake_px * 1.5 + 2) if recipe.shake > 0 else 0


__all__ = ["Recipe", "margin"]
