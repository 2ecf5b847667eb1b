"""The IPL training loop: sample pool, AdamW with cosine learning rate, logs, checkpoints, weights.

Determinism: the model's initial weights come from ``seed``; sample ``k`` is a pure
function of ``(seed, k)`` (:func:`uhdfuse.train.data.make_sample`); the pool at step
``s`` holds known sample ids and the batch of step ``s`` is drawn from a generator
keyed by ``(seed, s)``. So a run resumed from a checkpoint rebuilds exactly the pool
it left and continues as if never interrupted (``tests/test_train.py`` checks this).

Run folder: ``config.json`` (the resolved config), ``log.jsonl`` (one JSON object per
logged step or validation), ``checkpoint.pt`` (model, optimizer, step, RNG states;
plain tensors and containers, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from uhdfuse.errors import UsageError
from uhdfuse.nn.ipl import IPL, VARIANTS, build
from uhdfuse.nn.weights import load_weights, save_weights
from uhdfuse.train.data import (
    DEFAULT_DATA_DIR,
    Recipe,
    Sample,
    SceneLibrary,
    make_sample,
    training_library,
)
from uhdfuse.train.loss import LossConfig, closed_share, fusion_loss, psnr

log = logging.getLogger("uhdfuse.train")
REPO = Path(__file__).resolve().parents[3]


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
    device: str = "auto"  # auto | cpu | cuda
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
            raise UsageError(f"unknown variant {cfg.variant!r}; choose one of {', '.join(VARIANTS)}")
        if cfg.pool < cfg.batch or cfg.refresh > cfg.pool:
            raise UsageError("pool must hold at least one batch and at least one refresh")
        return cfg


def load_config(path: Path) -> TrainConfig:
    """A :class:`TrainConfig` from a JSON file; UsageError naming the file when it is unusable."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"unreadable training config ({exc})") from None
    try:
        return TrainConfig.from_dict(values)
    except (UsageError, TypeError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine down to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda asked for, but CUDA is not available")
    return torch.device(name)


def project_commit() -> str | None:
    """``git rev-parse HEAD`` of the checkout (``+dirty`` when tracked files differ), None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=False)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _optimizer(model: IPL, cfg: TrainConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    rest = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)


def _validation_set(cfg: TrainConfig, library: SceneLibrary) -> list[Sample]:
    """Fixed samples of the training scenes from a separate seed stream (never trained on)."""
    return [make_sample(library, cfg.data, [cfg.seed, 99, k], keep_static=False) for k in range(cfg.val_samples)]


@torch.no_grad()
def evaluate(model: IPL, samples: list[Sample], device: torch.device) -> dict[str, float]:
    """Mean PSNR (dB) against the targets: the model, and Mertens on the same (moving) input.

    ``*_moving`` average over samples with moving objects only.
    """
    from uhdfuse.classical import fuse_mertens

    model.eval()
    out: dict[str, list[float]] = {"val_psnr": [], "val_psnr_moving": [], "mertens_psnr": [], "mertens_psnr_moving": []}
    for s in samples:
        x, ev, ref, target = stack([s])
        pred = model(x.to(device), ev.to(device), ref.to(device)).float().cpu()
        p_model = psnr(pred, target)
        p_mertens = psnr(torch.from_numpy(fuse_mertens(s.frames)), target[0])
        out["val_psnr"].append(p_model)
        out["mertens_psnr"].append(p_mertens)
        if s.info["moving"]:
            out["val_psnr_moving"].append(p_model)
            out["mertens_psnr_moving"].append(p_mertens)
    model.train()
    return {k: round(float(np.mean(v)), 3) for k, v in out.items() if v}


def _save_checkpoint(path: Path, model: IPL, opt: torch.optim.Optimizer, step: int, cfg: TrainConfig, elapsed: float) -> None:
    state = {
        "step": step, "model": model.state_dict(), "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(), "config": json.dumps(cfg.to_dict()), "elapsed": elapsed,
    }
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint


def train(cfg: TrainConfig, *, run_dir: Path | None = None, resume: bool = False, weights: Path | None = None,
          data_dir: Path | None = DEFAULT_DATA_DIR, stop_after: int | None = None) -> dict:
    """Train (or resume) a run; returns a summary dict.

    ``run_dir``: defaults to ``cfg.run_dir``. ``resume``: continue from its checkpoint
    (UsageError when there is none, or when a fresh run would overwrite one).
    ``weights``: final safetensors path (default ``run_dir / f"{cfg.name}.safetensors"``),
    written with a manifest once ``cfg.steps`` are done. ``stop_after``: stop (with a
    checkpoint, without weights) once this step count is reached, to split a run.
    """
    run_dir = Path(run_dir if run_dir is not None else cfg.run_dir)
    ckpt_path = run_dir / "checkpoint.pt"
    if resume and not ckpt_path.is_file():
        raise UsageError(f"{ckpt_path}: no checkpoint to resume from")
    if not resume and ckpt_path.exists():
        raise UsageError(f"{ckpt_path}: run folder has a checkpoint; pass --resume or choose another --run-dir")
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = Path(weights) if weights is not None else run_dir / f"{cfg.name}.safetensors"
    torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)  # nothing draws from it; set against accidental use

    model = build(VARIANTS[cfg.variant](), seed=cfg.seed)
    init_sha = None
    if cfg.init:
        start_from, manifest = load_weights(Path(cfg.init))  # sha256 checked
        if start_from.cfg != model.cfg:
            raise UsageError(f"{cfg.init}: weights of another architecture config than variant {cfg.variant}")
        model.load_state_dict(start_from.state_dict())  # a resumed run then loads its checkpoint over it
        init_sha = manifest["sha256"]
        log.info("starting from %s (sha256 %s)", cfg.init, manifest["sha256"][:12])
    model = model.to(device)
    opt = _optimizer(model, cfg)
    step, elapsed = 0, 0.0
    if resume:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if json.loads(state["config"]) != json.loads(json.dumps(cfg.to_dict())):
            raise UsageError(f"{ckpt_path}: checkpoint was made with another config")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")

    library = training_library(None if cfg.procedural_only else data_dir, cfg.data, cfg.seed)
    pool = SamplePool(cfg, library)
    t0 = time.perf_counter()
    pool.advance(step)
    val = _validation_set(cfg, library) if cfg.val_samples else []
    log.info("%s: pool of %d samples ready in %.1f s (%s), device %s, %d parameters",
             run_dir, cfg.pool, time.perf_counter() - t0,
             "shared HDR maps + procedural" if library.files else "procedural scenes only", device,
             sum(p.numel() for p in model.parameters()))
    logfile = (run_dir / "log.jsonl").open("a")

    def record(entry: dict) -> None:
        logfile.write(json.dumps(entry) + "\n")
        logfile.flush()

    last: dict = {}
    last_val: dict = {}
    if val and step == 0:
        untrained = {"step": 0, **evaluate(model, val, device)}
        record(untrained)
        log.info("validation (untrained): %s", untrained)
    window: list[float] = []
    model.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    start = time.perf_counter() - elapsed  # elapsed: wall time of the loop, validation included
    step_time = 0.0  # training steps only, since the last log line
    stopped_early = False
    while step < end:
        t_step = time.perf_counter()
        pool.advance(step)
        x, ev, ref, target = (t.to(device, non_blocking=True) for t in pool.batch(step))
        lr = lr_at(cfg, step)
        for group in opt.param_groups:
            group["lr"] = lr
        maps = model.maps(x, ev, ref)
        pred = model.render(maps, x, ev, ref)
        loss, parts = fusion_loss(pred.float(), target, cfg.loss)
        if cfg.loss.gate:
            closed = closed_share(maps.float())
            loss = loss + cfg.loss.gate * closed
            parts["closed"] = float(closed.detach())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        step += 1
        window.append(float(loss.detach()))
        step_time += time.perf_counter() - t_step
        elapsed = time.perf_counter() - start
        if step % cfg.log_every == 0 or step == end:
            sps = step_time / len(window)
            last = {"step": step, "loss": round(float(np.mean(window)), 5), **{k: round(v, 5) for k, v in parts.items()},
                    "lr": round(lr, 7), "grad_norm": round(gnorm, 4), "frames": int(x.shape[1]),
                    "sec_per_step": round(sps, 4), "elapsed_s": round(elapsed, 1)}
            record(last)
            log.info("step %d/%d loss %.4f (l1 %.4f) lr %.2e %.3f s/step", step, cfg.steps, last["loss"],
                     parts["l1"], lr, sps)
            window, step_time = [], 0.0
        if val and (step % cfg.val_every == 0 or step == cfg.steps):
            last_val = {"step": step, **evaluate(model, val, device)}
            record(last_val)
            log.info("validation: %s", last_val)
        stopped_early = cfg.max_minutes is not None and time.perf_counter() - start > 60 * cfg.max_minutes and step < end
        if step % cfg.checkpoint_every == 0 or step == end or stopped_early:
            _save_checkpoint(ckpt_path, model, opt, step, cfg, time.perf_counter() - start)
        if stopped_early:
            log.warning("max_minutes (%s) reached at step %d of %d: finishing early", cfg.max_minutes, step, cfg.steps)
            record({"step": step, "stopped_early": True})
            break
    elapsed = time.perf_counter() - start
    logfile.close()

    summary: dict = {"run_dir": str(run_dir), "step": step, "last": last, "elapsed_s": round(elapsed, 1)}
    if step >= cfg.steps or stopped_early:
        model.eval()
        val_figures = last_val if last_val.get("step", -1) == step else (evaluate(model, val, device) if val else {})
        val_figures.pop("step", None)
        manifest = save_weights(
            model.cpu(), weights, variant=cfg.variant, trained=True,
            notes=f"trained by python -m uhdfuse.train ({step} steps); see docs/training.md",
            training={
                "steps": step, "planned_steps": cfg.steps, "stopped_early": stopped_early, "batch": cfg.batch, "seed": cfg.seed, "lr": cfg.lr, "min_lr": cfg.min_lr,
                "warmup": cfg.warmup, "weight_decay": cfg.weight_decay, "loss": cfg.loss.to_dict(),
                "target": "uhdfuse.classical.fuse_mertens of the static bracket (reference geometry)",
                "data_recipe": cfg.data.to_dict(),
                "data_sources": [str(p.relative_to(data_dir)) if data_dir and p.is_relative_to(data_dir) else str(p)
                                 for p in library.files] + [f"procedural seeds {list(library.procedural_seeds)}"],
                "device": str(device), "elapsed_s": round(elapsed, 1), "final_loss": last.get("loss"),
                "validation": val_figures, "commit": project_commit(), "config": cfg.to_dict(),
                "init": {"weights": cfg.init, "sha256": init_sha} if cfg.init else None,
            },
            metrics={"status": "pending", "note": "filled in by the evaluation step (benchmarks/quality.py)"},
        )
        summary.update(weights=str(weights), sha256=manifest["sha256"], validation=val_figures)
    return summary


__all__ = ["SamplePool", "TrainConfig", "evaluate", "load_config", "lr_at", "project_commit", "stack", "train"]
