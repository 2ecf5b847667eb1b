"""IPL's render stage in torch, on the device the token network ran on (CUDA, MPS).

The computation of :func:`uhdfuse.runtime.render.render_maps` (the OpenCV render the
CPU runs, which stays the reference), on device-resident tensors, built from the
pieces training renders with (:mod:`uhdfuse.nn.blend`, :func:`uhdfuse.nn.layers.lift`):

1. lift the maps bilinearly to pixels;
2. substitute every non-reference frame i by lerp(stand_in_i, shown_i, keep_i) in
   display values, stand_in_i = display(reference x 2^ev_i), then encode the reference;
3. Mertens weights x exp(logit), plus EPSILON, normalised over the frames;
4. Laplacian-pyramid blend down to :func:`~uhdfuse.pyramid.max_levels`, clipped.

Equal to ``render_maps`` to float rounding (``tests/test_gpu.py`` checks it on the CPU
device, where CI runs it). Arithmetic is float32; the frames may be held in float16
(the engine uploads them so), which only rounds the linear input.

Memory for N frames of H x W pixels: the display frames (N, 3, H, W) and their weights
(N, H, W) in float32, the blended pyramid (4/3 of one float32 image) and one level's
temporaries, plus a frame's worth of temporaries while the weights are computed. The
full-resolution level is blended one frame at a time (its temporaries are a frame's
size, not N frames'); the coarser levels, where launches cost more than bytes, take
all frames in one batch. The input frames and maps are never written.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from uhdfuse.nn.blend import mertens_weight, pyr_up, reflect101
from uhdfuse.nn.layers import lift, srgb_encode
from uhdfuse.pyramid import EPSILON, max_levels

# A pyramid level's frames are processed in groups of at most this many pixels (but at
# least one frame): 4K frames go one by one at full resolution and together below it.
GROUP_PIXELS = 1 << 23


def to_display_(linear: torch.Tensor) -> torch.Tensor:
    """:func:`uhdfuse.pyramid.to_display` in torch: NaN -> 0, clipped to [0, 1], sRGB.

    Clamps ``linear`` (float32, any shape) in place and returns its encoding (a new tensor).
    """
    return srgb_encode(linear.nan_to_num_(nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0))


def _taps(x: torch.Tensor, dim: int, n: int) -> torch.Tensor:
    """OpenCV's pyrDown filter (1 4 6 4 1) / 16 at stride 2 along ``dim`` of ``x``, which
    carries a 2-sample border on each side: n outputs."""

    def tap(k: int) -> torch.Tensor:
        index: list[slice] = [slice(None)] * x.ndim
        index[dim] = slice(k, k + 2 * n - 1, 2)
        return x[tuple(index)]

    out = tap(0) + tap(4)
    out += (tap(1) + tap(3)).mul_(4.0)
    out += tap(2) * 6.0
    return out.mul_(1.0 / 16.0)


def reduce_level(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., ceil(H/2), ceil(W/2)), like ``cv2.pyrDown`` per plane.

    :func:`uhdfuse.nn.blend.pyr_down` filters with ``conv2d``, which cuDNN runs in
    TF32 (10-bit mantissas, ~1e-3 off OpenCV) on Ampere and later GPUs unless a global
    flag says otherwise; this separable form uses elementwise float32 ops only, so the
    device render is float32 whatever the flags (equal to pyr_down to float rounding).
    """
    H, W = x.shape[-2:]
    rows = _taps(x.index_select(-1, reflect101(W, 2, 2, x.device)), -1, (W + 1) // 2)
    return _taps(rows.index_select(-2, reflect101(H, 2, 2, x.device)), -2, (H + 1) // 2)


def _lift(maps: torch.Tensor, channel: int, patch: int, height: int, width: int) -> torch.Tensor:
    """One channel of (Ht, Wt, C) maps at pixel resolution: (height, width) float32, a view.

    One channel at a time: the full set (2N planes) would be 2N/3 frames of memory.
    """
    return lift(maps[None, :, :, channel: channel + 1], patch, height, width)[0, :, :, 0]


def display_frames(
    frames: torch.Tensor, maps: torch.Tensor, ev: Sequence[float], reference: int, patch: int
) -> torch.Tensor:
    """The frames as the blend sees them: (N, 3, H, W) float32 display values (planar,
    so every pyramid filter runs on contiguous planes).

    frames: (N, H, W, 3) linear, any float dtype (read only); maps: (Ht, Wt, 2N) float32
    on the same device, keep gates in channels N..2N-1. Where frame i's gate closes it
    shows the reference at frame i's exposure, clipped as frame i would be.
    """
    count, height, width = frames.shape[:3]
    display = torch.empty((count, 3, height, width), dtype=torch.float32, device=frames.device)
    ref = display[reference].copy_(frames[reference].permute(2, 0, 1))  # linear until the others have read it
    for i in range(count):
        if i == reference:
            continue
        keep = _lift(maps, count + i, patch, height, width)
        stand_in = to_display_(ref * (2.0 ** float(ev[i])))  # float32 gain, as render_maps
        shown = display[i].copy_(frames[i].permute(2, 0, 1))
        shown.copy_(to_display_(shown))
        # the order of render_maps's in-place lerp (shown - stand_in) * keep + stand_in,
        # not torch.lerp's, whose rounding differs
        shown.sub_(stand_in).mul_(keep).add_(stand_in)
        del stand_in, keep
    ref.copy_(to_display_(ref))
    return display


def blend_levels(display: torch.Tensor, weights: torch.Tensor, depth: int) -> torch.Tensor:
    """Blend N display frames in a Laplacian pyramid with Gaussian pyramids of their weights.

    display: (N, 3, H, W) float32; weights: (N, H, W) float32 summing to 1 over N (both
    read only); depth: levels counting the full-resolution one. The same sums as
    :func:`uhdfuse.pyramid.blend_pyramid`. Returns (3, H, W) float32 clipped to [0, 1].
    """
    count = display.shape[0]
    level, weight = display, weights
    blended: list[torch.Tensor] = []  # per level but the coarsest: sum over frames of detail x weight
    for _ in range(depth - 1):
        height, width = level.shape[-2:]
        smaller = level.new_empty((count, 3, (height + 1) // 2, (width + 1) // 2))
        acc = level.new_zeros((3, height, width))
        group = max(1, GROUP_PIXELS // (height * width))
        for a in range(0, count, group):
            b = min(count, a + group)
            reduced = smaller[a:b]
            reduced.copy_(reduce_level(level[a:b]))
            detail = pyr_up(reduced, height, width)
            torch.sub(level[a:b], detail, out=detail)
            for j in range(b - a):
                acc.addcmul_(detail[j], weight[a + j])
            del detail
        blended.append(acc)
        level, weight = smaller, reduce_level(weight)
    fused = (level * weight[:, None]).sum(0)  # the coarsest level keeps the Gaussian itself
    del level, weight
    while blended:
        finer = blended.pop()
        fused = pyr_up(fused, finer.shape[-2], finer.shape[-1]).add_(finer)
        del finer
    return fused.clamp_(0.0, 1.0)


@torch.inference_mode()
def render_maps_torch(
    frames: torch.Tensor, maps: torch.Tensor, ev: Sequence[float], reference: int, patch: int
) -> torch.Tensor:
    """Fuse aligned frames with IPL's maps, on the frames' device.

    frames: (N, H, W, 3) linear (1 = clipping), float16 or float32; maps: (Ht, Wt, 2N)
    (logits, then keep gates), Ht = ceil(H / patch), Wt = ceil(W / patch), moved to the
    frames' device as float32; ev: N EVs relative to the reference. Neither is written.
    Returns (H, W, 3) float32 display sRGB in [0, 1], contiguous, on the frames' device.
    """
    count, height, width = frames.shape[:3]
    want = (-(-height // patch), -(-width // patch), 2 * count)
    if frames.ndim != 4 or frames.shape[-1] != 3 or tuple(maps.shape) != want:
        raise ValueError(f"frames (N, H, W, 3) and maps {want} expected, got {tuple(frames.shape)}, "
                         f"{tuple(maps.shape)}")
    maps = maps.to(device=frames.device, dtype=torch.float32)
    display = display_frames(frames, maps, ev, reference, patch)
    weights = torch.empty((count, height, width), dtype=torch.float32, device=frames.device)
    for i in range(count):
        # variance floor 0: exactly pyramid.mertens_weights (no gradient is taken here)
        measures = mertens_weight(display[i].permute(1, 2, 0), variance_floor=0.0)
        torch.mul(measures, _lift(maps, i, patch, height, width).exp(), out=weights[i])
        del measures
    weights += EPSILON
    weights /= weights.sum(0)
    fused = blend_levels(display, weights, max_levels(height, width))
    del display, weights
    return fused.permute(1, 2, 0).contiguous()


__all__ = ["GROUP_PIXELS", "blend_levels", "display_frames", "reduce_level", "render_maps_torch", "to_display_"]
