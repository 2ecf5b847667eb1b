"""Regenerate the untrained tiny IPL weights and the golden output that guards them.

    PYTHONPATH=src python tests/make_ipl_golden.py

Writes weights/ipl-test.safetensors (+ .json manifest) and tests/data/ipl_golden.npy.
Run it only when the architecture changes on purpose; tests/test_ipl.py checks that
the shipped file still loads and reproduces the golden output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from uhdfuse.nn.ipl import KEEP, build, ipl_test
from uhdfuse.nn.weights import save_weights, weights_dir

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240607


def golden_bracket() -> tuple[np.ndarray, list[float], int]:
    """A small deterministic 3-frame bracket (N, H, W, 3): a gradient scene with a 'moving' square."""
    rng = np.random.default_rng(7)
    H, W = 30, 44
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    scene = np.stack([xx / W, yy / H, 0.5 + 0.5 * np.sin(xx / 5)], -1) * 4.0
    scene += rng.random((H, W, 3), dtype=np.float32) * 0.1
    ev = [-2.0, 0.0, 2.0]
    frames = []
    for i, e in enumerate(ev):
        f = scene * 2.0**e / 4.0
        f[5 + 3 * i: 12 + 3 * i, 20:27] = 0.9  # an object that moves between frames
        frames.append(np.clip(f, 0, 1))
    return np.stack(frames).astype(np.float32), ev, 1


def main() -> None:
    model = build(ipl_test(), seed=SEED)
    with torch.no_grad():  # logits and keep gates away from their init, so the golden output uses them
        gen = torch.Generator().manual_seed(SEED)
        model.head_out.weight.copy_(torch.randn(model.head_out.weight.shape, generator=gen) * 0.5)
        model.head_out.bias[KEEP] = 0.5
    path = weights_dir() / "ipl-test.safetensors"
    save_weights(model, path, variant="ipl_test", trained=False, seed=SEED,
                 notes="UNTRAINED: seeded random init of the tiny test variant. It guards the "
                       "architecture and the loader (golden test); its logits and keep gates "
                       "are random. Trained weights come from issue 4.")
    images, ev, ref = golden_bracket()
    with torch.no_grad():
        out = model(torch.from_numpy(images)[None], torch.tensor([ev]), torch.tensor([ref]), 8)[0]
    np.save(ROOT / "tests" / "data" / "ipl_golden.npy", out.numpy().astype(np.float32))
    print(f"wrote {path} and tests/data/ipl_golden.npy")


if __name__ == "__main__":
    main()
