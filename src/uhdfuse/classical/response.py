"""Camera response recovery: which linear light each 8-bit code value stands for.

Debevec & Malik (1997) is solved here as a small least-squares problem over
well-chosen pixels; Robertson et al. (2003) comes from OpenCV. Either curve
is then made fit for decoding: finite, monotonic, its channels balanced, and
scaled so that code 255 (the clipping code) decodes to 1.0, the clipping
level every linear image in uhdfuse is scaled to.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..errors import InconsistentBracket, UsageError

METHODS: tuple[str, ...] = ("debevec", "robertson")
# Codes whose channels must decode to the same value (a neutral grey stays
# neutral). Mid-tones: where both solvers are best determined.
_BALANCE_CODES = slice(64, 193)
# Above this code the per-channel remainder that pins code 255 to exactly 1.0
# is eased in, so the balanced mid-tones are left alone.
_PIN_START = 192


def calibrate_response(
    encoded: Sequence[np.ndarray],
    exposure_times: Sequence[float],
    *,
    method: str = "debevec",
    samples: int = 70,
    smoothness: float = 10.0,
) -> np.ndarray:
    """Recover the inverse camera response of an 8-bit bracket.

    ``encoded``: the frames, uint8 (H, W, 3), same size, aligned, static
    scene. ``exposure_times``: seconds (or anything proportional), one per
    frame. ``samples`` and ``smoothness`` are Debevec's pixel count and
    curvature penalty (Robertson ignores them). Returns a (256, 3) float32
    lookup table code -> linear light: finite, non-decreasing, lut[255] == 1.0
    in every channel, and equal codes in the mid-tones decode to (nearly)
    equal values in all channels.
    """
    if method not in METHODS:
        raise UsageError(f"unknown response calibration method {method!r}; choose one of {', '.join(METHODS)}")
    frames = _check_frames(encoded, exposure_times)
    if method == "debevec":
        if samples < 2:
            raise UsageError(f"Debevec calibration needs at least 2 samples, got {samples}")
        stack = np.stack(frames)  # (N, H, W, 3) uint8
        log_times = np.log(np.asarray(exposure_times, dtype=np.float64))
        curve = np.stack(
            [np.exp(_solve_debevec(stack[..., c], log_times, samples, smoothness)) for c in range(3)], axis=1
        )
    else:
        solver = cv2.createCalibrateRobertson()
        times = np.asarray(exposure_times, dtype=np.float32)
        curve = np.asarray(solver.process(frames, times), dtype=np.float64).reshape(256, 3)
    return _tidy_curve(curve)


def _hat(codes: np.ndarray) -> np.ndarray:
    """Debevec's trust in a code value: 0 at both ends (clipped, black), 127 in the middle."""
    codes = codes.astype(np.float64)
    return np.minimum(codes, 255.0 - codes)


def _pick_samples(channel: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of up to ``count`` pixels to calibrate one channel with.

    ``channel``: (N, H, W) uint8, frames ordered by exposure time. Pixels
    whose code falls while the exposure grows (misregistration, motion,
    marker colours) are left out. The rest are ranked by their mean code over
    the bracket, which grows with scene radiance whatever the response is,
    and the samples are spread evenly over that range so that every part of
    the curve gets data, not just the most common tones.
    """
    flat = channel.reshape(channel.shape[0], -1).astype(np.int16)
    consistent = np.all(np.diff(flat, axis=0) >= -2, axis=0)
    candidates = np.flatnonzero(consistent)
    if candidates.size < count:
        candidates = np.arange(flat.shape[1])
    brightness = flat[:, candidates].mean(axis=0)
    order = np.argsort(brightness, kind="stable")
    targets = np.linspace(brightness[order[0]], brightness[order[-1]], count)
    positions = np.clip(np.searchsorted(brightness[order], targets), 0, order.size - 1)
    return candidates[order[np.unique(positions)]]


def _solve_debevec(channel: np.ndarray, log_times: np.ndarray, samples: int, smoothness: float) -> np.ndarray:
    """Log inverse response g(code) of one channel, (256,), with g(128) = 0.

    Least squares over g and the samples' log radiances: hat-weighted
    g(Z_ij) - ln E_i - ln t_j = 0, plus smoothness * hat(z) * g''(z) = 0.
    ``channel``: (N, H, W) uint8; ``log_times``: (N,) natural logs.
    """
    order = np.argsort(log_times, kind="stable")
    channel, log_times = channel[order], log_times[order]
    picked = _pick_samples(channel, samples)
    codes = channel.reshape(channel.shape[0], -1)[:, picked].T  # (P, N)
    pixels, frames = codes.shape

    rows = pixels * frames + 1 + 254
    system = np.zeros((rows, 256 + pixels))
    target = np.zeros(rows)
    weight = _hat(codes).ravel()
    data = np.arange(pixels * frames)
    system[data, codes.ravel()] = weight
    system[data, 256 + np.repeat(np.arange(pixels), frames)] = -weight
    target[data] = weight * np.tile(log_times, pixels)
    system[pixels * frames, 128] = 1.0  # fixes the curve's free offset
    inner = np.arange(1, 255)
    curvature = pixels * frames + 1 + np.arange(254)
    scale = smoothness * _hat(inner)
    system[curvature, inner - 1] = scale
    system[curvature, inner] = -2.0 * scale
    system[curvature, inner + 1] = scale
    solution = np.linalg.lstsq(system, target, rcond=None)[0]
    return solution[:256]


def _check_frames(encoded: Sequence[np.ndarray], exposure_times: Sequence[float]) -> list[np.ndarray]:
    frames = [np.ascontiguousarray(e) for e in encoded]
    if len(frames) < 2:
        raise InconsistentBracket(f"response calibration needs at least 2 frames, got {len(frames)}")
    if len(exposure_times) != len(frames):
        raise InconsistentBracket(f"{len(frames)} frames but {len(exposure_times)} exposure times")
    for f in frames:
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise InconsistentBracket(f"response calibration needs uint8 (H, W, 3) frames, got {f.dtype} {f.shape}")
        if f.shape != frames[0].shape:
            raise InconsistentBracket(f"frame sizes differ: {f.shape} vs {frames[0].shape}")
    times = np.asarray(exposure_times, dtype=np.float64)
    if not np.all(np.isfinite(times)) or np.any(times <= 0):
        raise InconsistentBracket(f"exposure times must be positive, got {list(exposure_times)}")
    if len(np.unique(times)) < 2:
        raise InconsistentBracket("response calibration needs at least 2 different exposure times")
    return frames


def _tidy_curve(curve: np.ndarray) -> np.ndarray:
    """(256, 3) raw solver output -> (256, 3) float32 decoding LUT (see calibrate_response)."""
    codes = np.arange(256, dtype=np.float64)
    log_curve = np.empty_like(curve)
    for c in range(3):
        values = curve[:, c]
        known = np.isfinite(values) & (values > 0)
        if known.sum() < 2:
            # Nothing to go on (e.g. a channel that never varies): fall back to linear.
            log_curve[:, c] = np.log(np.maximum(codes, 0.5) / 255.0)
            continue
        # Codes the frames never showed (Robertson leaves them NaN): interpolate
        # between neighbours, hold the ends (np.interp's behaviour).
        log_curve[:, c] = np.interp(codes, codes[known], np.log(values[known]))
    # A response cannot fall: raise the dips the solver left where data were thin.
    log_curve = np.maximum.accumulate(log_curve, axis=0)
    # Code 255 is the clipping code: no radiance measurement (every brighter
    # light lands there too; Robertson averages those in and overshoots), so
    # define it as the continuation of the curve below.
    log_curve[255] = 2.0 * log_curve[254] - log_curve[253]

    # Each channel is solved up to its own scale. Align them in the mid-tones
    # (neutral greys stay neutral), set the common scale so code 255 averages
    # to 1.0, then ease each channel's small remainder in over the highlights
    # so that code 255 is exactly the clipping level 1.0 in every channel.
    log_curve -= log_curve[_BALANCE_CODES].mean(axis=0)
    log_curve -= log_curve[255].mean()
    ramp = np.clip((codes - _PIN_START) / (255.0 - _PIN_START), 0.0, 1.0)
    ramp = ramp * ramp * (3.0 - 2.0 * ramp)  # smoothstep
    log_curve -= ramp[:, None] * log_curve[255][None, :]

    # The easing can leave a highlight code above 1.0; a running minimum from
    # the top clamps it while keeping the curve non-decreasing and lut[255] = 1.
    lut = np.minimum.accumulate(np.exp(log_curve)[::-1], axis=0)[::-1]
    return lut.astype(np.float32)


def apply_lut(encoded: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Decode integer code values to linear light through a per-channel LUT.

    ``encoded``: (..., 3) uint8 or uint16. ``lut``: (L, 3), L entries spread
    evenly over the input's code range (L = 256 for an 8-bit curve). uint8
    with a 256-entry LUT is looked up directly; any other pairing (uint16
    with a 256-entry LUT) is interpolated linearly between entries.
    Returns float32 of ``encoded``'s shape.
    """
    encoded = np.asarray(encoded)
    lut = np.asarray(lut, dtype=np.float32)
    if lut.ndim != 2 or lut.shape[1] != 3 or lut.shape[0] < 2:
        raise ValueError(f"LUT must be shaped (L, 3) with L >= 2, got {lut.shape}")
    if encoded.shape[-1:] != (3,):
        raise ValueError(f"encoded image must end in 3 channels, got {encoded.shape}")
    if encoded.dtype == np.uint8:
        top = 255
    elif encoded.dtype == np.uint16:
        top = 65535
    else:
        raise ValueError(f"apply_lut decodes uint8 or uint16 codes, got {encoded.dtype}")

    out = np.empty(encoded.shape, dtype=np.float32)
    if lut.shape[0] == top + 1:
        for c in range(3):
            out[..., c] = lut[encoded[..., c], c]
        return out
    positions = np.linspace(0.0, top, lut.shape[0], dtype=np.float64)
    for c in range(3):
        out[..., c] = np.interp(encoded[..., c], positions, lut[:, c])
    return out
