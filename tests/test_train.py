"""IPL training: the data synthesiser does what it claims, and a smoke run trains, saves, resumes."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from uhdfuse.errors import ModelError, UsageError
from uhdfuse.nn.weights import load_weights
from uhdfuse.train.__main__ import FLAGS
from uhdfuse.train.config import load_config
from uhdfuse.train.data import heldout_cases, make_sample
from uhdfuse.train.loop import train
from uhdfuse.train.radiance import read_radiance
from uhdfuse.train.recipe import Recipe
from uhdfuse.train.scenes import (
    HELDOUT_FILES,
    HELDOUT_SEEDS,
    TRAIN_FILES,
    TRAIN_SEED_LIMIT,
    SceneLibrary,
    training_library,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SMOKE = REPO / "configs" / "ipl-smoke.json"

# Noise-free linear frames: exposure-normalised values must agree wherever nothing moved.
CLEAN = Recipe(crop=64, frames=(3, 5), raw=1.0, full_well=(1e12, 1e12), read_noise=(0.0, 0.0),
               procedural_scenes=2, real_share=0.0, shake=0.0, motion_blur=0.0)


@pytest.fixture(scope="module")
def procedural() -> SceneLibrary:
    return training_library(None, CLEAN, seed=0)


def test_bracket_shape_ev_order_and_clipping(procedural: SceneLibrary) -> None:
    recipe = replace(CLEAN, frames=(2, 9), raw=0.3, full_well=(3000.0, 60000.0), read_noise=(1.0, 10.0))
    counts = set()
    for k in range(8):
        s = make_sample(procedural, recipe, [1, k])
        n = s.frames.shape[0]
        counts.add(n)
        assert 2 <= n <= 9 and s.frames.shape == s.static.shape == (n, 64, 64, 3)
        assert s.frames.dtype == np.float32 and s.target.shape == (64, 64, 3)
        assert np.all(np.diff(s.ev) > 0) and s.ev[s.reference] == 0
        steps = np.diff(s.ev)
        assert np.allclose(steps, steps[0]) and 1.0 - 1e-6 <= steps[0] <= 3.0 + 1e-6
        assert s.frames.min() >= 0.0 and s.frames.max() <= 1.0  # clipped at the sensor's full well
        assert 0.0 <= s.target.min() and s.target.max() <= 1.0
    assert len(counts) > 2
    # the procedural scene's sun clips the longest exposure
    assert (s.frames[-1] >= 1.0).any()


def test_moving_objects_differ_only_in_moving_bracket(procedural: SceneLibrary) -> None:
    s = make_sample(procedural, replace(CLEAN, moving=1.0, frames=(3, 3)), [2, 0])
    ref = s.reference
    # the reference frame sees the scene at the reference time in both versions
    assert np.array_equal(s.frames[ref], s.static[ref])
    assert s.moving.max() > 0.5
    diff = np.abs(s.frames - s.static).max(axis=(0, 3))
    assert diff[s.moving > 0.5].max() > 0.05  # the objects moved in the other frames
    assert diff[s.moving == 0].max() < 1e-6  # nothing else changed (same noise, no shake)


def test_static_bracket_shares_geometry(procedural: SceneLibrary) -> None:
    s = make_sample(procedural, replace(CLEAN, moving=1.0), [3, 1])
    ref = s.static[s.reference]
    for i, ev in enumerate(s.ev):
        frame = s.static[i]
        usable = (frame.max(-1) < 0.95) & (ref.max(-1) < 0.95) & (frame.min(-1) > 0.02) & (ref.min(-1) > 0.02)
        assert usable.mean() > 0.05
        ratio = frame[usable] / (ref[usable] * 2.0**ev)
        assert np.abs(ratio - 1).max() < 0.02  # same scene, same pixels, exposure apart


def test_training_library_needs_no_shared_data(tmp_path: Path) -> None:
    library = training_library(tmp_path / "absent", Recipe(), seed=0)
    assert [n for n in library.notes if "procedural scenes only" in n]  # the training tool logs it
    assert library.files == [] and library.real_share == 0.0
    assert all(s < TRAIN_SEED_LIMIT for s in library.procedural_seeds)
    assert not set(library.procedural_seeds) & set(HELDOUT_SEEDS)
    assert not set(TRAIN_FILES) & set(HELDOUT_FILES)


def test_heldout_cases_pair_moving_and_static() -> None:
    cases = heldout_cases(2, seed=0, size=64, data_dir=None)
    assert len(cases) == 2
    for moving, static, ev, ref in cases:
        assert moving.shape == static.shape and moving.shape[1:] == (64, 64, 3)
        assert len(ev) == moving.shape[0] and ev[ref] == 0
        assert np.abs(moving - static).max() > 0.05
    again = heldout_cases(1, seed=0, size=64, data_dir=None)[0]
    assert np.array_equal(again[0], cases[0][0])  # a fixed, reproducible split


def test_rgbe_reader(tmp_path: Path) -> None:
    # flat (uncompressed) scanlines: width < 8 cannot be run-length encoded
    pixels = np.array([[[128, 64, 32, 129], [0, 0, 0, 0], [255, 255, 255, 136]]], np.uint8)
    path = tmp_path / "tiny.hdr"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 1 +X 3\n" + pixels.tobytes())
    image = read_radiance(path)
    assert image.shape == (1, 3, 3)
    assert np.allclose(image[0, 0], (np.array([128, 64, 32]) + 0.5) / 256 * 2.0)
    assert np.all(image[0, 1] == 0)
    if (SHARED / "debevec_memorial" / "memorial.hdr").is_file():  # run-length encoded
        memorial = read_radiance(SHARED / "debevec_memorial" / "memorial.hdr")
        assert memorial.shape == (768, 512, 3) and np.isfinite(memorial).all()
        lum = memorial.mean(-1)
        assert np.log2(np.percentile(lum, 99.9) / np.percentile(lum, 0.1)) > 12  # truly HDR


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    folder = tmp_path_factory.mktemp("smoke")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # untrained-weights notices of other modules
        summary = train(load_config(SMOKE), run_dir=folder / "full")
    return summary, folder


def test_smoke_training_writes_loadable_weights(smoke_run: tuple[dict, Path]) -> None:
    summary, _ = smoke_run
    cfg = load_config(SMOKE)
    path = Path(summary["weights"])
    _, manifest = load_weights(path)  # checks the sha256
    assert manifest["trained"] is True and manifest["variant"] == cfg.variant
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    training = manifest["training"]
    assert training["steps"] == cfg.steps and training["data_recipe"]["crop"] == cfg.data.crop
    assert "commit" in training and manifest["metrics"]["status"] == "pending"
    log = [json.loads(line) for line in (Path(summary["run_dir"]) / "log.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in log if "loss" in e]
    assert len(losses) == cfg.steps // cfg.log_every and all(np.isfinite(losses))
    broken = path.read_bytes()
    path.with_name("broken.safetensors").write_bytes(broken[:-1] + bytes([broken[-1] ^ 1]))
    path.with_name("broken.json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(ModelError, match="sha256"):
        load_weights(path.with_name("broken.safetensors"))


def test_resume_continues_exactly(smoke_run: tuple[dict, Path]) -> None:
    summary, folder = smoke_run
    cfg = load_config(SMOKE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        part = train(cfg, run_dir=folder / "split", stop_after=3)
        assert part["step"] == 3 and "weights" not in part
        with pytest.raises(UsageError, match="resume=True") as refused:
            train(cfg, run_dir=folder / "split")
        assert "--resume" in refused.value.spelled(FLAGS)  # as the training CLI says it
        resumed = train(cfg, run_dir=folder / "split", resume=True)
    assert resumed["step"] == cfg.steps
    assert resumed["sha256"] == summary["sha256"]  # bit-identical weights


def test_ev_error_moves_only_the_evs_given_to_the_model(procedural: SceneLibrary) -> None:
    """Inexact EVs (as EXIF or pixel estimates give): same pixels and target, EVs off by less than half a step."""
    for k in range(4):
        exact = make_sample(procedural, CLEAN, [2, k])
        off = make_sample(procedural, replace(CLEAN, ev_error=0.3), [2, k])
        assert np.array_equal(exact.frames, off.frames) and np.array_equal(exact.target, off.target)
        err = off.ev - exact.ev
        assert err[off.reference] == 0 and np.abs(err).max() <= 0.3 and np.abs(err).max() > 0
        assert np.all(np.diff(off.ev) > 0)


def test_closed_share_counts_rejected_non_reference_frames() -> None:
    from uhdfuse.train.loss import closed_share

    maps = torch.zeros(1, 2, 2, 6)  # 3 frames: logits 0, gates below
    maps[..., 3] = 0.5  # frame 0 half rejected
    maps[..., 4] = 1.0  # the reference
    maps[..., 5] = 0.0  # frame 2 fully rejected
    assert float(closed_share(maps)) == pytest.approx(0.75)


def test_training_can_start_from_shipped_weights(smoke_run: tuple[dict, Path]) -> None:
    """``init``: a fine-tune starts from a weights file (hash-checked) and records it."""
    summary, folder = smoke_run
    start = Path(summary["weights"])
    cfg = replace(load_config(SMOKE), init=str(start), lr=0.0, min_lr=0.0, weight_decay=0.0, steps=2,
                  log_every=1, val_samples=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tuned = train(cfg, run_dir=folder / "tuned")
    model, manifest = load_weights(Path(tuned["weights"]))
    assert manifest["training"]["init"] == {"weights": str(start), "sha256": summary["sha256"]}
    original, _ = load_weights(start)
    for (k, a), (_, b) in zip(original.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a, b), k  # learning rate 0: exactly the starting weights
    other = replace(cfg, variant="ipl_base")
    with pytest.raises(UsageError, match="architecture"):
        train(other, run_dir=folder / "other")
