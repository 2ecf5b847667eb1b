"""The streaming executor: run IPL's token network over a frame of any size, slice by slice.

A frame is read ``chunk`` token rows at a time (``chunk * patch`` pixel rows). The
token network is a chain of stages (see :mod:`uhdfuse.nn.ipl`): read -> embed ->
per block (attention, MLP) -> head. Each stage is a small record that writes the
rows it produces into its own :class:`RowBuffer`; one step calls every stage's
``advance`` in order, and a stage runs as soon as the rows it needs (its own rows
plus a one-row halo, or a whole window-row for attention) exist upstream, taking
at most ``chunk`` rows per call. Buffers drop rows no stage needs any more. After
the last read, steps go on without reading until every stage has drained. The
head writes rows of the output maps as soon as they are final, through the band
plan's seam stitch (:meth:`uhdfuse.nn.bands.BandPlan.stitch`). Every row of every
stage is computed exactly once, in order, with the same stage methods and stitch
as :meth:`IPL.maps`, so the result equals the whole-frame computation with the same
attention pattern (proved in ``tests/test_ipl.py``).

Memory: the buffers hold a fixed number of token rows (set by the window size and
the halos, not by the frame height), frames wider than ``cfg.band`` tokens are cut
into column bands, and pixels are read in tiles of at most ``tile_pixels``, so peak
memory depends on the slice size and the cache budget, not on the frame's size.
The output is the (Ht, Wt, 2N) maps, 1/64 of a frame's pixels at patch 8; the
full-resolution render (:mod:`uhdfuse.runtime.render`) is a separate stage.
``docs/ipl.md`` has the numbers.

Stateless: everything lives in the records one :func:`stream_maps` call builds; errors raise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from uhdfuse.config import MergeConfig, check_chunk
from uhdfuse.nn.bands import BandPlan
from uhdfuse.nn.ipl import IPL
from uhdfuse.nn.layers import make_thumbnail
from uhdfuse.runtime.device import trim_heap
from uhdfuse.runtime.render import render_maps
from uhdfuse.runtime.stages import AttentionStage, FrameReader, HeadStage, ReadStage, RowBuffer, RowStage, Stage

TILE_PIXELS = 1 << 17  # pixels read per tokenize call


def step_tokens(device_type: str) -> int:
    """Tokens per step by default on a device of this type.

    CPU: 1920 (4 token rows of a 4K band); smaller steps keep glibc's heap, and so the
    measured high-water mark, from growing with the frame (docs/ipl.md, "Memory
    model"). Other devices: 3840; their caching allocators count live tensors, and
    a GPU pays per kernel launch, not per byte.
    """
    return 1920 if device_type == "cpu" else 3840


def default_chunk(window: int, width_tokens: int, device_type: str = "cpu") -> int:
    """Token rows per step: about :func:`step_tokens` tokens, so per-step memory does not grow with width."""
    return max(1, min(2 * window, step_tokens(device_type) // max(1, width_tokens)))


@dataclass(frozen=True)
class StreamInfo:
    """What one :func:`stream_maps` call did."""

    slices: int  # row slices read, all bands together
    bands: int  # column bands
    cache_bytes: int  # largest total size of one band's attention caches
    buffer_bytes: int  # largest total size of the row buffers


@dataclass(frozen=True)
class _Run:
    """What every band of one :func:`stream_maps` call shares."""

    model: IPL
    reader: FrameReader
    plan: BandPlan
    ev: torch.Tensor  # (1, N)
    ref: torch.Tensor  # (1,)
    glob: list[tuple[torch.Tensor, torch.Tensor]]  # per block: global keys, values
    amp: contextlib.AbstractContextManager  # autocast to the compute dtype, or nothing
    chunk: int
    cache_bits: int
    maps: torch.Tensor  # (Ht, Wt, 2N) float32 CPU: the output
    rows: int  # Ht


@dataclass(frozen=True)
class _BandStats:
    slices: int
    cache_bytes: int
    buffer_bytes: int


def _band_stages(run: _Run, band: int) -> tuple[ReadStage, list[Stage], HeadStage]:
    """The stage records of one band: the reader, then embed, per block attention and
    MLP, and the head, in the order a step advances them."""
    model, rows = run.model, run.rows
    tokens, features, extras = RowBuffer(), RowBuffer(), RowBuffer()
    read = ReadStage(run.reader, run.plan.crops[band], tokens, rows)
    stages: list[Stage] = [RowStage(partial(model.embed, ev=run.ev, ref=run.ref), tokens, (features, extras), rows)]
    upstream = features
    for block, glob in zip(model.blocks, run.glob):
        attended, mixed = RowBuffer(), RowBuffer()
        cache = block.new_cache(run.cache_bits)
        stages.append(AttentionStage(block, upstream, extras, cache, glob, attended, rows))
        stages.append(RowStage(block.mlp, attended, (mixed,), rows))
        upstream = mixed
    head = HeadStage(partial(model.head, ev=run.ev, ref=run.ref), upstream, tokens, run.plan, band, run.maps)
    return read, [*stages, head], head


def _stream_band(run: _Run, band: int) -> _BandStats:
    """Run one band's stages step by step until its head has written every row."""
    read, stages, head = _band_stages(run, band)
    readers: dict[RowBuffer, list[Stage]] = {}  # buffer -> the stages that read it
    for stage in stages:
        for buffer in stage.inputs:
            readers.setdefault(buffer, []).append(stage)
    buffers = [read.output, *(out for stage in stages for out in stage.outputs)]
    buffer_peak = 0
    while head.done < run.rows:
        progressed = read.advance(run.chunk)
        with run.amp:
            # each call takes at most `chunk` rows, also while the stages drain after the
            # last read: calls of one size let the allocator reuse its free blocks step
            # after step instead of growing the heap (docs/ipl.md, "Memory model")
            for stage in stages:
                progressed = stage.advance(run.chunk) or progressed
                for buffer in stage.inputs:
                    buffer.trim(min(reader.first_needed() for reader in readers[buffer]))
        buffer_peak = max(buffer_peak, sum(b.nbytes for b in buffers))
        if not progressed:  # a scheduling bug, never a user error
            raise RuntimeError(f"streaming stopped at token row {head.done} of {run.rows} (band {band})")
    cache_bytes = sum(stage.cache.peak_bytes for stage in stages if isinstance(stage, AttentionStage))
    return _BandStats(read.reads, int(cache_bytes), buffer_peak)


def stream_maps(
    model: IPL,
    images: np.ndarray | torch.Tensor,
    ev: Sequence[float],
    reference: int,
    *,
    chunk: int | None = None,
    cache_bits: int = MergeConfig.cache_bits,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    out: np.ndarray | None = None,
    tile_pixels: int = TILE_PIXELS,
) -> tuple[np.ndarray, StreamInfo]:
    """IPL's token network over aligned frames, streaming band by band, row slice by row slice.

    images: (N, H, W, 3) linear: a float32 array, or a tensor of any float dtype (frames
    already on ``device`` are read there, tile by tile, without host copies); ev: N
    relative EVs; reference: index.
    chunk: token rows read per step (default: :func:`default_chunk` of the band width).
    dtype: compute dtype of the token network.
    out: optional (Ht, Wt, 2N) float32 array to write the maps into (the maps are
    written on the host whatever the device: a head step's rows are copied back).
    Returns (maps (Ht, Wt, 2N) float32, :class:`StreamInfo`).
    """
    cfg = model.cfg
    device = torch.device(device)
    N, H, W = images.shape[:3]
    Ht, Wt = -(-H // cfg.patch), -(-W // cfg.patch)
    plan = model.band_plan(Wt)
    widest = max(hi - lo for lo, hi in plan.crops)
    chunk = default_chunk(cfg.window, widest, device.type) if chunk is None else check_chunk(int(chunk))
    if out is None:
        out = np.empty((Ht, Wt, 2 * N), np.float32)
    reader = FrameReader(images, cfg.patch, device, tile_pixels)
    ev_t = torch.tensor([list(ev)], dtype=torch.float32, device=device)
    ref_t = torch.tensor([reference], dtype=torch.long, device=device)
    amp = torch.autocast(device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
    slices, cache_peak, buffer_peak = 0, 0, 0
    with torch.inference_mode():
        thumb = make_thumbnail(reader.frames[None], cfg.thumb).to(device)
        with amp:
            glob = model.global_tokens(thumb, ev_t, ref_t)
        run = _Run(model, reader, plan, ev_t, ref_t, glob, amp, chunk, cache_bits, torch.from_numpy(out), Ht)
        for band in range(len(plan.crops)):
            stats = _stream_band(run, band)
            slices += stats.slices
            cache_peak = max(cache_peak, stats.cache_bytes)
            buffer_peak = max(buffer_peak, stats.buffer_bytes)
            if device.type == "cpu" and band + 1 < len(plan.crops):
                # hand the band's freed heap back before the next one; per step it would
                # cost ~10x in time here (page faults are expensive), see docs/ipl.md
                trim_heap()
    return out, StreamInfo(slices, len(plan.crops), cache_peak, buffer_peak)


def stream_fuse(
    model: IPL,
    images: np.ndarray,
    ev: Sequence[float],
    reference: int,
    **options,
) -> tuple[np.ndarray, StreamInfo]:
    """:func:`stream_maps` then :func:`~uhdfuse.runtime.render.render_maps`: (H, W, 3) display sRGB, info.

    ``options`` are those of :func:`stream_maps` (except ``out``).
    """
    maps, info = stream_maps(model, images, ev, reference, **options)
    return render_maps(images, maps, ev, reference, model.cfg.patch), info


__all__ = ["StreamInfo", "default_chunk", "step_tokens", "stream_fuse", "stream_maps"]
