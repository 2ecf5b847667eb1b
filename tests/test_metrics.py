"""The quality measures the benchmarks report: MEF-SSIM, PSNR, SSIM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from uhdfuse.classical import fuse_mertens
from uhdfuse.colour import srgb_encode
from uhdfuse.errors import UsageError
from uhdfuse.metrics import mef_ssim, mef_ssim_single_scale, psnr, ssim
from uhdfuse.synthetic import procedural_scene, render_bracket


def _reference_mef_ssim(seq: np.ndarray, fused: np.ndarray, p: float = 4.0) -> np.ndarray:
    """MEF-SSIM map, patch by patch, as the authors' MATLAB code computes it (fixed p).

    ``seq``: (K, H, W) grey 0-255; ``fused``: (H, W). Deliberately literal and slow.
    """
    k_count, h, w = seq.shape
    win = 11
    g1 = np.exp(-((np.arange(win) - 5) ** 2) / (2 * 1.5**2))
    gauss = np.outer(g1, g1)
    gauss /= gauss.sum()
    c = (0.03 * 255) ** 2
    out = np.zeros((h - win + 1, w - win + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            blocks = seq[:, i : i + win, j : j + win]
            mu = blocks.mean(axis=(1, 2))
            ed = np.array([np.linalg.norm(b - m) for b, m in zip(blocks, mu)]) + 0.001
            wk = (ed / win) ** p + np.finfo(float).eps
            wk /= wk.sum()
            r = sum(wk[k] * (blocks[k] - mu[k]) / ed[k] for k in range(k_count))
            if np.linalg.norm(r) > 0:
                r = r / np.linalg.norm(r) * ed.max()
            f = fused[i : i + win, j : j + win]
            m1, m2 = (gauss * r).sum(), (gauss * f).sum()
            s1 = (gauss * (r - m1) ** 2).sum()
            s2 = (gauss * (f - m2) ** 2).sum()
            s12 = (gauss * (r - m1) * (f - m2)).sum()
            out[i, j] = (2 * s12 + c) / (s1 + s2 + c)
    return out


@pytest.fixture(scope="module")
def bracket() -> tuple[np.ndarray, np.ndarray]:
    """A noise-free synthetic -2/0/+2 EV bracket: (linear (3, H, W, 3), display (3, H, W, 3))."""
    scene = procedural_scene(96, 144, seed=3)
    rendered = render_bracket(scene, (-2.0, 0.0, 2.0), seed=3, noise=False)
    linear = np.stack(rendered.frames)
    return linear, srgb_encode(linear)


def test_vectorised_mef_ssim_matches_the_patchwise_definition() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 255, (24, 27))
    # Three "exposures" with different contrast and clipping, and an unrelated fusion.
    seq = np.stack([np.clip(base * g - o, 0, 255) for g, o in ((0.4, 0), (1.0, 30), (2.5, 200))])
    seq[1, :6, :8] = 255.0  # a flat, clipped corner: strength ~0 in that frame
    fused = np.clip(0.7 * base + rng.normal(0, 20, base.shape), 0, 255)
    score, qmap = mef_ssim_single_scale(seq, fused)
    expected = _reference_mef_ssim(seq, fused)
    assert qmap.shape == expected.shape == (14, 17)
    np.testing.assert_allclose(qmap, expected, rtol=1e-7, atol=1e-9)
    assert score == pytest.approx(expected.mean())


def test_a_frame_scores_one_against_itself(bracket) -> None:
    _, display = bracket
    for scales in (1, 3):
        assert mef_ssim([display[1]], display[1], scales=scales) == pytest.approx(1.0, abs=1e-6)


def test_mertens_beats_a_single_badly_exposed_frame(bracket) -> None:
    linear, display = bracket
    fused = fuse_mertens(linear)
    good = mef_ssim(display, fused)
    dark = mef_ssim(display, display[0])
    bright = mef_ssim(display, display[2])
    assert good > 0.9
    # Measured: 0.97 vs 0.77 (dark) and 0.94 (bright, which holds most of this scene).
    assert good > dark + 0.1 and good > bright + 0.02


def test_mef_ssim_is_the_same_for_uint8_and_float_inputs(bracket) -> None:
    _, display = bracket
    as8 = np.round(display * 255).astype(np.uint8)
    fused8 = np.round(display.mean(axis=0) * 255).astype(np.uint8)
    a = mef_ssim(as8, fused8)
    b = mef_ssim(as8.astype(np.float32) / 255, fused8.astype(np.float32) / 255)
    c = mef_ssim(list(as8.astype(np.float64)), fused8.astype(np.float64), data_range=255)
    assert a == pytest.approx(b, abs=1e-6) and a == pytest.approx(c, abs=1e-9)


def test_mef_ssim_refuses_bad_input(bracket) -> None:
    _, display = bracket
    with pytest.raises(UsageError, match="too small"):
        mef_ssim(display[:, :30, :30], display[1, :30, :30], scales=3)
    with pytest.raises(UsageError, match="fusion is"):
        mef_ssim(display, display[1, :50])
    with pytest.raises(UsageError, match="data_range"):
        mef_ssim(display * 255, display[1] * 255)
    with pytest.raises(UsageError):
        mef_ssim([], display[1])


def test_psnr_identity_and_known_values() -> None:
    a = np.zeros((16, 16, 3), np.float32)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + np.float32(0.1)) == pytest.approx(20.0, abs=1e-4)
    z8 = np.zeros((8, 8), np.uint8)
    assert psnr(z8, z8 + 10) == pytest.approx(10 * math.log10(255**2 / 100))
    assert psnr(z8, z8 + 10) == psnr(z8 + 10, z8)
    with pytest.raises(UsageError, match="shape"):
        psnr(a, a[:8])


def test_ssim_identity_and_known_values(bracket) -> None:
    _, display = bracket
    img = display[1]
    assert ssim(img, img) == pytest.approx(1.0)
    # Flat images: only the luminance term remains, (2ab + C1) / (a^2 + b^2 + C1).
    flat_a, flat_b = np.full((20, 20), 0.2), np.full((20, 20), 0.4)
    c1 = 0.01**2
    assert ssim(flat_a, flat_b) == pytest.approx((2 * 0.08 + c1) / (0.04 + 0.16 + c1))
    rng = np.random.default_rng(1)
    noisy = [np.clip(img + rng.normal(0, s, img.shape), 0, 1) for s in (0.01, 0.05, 0.15)]
    scores = [ssim(img, n) for n in noisy]
    assert 1.0 > scores[0] > scores[1] > scores[2]
    assert ssim(noisy[1], img) == pytest.approx(scores[1])
    # A colour shift that keeps the structure still costs SSIM (per-channel scoring).
    shifted = img.copy()
    shifted[..., 2] = np.clip(shifted[..., 2] * 0.5, 0, 1)
    assert ssim(img, shifted) < 0.95
    as8 = np.round(img * 255).astype(np.uint8)
    assert ssim(as8, as8 // 2) == pytest.approx(ssim(as8 / 255.0, (as8 // 2) / 255.0))
