"""IPL: exposure fusion by a small transformer that reads a frame like a token stream.

The architecture in one file (nanoGPT style): :class:`IPLConfig`, :class:`Block`,
:class:`IPL`; its pure helpers are in :mod:`.layers`, its attention cache in
:mod:`.cache`, its column bands in :mod:`.bands`. Design notes: ``docs/ipl.md``.

Flow (B batch, N frames, H x W pixels, p patch, Ht x Wt = ceil(H/p) x ceil(W/p) tokens, C dim)::

    frames (B, N, H, W, 3) linear
      -> tokenize    per-token statistics of each frame            (B, Ht, Wt, 4N)
      -> embed       shared per-frame encoder, fused over frames   (B, Ht, Wt, C)
                     and the extras: cache importance, reference level (B, Ht, Wt, 2)
      -> blocks      window attention + cache + global tokens, MLP (B, Ht, Wt, C)
      -> head        per frame: fusion logit, keep gate            (B, Ht, Wt, 2N)  "maps"
      -> render      full resolution: frames a gate rejects are replaced by the
                     reference at their exposure, then Mertens weights x exp(logit)
                     and a Laplacian-pyramid blend of the real pixels (sRGB)

Everything up to the maps is the token network (:meth:`IPL.maps`; streamed by
:mod:`uhdfuse.runtime.stream` with flat memory); :meth:`IPL.render` is per-pixel
work plus a pyramid, done in torch here (differentiable, for training) and with
OpenCV at inference (:mod:`uhdfuse.runtime.render`), the two equal to float rounding.

The four IPL parts, in our design:

1. *Slice cyclic scanning*: tokens are processed window-row by window-row (a strip of
   ``window`` token rows cut into ``window``-wide windows); attention runs inside each
   window.
2. *Attention cache*: each window also attends to a :class:`~uhdfuse.nn.cache.KVCache`
   of summaries of the window-rows above it, and to ``global_grid**2`` tokens computed
   once from a thumbnail of the whole frame.
3. *Quantization compression*: that cache is stored in 16, 8 or 4 bits (KIVI style).
4. *Dimensional rolling*: every block shifts its window grid (rows and columns, cycling
   through four offsets), so slice and window borders move between blocks: no seams.

Frames wider than ``cfg.band`` token columns are cut into column bands
(:class:`~uhdfuse.nn.bands.BandPlan`), each run through the token network on its own.

Every stage maps token rows to token rows and needs at most one row of context
(``top``/``bottom``: halo rows that fall outside the frame), except attention,
which needs whole window-rows. :meth:`IPL.maps` runs the stages over the whole
frame (training and the reference of the proofs); the streaming executor runs the
same stage methods over row slices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from uhdfuse.nn.bands import BandPlan
from uhdfuse.nn.blend import render
from uhdfuse.nn.cache import KVCache
from uhdfuse.nn.features import EXTRAS, FEATS, IMPORTANCE, LEVEL, frame_features
from uhdfuse.nn.layers import dwconv3, make_thumbnail, one_hot, pad_rows, pad_to_patch, segments, tokenize

LOGIT, KEEP = 0, 1  # outputs of the head per frame
# Initial weights: std of the linear layers, and of the head's output layer, small so
# the learned logits start at ~0; the keep gate's bias starts at 5 (sigmoid(5) ~ 0.993,
# open). An untrained model then fuses (almost exactly) like Mertens.
INIT_STD = 0.2
HEAD_INIT_STD = 0.02
KEEP_BIAS_INIT = 5.0


@dataclass(frozen=True)
class IPLConfig:
    patch: int = 8  # pixels per token side
    dim: int = 32  # token channels C
    heads: int = 2
    blocks: int = 2
    window: int = 8  # attention window side, tokens; also the cache step (one window-row)
    mlp_ratio: int = 2
    head_hidden: int = 16
    thumb: int = 64  # thumbnail side (pixels) for the global tokens
    thumb_patch: int = 4
    global_grid: int = 4  # global tokens: global_grid x global_grid
    cache_keep: int = 48  # kept cache entries per block
    cache_bins: int = 4  # pooled entries per block (brightness bins of the reference)
    cache_decay: float = 1.0 / 64  # importance lost per window-row of age
    max_logit: float = 3.0  # bound of the learned fusion logit (a factor e^3 on a Mertens weight)
    max_windows: int = 64  # windows per attention call (bounds temporary memory)
    band: int = 480  # token columns per band, halos included (4K at patch 8 is one band); not a weight

    def to_dict(self) -> dict:
        return asdict(self)


def ipl_test() -> IPLConfig:
    """Tiny variant for golden tests and the untrained shipped file (a few k parameters)."""
    return IPLConfig(patch=4, dim=16, heads=2, blocks=2, window=4, head_hidden=8,
                     thumb=32, global_grid=2, cache_keep=12, cache_bins=4)


def ipl_base() -> IPLConfig:
    """The shipped size: ~35 k parameters."""
    return IPLConfig(blocks=3)


VARIANTS = {"ipl_test": ipl_test, "ipl_base": ipl_base}


class Block(nn.Module):
    """Window attention (with the cache and the global tokens), then a conv MLP.

    ``index`` sets the block's window-grid shift, (row, col), cycling through four
    offsets so that window and slice borders move from block to block.
    """

    def __init__(self, cfg: IPLConfig, index: int) -> None:
        super().__init__()
        self.cfg = cfg
        half = cfg.window // 2
        self.shift = ((index % 2) * half, ((index + 1) // 2 % 2) * half)
        C = cfg.dim
        self.norm1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.norm2 = nn.LayerNorm(C)
        hid = C * cfg.mlp_ratio
        self.fc1 = nn.Linear(C, hid)
        self.dw = nn.Conv2d(hid, hid, 3, groups=hid)
        self.fc2 = nn.Linear(hid, C)

    def window_rows(self, rows: int) -> list[tuple[int, int]]:
        """Token-row ranges [a, b) of this block's window-rows over ``rows`` token rows."""
        return segments(rows, self.cfg.window, self.shift[0])

    def new_cache(self, cache_bits: int) -> KVCache:
        """An empty attention cache for one band."""
        cfg = self.cfg
        return KVCache(cache_bits, cfg.cache_keep, cfg.cache_bins, cfg.cache_decay)

    def global_kv(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, heads, G, d) of the global tokens g (B, G, C)."""
        B, G, C = g.shape
        kv = F.linear(self.norm1(g), self.qkv.weight[C:], self.qkv.bias[C:])
        kv = kv.reshape(B, G, 2, self.cfg.heads, C // self.cfg.heads).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def _window_groups(self, width: int) -> list[tuple[int, int, int]]:
        """Equal-width neighbouring windows of a window-row, grouped for one batched call:
        (first column, window width, count), at most ``cfg.max_windows`` per group."""
        groups: list[tuple[int, int, int]] = []
        for a, b in segments(width, self.cfg.window, self.shift[1]):
            if groups and groups[-1][1] == b - a and groups[-1][2] < self.cfg.max_windows:
                c0, ww, n = groups[-1]
                groups[-1] = (c0, ww, n + 1)
            else:
                groups.append((a, b - a, 1))
        return groups

    @staticmethod
    def _context(cache: KVCache, glob: tuple[torch.Tensor, torch.Tensor]) -> tuple:
        """What every window attends to besides itself: the global tokens, then the cache.

        Returns keys, values (B, heads, K, d) and the (B, K) log-count bias (or None).
        """
        gk, gv = glob
        ctx = cache.context()
        if ctx is None:
            return gk, gv, None
        ck = torch.cat([gk.to(ctx[0].dtype), ctx[0]], 2)
        cv = torch.cat([gv.to(ctx[1].dtype), ctx[1]], 2)
        bias = None if ctx[2] is None else F.pad(ctx[2], (gk.shape[2], 0))
        return ck, cv, bias

    def attend(
        self, x: torch.Tensor, extras: torch.Tensor, cache: KVCache, glob: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """One window-row: x (B, h, Wt, C), extras (B, h, Wt, 2) -> (B, h, Wt, C).

        Each window attends to itself, the global tokens ``glob`` (keys, values) and
        ``cache``; then it leaves its mean key and value, with its mean importance and
        level, in ``cache``.
        """
        B, h, Wt, C = x.shape
        nh = self.cfg.heads
        d = C // nh
        ck, cv, bias = self._context(cache, glob)
        outs, ksum, vsum, summary = [], [], [], []
        for c0, ww, n in self._window_groups(Wt):
            T = h * ww
            part = self.qkv(self.norm1(x[:, :, c0: c0 + n * ww]))  # (B, h, n*ww, 3C)
            part = part.reshape(B, h, n, ww, 3, nh, d)
            part = part.permute(4, 0, 2, 5, 1, 3, 6).reshape(3, B * n, nh, T, d)
            q, k, v = part[0], part[1], part[2]
            ck, cv = ck.to(q.dtype), cv.to(q.dtype)  # no-ops after the first group
            K = ck.shape[2]
            keys = torch.cat([k, ck[:, None].expand(B, n, nh, K, d).reshape(B * n, nh, K, d)], 2)
            vals = torch.cat([v, cv[:, None].expand(B, n, nh, K, d).reshape(B * n, nh, K, d)], 2)
            mask = None
            if bias is not None:
                mask = F.pad(bias.to(q.dtype), (T, 0))[:, None, None, None, :].expand(B, n, 1, 1, T + K)
                mask = mask.reshape(B * n, 1, 1, T + K)
            o = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask)  # (B*n, nh, T, d)
            outs.append(o.reshape(B, n, nh, h, ww, d).permute(0, 3, 1, 4, 2, 5).reshape(B, h, n * ww, C))
            ksum.append(k.reshape(B, n, nh, T, d).mean(3))
            vsum.append(v.reshape(B, n, nh, T, d).mean(3))
            summary.append(extras[:, :, c0: c0 + n * ww].reshape(B, h, n, ww, EXTRAS).mean(dim=(1, 3)))  # (B, n, 2)
        summary = torch.cat(summary, 1)
        cache.append(torch.cat(ksum, 1).transpose(1, 2), torch.cat(vsum, 1).transpose(1, 2),
                     summary[..., IMPORTANCE], summary[..., LEVEL])
        return x + self.proj(torch.cat(outs, 2))

    def mlp(self, x: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        """Rows [a, b) from rows [a-1+top, b+1-bottom) of the attention output: (B, rows, Wt, C)."""
        hid = pad_rows(self.fc1(self.norm2(x)), top, bottom)
        hid = F.gelu(dwconv3(hid, self.dw.weight, self.dw.bias))
        h = hid.shape[1]
        return x[:, 1 - top: 1 - top + h] + self.fc2(hid)

    def forward(
        self, x: torch.Tensor, extras: torch.Tensor, glob: tuple[torch.Tensor, torch.Tensor], cache_bits: int
    ) -> torch.Tensor:
        """The block over one whole band: x (B, Ht, w, C), extras (B, Ht, w, 2) -> (B, Ht, w, C)."""
        cache = self.new_cache(cache_bits)
        x = torch.cat([self.attend(x[:, a:b], extras[:, a:b], cache, glob) for a, b in self.window_rows(x.shape[1])], 1)
        return self.mlp(x, 1, 1)


class IPL(nn.Module):
    """The IPL network: per-frame encoder, blocks, head (the token network), and its render."""

    def __init__(self, cfg: IPLConfig) -> None:
        super().__init__()
        if cfg.dim % cfg.heads:
            raise ValueError("dim must be divisible by heads")
        self.cfg = cfg
        smallest = 2 * self.band_margin() + 5 * cfg.window
        if cfg.band % cfg.window or cfg.band < smallest:
            # bands must start on the window grid, and each must own >= 2 columns outside its seams
            raise ValueError(f"band must be a multiple of window and at least {smallest}")
        C = cfg.dim
        self.enc1 = nn.Linear(FEATS, C)
        self.enc_dw = nn.Conv2d(C, C, 3, groups=C)
        self.enc2 = nn.Linear(C, C)
        self.fuse = nn.Linear(3 * C, C)
        self.glob_norm = nn.LayerNorm(C)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.blocks))
        self.head_frame = nn.Linear(FEATS, cfg.head_hidden)
        self.head_ctx = nn.Linear(C, cfg.head_hidden)
        self.head_out = nn.Linear(cfg.head_hidden, 2)  # per frame: fusion logit, keep logit
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Init such that an untrained model already fuses sanely (see :data:`KEEP_BIAS_INIT`)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=HEAD_INIT_STD if m is self.head_out else INIT_STD)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.head_out.bias[KEEP] = KEEP_BIAS_INIT

    # -- geometry ------------------------------------------------------------------
    def band_margin(self) -> int:
        """Token columns between a band's crop edge and its seam zone, a multiple of the window.

        Covers the token network's column reach (embed conv 1, per block a window and
        the MLP conv) with a column to spare, so a band's crop edge cannot change the
        maps it contributes to a seam; only its caches differ from its neighbour's.
        """
        w = self.cfg.window
        return -(-(self.cfg.blocks * w + 2) // w) * w

    def band_plan(self, width: int) -> BandPlan:
        """The column bands over ``width`` token columns."""
        return BandPlan.over(width, self.cfg.band, self.band_margin(), self.cfg.window)

    def bands(self, width: int) -> list[tuple[int, int]]:
        """Token-column crops [lo, hi) of the bands over ``width`` token columns."""
        return list(self.band_plan(width).crops)

    # -- stages ----------------------------------------------------------------------
    def embed(
        self, tok: torch.Tensor, top: int, bottom: int, ev: torch.Tensor, ref: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows [a, b) from tok rows [a-1+top, b+1-bottom) (top/bottom: rows beyond the frame).

        Returns the fused features (B, b-a, Wt, C), float32, and the extras (B, b-a, Wt, 2).
        """
        f, extras = frame_features(tok, ev, ref)  # (B, hh, W, N, 8)
        B, hh, W, N, _ = f.shape
        hid = F.gelu(self.enc1(f)).reshape(B, hh, W, N * self.cfg.dim)
        hid = pad_rows(hid, top, bottom)
        w = self.enc_dw.weight.repeat(N, 1, 1, 1)
        hid = dwconv3(hid, w, self.enc_dw.bias.repeat(N))  # (B, h, W, N*C)
        h = hid.shape[1]
        fr = self.enc2(F.gelu(hid.reshape(B, h, W, N, self.cfg.dim)))  # (B, h, W, N, C)
        idx = ref[:, None, None, None, None].expand(B, h, W, 1, self.cfg.dim)
        f_ref = torch.gather(fr, 3, idx)[..., 0, :]
        z = self.fuse(torch.cat([f_ref, fr.mean(3), fr.amax(3)], -1))
        lo = 1 - top
        # the residual stream stays float32 under autocast: the blocks add small updates to it
        return z.float(), extras[:, lo: lo + h]

    def global_tokens(
        self, thumb: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per block (keys, values) of the global tokens, each (B, heads, G, d), from a thumbnail.

        thumb: (B, N, t, t, 3) linear (see :func:`~uhdfuse.nn.layers.make_thumbnail`).
        """
        cfg = self.cfg
        tok = tokenize(thumb, cfg.thumb_patch)
        z = self.embed(tok, 1, 1, ev, ref)[0].permute(0, 3, 1, 2)
        g = F.adaptive_avg_pool2d(z, cfg.global_grid).flatten(2).transpose(1, 2)  # (B, G, C)
        g = self.glob_norm(g)
        return [blk.global_kv(g) for blk in self.blocks]

    def head(self, z: torch.Tensor, tok: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Per-token maps: z (B, h, Wt, C), tok (B, h, Wt, 4N) -> (B, h, Wt, 2N).

        Channels: N fusion logits (bounded by ``cfg.max_logit``; they multiply each
        frame's Mertens weight by exp(logit), so only their differences matter), then
        N keep gates in [0, 1], 1 for the reference: where a frame's gate closes, it is
        replaced by the reference at its exposure (see :meth:`render`).
        """
        f, _ = frame_features(tok, ev, ref)  # (B, h, W, N, 8)
        N = f.shape[3]
        hid = F.gelu(self.head_frame(f) + self.head_ctx(z)[..., None, :])
        o = self.head_out(hid)  # (B, h, W, N, 2)
        bound = self.cfg.max_logit
        logit = bound * torch.tanh(o[..., LOGIT] / bound)
        is_ref = one_hot(ref, N, o.dtype)[:, None, None, :]
        keep = torch.sigmoid(o[..., KEEP]) * (1 - is_ref) + is_ref
        return torch.cat([logit, keep], -1)

    def render(self, maps: torch.Tensor, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Full-resolution output from the token maps, differentiable (:func:`uhdfuse.nn.blend.render`).

        maps: (B, Ht, Wt, 2N) from :meth:`maps`; x: (B, N, H, W, 3) linear, H <= Ht*p.
        Returns (B, H, W, 3) display sRGB in [0, 1].
        """
        return render(maps, x, ev, ref, self.cfg.patch)

    # -- whole-frame forward (training, and the reference of the streaming proofs) --
    def band_maps(
        self, tok: torch.Tensor, glob: list, ev: torch.Tensor, ref: torch.Tensor, cache_bits: int
    ) -> torch.Tensor:
        """The token network over one band: tok (B, Ht, w, 4N) -> maps (B, Ht, w, 2N).

        ``w`` token columns starting on the window grid; the band's own caches;
        ``glob`` from :meth:`global_tokens` of the whole frame.
        """
        z, extras = self.embed(tok, 1, 1, ev, ref)
        for blk, kv in zip(self.blocks, glob):
            z = blk(z, extras, kv, cache_bits)
        return self.head(z, tok, ev, ref)

    def maps(self, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor, cache_bits: int = 16) -> torch.Tensor:
        """The token network over whole frames: (B, N, H, W, 3) -> maps (B, Ht, Wt, 2N).

        The reference computation of the streaming proofs: the same bands and the
        same stitch (:meth:`BandPlan.stitch`) as the streaming executor.
        """
        cfg = self.cfg
        glob = self.global_tokens(make_thumbnail(x, cfg.thumb), ev, ref)
        tok = tokenize(pad_to_patch(x, cfg.patch), cfg.patch)
        plan = self.band_plan(tok.shape[2])
        pieces: list[torch.Tensor] = []
        for k, (lo, hi) in enumerate(plan.crops):
            band = self.band_maps(tok[:, :, lo:hi], glob, ev, ref, cache_bits)
            left = None
            if pieces:  # the previous piece ends with this band's seam zone
                left, pieces[-1] = pieces[-1][:, :, -plan.seam:], pieces[-1][:, :, : -plan.seam]
            pieces.append(plan.stitch(k, band, left))
        return torch.cat(pieces, 2) if len(pieces) > 1 else pieces[0]

    def forward(self, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor, cache_bits: int = 16) -> torch.Tensor:
        """Fuse whole frames.

        x: (B, N, H, W, 3) linear (1 = clipping); ev: (B, N) relative EVs;
        ref: (B,) long index of the reference frame. Returns (B, H, W, 3) display sRGB.
        Same attention pattern and bands as the streaming executor; differentiable.
        """
        return self.render(self.maps(x, ev, ref, cache_bits), x, ev, ref)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(cfg: IPLConfig, seed: int | None = None) -> IPL:
    """A model with (seeded) initial weights."""
    if seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return IPL(cfg)
    return IPL(cfg)


__all__ = [
    "IPL", "KEEP", "LOGIT", "VARIANTS", "Block", "IPLConfig", "build", "count_parameters", "ipl_base", "ipl_test",
]
