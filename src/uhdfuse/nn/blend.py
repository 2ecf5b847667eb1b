"""Mertens exposure fusion in torch, and IPL's render through it: differentiable, so
IPL can be trained through it.

The same computation as :mod:`uhdfuse.pyramid` (which runs it with OpenCV at
inference, for the classical engine and IPL's render alike): per-pixel weights
(local contrast x saturation x well-exposedness of the display values) and a
Laplacian-pyramid blend. The pyramid filters reproduce OpenCV's ``pyrDown`` /
``pyrUp`` including their borders, so training sees exactly what ``uhdfuse merge``
renders (to float rounding; ``tests/test_ipl.py`` checks it).

Layout: frames (B, N, H, W, 3) display values in [0, 1]; weights (B, N, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from uhdfuse.colour import BT601_GREY
from uhdfuse.config import MertensWeights
from uhdfuse.nn.layers import lift, srgb_encode
from uhdfuse.pyramid import CONTRAST_FLOOR, EPSILON, SATURATION_FLOOR, max_levels

SIGMA = MertensWeights().sigma  # the well-exposedness Gaussian of the default weights
MID_GREY = 0.5  # the display value well-exposedness is centred on
VARIANCE_FLOOR = 1e-12  # under the saturation's square root, whose gradient is infinite at 0
_GAUSS5 = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)  # OpenCV's pyrDown kernel, per axis


def reflect101(n: int, lo: int, hi: int, device: torch.device) -> torch.Tensor:
    """Indices of positions -lo .. n+hi-1 mirrored into [0, n) without repeating the edge (OpenCV's default)."""
    i = torch.arange(-lo, n + hi, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * n - 2
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., ceil(H/2), ceil(W/2)), like ``cv2.pyrDown`` per channel."""
    lead, (H, W) = x.shape[:-2], x.shape[-2:]
    y = x.reshape(-1, 1, H, W)
    if min(H, W) > 2:
        y = F.pad(y, (2, 2, 2, 2), mode="reflect")  # torch's "reflect" is OpenCV's REFLECT_101
    else:  # levels of 1-2 pixels: mirror repeatedly
        y = y.index_select(2, reflect101(H, 2, 2, x.device)).index_select(3, reflect101(W, 2, 2, x.device))
    g = torch.tensor(_GAUSS5, dtype=x.dtype, device=x.device)
    y = F.conv2d(y, (g[:, None] * g[None, :]).view(1, 1, 5, 5), stride=2)
    return y.reshape(*lead, y.shape[-2], y.shape[-1])


def _up(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """OpenCV's pyrUp along axis ``dim`` (negative): n -> size, size in {2n-1, 2n}.

    Even outputs (x[i-1] + 6 x[i] + x[i+1]) / 8, odd (x[i] + x[i+1]) / 2, mirrored
    at the start and repeated at the end, as OpenCV does.
    """
    n = x.shape[dim]
    first = x.narrow(dim, 1 if n > 1 else 0, 1)
    xp = torch.cat([first, x, x.narrow(dim, n - 1, 1)], dim)
    prev, mid, nxt = xp.narrow(dim, 0, n), x, xp.narrow(dim, 2, n)
    even = (prev + 6 * mid + nxt) * 0.125
    odd = (mid + nxt) * 0.5
    both = torch.stack([even, odd], dim)  # a new axis right after ``dim``: (..., n, 2, ...)
    shape = list(x.shape)
    shape[dim] = 2 * n
    return both.reshape(shape).narrow(dim, 0, size)


def pyr_up(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(..., h, w) -> (..., height, width), like ``cv2.pyrUp`` with that dstsize."""
    return _up(_up(x, width, -1), height, -2)


def mertens_weight(display: torch.Tensor, variance_floor: float = VARIANCE_FLOOR) -> torch.Tensor:
    """Unnormalised Mertens weight of display frames: (..., H, W, 3) in [0, 1] -> (..., H, W).

    ``variance_floor``: training's guard under the square root; the inference render
    (:mod:`uhdfuse.runtime.render_torch`), which takes no gradient, passes 0 to compute
    exactly what :func:`uhdfuse.pyramid.mertens_weights` does (grey pixels included).
    """
    r, g, b = display.unbind(-1)
    grey = BT601_GREY[0] * r + BT601_GREY[1] * g + BT601_GREY[2] * b
    H, W = grey.shape[-2:]
    rows = grey.index_select(-2, reflect101(H, 1, 1, grey.device))
    cols = grey.index_select(-1, reflect101(W, 1, 1, grey.device))
    laplacian = rows[..., :-2, :] + rows[..., 2:, :] + cols[..., :, :-2] + cols[..., :, 2:] - 4 * grey
    contrast = laplacian.abs() + CONTRAST_FLOOR
    mean = (r + g + b) / 3
    variance = ((r - mean) ** 2 + (g - mean) ** 2 + (b - mean) ** 2) / 3
    saturation = torch.sqrt(variance.clamp_min(variance_floor)) + SATURATION_FLOOR
    distance = (r - MID_GREY) ** 2 + (g - MID_GREY) ** 2 + (b - MID_GREY) ** 2
    return contrast * saturation * torch.exp(distance * (-1.0 / (2 * SIGMA**2)))


def normalise(weights: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) -> weights summing to 1 over N (a plain average where all are 0)."""
    weights = weights + EPSILON
    return weights / weights.sum(1, keepdim=True)


def laplacian_blend(display: torch.Tensor, weights: torch.Tensor, depth: int | None = None) -> torch.Tensor:
    """Blend frames in a Laplacian pyramid with Gaussian pyramids of their weights.

    display: (B, N, H, W, 3); weights: (B, N, H, W) summing to 1 over N; depth: levels
    counting the full-resolution one (None: down to about one pixel).
    Returns (B, H, W, 3) clipped to [0, 1].
    """
    H, W = display.shape[2:4]
    depth = max_levels(H, W) if depth is None else min(depth, max_levels(H, W))
    g = display.permute(0, 1, 4, 2, 3)  # (B, N, 3, H, W)
    w = weights[:, :, None]
    levels = []
    for _ in range(depth - 1):
        smaller = pyr_down(g)
        detail = g - pyr_up(smaller, g.shape[-2], g.shape[-1])
        levels.append((detail * w).sum(1))
        g, w = smaller, pyr_down(w)
    fused = (g * w).sum(1)
    for detail in reversed(levels):
        fused = pyr_up(fused, detail.shape[-2], detail.shape[-1]) + detail
    return fused.clamp(0, 1).permute(0, 2, 3, 1)


def render(maps: torch.Tensor, x: torch.Tensor, ev: torch.Tensor, ref: torch.Tensor, patch: int) -> torch.Tensor:
    """IPL's full-resolution output from its token maps (differentiable).

    maps: (B, Ht, Wt, 2N) logits then keep gates; x: (B, N, H, W, 3) linear, H <= Ht*patch;
    ev: (B, N) relative EVs; ref: (B,) reference index. Returns (B, H, W, 3) display sRGB in [0, 1].

    1. Lift the maps bilinearly to pixels.
    2. Deghost by substitution: frame i's display values become
       lerp(R_i, x_i, keep_i), R_i the reference scaled to frame i's exposure (and
       clipped like it). Where a gate closes, every pyramid level of that frame
       shows the reference's content, so no ghost survives the blend, even at
       coarse levels. (Mixed in display space: the encoded inputs are then
       constants, which keeps training fast.)
    3. Mertens weights of those frames x exp(logit), normalised, Laplacian-pyramid
       blend. No gradient flows through the Mertens measures themselves: the network
       steers the blend through logit and keep.
    """
    B, N, H, W, _ = x.shape
    up = lift(maps.float(), patch, H, W)  # (B, H, W, 2N)
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


__all__ = [
    "laplacian_blend", "max_levels", "mertens_weight", "normalise", "pyr_down", "pyr_up", "reflect101", "render",
]
