"""The IPL engine as the pipeline calls it: :func:`fuse_ipl`."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from uhdfuse.errors import InconsistentBracket, UsageError
from uhdfuse.nn.ipl import IPL
from uhdfuse.nn.weights import load_weights
from uhdfuse.runtime.cache import BITS
from uhdfuse.runtime.device import PeakMemory, compute_dtype, select_device
from uhdfuse.runtime.render import render_maps
from uhdfuse.runtime.stream import stream_maps


class IPLWarning(UserWarning):
    """Untrained weights, or a CUDA out-of-memory retry / CPU fallback."""


def _check(images: np.ndarray, ev: Sequence[float], reference: int, chunk: int | None, cache_bits: int) -> np.ndarray:
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
        raise UsageError(f"reference frame {reference} out of range 0..{n - 1}")
    if cache_bits not in BITS:
        raise UsageError(f"--cache-bits must be one of {', '.join(map(str, BITS))}, got {cache_bits}")
    if chunk is not None and chunk < 1:
        raise UsageError(f"--chunk must be a positive number of token rows, got {chunk}")
    return np.ascontiguousarray(images, dtype=np.float32)


def fuse_ipl(
    images: np.ndarray,
    ev: Sequence[float],
    reference: int,
    *,
    device: str = "auto",
    chunk: int | None = None,
    cache_bits: int = 8,
    weights: Path | None = None,
    model: IPL | None = None,
) -> tuple[np.ndarray, dict]:
    """Fuse aligned frames with IPL.

    images: (N, H, W, 3) float32 linear light, aligned, 1.0 = clipping level.
    ev: N exposures relative to the reference (EV). reference: its index.
    device: auto|cpu|cuda|mps. chunk: token rows per streaming step (None: about
    1920 tokens per step on the CPU, 3840 elsewhere; uhdfuse.runtime.stream.default_chunk).
    cache_bits: 16, 8 or 4. weights: a .safetensors file (None: the shipped default). ``model`` skips loading (benchmarks, tests).

    Two stages: the token network streams over the frame on ``device`` (its peak
    memory is ``model_peak_bytes``), then the maps are rendered at full resolution on
    the CPU (:func:`~uhdfuse.runtime.render.render_maps`, a Mertens-style pyramid blend).

    Returns (fused (H, W, 3) float32 display-encoded sRGB in [0, 1], stats) with
    stats keys: device, dtype, slices, cache_bits, cache_bytes, model_peak_bytes,
    memory_method, seconds (token network), render_seconds, weights, trained.
    """
    images = _check(images, ev, reference, chunk, cache_bits)
    manifest: dict = {}
    if model is None:
        model, manifest = load_weights(weights)
        if not manifest.get("trained", False):
            warnings.warn(f"IPL weights {manifest.get('variant', '?')} are untrained: "
                          "its output is not a trained fusion", IPLWarning, stacklevel=2)
    dev = select_device(device)
    N, H, W = images.shape[:3]
    p = model.cfg.patch
    maps = np.empty((-(-H // p), -(-W // p), 2 * N), np.float32)
    maps.fill(0.0)  # touch the pages now (np.zeros would not), so the stage's peak excludes the output
    step = chunk
    while True:
        dtype = compute_dtype(dev)
        model = model.to(dev)
        t0 = time.perf_counter()
        try:
            with PeakMemory(dev) as peak:
                maps, info = stream_maps(model, images, ev, reference, chunk=step,
                                         cache_bits=cache_bits, device=dev, dtype=dtype, out=maps)
            break
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            current = step or model.cfg.window
            if current > 1:
                step = max(1, current // 2)
                warnings.warn(f"CUDA out of memory: retrying with --chunk {step}", IPLWarning, stacklevel=2)
            else:
                warnings.warn("CUDA out of memory at the smallest chunk: falling back to the CPU",
                              IPLWarning, stacklevel=2)
                dev, step = torch.device("cpu"), chunk
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = render_maps(images, maps, ev, reference, p)
    render_seconds = time.perf_counter() - t0
    stats = {
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "slices": info["slices"],
        "cache_bits": cache_bits,
        "cache_bytes": info["cache_bytes"],
        "model_peak_bytes": peak.bytes,
        "memory_method": peak.method,
        "seconds": seconds,
        "render_seconds": render_seconds,
        "weights": manifest.get("variant"),
        "trained": manifest.get("trained"),
    }
    return out, stats
