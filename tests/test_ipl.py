"""Proofs for the IPL engine: streaming equals the whole-frame computation, the
inference render equals the differentiable one, the quantized cache stays close to
16-bit, no seams, any bracket size, weights files.

CPU, small sizes, the tiny ``ipl_test`` variant with random weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from uhdfuse.classical import fuse_mertens
from uhdfuse.errors import InconsistentBracket, ModelError, UsageError
from uhdfuse.nn.cache import KVCache, dequantize, pack4, quantize, unpack4
from uhdfuse.nn.ipl import IPL, IPLConfig, build, ipl_base, ipl_test
from uhdfuse.nn.layers import srgb_encode
from uhdfuse.nn.weights import load_weights, save_weights, weights_dir
from uhdfuse.runtime import engine
from uhdfuse.runtime.engine import fuse_ipl
from uhdfuse.runtime.render import render_maps
from uhdfuse.runtime.stream import stream_fuse, stream_maps

ROOT = Path(__file__).resolve().parents[1]


def bracket(n: int, H: int, W: int, seed: int = 0, moving: bool = True) -> tuple[np.ndarray, list[float], int]:
    """A synthetic bracket: smooth scene + texture, EVs 2 apart, a block that moves."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    scene = np.stack([xx / W, yy / H, 0.5 + 0.5 * np.sin(xx / 7 + yy / 11)], -1) * 3.0
    scene *= 1.0 + 0.3 * rng.random((H, W, 3), dtype=np.float32)
    ref = n // 2
    ev = [2.0 * (i - ref) for i in range(n)]
    frames = []
    for i, e in enumerate(ev):
        f = scene * 2.0**e / 3.0
        if moving:
            y0 = (H // 5 + 3 * i) % max(1, H - 8)
            f[y0: y0 + 8, W // 3: W // 3 + 8] = 0.8
        frames.append(np.clip(f, 0, 1))
    return np.stack(frames).astype(np.float32), ev, ref


def reference(model, images, ev, ref, bits):
    """The whole-frame, differentiable computation: (H, W, 3) display output."""
    with torch.no_grad():
        return model(torch.from_numpy(images)[None], torch.tensor([ev]), torch.tensor([ref]), bits)[0].numpy()


def reference_maps(model, images, ev, ref, bits):
    """The whole-frame token network: (Ht, Wt, 2N) maps."""
    with torch.no_grad():
        return model.maps(torch.from_numpy(images)[None], torch.tensor([ev]), torch.tensor([ref]), bits)[0].numpy()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def model():
    m = build(ipl_test(), seed=1).eval()
    with torch.no_grad():  # logits and keep gates far from their init, so every path of the render is used
        m.head_out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
        m.head_out.bias[1] = 0.5
    return m


# -- streaming == whole frame ---------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 3, 8, 1000])
def test_streaming_equals_whole_frame_16bit(model, chunk):
    images, ev, ref = bracket(3, 83, 61)
    want = reference_maps(model, images, ev, ref, 16)
    got, info = stream_maps(model, images, ev, ref, chunk=chunk, cache_bits=16)
    assert got.shape == (21, 16, 6) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    token_rows = -(-83 // 4)
    assert info.slices == -(-token_rows // chunk)


def test_inference_render_equals_the_differentiable_one(model):
    """OpenCV render of the streamed maps == torch render of the whole-frame maps (float rounding)."""
    images, ev, ref = bracket(3, 83, 61)
    want = reference(model, images, ev, ref, 16)
    got, _ = stream_fuse(model, images, ev, ref, chunk=3, cache_bits=16)
    assert got.shape == (83, 61, 3) and got.dtype == np.float32
    diff = np.abs(got - want)
    assert diff.max() <= 1e-3 and diff.mean() <= 1e-6


@pytest.mark.parametrize("bits", [8, 4])
def test_streaming_equals_whole_frame_quantized(model, bits):
    images, ev, ref = bracket(3, 64, 48)
    want = reference_maps(model, images, ev, ref, bits)
    got, _ = stream_maps(model, images, ev, ref, chunk=2, cache_bits=bits)
    assert np.abs(got - want).max() <= 1e-4


def test_odd_frame_size_1001x667(model):
    images, ev, ref = bracket(3, 667, 1001, moving=False)
    want = reference_maps(model, images, ev, ref, 16)
    got, _ = stream_maps(model, images, ev, ref, chunk=16, cache_bits=16)
    assert np.abs(got - want).max() <= 1e-4
    out = render_maps(images, got, ev, ref, model.cfg.patch)
    assert out.shape == (667, 1001, 3) and np.abs(out - reference(model, images, ev, ref, 16)).mean() <= 1e-6


# -- column bands ----------------------------------------------------------------------

BAND = 44  # token columns per band for the tests (176 px at patch 4): the smallest ipl_test allows


def banded(model: IPL, band: int = BAND) -> IPL:
    """The same weights with another band width (not a parameter)."""
    m = IPL(dataclasses.replace(model.cfg, band=band))
    m.load_state_dict(model.state_dict())
    return m.eval()


@pytest.mark.parametrize("chunk,bits", [(1, 16), (3, 8), (None, 16), (None, 4)])
def test_band_streaming_equals_whole_frame(model, chunk, bits):
    m = banded(model)
    images, ev, ref = bracket(3, 83, 301)  # 76 token columns: 4 bands
    want = reference_maps(m, images, ev, ref, bits)
    got, info = stream_maps(m, images, ev, ref, chunk=chunk, cache_bits=bits)
    assert info.bands == len(m.bands(76)) == 4
    assert np.abs(got - want).max() <= 1e-4


def test_frames_within_one_band_do_not_depend_on_the_band_width(model):
    images, ev, ref = bracket(3, 40, 4 * BAND)  # exactly one band
    assert banded(model).bands(BAND) == [(0, BAND)]
    assert np.array_equal(reference(banded(model), images, ev, ref, 16), reference(model, images, ev, ref, 16))


def test_band_buffers_do_not_grow_with_width(model):
    m, wide = banded(model), banded(model, band=1000)
    images, ev, ref = bracket(3, 48, 4 * 150, moving=False)
    info = {w: stream_fuse(m, images[:, :, :w], ev, ref, cache_bits=8)[1] for w in (4 * 90, 4 * 150)}
    assert info[4 * 90].bands == 5 and info[4 * 150].bands == 10
    assert info[4 * 150].buffer_bytes == info[4 * 90].buffer_bytes
    assert info[4 * 150].cache_bytes <= info[4 * 90].cache_bytes * 1.05
    # one band over the whole width: the same buffers grow with it
    one = {w: stream_fuse(wide, images[:, :, :w], ev, ref, cache_bits=8)[1].buffer_bytes for w in (4 * 90, 4 * 150)}
    assert one[4 * 150] > 1.5 * one[4 * 90]


@pytest.mark.parametrize("chunk", [None, 3])
def test_buffers_do_not_grow_with_height(model, chunk):
    """The last rows drain through the stages in step-sized calls, not in one large call."""
    images, ev, ref = bracket(3, 4 * 61, 48, moving=False)
    held = {rows: stream_maps(model, images[:, : 4 * rows], ev, ref, chunk=chunk, cache_bits=8)[1].buffer_bytes
            for rows in (24, 37, 45, 61)}
    assert len(set(held.values())) == 1, held


def test_no_seams_at_band_borders(model):
    """On a smooth bracket, output steps across band seams are like steps elsewhere."""
    m = banded(model)
    H, W = 48, 4 * 130
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    scene = np.stack([xx / W, yy / H, (xx + yy) / (H + W)], -1) * 2 + 0.1
    images = np.stack([np.clip(scene * 2.0**e / 2, 0, 1) for e in (-2, 0, 2)]).astype(np.float32)
    out, info = stream_fuse(m, images, [-2.0, 0.0, 2.0], 1, cache_bits=8)
    assert info.bands >= 3
    step = np.abs(np.diff(out, axis=1)).mean(axis=(0, 2))  # between pixel columns x and x+1
    kink = np.abs(step[1:-1] - 0.5 * (step[:-2] + step[2:]))  # at step index x+1
    p, R, mg = m.cfg.patch, m.cfg.window, m.band_margin()
    seam = np.zeros(len(kink), bool)
    for lo, _ in m.bands(W // p)[1:]:  # pixel columns of each seam zone and its edges
        seam[max(0, (lo + mg) * p - 2 - 1): (lo + mg + 2 * R) * p + 2] = True
    assert kink[seam].max() <= 2.0 * kink[~seam].max() + 1e-4


# -- cache quantization ---------------------------------------------------------------

def test_quantize_round_trip_error_is_half_a_step():
    x = torch.randn(2, 2, 40, 16)
    for bits in (8, 4):
        codes, lo, step = quantize(x, bits, -2)  # per channel
        assert lo.shape == (2, 2, 1, 16) and codes.dtype == torch.uint8 and int(codes.max()) < 2**bits
        err = (dequantize(codes, lo, step) - x).abs()
        assert torch.all(err <= step.float() * 0.5 + 1e-3 * step.float() + 1e-6)
    codes = torch.randint(0, 16, (3, 5, 8), dtype=torch.uint8)
    assert torch.equal(unpack4(pack4(codes)), codes)


def test_cache_keeps_budget_and_pools_the_rest():
    sizes = {}
    for bits in (16, 8, 4):
        torch.manual_seed(0)
        cache = KVCache(bits, keep=48, bins=4, decay=1 / 64)
        for _ in range(6):  # six window-rows of 30 windows, 2 heads of 16 channels
            cache.append(torch.randn(1, 2, 30, 16), torch.randn(1, 2, 30, 16), torch.rand(1, 30), torch.rand(1, 30))
        k, v, bias = cache.context()
        assert k.shape == (1, 2, 52, 16) and v.shape == k.shape  # 48 kept + 4 pooled bins
        assert round(float(torch.exp(bias[0, 48:]).sum())) == 6 * 30 - 48  # every evicted entry counted once
        sizes[bits] = cache.nbytes()
    assert sizes[4] < 0.75 * sizes[8] and sizes[8] < 0.75 * sizes[16]


def test_cache_keeps_the_most_important_entries():
    cache = KVCache(16, keep=3, bins=2, decay=0.0)
    score = torch.tensor([[0.1, 0.9, 0.2, 0.8, 0.95, 0.0]])
    k = torch.arange(6.0).reshape(1, 1, 6, 1).expand(1, 1, 6, 2).contiguous()
    cache.append(k, k, score, torch.zeros(1, 6))
    kept = cache.context()[0][0, 0, :3, 0].tolist()
    assert kept == [1.0, 3.0, 4.0]


@pytest.mark.parametrize("bits,min_db", [(8, 45.0), (4, 35.0)])
def test_quantized_cache_psnr_against_16bit(model, bits, min_db):
    images, ev, ref = bracket(3, 96, 80)
    full, _ = stream_fuse(model, images, ev, ref, cache_bits=16)
    low, _ = stream_fuse(model, images, ev, ref, cache_bits=bits)
    assert psnr(low, full) >= min_db


@pytest.mark.parametrize("bits,min_db", [(8, 45.0), (4, 35.0)])
def test_quantized_cache_psnr_against_16bit_with_the_shipped_weights(bits, min_db):
    """The trained model, whose attention was learned with an 8-bit cache, over several window-rows."""
    model, manifest = load_weights(weights_dir() / "ipl-base.safetensors")
    assert manifest["trained"] is True
    images, ev, ref = bracket(3, 400, 640)
    full, _ = stream_fuse(model, images, ev, ref, cache_bits=16)
    low, _ = stream_fuse(model, images, ev, ref, cache_bits=bits)
    assert psnr(low, full) >= min_db


def test_cache_bytes_shrink_with_bits():
    base = build(ipl_base(), seed=0).eval()  # realistic widths: scale overheads are amortised
    images, ev, ref = bracket(3, 256, 768, moving=False)
    size = {b: stream_fuse(base, images, ev, ref, cache_bits=b)[1].cache_bytes for b in (16, 8, 4)}
    assert size[4] < 0.8 * size[8] and size[8] < 0.8 * size[16]


# -- seams ----------------------------------------------------------------------------

def test_slice_borders_no_worse_than_elsewhere(model):
    """Error of the int8 streaming output against the 16-bit whole frame, by pixel row."""
    images, ev, ref = bracket(3, 128, 96)
    want = reference(model, images, ev, ref, 16)
    chunk = 2
    got, _ = stream_fuse(model, images, ev, ref, chunk=chunk, cache_bits=8)
    row_err = np.abs(got - want).mean(axis=(1, 2))
    step = chunk * model.cfg.patch
    border = np.zeros(len(row_err), bool)
    for y in range(step, len(row_err), step):
        border[y - 1: y + 1] = True
    assert row_err[border].mean() <= 1.5 * row_err[~border].mean() + 1e-6


def test_no_seams_at_window_borders(model):
    """On a smooth bracket, output steps across window borders are like steps elsewhere."""
    H, W = 96, 96
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    scene = np.stack([xx / W, yy / H, (xx + yy) / (H + W)], -1) * 2 + 0.1
    images = np.stack([np.clip(scene * 2.0**e / 2, 0, 1) for e in (-2, 0, 2)]).astype(np.float32)
    out, _ = stream_fuse(model, images, [-2.0, 0.0, 2.0], 1, cache_bits=8)
    half = model.cfg.window * model.cfg.patch // 2  # window borders of some block every `half` px
    for axis in (0, 1):
        step = np.abs(np.diff(out, axis=axis)).mean(axis=(1 - axis, 2))  # between pixel y and y+1
        kink = np.abs(step[1:-1] - 0.5 * (step[:-2] + step[2:]))  # at step index y+1
        border = np.array([(y + 2) % half == 0 for y in range(len(kink))])
        assert kink[border].max() <= 2.0 * kink[~border].max() + 1e-4


# -- brackets -------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_any_number_of_exposures(model, n):
    images, ev, ref = bracket(n, 40, 52, seed=n)
    out, stats = fuse_ipl(images, ev, ref, device="cpu", model=model)
    assert out.shape == (40, 52, 3) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    assert stats.device == "cpu" and stats.slices >= 1


def test_permuting_non_reference_frames_changes_nothing(model):
    images, ev, ref = bracket(5, 48, 40)
    base, _ = stream_fuse(model, images, ev, ref)
    order = [4, 3, ref, 0, 1]
    assert order[ref] == ref
    perm, _ = stream_fuse(model, images[order], [ev[i] for i in order], ref)
    assert np.abs(perm - base).max() <= 1e-5


def test_output_is_built_from_input_pixels():
    """Identical frames fuse to that frame (convex weights), encoded to sRGB."""
    m = build(ipl_test(), seed=3).eval()  # plain init: residual gain is zero
    images, _, _ = bracket(1, 40, 36, moving=False)
    stack = np.repeat(images, 3, axis=0)
    out, _ = stream_fuse(m, stack, [0.0, 0.0, 0.0], 1)
    want = srgb_encode(torch.from_numpy(images[0]).clamp(0, 1)).numpy()
    assert np.abs(out - want).max() <= 1e-5


def test_rejected_frames_are_replaced_by_the_reference_at_their_exposure():
    """Gates closed everywhere: the fusion is Mertens of the reference rendered at each
    frame's exposure, so nothing of what moved in the other frames is left."""
    m = build(ipl_test(), seed=4).eval()
    with torch.no_grad():
        m.head_out.weight.zero_()  # logits 0: plain Mertens weights
        m.head_out.bias[1] = -100.0  # the gate rejects every non-reference frame
    images, ev, ref = bracket(3, 40, 36)
    out, _ = stream_fuse(m, images, ev, ref)
    stand_ins = np.stack([np.clip(images[ref] * 2.0**e, 0, 1) for e in ev]).astype(np.float32)
    assert np.abs(out - fuse_mertens(stand_ins)).max() <= 1e-4
    assert np.abs(out - fuse_mertens(images)).max() > 0.1  # the moving block did change the plain fusion


def test_open_gates_and_zero_logits_are_mertens():
    """A fresh model (logits ~0, gates open) fuses like ``--engine mertens``."""
    m = build(ipl_test(), seed=4).eval()
    with torch.no_grad():
        m.head_out.weight.zero_()
        m.head_out.bias[1] = 100.0
    images, ev, ref = bracket(3, 40, 36)
    out, _ = stream_fuse(m, images, ev, ref)
    assert np.abs(out - fuse_mertens(images)).max() <= 1e-5


def test_untrained_fusion_prefers_well_exposed_frames():
    """A fresh model weights frames by exposure: a dark region takes the bright frame."""
    m = build(ipl_base(), seed=0).eval()
    H, W = 64, 64
    scene = np.full((H, W, 3), 0.02, np.float32)  # deep shadow everywhere
    images = np.stack([np.clip(scene * 2.0**e, 0, 1) for e in (0.0, 4.0)]).astype(np.float32)
    out, _ = stream_fuse(m, images, [0.0, 4.0], 0)
    dark, bright = srgb_encode(torch.tensor(0.02)).item(), srgb_encode(torch.tensor(0.32)).item()
    assert out.mean() > (dark + bright) / 2


# -- training mode --------------------------------------------------------------------

def test_training_forward_is_differentiable_and_matches_inference():
    m = build(ipl_test(), seed=5)
    images, ev, ref = bracket(3, 32, 32)
    x = torch.from_numpy(images)[None]
    out = m(x, torch.tensor([ev]), torch.tensor([ref]), 8)
    out.mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing
    with torch.no_grad():
        again = m(x, torch.tensor([ev]), torch.tensor([ref]), 8)
    assert torch.allclose(out.detach(), again, atol=1e-6)


# -- weights files --------------------------------------------------------------------

def test_shipped_test_weights_reproduce_the_golden_output():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_ipl_golden", ROOT / "tests" / "make_ipl_golden.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    model, manifest = load_weights(weights_dir() / "ipl-test.safetensors")
    assert manifest["trained"] is False and "UNTRAINED" in manifest["notes"]
    images, ev, ref = gen.golden_bracket()
    out = reference(model, images, ev, ref, 8)
    golden = np.load(ROOT / "tests" / "data" / "ipl_golden.npy")
    np.testing.assert_allclose(out, golden, atol=reordering_tolerance(model, images, ev, ref))


def reordering_tolerance(model, images, ev, ref) -> float:
    """How far float32 reordering can move the golden output, measured, not guessed.

    Another CPU's kernels sum in another order (AVX-512 against AVX2 blocking). Each
    reduction of n terms is then off by up to n * u (u = 2**-24) relative, and a shift
    that small can flip a rounding of the 8-bit attention cache, which moves a few
    outputs by far more than an ulp. We push the input by n * u (n = the model width,
    its longest reduction) in six seeded directions and take the largest move of the
    output; the golden machine and this one may each be that far from the exact
    result, hence twice it. An architecture or loader change moves outputs by orders
    of magnitude more, which the bound below keeps checkable.
    """
    rel = model.cfg.dim * np.finfo(np.float32).eps / 2
    base = reference(model, images, ev, ref, 8)
    moves = []
    for seed in range(6):
        noise = np.random.default_rng(seed).uniform(-rel, rel, images.shape)
        moved = reference(model, (images * (1.0 + noise)).astype(np.float32), ev, ref, 8)
        moves.append(float(np.abs(moved - base).max()))
    tolerance = 2.0 * max(moves)
    assert tolerance < 1e-3, f"the golden output is too sensitive to float rounding to guard anything ({tolerance})"
    return tolerance


def test_weights_round_trip(tmp_path):
    m = build(IPLConfig(dim=16, blocks=1), seed=6)
    path = tmp_path / "w.safetensors"
    manifest = save_weights(m, path, variant="custom", trained=True, steps=3)
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded, man = load_weights(path)
    assert loaded.cfg == m.cfg and man["steps"] == 3
    for (k, a), (_, b) in zip(m.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_corrupt_or_mismatched_weights_raise_model_error(tmp_path):
    src = weights_dir() / "ipl-test.safetensors"
    path = tmp_path / "ipl-test.safetensors"
    shutil.copy(src, path)
    shutil.copy(src.with_suffix(".json"), path.with_suffix(".json"))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256"):
        load_weights(path)
    # a config that does not fit the tensors
    shutil.copy(src, path)
    man = json.loads(path.with_suffix(".json").read_text())
    man["config"]["dim"] = 24
    path.with_suffix(".json").write_text(json.dumps(man))
    with pytest.raises(ModelError, match="do not fit"):
        load_weights(path)
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="manifest missing"):
        load_weights(path)


# -- engine ---------------------------------------------------------------------------

def test_fuse_ipl_default_weights_and_stats():
    images, ev, ref = bracket(3, 40, 44)
    out, stats = fuse_ipl(images, ev, ref, device="cpu", cache_bits=4)
    assert stats.notes == ()  # the shipped default is trained: no note
    assert out.shape == (40, 44, 3)
    assert stats.weights == "ipl_base" and stats.trained is True
    for key in ("model_peak_bytes", "device", "dtype", "slices", "cache_bytes", "model_seconds", "render_seconds"):
        assert hasattr(stats, key)
    assert stats.dtype == "float32" and stats.cache_bytes > 0


def test_fuse_ipl_notes_untrained_weights():
    images, ev, ref = bracket(3, 40, 44)
    _, stats = fuse_ipl(images, ev, ref, device="cpu", weights=weights_dir() / "ipl-test.safetensors")
    assert any("untrained" in note for note in stats.notes)


def test_fuse_ipl_rejects_bad_input(model):
    images, ev, ref = bracket(3, 20, 20)
    with pytest.raises(InconsistentBracket):
        fuse_ipl(images[:1], ev[:1], 0, model=model)
    with pytest.raises(InconsistentBracket):
        fuse_ipl(images, ev[:2], ref, model=model)
    with pytest.raises(UsageError):
        fuse_ipl(images, ev, ref, cache_bits=3, model=model)
    with pytest.raises(UsageError):
        fuse_ipl(images, ev, ref, chunk=0, model=model)
    with pytest.raises(UsageError):
        fuse_ipl(images, ev, ref, device="tpu", model=model)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="cuda"):
            fuse_ipl(images, ev, ref, device="cuda", model=model)


def test_out_of_memory_retries_smaller_then_falls_back(model, monkeypatch):
    images, ev, ref = bracket(3, 24, 24)
    real = engine.stream_maps
    chunks = []

    def flaky(*args, **kwargs):
        chunks.append(kwargs["chunk"])
        if len(chunks) <= 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "stream_maps", flaky)
    out, stats = fuse_ipl(images, ev, ref, device="cpu", model=model)
    assert chunks[:3] == [None, 2, 1]
    assert any("falling back to the CPU" in note for note in stats.notes)
    assert out.shape == (24, 24, 3) and stats.device == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_matches_cpu(model):
    images, ev, ref = bracket(3, 256, 320)
    cpu, _ = fuse_ipl(images, ev, ref, device="cpu", model=build(ipl_test(), seed=1).eval())
    gpu, stats = fuse_ipl(images, ev, ref, device="cuda", model=build(ipl_test(), seed=1).eval())
    assert stats.dtype in ("bfloat16", "float16") and stats.model_peak_bytes > 0
    assert psnr(gpu, cpu) >= 35.0


@pytest.mark.parametrize("bits", [16, 8])
def test_bf16_autocast_streams_on_cpu(model, bits):
    """The reduced-precision path CUDA takes (autocast + a quantized cache), run where CI can."""
    images, ev, ref = bracket(3, 96, 128)
    full, _ = stream_maps(model, images, ev, ref, cache_bits=bits)
    half, _ = stream_maps(model, images, ev, ref, cache_bits=bits, dtype=torch.bfloat16)
    assert half.dtype == np.float32 and np.isfinite(half).all()
    a, b = (render_maps(images, x, ev, ref, model.cfg.patch) for x in (full, half))
    assert psnr(b, a) >= 35.0


def test_render_in_the_frames_own_memory_equals_the_render_on_a_copy(model):
    # the pipeline lets the render use the aligned frames as working memory (encoded in
    # place, handed back to the system as the blend goes): the picture must not change
    images, ev, ref = bracket(3, 400, 600)  # 2.9 MB a frame: large enough to be released
    maps, _ = stream_maps(model, images, ev, ref, chunk=8)
    untouched = images.copy()
    want = render_maps(images, maps, ev, ref, model.cfg.patch)
    assert np.array_equal(images, untouched)  # without overwrite the caller's frames are left alone
    got = render_maps(images, maps, ev, ref, model.cfg.patch, overwrite=True)
    assert np.array_equal(got, want)
    assert not np.array_equal(images, untouched)  # the frames were the working memory
