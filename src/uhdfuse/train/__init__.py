"""Training of the IPL fusion model: data synthesis (:mod:`.data`: scenes, capture, recipe),
loss (:mod:`.loss`), loop (:mod:`.loop`: the :class:`Trainer`, run folders in :mod:`.run_folder`);
``python -m uhdfuse.train --config configs/ipl-cpu.json``. See docs/training.md."""

from uhdfuse.train.capture import Sample
from uhdfuse.train.config import TrainConfig, load_config
from uhdfuse.train.data import heldout_cases, make_sample
from uhdfuse.train.loop import Trainer, train
from uhdfuse.train.loss import LossConfig, fusion_loss
from uhdfuse.train.recipe import Recipe
from uhdfuse.train.scenes import HELDOUT_FILES, HELDOUT_SEEDS

__all__ = [
    "HELDOUT_FILES", "HELDOUT_SEEDS", "LossConfig", "Recipe", "Sample", "TrainConfig", "Trainer",
    "fusion_loss", "heldout_cases", "load_config", "make_sample", "train",
]
