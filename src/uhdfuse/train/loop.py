"""The IPL training loop: AdamW with a cosine learning rate, validation, checkpoints, weights.

:class:`Trainer` is the training wrapper (BasicSR-style): it owns the model, the
optimizer and the step count, and runs :meth:`~Trainer.train_step`,
:meth:`~Trainer.validate` and :meth:`~Trainer.checkpoint`; the architecture
(:mod:`uhdfuse.nn.ipl`) knows nothing of losses or optimizers. :func:`train` runs
one run from its folder (see :mod:`.run_folder`) to its weights file and manifest
(:func:`training_record`).

Determinism: the model's initial weights come from ``seed``; sample ``k`` is a pure
function of ``(seed, k)`` (:func:`uhdfuse.train.data.make_sample`); the pool at step
``s`` holds known sample ids and the batch of step ``s`` is drawn from a generator
keyed by ``(seed, s)``. So a run resumed from a checkpoint rebuilds exactly the pool
it left and continues as if never interrupted (``tests/test_train.py`` checks this).
"""

from __future__ import annotations

import logging
import math
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from uhdfuse.classical import fuse_mertens
from uhdfuse.errors import UsageError, param
from uhdfuse.nn.ipl import IPL, VARIANTS, build
from uhdfuse.nn.weights import load_weights, save_weights
from uhdfuse.runtime.device import select_device
from uhdfuse.train.capture import Sample
from uhdfuse.train.config import TrainConfig
from uhdfuse.train.data import make_sample
from uhdfuse.train.loss import closed_share, fusion_loss, psnr
from uhdfuse.train.pool import SamplePool, stack
from uhdfuse.train.run_folder import RunLog, check_run_folder, load_checkpoint, save_checkpoint, write_config
from uhdfuse.train.scenes import DEFAULT_DATA_DIR, SceneLibrary, training_library

log = logging.getLogger("uhdfuse.train")
REPO = Path(__file__).resolve().parents[3]


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): linear warm-up, then cosine down to ``min_lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


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


@dataclass(frozen=True)
class StepReport:
    """What one optimizer step did."""

    loss: float  # the total loss of the batch
    parts: dict[str, float]  # its terms (l1, ssim, ...; closed when the gate prior is on)
    lr: float
    grad_norm: float  # before clipping
    frames: int  # N of the batch


@dataclass
class LoopResult:
    """How :meth:`Trainer.fit` ended."""

    last: dict = field(default_factory=dict)  # the last log line of training steps
    last_val: dict = field(default_factory=dict)  # the last validation entry
    stopped_early: bool = False  # ``max_minutes`` ran out before the planned steps


class Trainer:
    """The model, optimizer, step count and wall time of one run on ``device``.

    A fresh trainer starts from the seeded initialisation of ``cfg.variant``, or from
    the weights ``cfg.init`` names; :meth:`resume` continues from a checkpoint.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        model = build(VARIANTS[cfg.variant](), seed=cfg.seed)
        self.init_sha = _load_init(model, cfg) if cfg.init else None
        self.model = model.to(device)
        self.opt = _optimizer(self.model, cfg)
        self.step = 0
        self.elapsed = 0.0  # wall time of the loop so far, validation included

    def resume(self, path: Path) -> None:
        """Continue from the checkpoint at ``path`` (made with the same config)."""
        self.step, self.elapsed = load_checkpoint(path, self.model, self.opt, self.cfg)

    def checkpoint(self, path: Path, elapsed: float) -> None:
        """Save the state of the current step to ``path``."""
        save_checkpoint(path, self.model, self.opt, self.step, self.cfg, elapsed)

    def validate(self, samples: list[Sample]) -> dict[str, float]:
        """Validation figures of the current model (see :func:`evaluate`)."""
        return evaluate(self.model, samples, self.device)

    def train_step(self, pool: SamplePool) -> StepReport:
        """One optimizer step on the batch of the current step; advances :attr:`step`."""
        cfg = self.cfg
        pool.advance(self.step)
        x, ev, ref, target = (t.to(self.device, non_blocking=True) for t in pool.batch(self.step))
        lr = lr_at(cfg, self.step)
        for group in self.opt.param_groups:
            group["lr"] = lr
        maps = self.model.maps(x, ev, ref)
        pred = self.model.render(maps, x, ev, ref)
        loss, parts = fusion_loss(pred.float(), target, cfg.loss)
        if cfg.loss.gate:
            closed = closed_share(maps.float())
            loss = loss + cfg.loss.gate * closed
            parts["closed"] = float(closed.detach())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
        self.opt.step()
        self.step += 1
        return StepReport(loss=float(loss.detach()), parts=parts, lr=lr, grad_norm=grad_norm, frames=int(x.shape[1]))

    def fit(self, pool: SamplePool, val: list[Sample], run_log: RunLog, checkpoint: Path, end: int) -> LoopResult:
        """Train up to step ``end``: log every ``log_every`` steps, validate every ``val_every``,
        checkpoint every ``checkpoint_every`` and at the end; stop early after ``max_minutes``."""
        cfg = self.cfg
        result = LoopResult()
        if val and self.step == 0:
            untrained = {"step": 0, **self.validate(val)}
            run_log.record(untrained)
            log.info("validation (untrained): %s", untrained)
        losses: list[float] = []  # since the last log line
        step_time = 0.0  # training steps only, since the last log line
        self.model.train()
        start = time.perf_counter() - self.elapsed
        while self.step < end:
            t_step = time.perf_counter()
            report = self.train_step(pool)
            losses.append(report.loss)
            step_time += time.perf_counter() - t_step
            if self.step % cfg.log_every == 0 or self.step == end:
                result.last = self._log_line(report, losses, step_time, time.perf_counter() - start)
                run_log.record(result.last)
                losses, step_time = [], 0.0
            if val and (self.step % cfg.val_every == 0 or self.step == cfg.steps):
                result.last_val = {"step": self.step, **self.validate(val)}
                run_log.record(result.last_val)
                log.info("validation: %s", result.last_val)
            over_time = cfg.max_minutes is not None and time.perf_counter() - start > 60 * cfg.max_minutes
            result.stopped_early = over_time and self.step < end
            if self.step % cfg.checkpoint_every == 0 or self.step == end or result.stopped_early:
                self.checkpoint(checkpoint, time.perf_counter() - start)
            if result.stopped_early:
                log.warning("max_minutes (%s) reached at step %d of %d: finishing early", cfg.max_minutes, self.step,
                            cfg.steps)
                run_log.record({"step": self.step, "stopped_early": True})
                break
        self.elapsed = time.perf_counter() - start
        return result

    def _log_line(self, report: StepReport, losses: list[float], step_time: float, elapsed: float) -> dict:
        sec_per_step = step_time / len(losses)
        line = {"step": self.step, "loss": round(float(np.mean(losses)), 5),
                **{k: round(v, 5) for k, v in report.parts.items()},
                "lr": round(report.lr, 7), "grad_norm": round(report.grad_norm, 4), "frames": report.frames,
                "sec_per_step": round(sec_per_step, 4), "elapsed_s": round(elapsed, 1)}
        log.info("step %d/%d loss %.4f (l1 %.4f) lr %.2e %.3f s/step", self.step, self.cfg.steps, line["loss"],
                 report.parts["l1"], report.lr, sec_per_step)
        return line


def _load_init(model: IPL, cfg: TrainConfig) -> str:
    """Load the weights ``cfg.init`` names (sha256 checked) into ``model``; returns their sha256."""
    start_from, manifest = load_weights(Path(cfg.init))
    if start_from.cfg != model.cfg:
        raise UsageError(f"weights of another architecture config than {param('variant', cfg.variant)}", cfg.init)
    model.load_state_dict(start_from.state_dict())  # a resumed run then loads its checkpoint over it
    log.info("starting from %s (sha256 %s)", cfg.init, manifest["sha256"][:12])
    return manifest["sha256"]


def _training_data(cfg: TrainConfig, data_dir: Path | None, step: int) -> tuple[SceneLibrary, SamplePool, list[Sample]]:
    """The scene library, the sample pool as it is at ``step``, and the validation samples."""
    library = training_library(None if cfg.procedural_only else data_dir, cfg.data, cfg.seed)
    for note in library.notes:
        log.warning("%s", note)
    pool = SamplePool(cfg, library)
    pool.advance(step)
    val = _validation_set(cfg, library) if cfg.val_samples else []
    return library, pool, val


def training_record(cfg: TrainConfig, trainer: Trainer, result: LoopResult, library: SceneLibrary,
                    data_dir: Path | None, validation: dict[str, float]) -> dict:
    """The ``training`` section of the weights manifest: what made these weights."""
    sources = [str(p.relative_to(data_dir)) if data_dir and p.is_relative_to(data_dir) else str(p)
               for p in library.files] + [f"procedural seeds {list(library.procedural_seeds)}"]
    return {
        "steps": trainer.step, "planned_steps": cfg.steps, "stopped_early": result.stopped_early,
        "batch": cfg.batch, "seed": cfg.seed, "lr": cfg.lr, "min_lr": cfg.min_lr,
        "warmup": cfg.warmup, "weight_decay": cfg.weight_decay, "loss": cfg.loss.to_dict(),
        "target": "uhdfuse.classical.fuse_mertens of the static bracket (reference geometry)",
        "data_recipe": cfg.data.to_dict(), "data_sources": sources,
        "device": str(trainer.device), "elapsed_s": round(trainer.elapsed, 1), "final_loss": result.last.get("loss"),
        "validation": validation, "commit": project_commit(), "config": cfg.to_dict(),
        "init": {"weights": cfg.init, "sha256": trainer.init_sha} if cfg.init else None,
    }


def _final_validation(trainer: Trainer, val: list[Sample], result: LoopResult) -> dict[str, float]:
    """Validation figures of the final weights: the loop's last ones when they are of this step."""
    if result.last_val.get("step", -1) == trainer.step:
        figures = dict(result.last_val)
    else:
        figures = trainer.validate(val) if val else {}
    figures.pop("step", None)
    return figures


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
    checkpoint = check_run_folder(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = Path(weights) if weights is not None else run_dir / f"{cfg.name}.safetensors"
    torch.set_num_threads(cfg.threads)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)  # nothing draws from it; set against accidental use
    trainer = Trainer(cfg, device)
    if resume:
        trainer.resume(checkpoint)
    write_config(run_dir, cfg)
    t0 = time.perf_counter()
    library, pool, val = _training_data(cfg, data_dir, trainer.step)
    log.info("%s: pool of %d samples ready in %.1f s (%s), device %s, %d parameters",
             run_dir, cfg.pool, time.perf_counter() - t0,
             "shared HDR maps + procedural" if library.files else "procedural scenes only", device,
             sum(p.numel() for p in trainer.model.parameters()))
    with RunLog(run_dir) as run_log:
        result = trainer.fit(pool, val, run_log, checkpoint, cfg.steps if stop_after is None else min(cfg.steps, stop_after))

    summary: dict = {"run_dir": str(run_dir), "step": trainer.step, "last": result.last,
                     "elapsed_s": round(trainer.elapsed, 1)}
    if trainer.step >= cfg.steps or result.stopped_early:
        trainer.model.eval()
        figures = _final_validation(trainer, val, result)
        manifest = save_weights(
            trainer.model.cpu(), weights, variant=cfg.variant, trained=True,
            notes=f"trained by python -m uhdfuse.train ({trainer.step} steps); see docs/training.md",
            training=training_record(cfg, trainer, result, library, data_dir, figures),
            metrics={"status": "pending", "note": "filled in by the evaluation step (benchmarks/quality.py)"},
        )
        summary.update(weights=str(weights), sha256=manifest["sha256"], validation=figures)
    return summary


__all__ = ["LoopResult", "StepReport", "Trainer", "evaluate", "lr_at", "project_commit", "train", "training_record"]
