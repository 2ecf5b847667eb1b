"""IPL: exposure fusion by a small transformer that reads a frame like a token stream.

The whole architecture in one file (nanoGPT style). Design notes: ``docs/ipl.md``.

Flow (B batch, N frames, H x W pixels, p patch, Ht x Wt = ceil(H/p) x ceil(W/p) tokens, C dim)::

    frames (B, N, H, W, 3) linear
      -> tokenize    per-token statistics of each frame            (B, Ht, Wt, 4N)
      -> embed       shared per-frame encoder, fused over frames   (B, Ht, Wt, C+2)
      -> blocks      window attention + cache + global tokens, MLP (B, Ht, Wt, C+2)
      -> head        per frame: fusion logit, keep gate            (B, Ht, Wt, 2N)  "maps"
      -> render      full resolution: frames a gate rejects are replaced by the
                     reference at their exposure, then Mertens weights x exp(logit)
                     and a Laplacian-pyramid blend of the real pixels (sRGB)

Everything up to the maps is the token network (``maps``; streamed by
``uhdfuse.runtime.stream`` with flat memory); ``render`` is per-pixel work plus a
pyramid, done in torch here (differentiable, for training) and with OpenCV at
inference (``uhdfuse.runtime.render``), the two equal to float rounding.

The four IPL parts, in our design:

1. *Slice cyclic scanning*: tokens are processed window-row by window-row (a strip of
   ``window`` token rows cut into ``window``-wide windows); attention runs inside each
   window.
2. *Attention cache*: each window also attends to a :class:`~uhdfuse.runtime.cache.KVCache`
   of summaries of the window-rows above it, and to ``global_grid**2`` tokens computed
   once from a thumbnail of the whole frame.
3. *Quantization compression*: that cache is stored in 16, 8 or 4 bits (KIVI style).
4. *Dimensional rolling*: every block shifts its window grid (rows and columns, cycling
   through four offsets), so slice and window borders move between blocks: no seams.

Frames wider than ``cfg.band`` token columns are cut into overlapping column *bands*
(:meth:`IPL.bands`), each run through the token network on its own (its own caches),
and their maps are cross-faded over one window on each side of
every seam, far enough inside both bands that their crop edges cannot reach it
(:meth:`IPL.band_margin`). That is what keeps streaming memory independent of the
frame width; a frame at most ``cfg.band`` tokens wide is one band and unaffected.

Every stage maps token rows to token rows and needs at most one row of context
(``halo``), except attention, which needs whole window-rows. ``maps`` runs the
stages over the whole frame (training and the reference of the proofs);
``uhdfuse.runtime.stream`` runs the same stage methods over row slices.

Channel-last layout everywhere: token tensors are (B, rows, Wt, channels).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from uhdfuse.nn.blend import laplacian_blend, mertens_weight, normalise
from uhdfuse.runtime.cache import KVCache

LUMA = (0.2126, 0.7152, 0.0722)  # Rec. 709, linear light
STATS = 4  # per frame and token: mean linear RGB (3), mean sqrt-luma (1)
FEATS = 8  # per frame and token features fed to the encoder (see frame_features)
EXTRA = 2  # channels carried beside the C features: cache importance, reference level


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


# -- small pure helpers --------------------------------------------------------------

def srgb_encode(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 sRGB encoding of linear values (same curve as uhdfuse.colour).

    min() of the two pieces equals the piecewise definition (the linear piece is
    below the power piece exactly where x < 0.0031308) and avoids a masked select.
    """
    power = torch.pow(x.clamp_min(0.0031308), 1.0 / 2.4).mul_(1.055).sub_(0.055)
    return torch.minimum(12.92 * x, power)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) linear RGB -> (...) Rec. 709 luma, in rgb's dtype.

    A matrix-vector product is fastest on the CPU; elsewhere (autocast would run a
    matmul in bf16, and luma feeds a difference of near-equal terms) plain float math.
    """
    if rgb.device.type == "cpu":
        return rgb @ torch.tensor(LUMA, dtype=rgb.dtype)
    return rgb[..., 0] * LUMA[0] + rgb[..., 1] * LUMA[1] + rgb[..., 2] * LUMA[2]


def pool(x: torch.Tensor, p: int) -> torch.Tensor:
    """Mean over p x p pixel blocks of channel-last (..., h*p, w*p, C) -> (..., h, w, C)."""
    lead, (hp, wp, C) = x.shape[:-3], x.shape[-3:]
    y = F.avg_pool2d(x.reshape(-1, hp, wp, C).permute(0, 3, 1, 2), p)  # channels-last kernel
    return y.permute(0, 2, 3, 1).reshape(*lead, hp // p, wp // p, C)


def one_hot(ref: torch.Tensor, n: int, dtype: torch.dtype) -> torch.Tensor:
    """(B,) indices -> (B, n) one-hot (F.one_hot validates on the host: a GPU sync)."""
    return (torch.arange(n, device=ref.device) == ref[:, None]).to(dtype)


def segments(n: int, size: int, offset: int) -> list[tuple[int, int]]:
    """Cut [0, n) into windows of ``size`` whose grid is shifted up/left by ``offset``."""
    cuts = [0] + [c for c in range(size - offset if offset else size, n, size)] + [n]
    return [(a, b) for a, b in itertools.pairwise(cuts) if b > a]


def dwconv3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Depthwise 3x3 conv on channel-last (B, h+2, W, C) -> (B, h, W, C); rows valid, cols zero-padded."""
    C = x.shape[-1]
    y = F.conv2d(x.permute(0, 3, 1, 2), weight, bias, padding=(0, 1), groups=C)
    return y.permute(0, 2, 3, 1)


def pad_rows(x: torch.Tensor, top: int, bottom: int, dim: int = 1) -> torch.Tensor:
    """Zero rows added along ``dim`` (the row axis)."""
    if top == 0 and bottom == 0:
        return x
    shape = list(x.shape)
    parts = []
    if top:
        shape[dim] = top
        parts.append(x.new_zeros(shape))
    parts.append(x)
    if bottom:
        shape[dim] = bottom
        parts.append(x.new_zeros(shape))
    return torch.cat(parts, dim)


def replicate_rows(x: torch.Tensor, top: int, bottom: int, dim: int = 1) -> torch.Tensor:
    """Edge rows repeated along ``dim``."""
    if top == 0 and bottom == 0:
        return x
    n = x.shape[dim]
    idx = torch.arange(-top, n + bottom, device=x.device).clamp_(0, n - 1)
    return x.index_select(dim, idx)


def pad_to_patch(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, N, H, W, 3) -> (B, N, ceil(H/p)*p, ceil(W/p)*p, 3), edges replicated."""
    H, W = x.shape[2], x.shape[3]
    x = replicate_rows(x, 0, (-H) % p, dim=2)
    return replicate_rows(x, 0, (-W) % p, dim=3)


def make_thumbnail(x: torch.Tensor, size: int) -> torch.Tensor:
    """A (B, N, size, size, 3) area-averaged thumbnail of (B, N, H, W, 3) frames.

    Strided sampling first (at least 4 samples per thumbnail pixel along each axis,
    at most about 8), so the cost and the temporaries do not grow with the frame or
    its aspect ratio; aspect ratio is not kept (it feeds global statistics).
    """
    B, N, H, W, _ = x.shape
    kh, kw = max(1, H // (size * 4)), max(1, W // (size * 4))
    sub = x[:, :, ::kh, ::kw, :].float()
    sub = sub.reshape(B * N, sub.shape[2], sub.shape[3], 3).permute(0, 3, 1, 2)
    th = F.adaptive_avg_pool2d(sub, (size, size))
    return th.permute(0, 2, 3, 1).reshape(B, N, size, size, 3).contiguous()


def tokenize(x: torch.Tensor, p: int) -> torch.Tensor:
    """Per-token statistics of the frames.

    x: (B, N, h*p, w*p, 3) linear. Returns (B, h, w, 4N) float32: for each frame
    mean linear RGB and mean sqrt-luma (a perceptual brightness whose variance
    measures texture).
    """
    B, N, hp, wp, _ = x.shape
    h, w = hp // p, wp // p
    x = x.float()
    s = torch.sqrt(luma(x).clamp_min_(0))  # (B, N, hp, wp)
    rgb = pool(x, p)  # (B, N, h, w, 3)
    s = pool(s[..., None], p)  # (B, N, h, w, 1)
    return torch.cat([rgb, s], -1).permute(0, 2, 3, 1, 4).reshape(B, h, w, N * STATS)


def frame_features(tok: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder inputs from token statistics.

    tok: (B, h, w, 4N); ev: (B, N) EV relative to the reference; ref: (B,) long.
    Returns features (B, h, w, N, 8) [sRGB mean (3), sqrt-luma, texture, EV/4, is-ref,
    disagreement with the reference] and extra (B, h, w, 2) [cache importance,
    reference sqrt-luma].
    """
    B, h, w, _ = tok.shape
    N = ev.shape[1]
    st = tok[..., : N * STATS].reshape(B, h, w, N, STATS)
    rgb, s = st[..., :3], st[..., 3]
    disp = srgb_encode(rgb.clamp(0, 1))
    texture = torch.sqrt((luma(rgb) - s * s).clamp_min(0) + 1e-8) * 4.0
    is_ref = one_hot(ref, N, tok.dtype)  # (B, N)
    evb = ev.to(tok.dtype)
    # sqrt-luma scaled to the reference exposure: equal for all frames where the
    # scene is static and neither frame is clipped or black
    norm = s * torch.exp2(-0.5 * evb)[:, None, None, :]
    s_ref = (norm * is_ref[:, None, None, :]).sum(-1, keepdim=True)
    diff = (norm - s_ref).clamp(-1, 1)
    feats = torch.cat([
        disp, s[..., None], texture[..., None],
        (evb / 4.0)[:, None, None, :, None].expand(B, h, w, N, 1),
        is_ref[:, None, None, :, None].expand(B, h, w, N, 1),
        diff[..., None],
    ], -1)
    ref_level = s_ref[..., 0].clamp(0, 1)
    badly_exposed = ((ref_level - 0.5).abs() - 0.3).clamp_min(0) / 0.2
    importance = badly_exposed + diff.abs().amax(-1)
    return feats, torch.stack([importance, ref_level], -1)


class Block(nn.Module):
    """Window attention (with cache and global tokens) then a conv MLP."""

    def __init__(self, cfg: IPLConfig) -> None:
        super().__init__()
        C = cfg.dim
        self.norm1 = nn.LayerNorm(C)
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)
        self.norm2 = nn.LayerNorm(C)
        hid = C * cfg.mlp_ratio
        self.fc1 = nn.Linear(C, hid)
        self.dw = nn.Conv2d(hid, hid, 3, groups=hid)
        self.fc2 = nn.Linear(hid, C)


class IPL(nn.Module):
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
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.blocks))
        self.head_frame = nn.Linear(FEATS, cfg.head_hidden)
        self.head_ctx = nn.Linear(C, cfg.head_hidden)
        self.head_out = nn.Linear(cfg.head_hidden, 2)  # fusion logit, keep logit
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Init such that an untrained model already fuses sanely.

        Small head weights make the learned logits ~0 and the keep gate starts open
        (sigmoid(5) ~ 0.993), so the output is then (almost exactly) Mertens fusion.
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02 if m is self.head_out else 0.2)
                nn.init.zeros_(m.bias)
        with torch.no_grad():
            self.head_out.bias[1] = 5.0

    # -- geometry ------------------------------------------------------------------
    def shift(self, block: int) -> tuple[int, int]:
        """(row, col) offset of block ``block``'s window grid: cycles through four offsets."""
        half = self.cfg.window // 2
        return ((block % 2) * half, ((block + 1) // 2 % 2) * half)

    def window_rows(self, block: int, rows: int) -> list[tuple[int, int]]:
        """Token-row ranges of block ``block``'s window-rows over ``rows`` token rows."""
        return segments(rows, self.cfg.window, self.shift(block)[0])

    def band_margin(self) -> int:
        """Token columns between a band's crop edge and its seam zone, a multiple of the window.

        Covers the token network's column reach (embed conv 1, per block a window and
        the MLP conv) with a column to spare, so a band's crop edge cannot change the
        maps it contributes to a seam; only its caches differ from its neighbour's.
        """
        w = self.cfg.window
        return -(-(self.cfg.blocks * w + 2) // w) * w

    def bands(self, width: int) -> list[tuple[int, int]]:
        """Token-column crops [lo, hi) of the bands over ``width`` token columns.

        Crops are ``cfg.band`` wide (the last may be narrower) and start on the window
        grid, so every band sees the global window grid. Consecutive crops overlap by
        2 * (margin + window); band k >= 1 meets band k-1 in the seam zone
        ``[lo_k + margin, lo_k + margin + 2 * window)``.
        """
        cfg = self.cfg
        m, R = self.band_margin(), cfg.window
        step = cfg.band - 2 * (m + R)
        crops, lo = [], 0
        while True:
            hi = min(lo + cfg.band, width)
            crops.append((lo, hi))
            if hi >= width:
                return crops
            lo += step

    def seam_ramp(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(2 * window, 1) weights of the right-hand band across a seam zone, rising 0 -> 1."""
        n = 2 * self.cfg.window
        return ((torch.arange(n, device=device, dtype=dtype) + 0.5) / n)[:, None]

    # -- stages ----------------------------------------------------------------------
    def embed(self, tok: torch.Tensor, top: int, bottom: int, ev: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Token rows [a, b) from tok rows [a-1+top, b+1-bottom) (top/bottom: rows beyond the frame).

        Returns (B, b-a, Wt, C+2): fused features, then cache importance and reference level.
        """
        f, extra = frame_features(tok, ev, ref)  # (B, hh, W, N, 8)
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
        return torch.cat([z, extra[:, lo: lo + h]], -1)

    def global_tokens(self, thumb: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per block (keys, values) of the global tokens, each (B, heads, G, d), from a thumbnail.

        thumb: (B, N, t, t, 3) linear (see :func:`make_thumbnail`).
        """
        cfg = self.cfg
        tok = tokenize(thumb, cfg.thumb_patch)
        z = self.embed(tok, 1, 1, ev, ref)[..., : cfg.dim].permute(0, 3, 1, 2)
        g = F.adaptive_avg_pool2d(z, cfg.global_grid).flatten(2).transpose(1, 2)  # (B, G, C)
        g = self.glob_norm(g)
        B, G, C = g.shape
        out = []
        for blk in self.blocks:
            kv = F.linear(blk.norm1(g), blk.qkv.weight[C:], blk.qkv.bias[C:])
            kv = kv.reshape(B, G, 2, cfg.heads, C // cfg.heads).permute(2, 0, 3, 1, 4)
            out.append((kv[0], kv[1]))
        return out

    def attend(self, block: int, x: torch.Tensor, cache: KVCache, glob: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """One window-row of block ``block``: x (B, h, Wt, C+2) -> same shape; updates ``cache``."""
        cfg = self.cfg
        blk = self.blocks[block]
        B, h, Wt, _ = x.shape
        C, nh = cfg.dim, cfg.heads
        d = C // nh
        t = x[..., :C]
        ctx = cache.context()
        gk, gv = glob
        if ctx is None:
            ck, cv, bias = gk, gv, None
        else:
            ck = torch.cat([gk.to(ctx[0].dtype), ctx[0]], 2)
            cv = torch.cat([gv.to(ctx[1].dtype), ctx[1]], 2)
            bias = None if ctx[2] is None else F.pad(ctx[2], (gk.shape[2], 0))
        segs = segments(Wt, cfg.window, self.shift(block)[1])
        # group equal-width neighbouring windows into one batched call
        groups: list[tuple[int, int, int]] = []  # (first col, window width, count)
        for a, b in segs:
            if groups and groups[-1][1] == b - a and groups[-1][2] < cfg.max_windows:
                c0, ww, n = groups[-1]
                groups[-1] = (c0, ww, n + 1)
            else:
                groups.append((a, b - a, 1))
        outs, ksum, vsum, score, level = [], [], [], [], []
        for c0, ww, n in groups:
            T = h * ww
            part = blk.qkv(blk.norm1(t[:, :, c0: c0 + n * ww]))  # (B, h, n*ww, 3C)
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
            ex = x[:, :, c0: c0 + n * ww, C:].reshape(B, h, n, ww, EXTRA).mean(dim=(1, 3))  # (B, n, 2)
            score.append(ex[..., 0])
            level.append(ex[..., 1])
        y = t + blk.proj(torch.cat(outs, 2))
        cache.append(torch.cat(ksum, 1).transpose(1, 2), torch.cat(vsum, 1).transpose(1, 2),
                     torch.cat(score, 1), torch.cat(level, 1))
        return torch.cat([y, x[..., C:]], -1)

    def mlp(self, block: int, x: torch.Tensor, top: int, bottom: int) -> torch.Tensor:
        """Rows [a, b) from rows [a-1+top, b+1-bottom) of the attention output."""
        blk = self.blocks[block]
        C = self.cfg.dim
        hid = pad_rows(blk.fc1(blk.norm2(x[..., :C])), top, bottom)
        hid = F.gelu(dwconv3(hid, blk.dw.weight, blk.dw.bias))
        h = hid.shape[1]
        c = x[:, 1 - top: 1 - top + h]
        return torch.cat([c[..., :C] + blk.fc2(hid), c[..., C:]], -1)

    def head(self, z: torch.Tensor, tok: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Per-token maps: z (B, h, Wt, C+2), tok (B, h, Wt, 4N) -> (B, h, Wt, 2N).

        Channels: N fusion logits (bounded by ``cfg.max_logit``; they multiply each
        frame's Mertens weight by exp(logit), so only their differences matter), then
        N keep gates in [0, 1], 1 for the reference: where a frame's gate closes, it is
        replaced by the reference at its exposure (see :meth:`render`).
        """
        f, _ = frame_features(tok, ev, ref)  # (B, h, W, N, 8)
        N = f.shape[3]
        C = self.cfg.dim
        hid = F.gelu(self.head_frame(f) + self.head_ctx(z[..., :C])[..., None, :])
        o = self.head_out(hid)  # (B, h, W, N, 2)
        bound = self.cfg.max_logit
        logit = bound * torch.tanh(o[..., 0] / bound)
        is_ref = one_hot(ref, N, o.dtype)[:, None, None, :]
        keep = torch.sigmoid(o[..., 1]) * (1 - is_ref) + is_ref
        return torch.cat([logit, keep], -1)

    def render(self, maps: torch.Tensor, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Full-resolution output from the token maps (differentiable).

        maps: (B, Ht, Wt, 2N) from :meth:`maps`; x: (B, N, H, W, 3) linear, H <= Ht*p.
        Returns (B, H, W, 3) display sRGB in [0, 1].

        1. Lift the maps bilinearly to pixels.
        2. Deghost by substitution: frame i's display values become
           lerp(R_i, x_i, keep_i), R_i the reference scaled to frame i's exposure (and
           clipped like it). Where a gate closes, every pyramid level of that frame
           shows the reference's content, so no ghost survives the blend, even at
           coarse levels. (Mixed in display space: the encoded inputs are then
           constants, which keeps training fast.)
        3. Mertens weights of those frames x exp(logit), normalised, Laplacian-pyramid
           blend (:mod:`uhdfuse.nn.blend`). No gradient flows through the Mertens
           measures themselves: the network steers the blend through logit and keep.
        """
        p = self.cfg.patch
        B, N, H, W, _ = x.shape
        up = lift(maps.float(), p, H, W)  # (B, H, W, 2N)
        logit, keep = up[..., :N].permute(0, 3, 1, 2), up[..., N:].permute(0, 3, 1, 2)
        with torch.no_grad():
            x = x.float().clamp(0, 1)
            idx = ref.view(B, 1, 1, 1, 1).expand(B, 1, H, W, 3)
            scaled = (torch.gather(x, 1, idx) * torch.exp2(ev.float())[:, :, None, None, None]).clamp_(0, 1)
            shown, stand_in = srgb_encode(x), srgb_encode(scaled)
        display = torch.lerp(stand_in, shown, keep[..., None])
        with torch.no_grad():
            measures = mertens_weight(display)
        w = normalise(measures * torch.exp(logit))
        return laplacian_blend(display, w)

    # -- whole-frame forward (training, and the reference of the streaming proofs) --
    def band_maps(self, tok: torch.Tensor, glob: list, ev: torch.Tensor, ref: torch.Tensor, cache_bits: int) -> torch.Tensor:
        """The token network over one band: tok (B, Ht, w, 4N) -> maps (B, Ht, w, 2N).

        ``w`` token columns starting on the window grid; the band's own caches;
        ``glob`` from :meth:`global_tokens` of the whole frame.
        """
        cfg = self.cfg
        Ht = tok.shape[1]
        z = self.embed(tok, 1, 1, ev, ref)
        for i in range(cfg.blocks):
            cache = KVCache(cache_bits, cfg.cache_keep, cfg.cache_bins, cfg.cache_decay)
            z = torch.cat([self.attend(i, z[:, a:b], cache, glob[i]) for a, b in self.window_rows(i, Ht)], 1)
            z = self.mlp(i, z, 1, 1)
        return self.head(z, tok, ev, ref)

    def forward(self, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor, cache_bits: int = 16) -> torch.Tensor:
        """Fuse whole frames.

        x: (B, N, H, W, 3) linear (1 = clipping); ev: (B, N) relative EVs;
        ref: (B,) long index of the reference frame. Returns (B, H, W, 3) display sRGB.
        Same attention pattern and bands as the streaming executor; differentiable.
        """
        return self.render(self.maps(x, ev, ref, cache_bits), x, ev, ref)

    def maps(self, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor, cache_bits: int = 16) -> torch.Tensor:
        """The token network over whole frames: (B, N, H, W, 3) -> maps (B, Ht, Wt, 2N).

        The reference computation of the streaming proofs.
        """
        cfg = self.cfg
        glob = self.global_tokens(make_thumbnail(x, cfg.thumb), ev, ref)
        xp = pad_to_patch(x, cfg.patch)
        tok = tokenize(xp, cfg.patch)
        crops = self.bands(tok.shape[2])
        parts = [self.band_maps(tok[:, :, lo:hi], glob, ev, ref, cache_bits) for lo, hi in crops]
        m, R = self.band_margin(), cfg.window
        pieces = []
        for k, (lo, hi) in enumerate(crops):
            start = 0
            if k:  # the seam zone with band k-1: cross-fade
                plo = crops[k - 1][0]
                z0 = lo + m
                ramp = self.seam_ramp(tok.device, parts[k].dtype)
                pieces.append(torch.lerp(parts[k - 1][:, :, z0 - plo: z0 - plo + 2 * R],
                                         parts[k][:, :, m: m + 2 * R], ramp))
                start = z0 + 2 * R
            end = crops[k + 1][0] + m if k + 1 < len(crops) else hi
            pieces.append(parts[k][:, :, start - lo: end - lo])
        return torch.cat(pieces, 2) if len(pieces) > 1 else pieces[0]


def lift(maps: torch.Tensor, p: int, height: int, width: int) -> torch.Tensor:
    """Token maps (B, Ht, Wt, C) -> pixels (B, height, width, C), bilinear (pixel centres).

    The same sampling as OpenCV's ``resize`` with INTER_LINEAR by a factor ``p``.
    """
    up = F.interpolate(maps.permute(0, 3, 1, 2), scale_factor=p, mode="bilinear", align_corners=False)
    return up[:, :, :height, :width].permute(0, 2, 3, 1)


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
    "IPL",
    "VARIANTS",
    "IPLConfig",
    "build",
    "count_parameters",
    "ipl_base",
    "ipl_test",
    "lift",
    "make_thumbnail",
    "tokenize",
]
