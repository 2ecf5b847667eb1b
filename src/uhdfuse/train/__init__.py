"""Training of the IPL fusion model: data synthesis (:mod:`.data`), loss (:mod:`.loss`),
loop (:mod:`.loop`); ``python -m uhdfuse.train --config configs/ipl-cpu.json``. See docs/training.md."""

from uhdfuse.train.data import (
    HELDOUT_FILES,
    HELDOUT_SEEDS,
    Recipe,
    Sample,
    heldout_cases,
    make_sample,
)
from uhdfuse.train.loop import TrainConfig, load_config, train
from uhdfuse.train.loss import LossConfig, fusion_loss

__all__ = [
    "HELDOUT_FILES", "HELDOUT_SEEDS", "LossConfig", "Recipe", "Sample", "TrainConfig",
    "fusion_loss", "heldout_cases", "load_config", "make_sample", "train",
]
