"""The settings of a training run: :class:`TrainConfig`, read from configs/*.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from uhdfuse.errors import UsageError, first_line, param
from uhdfuse.nn.ipl import VARIANTS
from uhdfuse.train.loss import LossConfig
from uhdfuse.train.recipe import Recipe


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; configs/*.json hold these keys (``data`` and ``loss`` nested)."""

    name: str = "ipl-base"  # weights file stem
    variant: str = "ipl_base"  # a key of uhdfuse.nn.ipl.VARIANTS
    seed: int = 0
    steps: int = 1000
    batch: int = 8
    lr: float = 2e-3
    min_lr: float = 1e-4  # end of the cosine
    warmup: int = 100  # linear warm-up steps
    weight_decay: float = 0.01  # on matrices only, not on norms or biases
    grad_clip: float = 1.0
    pool: int = 256  # samples kept in memory
    refresh_every: int = 8  # steps between pool refreshes
    refresh: int = 4  # samples replaced at each refresh (oldest first)
    log_every: int = 50
    checkpoint_every: int = 500
    val_every: int = 500
    val_samples: int = 32
    procedural_only: bool = False  # ignore ../shared/data (CI)
    device: str = "auto"  # a uhdfuse.config.Device: auto | cpu | cuda | mps
    threads: int = 1  # torch CPU threads (on a shared 2-core machine 1 beats 2, see docs/training.md)
    max_minutes: float | None = None  # safety stop: finish (weights included) once training time exceeds this
    run_dir: str = "runs/ipl-base"  # relative to the current directory
    init: str | None = None  # start from these weights (.safetensors, relative to the current directory), not a seeded init
    data: Recipe = field(default_factory=Recipe)
    loss: LossConfig = field(default_factory=LossConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["data"], d["loss"] = self.data.to_dict(), self.loss.to_dict()
        return d

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown training config keys {unknown}")
        values = dict(values)
        values["data"] = Recipe.from_dict(values.get("data", {}))
        values["loss"] = LossConfig.from_dict(values.get("loss", {}))
        cfg = cls(**values)
        if cfg.variant not in VARIANTS:
            raise UsageError(f"unknown {param('variant')} {cfg.variant!r}; choose one of {', '.join(VARIANTS)}")
        if cfg.pool < cfg.batch or cfg.refresh > cfg.pool:
            raise UsageError(f"{param('pool')} must hold at least one {param('batch')} and at least one {param('refresh')}")
        return cfg


def load_config(path: Path) -> TrainConfig:
    """A :class:`TrainConfig` from a JSON file; UsageError naming the file when it is unusable."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"unreadable training config ({first_line(exc)})", path) from None
    try:
        return TrainConfig.from_dict(values)
    except UsageError as exc:
        raise UsageError(exc.reason, path) from None
    except TypeError as exc:  # a value of the wrong kind, e.g. a list where the recipe wants a mapping
        raise UsageError(first_line(exc), path) from None


__all__ = ["TrainConfig", "load_config"]
