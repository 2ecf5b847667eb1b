"""Pure tensor functions the IPL model is built from: tokenizing, padding, convolutions.

Channel-last layout: token tensors are (B, rows, columns, channels); frames are
(B, N, H, W, 3) linear light. Nothing here holds parameters.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from uhdfuse.colour import REC709_LUMA, SRGB_GAMMA, SRGB_LINEAR_THRESHOLD, SRGB_OFFSET, SRGB_SLOPE

STATS = 4  # per frame and token: mean linear RGB (3), mean sqrt-luma (1)


def srgb_encode(x: torch.Tensor) -> torch.Tensor:
    """IEC 61966-2-1 sRGB encoding of linear values (the curve of :mod:`uhdfuse.colour`).

    min() of the two pieces equals the piecewise definition (the linear piece is
    below the power piece exactly where x < the threshold) and avoids a masked select.
    """
    power = torch.pow(x.clamp_min(SRGB_LINEAR_THRESHOLD), 1.0 / SRGB_GAMMA).mul_(1.0 + SRGB_OFFSET).sub_(SRGB_OFFSET)
    return torch.minimum(SRGB_SLOPE * x, power)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) linear RGB -> (...) Rec. 709 luma, in rgb's dtype.

    A matrix-vector product is fastest on the CPU; elsewhere (autocast would run a
    matmul in bf16, and luma feeds a difference of near-equal terms) plain float math.
    """
    if rgb.device.type == "cpu":
        return rgb @ torch.tensor(REC709_LUMA, dtype=rgb.dtype)
    r, g, b = REC709_LUMA
    return rgb[..., 0] * r + rgb[..., 1] * g + rgb[..., 2] * b


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
    cuts = [0] + list(range(size - offset if offset else size, n, size)) + [n]
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


def lift(maps: torch.Tensor, p: int, height: int, width: int) -> torch.Tensor:
    """Token maps (B, Ht, Wt, C) -> pixels (B, height, width, C), bilinear (pixel centres).

    The same sampling as OpenCV's ``resize`` with INTER_LINEAR by a factor ``p``.
    """
    up = F.interpolate(maps.permute(0, 3, 1, 2), scale_factor=p, mode="bilinear", align_corners=False)
    return up[:, :, :height, :width].permute(0, 2, 3, 1)


__all__ = [
    "STATS",
    "dwconv3",
    "lift",
    "luma",
    "make_thumbnail",
    "one_hot",
    "pad_rows",
    "pad_to_patch",
    "pool",
    "replicate_rows",
    "segments",
    "srgb_encode",
    "tokenize",
]
