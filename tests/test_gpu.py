"""The device path of IPL (issue #15): the torch render equals the OpenCV render, the
token network reads device-resident frames, ``fuse_ipl`` renders where the model ran.

CI has no GPU, so everything that can runs on the CPU device: the torch render against
OpenCV's, float16 frames, the engine's device path on CPU tensors. The CUDA tests skip
without CUDA.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from uhdfuse.nn.blend import pyr_down
from uhdfuse.nn.ipl import build, ipl_test
from uhdfuse.pyramid import to_display
from uhdfuse.runtime import engine, render_torch
from uhdfuse.runtime.engine import DEVICE_TILE_PIXELS, fuse_ipl
from uhdfuse.runtime.render import render_maps
from uhdfuse.runtime.render_torch import display_frames, reduce_level, render_maps_torch
from uhdfuse.runtime.stream import stream_maps

from .test_ipl import bracket, psnr

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# fp16 keeps 11 significant bits: a linear value moves by at most 2^-11 of itself, and
# d(sRGB)/d(ln v) = 1.055/2.4 v^(1/2.4) <= 1.055/2.4 on [0, 1] (the linear piece moves less)
HALF_DISPLAY_BOUND = 1.055 / 2.4 * 2.0**-11 + 1e-6


def random_case(H: int, W: int, n: int, patch: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[float], int]:
    """Uncorrelated random frames (some above clipping, a few NaN/inf pixels), fractional
    EVs, a reference that is not the middle frame, logits of either sign and keep gates
    that are closed (0), open (1) or in between, in patches."""
    rng = np.random.default_rng(seed)
    images = (rng.random((n, H, W, 3), dtype=np.float32) * 1.3) ** 2
    images[0, 0, 0] = [np.nan, np.inf, -np.inf]
    ref = min(1, n - 1)
    ev = [1.7 * (i - ref) + 0.3 * (i % 2 - ref % 2) for i in range(n)]
    Ht, Wt = -(-H // patch), -(-W // patch)
    maps = rng.normal(0.0, 2.0, (Ht, Wt, 2 * n)).astype(np.float32)
    gates = rng.choice([0.0, 1.0, 0.5], size=(Ht, Wt, n), p=[0.4, 0.4, 0.2]) * rng.uniform(0.5, 1, (Ht, Wt, n))
    maps[..., n:] = np.where(gates >= 0.5, 1.0, gates).astype(np.float32)
    return images, maps, ev, ref


def torch_render(images: np.ndarray, maps: np.ndarray, ev, ref, patch, dtype=torch.float32) -> np.ndarray:
    return render_maps_torch(torch.from_numpy(images).to(dtype), torch.from_numpy(maps), ev, ref, patch).numpy()


# -- the torch render == the OpenCV render, on the CPU device -------------------------------

@pytest.mark.parametrize("H, W, n, patch", [(37, 53, 3, 4), (200, 301, 3, 8), (1, 5, 2, 4), (64, 40, 5, 4)])
def test_torch_render_equals_opencv_render(H, W, n, patch):
    images, maps, ev, ref = random_case(H, W, n, patch, seed=H + W)
    before = images.copy(), maps.copy()
    want = render_maps(images, maps, ev, ref, patch)
    got = torch_render(images, maps, ev, ref, patch)
    assert got.shape == (H, W, 3) and got.dtype == np.float32 and np.isfinite(got).all()
    assert np.abs(got - want).max() <= 1e-4
    np.testing.assert_array_equal(images, before[0])  # the inputs are read, never written
    np.testing.assert_array_equal(maps, before[1])
    if H * W > 100:  # the closed gates were used: opening them all changes the fusion
        opened = maps.copy()
        opened[..., n:] = 1.0
        assert np.abs(torch_render(images, opened, ev, ref, patch) - got).max() > 1e-2


def test_closed_gates_show_the_reference_at_each_exposure():
    images, maps, ev, ref = random_case(40, 36, 3, 4, seed=5)
    maps[..., 3:] = 0.0
    display = display_frames(torch.from_numpy(images), torch.from_numpy(maps), ev, ref, 4).numpy()
    for i, e in enumerate(ev):
        want = to_display(images[ref] * np.float32(2.0**e))  # e = 0 for the reference
        assert np.abs(display[i].transpose(1, 2, 0) - want).max() <= 1e-6
    assert np.abs(display[0].transpose(1, 2, 0) - to_display(images[0])).max() > 0.1


@pytest.mark.parametrize("group_pixels", [1, 20_000])
def test_frames_blended_in_groups_give_the_same_fusion(group_pixels, monkeypatch):
    """Large levels go frame by frame (GROUP_PIXELS): the same sums as all frames at once."""
    images, maps, ev, ref = random_case(200, 301, 4, 8, seed=3)
    together = torch_render(images, maps, ev, ref, 8)
    monkeypatch.setattr(render_torch, "GROUP_PIXELS", group_pixels)
    np.testing.assert_array_equal(torch_render(images, maps, ev, ref, 8), together)


@pytest.mark.parametrize("H, W", [(1, 1), (1, 5), (2, 7), (3, 3), (37, 53), (200, 301)])
def test_reduce_level_is_cv2_pyrdown(H, W):
    """The render's reduce (elementwise, so TF32 cannot touch it) == OpenCV's and training's."""
    x = np.random.default_rng(H * W).random((H, W), dtype=np.float32)
    got = reduce_level(torch.from_numpy(x)).numpy()
    assert got.shape == cv2.pyrDown(x).shape
    assert np.abs(got - cv2.pyrDown(x)).max() <= 1e-6
    assert np.abs(got - pyr_down(torch.from_numpy(x)).numpy()).max() <= 1e-6


def test_float16_frames():
    """Frames held in float16 move each display value by at most HALF_DISPLAY_BOUND
    (2.1e-4); the fusion moves more at a few pixels, where Mertens's contrast is near its
    floor and a frame's weight hinges on tiny differences (max ~5e-3 on this bracket),
    but stays >= 80 dB PSNR (86 dB measured; a 16-bit quantisation of the input: ~100)."""
    images, ev, ref = bracket(3, 200, 301)
    rng = np.random.default_rng(0)
    maps = rng.normal(0.0, 1.0, (50, 76, 6)).astype(np.float32)
    maps[..., 3:] = rng.random((50, 76, 3), dtype=np.float32)
    full, half = torch.from_numpy(images), torch.from_numpy(images).half()
    on_maps = torch.from_numpy(maps)
    moved = display_frames(half, on_maps, ev, ref, 4) - display_frames(full, on_maps, ev, ref, 4)
    assert moved.abs().max() <= HALF_DISPLAY_BOUND
    assert psnr(torch_render(images, maps, ev, ref, 4, torch.float16), torch_render(images, maps, ev, ref, 4)) >= 80.0


def test_render_rejects_maps_of_another_size():
    images, maps, ev, ref = random_case(37, 53, 3, 4, seed=1)
    with pytest.raises(ValueError, match="maps"):
        render_maps_torch(torch.from_numpy(images), torch.from_numpy(maps[:-1]), ev, ref, 4)


# -- the model reads frames held as tensors -----------------------------------------------------

@pytest.fixture(scope="module")
def model():
    m = build(ipl_test(), seed=1).eval()
    with torch.no_grad():  # logits and gates far from their init, as test_ipl's model
        m.head_out.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(2))
        m.head_out.bias[1] = 0.5
    return m


def test_tensor_frames_stream_the_same_maps(model):
    """Frames held as a tensor (as on a device), in the device path's larger tiles: the same maps."""
    images, ev, ref = bracket(3, 83, 301)
    want, _ = stream_maps(model, images, ev, ref, chunk=3)
    got, _ = stream_maps(model, torch.from_numpy(images), ev, ref, chunk=3, tile_pixels=DEVICE_TILE_PIXELS)
    np.testing.assert_array_equal(got, want)


def test_device_path_on_cpu_tensors(model, monkeypatch):
    """fuse_ipl's device path (upload, stream from the uploaded frames, torch render), run
    with the CPU as the device: the result equals fuse_ipl's CPU path, and the OpenCV
    render was not used."""
    images, ev, ref = bracket(3, 83, 61)
    want, _ = fuse_ipl(images, ev, ref, device="cpu", model=model)

    def no_opencv(*args, **kwargs):
        raise AssertionError("the OpenCV render ran")

    monkeypatch.setattr(engine, "render_maps", no_opencv)
    notes: list[str] = []
    dev = torch.device("cpu")
    frames = engine._upload(images, dev, notes)
    assert frames is not None and frames.dtype == engine.DEVICE_FRAMES
    maps = np.zeros((21, 16, 6), np.float32)
    _, _, dev, _ = engine._stream_on(model, images, frames, ev, ref, maps, dev, None, 8, notes)
    got, where = engine._render_on(dev, frames, images, maps, ev, ref, model.cfg.patch, False, notes)
    assert where == "cpu" and notes == []
    assert np.abs(got - want).max() <= 1e-4


def test_cpu_path_renders_with_opencv(model, monkeypatch):
    """On the CPU nothing is uploaded and the render stays OpenCV's."""

    def no_torch(*args, **kwargs):
        raise AssertionError("the torch render ran")

    monkeypatch.setattr(engine, "render_maps_torch", no_torch)
    monkeypatch.setattr(engine, "_upload", no_torch)
    images, ev, ref = bracket(3, 40, 44)
    _, stats = fuse_ipl(images, ev, ref, device="cpu", model=model)
    assert stats.device == "cpu" and stats.render_device == "cpu"


def test_render_out_of_memory_falls_back_to_opencv(model, monkeypatch):
    images, ev, ref = bracket(3, 40, 44)
    maps, _ = stream_maps(model, images, ev, ref)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(engine, "render_maps_torch", out_of_memory)
    notes: list[str] = []
    frames = torch.from_numpy(images)
    got, where = engine._render_on(torch.device("cpu"), frames, images, maps, ev, ref, 4, False, notes)
    assert where == "cpu" and any("rendering on the CPU" in note for note in notes)
    np.testing.assert_array_equal(got, render_maps(images, maps, ev, ref, 4))


# -- CUDA ----------------------------------------------------------------------------------

@needs_cuda
def test_cuda_fuse_renders_on_the_device():
    images, ev, ref = bracket(3, 256, 320)
    cpu, cpu_stats = fuse_ipl(images, ev, ref, device="cpu", model=build(ipl_test(), seed=1).eval())
    gpu, stats = fuse_ipl(images, ev, ref, device="cuda", model=build(ipl_test(), seed=1).eval())
    assert stats.device.startswith("cuda") and stats.render_device.startswith("cuda")
    assert cpu_stats.render_device == "cpu" and stats.notes == ()
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32
    assert psnr(gpu, cpu) >= 35.0  # test_ipl's bound for the bf16 token network


@needs_cuda
def test_cuda_render_equals_opencv_render():
    """Float32 on the GPU too: no TF32 convolution, exp/pow within a few ulp."""
    images, maps, ev, ref = random_case(200, 301, 3, 8, seed=7)
    want = render_maps(images, maps, ev, ref, 8)
    got = render_maps_torch(torch.from_numpy(images).cuda(), torch.from_numpy(maps).cuda(), ev, ref, 8)
    assert got.is_cuda and got.shape == (200, 301, 3)
    assert np.abs(got.cpu().numpy() - want).max() <= 1e-4
