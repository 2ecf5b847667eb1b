"""The samples a run trains on: a pool refreshed on a fixed schedule, and the batch of each step."""

from __future__ import annotations

import numpy as np
import torch

from uhdfuse.train.capture import Sample
from uhdfuse.train.config import TrainConfig
from uhdfuse.train.data import make_sample
from uhdfuse.train.scenes import SceneLibrary


class SamplePool:
    """``cfg.pool`` samples; sample id ``k`` lives in slot ``k % pool``, ids are made in order.

    At step ``s`` the ids made so far are ``pool + (s // refresh_every) * refresh``, so
    the pool's content is a function of ``s`` alone.
    """

    def __init__(self, cfg: TrainConfig, library: SceneLibrary) -> None:
        self.cfg = cfg
        self.library = library
        self.slots: list[Sample | None] = [None] * cfg.pool
        self.made = 0

    def _made_by(self, step: int) -> int:
        return self.cfg.pool + (step // self.cfg.refresh_every) * self.cfg.refresh

    def advance(self, step: int) -> int:
        """Make the samples the pool holds at ``step``; returns how many were made now."""
        goal = self._made_by(step)
        first = max(self.made, goal - self.cfg.pool)  # older ids would be overwritten anyway
        for k in range(first, goal):
            self.slots[k % self.cfg.pool] = make_sample(self.library, self.cfg.data, [self.cfg.seed, k], keep_static=False)
        self.made = goal
        return goal - first

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch of step ``step``: frames (B, N, S, S, 3), ev (B, N), ref (B,), target (B, S, S, 3).

        One N per batch (the model takes any N, but a batch must share it): the N of a
        random slot, then ``batch`` samples with that N.
        """
        rng = np.random.default_rng([self.cfg.seed, 7, step])
        slots = [s for s in self.slots if s is not None]
        n = slots[int(rng.integers(len(slots)))].frames.shape[0]
        same = [s for s in slots if s.frames.shape[0] == n]
        pick = [same[int(i)] for i in rng.integers(len(same), size=self.cfg.batch)]
        return stack(pick)


def stack(samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples with equal frame counts -> (frames, ev, ref, target) tensors (see SamplePool.batch)."""
    x = torch.from_numpy(np.stack([s.frames for s in samples]))
    ev = torch.from_numpy(np.stack([s.ev for s in samples]))
    ref = torch.tensor([s.reference for s in samples], dtype=torch.long)
    target = torch.from_numpy(np.stack([s.target for s in samples]))
    return x, ev, ref, target


__all__ = ["SamplePool", "stack"]
