"""Image-quality measures for the benchmarks: MEF-SSIM, PSNR and SSIM.

Pure numpy/OpenCV functions on display-encoded images. Images are ``(H, W, 3)``
RGB or ``(H, W)`` grey, either integers (``uint8``: range 255, ``uint16``: range
65535) or floats in [0, 1]; pass ``data_range`` for anything else (e.g. floats
in [0, 255]).

* :func:`mef_ssim` scores an exposure fusion against its source bracket, without
  a reference image (Ma, Zeng & Wang 2015). It is blind to ghosts: a fusion that
  copies a moving person from one frame scores as well as one that does not.
* :func:`psnr` and :func:`ssim` compare an image with a reference of the same
  scene (e.g. a fusion of a moving bracket with the fusion of the static one).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import UsageError, param

# MATLAB rgb2gray weights (Rec.601 luma), as in the reference MEF-SSIM code.
_RGB_TO_GREY = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
_WINDOW = 11  # side of the patch, pixels
_SIGMA = 1.5  # of the Gaussian window that weights the SSIM statistics
# Weights of the three scales of the multi-scale MEF-SSIM (the MS-SSIM weights of
# Wang et al. 2003 for its three finest scales), normalised to sum to 1.
_SCALE_WEIGHTS = np.array([0.0448, 0.2856, 0.3001])
# Added to each patch's signal strength (in 0-255 units) in the reference code,
# so a flat patch has a defined structure vector.
_STRENGTH_FLOOR = 0.001


def _range_of(image: np.ndarray, data_range: float | None, name: str) -> float:
    if data_range is not None:
        if not data_range > 0:
            raise UsageError(f"{param('data_range')} must be positive, got {data_range}")
        return float(data_range)
    if image.dtype == np.uint8:
        return 255.0
    if image.dtype == np.uint16:
        return 65535.0
    if np.issubdtype(image.dtype, np.floating):
        top = float(np.nanmax(image)) if image.size else 0.0
        # A little overshoot (MergeMertens output, interpolation) is normal for [0, 1]
        # images; values far above 1 mean the caller's images are in another range.
        if top > 2.0:
            raise UsageError(f"{name}: float values up to {top:.4g}; pass {param('data_range')} (e.g. 255)")
        return 1.0
    raise UsageError(f"{name}: unsupported dtype {image.dtype}; use uint8, uint16 or float")


def _grey_255(image: np.ndarray, data_range: float | None, name: str) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) -> (H, W) float64 luma on the 0-255 scale."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 3:
        scale = 255.0 / _range_of(image, data_range, name)
        return (image.astype(np.float64) @ _RGB_TO_GREY) * scale
    if image.ndim == 2:
        return image.astype(np.float64) * (255.0 / _range_of(image, data_range, name))
    raise UsageError(f"{name}: expected an (H, W, 3) or (H, W) image, got shape {image.shape}")


def _gauss_kernel() -> np.ndarray:
    return cv2.getGaussianKernel(_WINDOW, _SIGMA, cv2.CV_64F)


def _valid(filtered: np.ndarray) -> np.ndarray:
    """Keep the centres of windows that lie wholly inside the image (MATLAB 'valid')."""
    b = _WINDOW // 2
    return filtered[b:-b, b:-b]


def _box(image: np.ndarray) -> np.ndarray:
    """Mean over each 11x11 patch; (H, W) -> (H - 10, W - 10)."""
    return _valid(cv2.boxFilter(image, cv2.CV_64F, (_WINDOW, _WINDOW), normalize=True,
                                borderType=cv2.BORDER_REFLECT))


def _gauss(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Gaussian-weighted mean over each 11x11 patch; (H, W) -> (H - 10, W - 10)."""
    return _valid(cv2.sepFilter2D(image, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT))


def mef_ssim_single_scale(sources: np.ndarray, fused: np.ndarray, *, p: float = 4.0) -> tuple[float, np.ndarray]:
    """MEF-SSIM at one scale: the mean score and its map.

    ``sources``: (K, H, W) float64 grey on the 0-255 scale; ``fused``: (H, W) likewise.
    Returns (score, map) with map (H - 10, W - 10): one value per 11x11 patch that lies
    wholly inside the image.

    Per patch, the desired result has the largest signal strength (the norm of the
    mean-removed patch) of the sources and, as structure, the average of the sources'
    normalised mean-removed patches weighted by strength**p, renormalised. The map is
    the SSIM of the fused patch against it without the luminance term,
    ``(2 s_xy + C) / (s_x^2 + s_y^2 + C)``, C = (0.03 * 255)^2, statistics weighted by
    an 11x11 Gaussian of sigma 1.5.

    The per-patch sums are expanded into filtered products of the images, so each
    statistic is one box or Gaussian filter over the image: for K sources this
    costs K(K+1)/2 pairs of filters, not a Python loop over patches.
    """
    seq = np.asarray(sources, np.float64)
    y = np.asarray(fused, np.float64)
    k_count = seq.shape[0]
    n = float(_WINDOW * _WINDOW)
    kernel = _gauss_kernel()

    mu = [_box(x) for x in seq]
    strength = [np.sqrt(np.maximum(n * (_box(x * x) - m * m), 0.0)) + _STRENGTH_FLOOR for x, m in zip(seq, mu)]
    weights = [(s / _WINDOW) ** p + np.finfo(np.float64).eps for s in strength]
    total = np.sum(weights, axis=0)
    # The desired patch is sum_k a_k (x_k - mu_k), rescaled to the largest strength.
    a = [w / total / s for w, s in zip(weights, strength)]
    best_strength = np.max(strength, axis=0)
    del weights, total

    g_mean = [_gauss(x, kernel) for x in seq]
    g_y = _gauss(y, kernel)
    norm2 = np.zeros_like(best_strength)  # squared norm of the (unscaled) desired patch
    var_r = np.zeros_like(best_strength)  # its Gaussian-weighted variance
    cov_ry = np.zeros_like(best_strength)  # its Gaussian-weighted covariance with the fusion
    for i in range(k_count):
        for j in range(i, k_count):
            prod = seq[i] * seq[j]
            factor = a[i] * a[j] * (1.0 if i == j else 2.0)
            norm2 += factor * n * (_box(prod) - mu[i] * mu[j])
            var_r += factor * (_gauss(prod, kernel) - g_mean[i] * g_mean[j])
        cov_ry += a[i] * (_gauss(seq[i] * y, kernel) - g_mean[i] * g_y)
    var_y = _gauss(y * y, kernel) - g_y * g_y

    norm = np.sqrt(np.maximum(norm2, 0.0))
    scale = np.where(norm > 0, best_strength / np.where(norm > 0, norm, 1.0), 1.0)
    c = (0.03 * 255.0) ** 2
    qmap = (2.0 * scale * cov_ry + c) / (scale * scale * np.maximum(var_r, 0.0) + np.maximum(var_y, 0.0) + c)
    return float(qmap.mean()), qmap


def _halve(image: np.ndarray) -> np.ndarray:
    """2x2 mean then every other pixel, edges replicated: MATLAB's
    ``imfilter(x, ones(2)/4, 'symmetric')`` followed by ``x(1:2:end, 1:2:end)``."""
    h, w = image.shape[-2:]
    pad = [(0, 0)] * (image.ndim - 2) + [(0, h % 2), (0, w % 2)]
    x = np.pad(image, pad, mode="edge")
    return 0.25 * (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2])


def mef_ssim(
    sources: Sequence[np.ndarray] | np.ndarray,
    fused: np.ndarray,
    *,
    data_range: float | None = None,
    scales: int = 3,
    p: float = 4.0,
) -> float:
    """MEF-SSIM of an exposure fusion against its source bracket, in [-1, 1] (1 = best).

    K. Ma, K. Zeng, Z. Wang, "Perceptual Quality Assessment for Multi-Exposure Image
    Fusion", IEEE Transactions on Image Processing 24(11):3345-3356, 2015.

    Args:
        sources: the K aligned source frames, each (H, W, 3) RGB or (H, W) grey,
            display-encoded (as the camera wrote them), or one (K, H, W[, 3]) array.
        fused: the fusion, (H, W, 3) or (H, W), in the same geometry and encoding.
        data_range: the value of white (255 for uint8 and floats in [0, 255]); by
            default 255 for uint8, 65535 for uint16 and 1.0 for floats.
        scales: 3 is the paper's multi-scale index (scale weights 0.0448, 0.2856,
            0.3001, normalised; 2x2 mean downsampling between scales); 1 gives the
            single-scale index.
        p: exponent of the signal-strength weights of the desired structure (the
            paper's p = 4).

    Everything is computed on the grey (Rec.601 luma) images on a 0-255 scale with
    the paper's constants: 11x11 patches, K2 = 0.03, Gaussian window sigma 1.5.
    Differences from the authors' MATLAB code: luma is not rounded to 8 bits, and the
    exponent is the paper's fixed p (their later code derives p per patch from a
    structural-consistency measure). A scale whose score is negative counts as 0 in
    the weighted geometric mean.

    Raises:
        UsageError: fewer than one source, shapes that differ, or images too small
            for ``scales`` (the short side must be at least 11 * 2**(scales - 1)).
    """
    seq_in = list(sources)  # a (K, ...) array iterates over its frames too
    if not seq_in:
        raise UsageError("mef_ssim needs at least one source frame")
    fused = np.asarray(fused)
    seq = np.stack([_grey_255(np.asarray(s), data_range, "source") for s in seq_in])
    y = _grey_255(fused, data_range, "fused")
    if seq.shape[1:] != y.shape:
        raise UsageError(f"sources are {seq.shape[1]}x{seq.shape[2]} but the fusion is {y.shape[0]}x{y.shape[1]}")
    if scales < 1 or scales > len(_SCALE_WEIGHTS):
        raise UsageError(f"{param('scales')} must be 1..{len(_SCALE_WEIGHTS)}, got {scales}")
    if min(y.shape) < _WINDOW * 2 ** (scales - 1):
        raise UsageError(f"images of {y.shape[1]}x{y.shape[0]} are too small for {scales} scales")
    if scales == 1:
        return mef_ssim_single_scale(seq, y, p=p)[0]
    weights = _SCALE_WEIGHTS[:scales] / _SCALE_WEIGHTS[:scales].sum()
    scores = []
    for level in range(scales):
        if level:
            seq, y = _halve(seq), _halve(y)
        scores.append(mef_ssim_single_scale(seq, y, p=p)[0])
    return float(np.prod(np.maximum(scores, 0.0) ** weights))


def _as_float(a: np.ndarray, b: np.ndarray, data_range: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise UsageError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3)):
        raise UsageError(f"expected (H, W) or (H, W, 3) images, got shape {a.shape}")
    rng = _range_of(a, data_range, "image a")
    if _range_of(b, data_range, "image b") != rng:
        raise UsageError(f"images have different value ranges ({a.dtype} vs {b.dtype}); pass {param('data_range')}")
    return a.astype(np.float64), b.astype(np.float64), rng


def psnr(a: np.ndarray, b: np.ndarray, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, over all pixels and channels; inf when equal.

    ``a``, ``b``: same shape, (H, W) or (H, W, 3). ``10 log10(range^2 / MSE)``.
    """
    x, y, rng = _as_float(a, b, data_range)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0.0 else float(10.0 * np.log10(rng * rng / mse))


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float | None = None) -> float:
    """Structural similarity (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004), in [-1, 1].

    ``a``, ``b``: same shape, (H, W) or (H, W, 3), at least 11 pixels on each side.
    11x11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03, averaged over the
    windows wholly inside the image; colour images are scored per channel and
    averaged (so a colour shift lowers the score, which a luma-only SSIM would miss).
    """
    x, y, rng = _as_float(a, b, data_range)
    if min(x.shape[:2]) < _WINDOW:
        raise UsageError(f"images of {x.shape[1]}x{x.shape[0]} are smaller than the {_WINDOW}x{_WINDOW} window")
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    kernel = _gauss_kernel()
    channels = [x] if x.ndim == 2 else [x[..., c] for c in range(x.shape[2])]
    others = [y] if y.ndim == 2 else [y[..., c] for c in range(y.shape[2])]
    scores = []
    for u, v in zip(channels, others):
        u, v = np.ascontiguousarray(u), np.ascontiguousarray(v)
        mu_u, mu_v = _gauss(u, kernel), _gauss(v, kernel)
        var_u = _gauss(u * u, kernel) - mu_u * mu_u
        var_v = _gauss(v * v, kernel) - mu_v * mu_v
        cov = _gauss(u * v, kernel) - mu_u * mu_v
        smap = ((2 * mu_u * mu_v + c1) * (2 * cov + c2)) / ((mu_u**2 + mu_v**2 + c1) * (var_u + var_v + c2))
        scores.append(float(smap.mean()))
    return float(np.mean(scores))
