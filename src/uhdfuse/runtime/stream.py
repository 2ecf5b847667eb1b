"""The streaming executor: run IPL's token network over a frame of any size, slice by slice.

A frame is read ``chunk`` token rows at a time (``chunk * patch`` pixel rows). Each
stage of the model (see :mod:`uhdfuse.nn.ipl`) keeps a small buffer of the rows it
has produced; a stage runs as soon as the rows it needs (its own rows plus a
one-row halo, or a whole window-row for attention) exist upstream, taking at most
``chunk`` rows per call, and buffers drop rows nobody needs any more. After the
last read, steps go on without reading until every stage has drained. Rows of the
output maps are written as soon as they are final. Every row of every stage is computed exactly once, in order, with
the same stage methods as :meth:`IPL.maps`, so the result equals the whole-frame
computation with the same attention pattern (proved in ``tests/test_ipl.py``).

Memory: the buffers hold a fixed number of token rows (set by the window size and
the halos, not by the frame height), frames wider than ``cfg.band`` tokens are cut
into column bands, and pixels are read in tiles of at most ``tile_pixels``, so peak
memory depends on the slice size and the cache budget, not on the frame's size.
The output is the (Ht, Wt, 2N) maps, 1/64 of a frame's pixels at patch 8; the
full-resolution render (:mod:`uhdfuse.runtime.render`) is a separate stage.
``docs/ipl.md`` has the numbers.

Stateless: everything lives in local variables of :func:`stream_maps`; errors raise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from uhdfuse.nn.ipl import IPL, make_thumbnail, replicate_rows, tokenize
from uhdfuse.runtime.cache import KVCache
from uhdfuse.runtime.device import trim_heap
from uhdfuse.runtime.render import render_maps

TILE_PIXELS = 1 << 17  # pixels read per tokenize call


def step_tokens(device_type: str) -> int:
    """Tokens per step by default on a device of this type.

    CPU: 1920 (4 token rows of a 4K band); smaller steps keep glibc's heap, and so the
    measured high-water mark, from growing with the frame (docs/ipl.md, "Memory
    model"). Other devices: 3840, as before that finding; their caching allocators
    count live tensors, and a GPU pays per kernel launch, not per byte.
    """
    return 1920 if device_type == "cpu" else 3840


def default_chunk(window: int, width_tokens: int, device_type: str = "cpu") -> int:
    """Token rows per step: about :func:`step_tokens` tokens, so per-step memory does not grow with width."""
    return max(1, min(2 * window, step_tokens(device_type) // max(1, width_tokens)))


class _Rows:
    """Rows [start, end) of one stage's output, (B, rows, W, C) with rows on dim 1.

    The rows live in one tensor that is reused for the whole band: dropped rows
    only move an offset, the live rows are moved to the front when a push would
    not fit, and the tensor grows (doubling) only when the live rows outgrow it.
    A fresh tensor per step (``torch.cat``) hands the allocator a different size
    every step, so it cannot reuse its freed blocks and grows the heap instead
    (docs/ipl.md, "Memory model").
    """

    def __init__(self) -> None:
        self.buf: torch.Tensor | None = None
        self.start = 0  # frame row of the first live row
        self.offset = 0  # its index in buf
        self.rows = 0  # live rows

    @property
    def end(self) -> int:
        return self.start + self.rows

    def push(self, x: torch.Tensor) -> None:
        n = x.shape[1]
        if self.buf is None:
            shape = list(x.shape)
            shape[1] = 3 * n
            self.buf = x.new_empty(shape)
        if self.offset + self.rows + n > self.buf.shape[1]:
            self._make_room(n)
        self.buf[:, self.offset + self.rows: self.offset + self.rows + n].copy_(x)
        self.rows += n

    def _make_room(self, n: int) -> None:
        assert self.buf is not None
        live = self.buf[:, self.offset: self.offset + self.rows]
        if self.rows + n > self.buf.shape[1]:
            shape = list(self.buf.shape)
            shape[1] = 2 * (self.rows + n)
            grown = self.buf.new_empty(shape)
            grown[:, : self.rows].copy_(live)
            self.buf = grown
        elif self.rows:
            # source and destination overlap when the live rows are more than the gap
            self.buf[:, : self.rows].copy_(live if self.offset >= self.rows else live.clone())
        self.offset = 0

    def get(self, a: int, b: int) -> torch.Tensor:
        """A view of rows [a, b): valid until the next push."""
        assert self.buf is not None and self.start <= a <= b <= self.end, (a, b, self.start, self.end)
        return self.buf[:, self.offset + a - self.start: self.offset + b - self.start]

    @property
    def nbytes(self) -> int:
        return 0 if self.buf is None else self.buf.nelement() * self.buf.element_size()

    def trim(self, row: int) -> None:
        """Forget rows before ``row``."""
        if self.buf is not None and row > self.start:
            k = min(row, self.end) - self.start
            self.offset += k
            self.start += k
            self.rows -= k


def _ready(end: int, total: int, halo: int) -> int:
    """Rows a stage with a ``halo``-row context can produce once its input reaches ``end``."""
    return total if end >= total else end - halo


def _with_halo(buf: _Rows, a: int, b: int, total: int) -> tuple[torch.Tensor, int, int]:
    """Rows [a-1, b+1) clipped to the frame, and how many rows fall outside it (top, bottom)."""
    lo, hi = max(a - 1, 0), min(b + 1, total)
    return buf.get(lo, hi), lo - (a - 1), (b + 1) - hi


def stream_maps(
    model: IPL,
    images: np.ndarray,
    ev: Sequence[float],
    reference: int,
    *,
    chunk: int | None = None,
    cache_bits: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    out: np.ndarray | None = None,
    tile_pixels: int = TILE_PIXELS,
) -> tuple[np.ndarray, dict]:
    """IPL's token network over aligned frames, streaming band by band, row slice by row slice.

    images: (N, H, W, 3) float32 linear; ev: N relative EVs; reference: index.
    chunk: token rows read per step (default: :func:`default_chunk` of the band width).
    dtype: compute dtype of the token network.
    out: optional (Ht, Wt, 2N) float32 array to write the maps into.
    Returns (maps (Ht, Wt, 2N) float32, info) with info keys "slices" (steps, all
    bands), "bands", "cache_bytes" (largest total size of one band's attention caches)
    and "buffer_bytes" (largest total size of the row buffers).
    """
    cfg = model.cfg
    p = cfg.patch
    device = torch.device(device)
    N, H, W = images.shape[:3]
    Ht, Wt = -(-H // p), -(-W // p)
    crops = model.bands(Wt)
    widest = max(hi - lo for lo, hi in crops)
    chunk = default_chunk(cfg.window, widest, device.type) if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 token row, got {chunk}")
    if out is None:
        out = np.empty((Ht, Wt, 2 * N), np.float32)
    maps = torch.from_numpy(out)
    src = torch.from_numpy(images)
    ev_t = torch.tensor([list(ev)], dtype=torch.float32, device=device)
    ref_t = torch.tensor([reference], dtype=torch.long, device=device)
    use_amp = dtype != torch.float32
    amp = torch.autocast(device.type, dtype=dtype) if use_amp else contextlib.nullcontext()
    m, R = model.band_margin(), cfg.window

    tile: list[torch.Tensor] = []  # CPU: one reused buffer for the pixel tiles (see _Rows on why reuse)

    def pixels(r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """Token rows/cols [r0, r1) x [c0, c1) of the frames: (1, N, h*p, w*p, 3), edges replicated."""
        a, b = r0 * p, min(r1 * p, H)
        c, e = c0 * p, min(c1 * p, W)
        view = src[:, a:b, c:e]
        if device.type == "cpu":  # a contiguous copy, so tokenize's reshapes are views
            if not tile or tile[0].numel() < view.numel():
                tile[:] = [torch.empty(view.numel(), dtype=view.dtype)]
            x = tile[0][: view.numel()].view(view.shape).copy_(view)[None]
        else:
            x = view.to(device, non_blocking=True)[None]
        x = replicate_rows(x, 0, (r1 - r0) * p - (b - a), dim=2)
        return replicate_rows(x, 0, (c1 - c0) * p - (e - c), dim=3)

    def col_tiles(rows: int, c0: int, c1: int) -> list[tuple[int, int]]:
        """[c0, c1) cut into tiles of at most tile_pixels pixels, of (nearly) equal width."""
        most = max(1, tile_pixels // max(1, rows * p * p))
        step = -(-(c1 - c0) // -(-(c1 - c0) // most))
        return [(c, min(c + step, c1)) for c in range(c0, c1, step)]

    slices, cache_peak, buffer_peak = 0, 0, 0
    with torch.inference_mode():
        thumb = make_thumbnail(src[None], cfg.thumb).to(device)
        with amp:
            glob = model.global_tokens(thumb, ev_t, ref_t)
        ramp = model.seam_ramp(device, torch.float32).cpu()
        for k, (lo, hi) in enumerate(crops):
            # this band's final columns [ra, rb): from its own seam zone (cross-faded with
            # band k-1's, already written) to the end of the next band's seam zone
            ra = 0 if k == 0 else lo + m
            rb = Wt if k + 1 == len(crops) else crops[k + 1][0] + m + 2 * R
            caches = [KVCache(cache_bits, cfg.cache_keep, cfg.cache_bins, cfg.cache_decay) for _ in range(cfg.blocks)]
            wrows = [model.window_rows(i, Ht) for i in range(cfg.blocks)]
            tok, z0 = _Rows(), _Rows()
            att = [_Rows() for _ in range(cfg.blocks)]
            mlp = [_Rows() for _ in range(cfg.blocks)]
            nxt_embed, nxt_head = 0, 0
            nxt_wr = [0] * cfg.blocks
            nxt_mlp = [0] * cfg.blocks
            r0 = 0
            while nxt_head < Ht:
                progress = (nxt_embed, nxt_head, *nxt_wr, *nxt_mlp)
                if r0 < Ht:
                    r1 = min(Ht, r0 + chunk)
                    slices += 1
                    tok.push(torch.cat([tokenize(pixels(r0, r1, c0, c1), p)
                                        for c0, c1 in col_tiles(r1 - r0, lo, hi)], 2))
                    r0 = r1
                with amp:
                    # each call takes at most `chunk` rows (attention: one window-row, or as
                    # many as fit), also while the pipeline drains after the last read: calls
                    # of one size let the allocator reuse its free blocks step after step
                    # instead of growing the heap (docs/ipl.md, "Memory model")
                    e = min(_ready(tok.end, Ht, 1), nxt_embed + chunk)
                    if e > nxt_embed:
                        x, top, bottom = _with_halo(tok, nxt_embed, e, Ht)
                        z0.push(model.embed(x, top, bottom, ev_t, ref_t))
                        nxt_embed = e
                    upstream = z0
                    for i in range(cfg.blocks):
                        pushed = 0
                        while (nxt_wr[i] < len(wrows[i]) and wrows[i][nxt_wr[i]][1] <= upstream.end
                               and (pushed == 0 or pushed + R <= chunk)):
                            a, b = wrows[i][nxt_wr[i]]
                            att[i].push(model.attend(i, upstream.get(a, b), caches[i], glob[i]))
                            nxt_wr[i] += 1
                            pushed += b - a
                        upstream.trim(wrows[i][nxt_wr[i]][0] if nxt_wr[i] < len(wrows[i]) else Ht)
                        mr = min(_ready(att[i].end, Ht, 1), nxt_mlp[i] + chunk)
                        if mr > nxt_mlp[i]:
                            x, top, bottom = _with_halo(att[i], nxt_mlp[i], mr, Ht)
                            mlp[i].push(model.mlp(i, x, top, bottom))
                            nxt_mlp[i] = mr
                        att[i].trim(nxt_mlp[i] - 1)
                        upstream = mlp[i]
                    hd = min(upstream.end, tok.end, nxt_head + chunk)
                    if hd > nxt_head:
                        new = model.head(upstream.get(nxt_head, hd), tok.get(nxt_head, hd), ev_t, ref_t)
                        new = new.float().cpu()  # (1, rows, hi - lo, 2N)
                        rows = maps[nxt_head:hd]
                        start = ra
                        if k:  # cross-fade the seam zone with band k-1
                            zone = rows[:, ra: ra + 2 * R]
                            zone.copy_(torch.lerp(zone, new[0, :, m: m + 2 * R], ramp))
                            start = ra + 2 * R
                        rows[:, start:rb] = new[0, :, start - lo: rb - lo]
                        nxt_head = hd
                    upstream.trim(nxt_head)
                tok.trim(min(nxt_embed - 1, nxt_head))
                held = sum(b.nbytes for b in (tok, z0, *att, *mlp))
                buffer_peak = max(buffer_peak, held)
                if r0 >= Ht and progress == (nxt_embed, nxt_head, *nxt_wr, *nxt_mlp):
                    # a scheduling bug, never a user error
                    raise RuntimeError(f"streaming stopped at token row {nxt_head} of {Ht} (band {k})")
            cache_peak = max(cache_peak, int(sum(c.peak_bytes for c in caches)))
            del caches, tok, z0, att, mlp
            if device.type == "cpu" and k + 1 < len(crops):
                # hand the band's freed heap back before the next one; per step it would
                # cost ~10x in time here (page faults are expensive), see docs/ipl.md
                trim_heap()
    info = {"slices": slices, "bands": len(crops), "cache_bytes": cache_peak, "buffer_bytes": buffer_peak}
    return out, info


def stream_fuse(
    model: IPL,
    images: np.ndarray,
    ev: Sequence[float],
    reference: int,
    **options,
) -> tuple[np.ndarray, dict]:
    """:func:`stream_maps` then :func:`~uhdfuse.runtime.render.render_maps`: (H, W, 3) display sRGB, info.

    ``options`` are those of :func:`stream_maps` (except ``out``).
    """
    maps, info = stream_maps(model, images, ev, reference, **options)
    return render_maps(images, maps, ev, reference, model.cfg.patch), info


__all__ = ["default_chunk", "step_tokens", "stream_fuse", "stream_maps"]
