"""The training loss, in display (sRGB) space where a viewer judges the result.

``loss = l1 * |pred - target| + ssim * (1 - SSIM(pred, target)) + grad * |d pred - d target|``

L1 keeps tones and colours right, SSIM (Gaussian window 11, sigma 1.5, on each
channel) local contrast and structure, the optional gradient term sharp edges.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F

from uhdfuse.errors import UsageError


@dataclass(frozen=True)
class LossConfig:
    l1: float = 1.0
    ssim: float = 0.5
    grad: float = 0.0
    gate: float = 0.0  # prior for open gates: weight of the mean closed share of the non-reference frames

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> LossConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise UsageError(f"unknown loss keys {unknown}")
        return cls(**values)


def _gaussian(size: int, sigma: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of (B, H, W, 3) images in [0, 1]; scalar. H, W >= ``window``."""
    x, y = pred.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    C = x.shape[1]
    g = _gaussian(window, sigma, x.device, x.dtype)
    kx = g.view(1, 1, 1, window).expand(C, 1, 1, window)
    ky = g.view(1, 1, window, 1).expand(C, 1, window, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid region only
        return F.conv2d(F.conv2d(t, kx, groups=C), ky, groups=C)

    mx, my = blur(x), blur(y)
    sxx = blur(x * x) - mx * mx
    syy = blur(y * y) - my * my
    sxy = blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def _grad_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    dx = (pred[:, :, 1:] - pred[:, :, :-1]) - (target[:, :, 1:] - target[:, :, :-1])
    dy = (pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])
    return dx.abs().mean() + dy.abs().mean()


def fusion_loss(pred: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Loss of (B, H, W, 3) display predictions against display targets: (scalar, its parts as floats)."""
    l1 = (pred - target).abs().mean()
    total = cfg.l1 * l1
    parts = {"l1": float(l1.detach())}
    if cfg.ssim:
        s = ssim(pred, target)
        total = total + cfg.ssim * (1 - s)
        parts["ssim"] = float(s.detach())
    if cfg.grad:
        g = _grad_l1(pred, target)
        total = total + cfg.grad * g
        parts["grad"] = float(g.detach())
    return total, parts


def closed_share(maps: torch.Tensor) -> torch.Tensor:
    """Mean share of the non-reference frames the keep gates reject.

    maps: (B, Ht, Wt, 2N) from :meth:`uhdfuse.nn.ipl.IPL.maps` (the reference's gate is 1).
    Without a cost, closing a gate is almost free wherever the substitute is close to
    the frame (static synthetic brackets with an sRGB-like response), and the model
    learns to close gates by default; real cameras' tone curves then make the
    substitute differ, and static photographs lose detail.
    """
    n = maps.shape[-1] // 2
    return (1 - maps[..., n:]).sum(-1).mean() / max(n - 1, 1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of display images in [0, 1] (any matching shapes)."""
    mse = float(((pred - target) ** 2).mean())
    return 10.0 * torch.log10(torch.tensor(1.0 / max(mse, 1e-12))).item()
