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
from uhdfuse.runtime.stream import StreamInfo, stream_maps


@dataclass(frozen=True)
class FuseStats:
    """What one :func:`fuse_ipl` call did, and the notes (warnings) it has for the user."""

    device: str  # where the token network ran ("cpu", "cuda", ...)
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


def _stream_on(
    model: IPL, images: np.ndarray, ev: Sequence[float], reference: int, maps: np.ndarray,
    dev: torch.device, chunk: int | None, cache_bits: int, notes: list[str],
) -> tuple[StreamInfo, PeakMemory, torch.device, float]:
    """:func:`stream_maps` on ``dev`` into ``maps``; on CUDA out of memory, again with half
    the chunk, then on the CPU (each retry a note). Returns the stream's info, its peak
    memory, the device and the seconds of the run that finished."""
    step = chunk
    while True:
        model = model.to(dev)
        start = time.perf_counter()
        try:
            with PeakMemory(dev) as peak:
                _, info = stream_maps(model, images, ev, reference, chunk=step, cache_bits=cache_bits,
                                      device=dev, dtype=compute_dtype(dev), out=maps)
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
    render may leave its display frames in ``images`` instead of copying them.

    Two stages: the token network streams over the frame on ``device`` (its peak
    memory is ``model_peak_bytes``), then the maps are rendered at full resolution on
    the CPU (:func:`~uhdfuse.runtime.render.render_maps`, a Mertens-style pyramid blend).

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
    info, peak, dev, model_seconds = _stream_on(model, images, ev, reference, maps, dev, chunk, cache_bits, notes)
    start = time.perf_counter()
    out = render_maps(images, maps, ev, reference, p, overwrite=overwrite)
    return out, FuseStats(
        device=str(dev),
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


__all__ = ["FuseStats", "fuse_ipl"]
