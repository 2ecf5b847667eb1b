"""The streaming executor: run an IPL model over a frame of any size, slice by slice.

A frame is read ``chunk`` token rows at a time (``chunk * patch`` pixel rows). Each
stage of the model (see :mod:`uhdfuse.nn.ipl`) keeps a small buffer of the rows it
has produced; a stage runs as soon as the rows it needs (its own rows plus a
one-row halo, or a whole window-row for attention) exist upstream, and buffers
drop rows nobody needs any more. Output rows are written as soon as they are
final. Every row of every stage is computed exactly once, in order, with the same
stage methods as :meth:`IPL.forward`, so the result equals the whole-frame
computation with the same attention pattern (proved in ``tests/test_ipl.py``).

Memory: the buffers hold a fixed number of token rows (set by the window size and
the halos, not by the frame height) and full-resolution work is done in tiles of
at most ``tile_pixels``, so peak memory depends on the slice size, the frame
*width* in tokens (small: a few hundred kB per token row at 16K) and the cache
budget, not on the frame's area. ``docs/ipl.md`` has the numbers.

Stateless: everything lives in local variables of :func:`stream_fuse`; errors raise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch

from uhdfuse.nn.ipl import IPL, make_thumbnail, replicate_rows, tokenize
from uhdfuse.runtime.cache import KVCache
from uhdfuse.runtime.device import trim_heap

TILE_PIXELS = 1 << 17  # full-resolution work per call (tokenize / render), pixels


STEP_TOKENS = 3840  # tokens per step by default: 8 token rows of a 4K frame


def default_chunk(window: int, width_tokens: int) -> int:
    """Token rows per step: about STEP_TOKENS tokens, so per-step memory does not grow with width."""
    return max(1, min(2 * window, STEP_TOKENS // max(1, width_tokens)))


class _Rows:
    """Rows [start, end) of one stage's output, (B, rows, W, C) with rows on dim 1."""

    def __init__(self) -> None:
        self.t: torch.Tensor | None = None
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + (0 if self.t is None else self.t.shape[1])

    def push(self, x: torch.Tensor) -> None:
        self.t = x if self.t is None else torch.cat([self.t, x], 1)

    def get(self, a: int, b: int) -> torch.Tensor:
        assert self.t is not None and self.start <= a <= b <= self.end, (a, b, self.start, self.end)
        return self.t[:, a - self.start: b - self.start]

    @property
    def nbytes(self) -> int:
        return 0 if self.t is None else self.t.nelement() * self.t.element_size()

    def trim(self, row: int) -> None:
        """Forget rows before ``row`` (the next push copies only what is left)."""
        if self.t is not None and row > self.start:
            n = min(row, self.end) - self.start
            self.t = self.t[:, n:]
            self.start += n


def _ready(end: int, total: int, halo: int) -> int:
    """Rows a stage with a ``halo``-row context can produce once its input reaches ``end``."""
    return total if end >= total else end - halo


def _with_halo(buf: _Rows, a: int, b: int, total: int) -> tuple[torch.Tensor, int, int]:
    """Rows [a-1, b+1) clipped to the frame, and how many rows fall outside it (top, bottom)."""
    lo, hi = max(a - 1, 0), min(b + 1, total)
    return buf.get(lo, hi), lo - (a - 1), (b + 1) - hi


def _replicated(buf: _Rows, a: int, b: int, total: int) -> torch.Tensor:
    """Rows [a-1, b+1) with the frame's edge rows repeated beyond it."""
    x, top, bottom = _with_halo(buf, a, b, total)
    return replicate_rows(x, top, bottom)


def stream_fuse(
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
    """Fuse aligned frames with ``model``, streaming band by band, row slice by row slice.

    images: (N, H, W, 3) float32 linear; ev: N relative EVs; reference: index.
    chunk: token rows read per step (default: :func:`default_chunk` of the band width).
    dtype: compute dtype of the token network (full-resolution arithmetic stays float32).
    out: optional (H, W, 3) float32 array to write into.
    Returns (display sRGB (H, W, 3) float32, info) with info keys "slices" (steps, all
    bands), "bands", "cache_bytes" (largest total size of one band's attention caches)
    and "buffer_bytes" (largest total size of the row buffers and the seam store).
    """
    cfg = model.cfg
    p = cfg.patch
    device = torch.device(device)
    H, W = images.shape[1:3]
    Ht, Wt = -(-H // p), -(-W // p)
    crops = model.bands(Wt)
    chunk = default_chunk(cfg.window, max(hi - lo for lo, hi in crops)) if chunk is None else int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 token row, got {chunk}")
    if out is None:
        out = np.empty((H, W, 3), np.float32)
    src = torch.from_numpy(images)
    ev_t = torch.tensor([list(ev)], dtype=torch.float32, device=device)
    ref_t = torch.tensor([reference], dtype=torch.long, device=device)
    use_amp = dtype != torch.float32
    amp = torch.autocast(device.type, dtype=dtype) if use_amp else contextlib.nullcontext()
    m, R = model.band_margin(), cfg.window
    seam = 2 * R + 2  # columns of a band's coefficients kept for the next band: 2 left of the zone + the zone

    def pixels(r0: int, r1: int, c0: int, c1: int, pad: bool) -> torch.Tensor:
        """Token rows/cols [r0, r1) x [c0, c1) of the frames: (1, N, h*p, w*p, 3); edge-padded if ``pad``."""
        a, b = r0 * p, min(r1 * p, H)
        c, e = c0 * p, min(c1 * p, W)
        x = src[:, a:b, c:e]
        x = x.to(device, non_blocking=True)[None]
        if pad:
            x = replicate_rows(x, 0, (r1 - r0) * p - (b - a), dim=2)
            x = replicate_rows(x, 0, (c1 - c0) * p - (e - c), dim=3)
        return x

    def col_tiles(rows: int, c0: int, c1: int) -> list[tuple[int, int]]:
        step = max(1, tile_pixels // max(1, rows * p * p))
        return [(c, min(c + step, c1)) for c in range(c0, c1, step)]

    slices, cache_peak, buffer_peak = 0, 0, 0
    with torch.inference_mode():
        thumb = make_thumbnail(src[None], cfg.thumb).to(device)
        with amp:
            glob = model.global_tokens(thumb, ev_t, ref_t)
        ramp = model.seam_ramp(device, torch.float32)
        prev_store: torch.Tensor | None = None  # band k-1's coefficients around seam k, all rows
        for k, (lo, hi) in enumerate(crops):
            nxt = crops[k + 1][0] + m if k + 1 < len(crops) else None  # next seam zone start
            store = None if nxt is None else torch.empty(1, Ht, seam, 2 * images.shape[0] + 1, device=device)
            ra = 0 if k == 0 else lo + m - 1  # token columns this band renders: [ra, rb)
            rb = Wt if nxt is None else nxt - 1
            caches = [KVCache(cache_bits, cfg.cache_keep, cfg.cache_bins, cfg.cache_decay) for _ in range(cfg.blocks)]
            wrows = [model.window_rows(i, Ht) for i in range(cfg.blocks)]
            tok, z0, wts, coef = _Rows(), _Rows(), _Rows(), _Rows()
            att = [_Rows() for _ in range(cfg.blocks)]
            mlp = [_Rows() for _ in range(cfg.blocks)]
            nxt_embed, nxt_head, nxt_coef, nxt_out = 0, 0, 0, 0
            nxt_wr = [0] * cfg.blocks
            nxt_mlp = [0] * cfg.blocks
            for r0 in range(0, Ht, chunk):
                r1 = min(Ht, r0 + chunk)
                slices += 1
                tok.push(torch.cat([tokenize(pixels(r0, r1, c0, c1, True), p)
                                    for c0, c1 in col_tiles(r1 - r0, lo, hi)], 2))
                with amp:
                    e = _ready(tok.end, Ht, 1)
                    if e > nxt_embed:
                        x, top, bottom = _with_halo(tok, nxt_embed, e, Ht)
                        z0.push(model.embed(x, top, bottom, ev_t, ref_t))
                        nxt_embed = e
                    upstream = z0
                    for i in range(cfg.blocks):
                        while nxt_wr[i] < len(wrows[i]) and wrows[i][nxt_wr[i]][1] <= upstream.end:
                            a, b = wrows[i][nxt_wr[i]]
                            att[i].push(model.attend(i, upstream.get(a, b), caches[i], glob[i]))
                            nxt_wr[i] += 1
                        upstream.trim(wrows[i][nxt_wr[i]][0] if nxt_wr[i] < len(wrows[i]) else Ht)
                        mr = _ready(att[i].end, Ht, 1)
                        if mr > nxt_mlp[i]:
                            x, top, bottom = _with_halo(att[i], nxt_mlp[i], mr, Ht)
                            mlp[i].push(model.mlp(i, x, top, bottom))
                            nxt_mlp[i] = mr
                        att[i].trim(nxt_mlp[i] - 1)
                        upstream = mlp[i]
                    hd = min(upstream.end, tok.end)
                    if hd > nxt_head:
                        wts.push(model.head(upstream.get(nxt_head, hd), tok.get(nxt_head, hd), ev_t, ref_t).float())
                        nxt_head = hd
                    upstream.trim(nxt_head)
                c = _ready(wts.end, Ht, 1)
                if c > nxt_coef:
                    new = model.coefs(_replicated(wts, nxt_coef, c, Ht), _replicated(tok, nxt_coef, c, Ht))
                    if store is not None:
                        store[:, nxt_coef:c] = new[:, :, nxt - 2 - lo: nxt - 2 - lo + seam]
                    coef.push(new)
                    nxt_coef = c
                wts.trim(nxt_coef - 1)
                tok.trim(min(nxt_embed - 1, nxt_head, nxt_coef - 1))
                o = _ready(coef.end, Ht, 1)
                if o > nxt_out:
                    rows = _replicated(coef, nxt_out, o, Ht)  # (1, h+2, width, 2N+1), raw coefficients
                    # final coefficients of token columns [ra-1, rb+1), clipped to the frame
                    if k == 0:
                        fin = rows[:, :, : min(rb + 1, Wt)]
                    else:
                        prev = replicate_rows(prev_store[:, max(nxt_out - 1, 0): min(o + 1, Ht)],
                                              int(nxt_out == 0), int(o == Ht))
                        fin = torch.cat([prev[:, :, :2], torch.lerp(prev[:, :, 2:], rows[:, :, m: m + 2 * R], ramp),
                                         rows[:, :, m + 2 * R: min(rb + 1, Wt) - lo]], 2)
                    fin = replicate_rows(fin, int(ra == 0), int(rb == Wt), dim=2)  # frame edges
                    for c0, c1 in col_tiles(o - nxt_out, ra, rb):
                        y = model.render(fin[:, :, c0 - ra: c1 - ra + 2], pixels(nxt_out, o, c0, c1, False))
                        out[nxt_out * p: min(o * p, H), c0 * p: min(c1 * p, W)] = y[0].cpu().numpy()
                    nxt_out = o
                coef.trim(nxt_out - 1)
                held = sum(b.nbytes for b in (tok, z0, wts, coef, *att, *mlp))
                held += sum(t.nelement() * t.element_size() for t in (store, prev_store) if t is not None)
                buffer_peak = max(buffer_peak, held)
            if nxt_out != Ht:  # a scheduling bug, never a user error
                raise RuntimeError(f"streaming stopped at token row {nxt_out} of {Ht} (band {k})")
            cache_peak = max(cache_peak, int(sum(c.peak_bytes for c in caches)))
            prev_store = store
            del caches, tok, z0, wts, coef, att, mlp
            if device.type == "cpu" and k + 1 < len(crops):
                # hand the band's freed heap back before the next one; per step it would
                # cost ~10x in time here (page faults are expensive), see docs/ipl.md
                trim_heap()
    info = {"slices": slices, "bands": len(crops), "cache_bytes": cache_peak, "buffer_bytes": buffer_peak}
    return out, info
