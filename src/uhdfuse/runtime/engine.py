"""The IPL engine as the pipeline calls it: :func:`fuse_ipl` and its :class:`FuseStats`."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from uhdfuse.config import Device, MergeConfig, check_cache_bits, check_chunk
from uhdfuse.errors import InconsistentBracket, Message, UsageError, param
from uhdfuse.nn.ipl import IPL
from uhdfuse.nn.weights import load_weights
from uhdfuse.runtime.device import PeakMemory, compute_dtype, select_device
from uhdfuse.runtime.render import render_maps
from uhdfuse.runtime.render_torch import render_maps_torch
from uhdfuse.runtime.stream import TILE_PIXELS, StreamInfo, stream_maps

# The dtype frames are uploaded to a device in (once per fusion). float32: the device
# render then equals the CPU's to float rounding. float16 would halve the upload and the
# frames' device memory, but rounding each linear value to 2^-11 moves the fused output
# by up to ~5e-3 where Mertens's contrast is near its floor (86 dB PSNR against float32
# on tests' textured bracket; 16-bit quantisation of the input: 101 dB). docs/ipl.md, "GPU path".
DEVICE_FRAMES = torch.float32
# Pixels per tokenize call from device-resident frames (the host path's tiles bound a
# host->device copy; here larger tiles only mean fewer, larger kernels).
DEVICE_TILE_PIXELS = 1 << 20


@dataclass(frozen=True)
class FuseStats:
    """What one :func:`fuse_ipl` call did, and the notes (warnings) it has for the user."""

    device: str  # where the token network ran ("cpu", "cuda", ...)
    render_device: str  # where the full-resolution render ran: the model's device, or "cpu"
    dtype: str  # its compute dtype ("float32", "bfloat16", ...)
    slices: int  # row slices read, all bands
    cache_bits: int
    cache_bytes: int  # largest total size of one band's attention caches
    model_peak_bytes: int | None  # peak memory of the token network; None where unmeasurable
    memory_method: str  # how model_peak_bytes was measured
    model_seconds: float  # the token network
    render_seconds: float  # the full-resolution render
    weights: str | None  # the weights' variant; None for a model passed in
    trained: bool | None
    notes: tuple[str, ...] = ()  # untrained weights, CUDA out-of-memory retries


def _check(images: np.ndarray, ev: Sequence[float], reference: int) -> np.ndarray:
    """The frames as C-contiguous float32 (N, H, W, 3); errors for arrays IPL cannot fuse."""
    if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
        shape = getattr(images, "shape", None)
        raise InconsistentBracket(f"IPL needs aligned frames shaped (N, H, W, 3), got {shape}")
    n = images.shape[0]
    if n < 2:
        raise InconsistentBracket(f"IPL needs at least 2 frames, got {n}")
    if images.shape[1] < 1 or images.shape[2] < 1:
        raise InconsistentBracket(f"empty frames of shape {images.shape[1:3]}")
    if len(ev) != n or not all(math.isfinite(float(e)) for e in ev):
        raise InconsistentBracket(f"need {n} finite EVs, got {list(ev)}")
    if not 0 <= reference < n:
        raise UsageError(f"{param('reference')} {reference} is out of range 0..{n - 1}")
    return np.ascontiguousarray(images, dtype=np.float32)


def _upload(images: np.ndarray, dev: torch.device, notes: list[str]) -> torch.Tensor | None:
    """The frames on ``dev``, copied once: (N, H, W, 3) :data:`DEVICE_FRAMES`; None
    (and a note) where they do not fit."""
    try:
        frames = torch.empty(images.shape, dtype=DEVICE_FRAMES, device=dev)
        for i in range(images.shape[0]):  # frame by frame: any dtype conversion's host temporary is one frame
            frames[i].copy_(torch.from_numpy(images[i]))
        return frames
    except torch.cuda.OutOfMemoryError:
        notes.append(Message("CUDA out of memory for the frames: the model reads them from the host "
                             "and the render runs on the CPU"))
        torch.cuda.empty_cache()
    return None


def _stream_on(
    model: IPL, images: np.ndarray, frames: torch.Tensor | None, ev: Sequence[float], reference: int,
    maps: np.ndarray, dev: torch.device, chunk: int | None, cache_bits: int, notes: list[str],
) -> tuple[StreamInfo, PeakMemory, torch.device, float]:
    """:func:`stream_maps` on ``dev`` into ``maps``, reading the device-resident ``frames``
    where there are some (else ``images``); on CUDA out of memory, again with half the
    chunk, then on the CPU from ``images`` (each retry a note). Returns the stream's info,
    its peak memory, the device and the seconds of the run that finished."""
    step = chunk
    while True:
        model = model.to(dev)
        source = frames if frames is not None and frames.device.type == dev.type else images
        tiles = DEVICE_TILE_PIXELS if source is frames else TILE_PIXELS
        start = time.perf_counter()
        try:
            with PeakMemory(dev) as peak:
                _, info = stream_maps(model, source, ev, reference, chunk=step, cache_bits=cache_bits,
                                      device=dev, dtype=compute_dtype(dev), out=maps, tile_pixels=tiles)
            return info, peak, dev, time.perf_counter() - start
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            current = step or model.cfg.window
            if current > 1:
                step = max(1, current // 2)
                notes.append(Message(f"CUDA out of memory: retrying with {param('chunk', step)}"))
            else:
                notes.append(Message("CUDA out of memory at the smallest chunk: falling back to the CPU"))
                dev, step = torch.device("cpu"), chunk


def _render_on(
    dev: torch.device, frames: torch.Tensor | None, images: np.ndarray, maps: np.ndarray,
    ev: Sequence[float], reference: int, patch: int, overwrite: bool, notes: list[str],
) -> tuple[np.ndarray, str]:
    """The render where the model ran: in torch on ``dev`` where the frames are there
    (only the (H, W, 3) result comes back), else with OpenCV on the CPU from ``images``,
    as also after a CUDA out-of-memory error (a note). Returns (fused, where it ran)."""
    if frames is not None and frames.device.type == dev.type:
        try:
            fused = render_maps_torch(frames, torch.from_numpy(maps).to(dev), ev, reference, patch)
            return fused.cpu().numpy(), str(dev)
        except torch.cuda.OutOfMemoryError:
            notes.append(Message("CUDA out of memory in the render: rendering on the CPU"))
            torch.cuda.empty_cache()
    return render_maps(images, maps, ev, reference, patch, overwrite=overwrite), "cpu"


def fuse_ipl(
    images: np.ndarray,
    ev: Sequence[float],
    reference: int,
    *,
    device: Device | str = Device.AUTO,
    chunk: int | None = None,
    cache_bits: int = MergeConfig.cache_bits,
    weights: Path | None = None,
    model: IPL | None = None,
    overwrite: bool = False,
) -> tuple[np.ndarray, FuseStats]:
    """Fuse aligned frames with IPL.

    images: (N, H, W, 3) float32 linear light, aligned, 1.0 = clipping level.
    ev: N exposures relative to the reference (EV). reference: its index.
    device: a :class:`~uhdfuse.config.Device`. chunk: token rows per streaming step
    (None: :func:`uhdfuse.runtime.stream.default_chunk`). cache_bits: one of
    :data:`~uhdfuse.config.CACHE_BITS`. weights: a .safetensors file (None: the
    shipped default). ``model`` skips loading (benchmarks, tests). ``overwrite``: the
    CPU render may use ``images`` as its working memory instead of a copy (their
    values afterwards are unspecified).

    Two stages: the token network streams over the frame on ``device`` (its peak
    memory is ``model_peak_bytes``), then the maps are rendered at full resolution
    (a Mertens-style pyramid blend). On the CPU both read ``images`` and the render is
    OpenCV's (:func:`~uhdfuse.runtime.render.render_maps`). On another device the frames
    are uploaded once (:data:`DEVICE_FRAMES`), the model reads its tiles and the torch
    render (:func:`~uhdfuse.runtime.render_torch.render_maps_torch`) its frames from
    there, and only the fused image comes back; ``FuseStats.render_device`` says where
    the render ran.

    Returns (fused (H, W, 3) float32 display-encoded sRGB in [0, 1], :class:`FuseStats`).
    """
    images = _check(images, ev, reference)
    check_cache_bits(cache_bits)
    check_chunk(chunk)
    dev = select_device(device)
    notes: list[str] = []
    manifest: dict = {}
    if model is None:
        model, manifest = load_weights(weights)
        if not manifest.get("trained", False):
            notes.append(Message(f"IPL weights {manifest.get('variant', '?')} are untrained: "
                                 "its output is not a trained fusion"))
    N, H, W = images.shape[:3]
    p = model.cfg.patch
    maps = np.empty((-(-H // p), -(-W // p), 2 * N), np.float32)
    maps.fill(0.0)  # touch the pages now (np.zeros would not), so the stage's peak excludes the output
    frames = _upload(images, dev, notes) if dev.type != "cpu" else None
    info, peak, dev, model_seconds = _stream_on(model, images, frames, ev, reference, maps, dev, chunk,
                                                cache_bits, notes)
    start = time.perf_counter()
    out, render_device = _render_on(dev, frames, images, maps, ev, reference, p, overwrite, notes)
    del frames
    return out, FuseStats(
        device=str(dev),
        render_device=render_device,
        dtype=str(compute_dtype(dev)).replace("torch.", ""),
        slices=info.slices,
        cache_bits=cache_bits,
        cache_bytes=info.cache_bytes,
        model_peak_bytes=peak.bytes,
        memory_method=peak.method,
        model_seconds=model_seconds,
        render_seconds=time.perf_counter() - start,
        weights=manifest.get("variant"),
        trained=manifest.get("trained"),
        notes=tuple(notes),
    )


__all__ = ["DEVICE_FRAMES", "DEVICE_TILE_PIXELS", "FuseStats", "fuse_ipl"]
