"""What a run folder holds: ``config.json``, ``log.jsonl`` (:class:`RunLog`) and ``checkpoint.pt``.

A checkpoint holds the model, the optimizer, the step, the torch RNG states, the
resolved config (a resumed run must use the same) and the wall time so far: plain
tensors and containers, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TextIO

import torch

from uhdfuse.errors import UsageError, param
from uhdfuse.nn.ipl import IPL
from uhdfuse.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"
LOG = "log.jsonl"


def check_run_folder(run_dir: Path, resume: bool) -> Path:
    """The checkpoint path of ``run_dir``; UsageError when resuming finds none, or when a
    fresh run would overwrite one."""
    path = run_dir / CHECKPOINT
    if resume and not path.is_file():
        raise UsageError("no checkpoint to resume from", path)
    if not resume and path.exists():
        raise UsageError(f"run folder has a checkpoint; pass {param('resume', True)} or choose another {param('run_dir')}",
                         path)
    return path


def write_config(run_dir: Path, cfg: TrainConfig) -> None:
    """``config.json``: the resolved config of the run, for people (a checkpoint carries its own)."""
    (run_dir / CONFIG).write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def save_checkpoint(path: Path, model: IPL, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig,
                    elapsed: float) -> None:
    """Write the checkpoint of ``step`` atomically (a temporary file, then a rename)."""
    state = {
        "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(), "config": json.dumps(cfg.to_dict()), "elapsed": elapsed,
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint


def load_checkpoint(path: Path, model: IPL, opt: torch.optim.Optimizer, cfg: TrainConfig) -> tuple[int, float]:
    """Restore model, optimizer and RNG states from ``path``; returns (step, elapsed seconds).

    UsageError when the checkpoint was made with another config.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if json.loads(state["config"]) != json.loads(json.dumps(cfg.to_dict())):
        raise UsageError("checkpoint was made with another config", path)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"]), float(state["elapsed"])


class RunLog:
    """``log.jsonl`` of a run, appended to: one JSON object per logged step or validation.

    A context manager; each entry is flushed at once, so a killed run keeps what it logged.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOG
        self._file: TextIO | None = None

    def __enter__(self) -> RunLog:  # noqa: PYI034 (Self needs Python 3.11)
        self._file = self.path.open("a")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def record(self, entry: dict) -> None:
        """Append ``entry`` as one line."""
        if self._file is None:
            raise RuntimeError("RunLog.record outside its with block")
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()


__all__ = ["CHECKPOINT", "CONFIG", "LOG", "RunLog", "check_run_folder", "load_checkpoint", "save_checkpoint",
           "write_config"]
