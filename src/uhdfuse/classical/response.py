"""Camera response recovery: which linear light each 8-bit code value stands for.

Debevec & Malik (1997) is solved here as a small least-squares problem over
well-chosen pixels (flat ones, spread over every frame's codes); Robertson et
al. (2003) comes from OpenCV and is the rougher of the two (on the example
JPEG bracket, 3 frames 2 EV apart, up to 40% off the true sRGB curve where
Debevec stays within 2%). Either curve
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
# Codes from _TOP_FIT.stop up are the least trustworthy: little solver
# weight, and near clipping the data are biased (JPEG turns clipped areas into
# 248-254; noise near the clip only shows its downward half). They are
# replaced by the quadratic (in log) continuation of the codes in _TOP_FIT,
# which also defines code 255, the clipping code the whole curve is scaled by.
_TOP_FIT = slice(192, 240)
# Debevec sampling: each frame's codes are split into this many bins, and
# every bin gets its share of sample pixels, so the whole curve has data.
_CODE_BINS = 64
# Pixels whose 3x3 neighbourhood spans more codes than this (or than the
# image's median span, if larger) in any frame are not sampled: on edges JPEG
# ringing, chroma subsampling and misregistration give codes no single
# radiance explains.
_ROUGHNESS_FLOOR = 16
# Debevec's smoothness is meant for about this many sample pixels; the
# curvature penalty is scaled with the real count so more data is not rougher.
_SMOOTHNESS_PIXELS = 70


def calibrate_response(
    encoded: Sequence[np.ndarray],
    exposure_times: Sequence[float],
    *,
    method: str = "debevec",
    samples: int = 1000,
    smoothness: float = 30.0,
) -> np.ndarray:
    """Recover the inverse camera response of an 8-bit bracket.

    ``encoded``: the frames, uint8 (H, W, 3), same size, aligned, static
    scene. ``exposure_times``: seconds (or anything proportional), one per
    frame. ``samples`` (about how many pixels Debevec samples per channel)
    and ``smoothness`` (its curvature penalty, as in Debevec & Malik for 70
    pixels) are ignored by Robertson. Returns a (256, 3) float32 lookup table
    code -> linear light: finite, non-decreasing, lut[255] == 1.0 in every
    channel, and equal codes in the mid-tones decode to (nearly) equal values
    in all channels.
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
    return _tidy_curve(curve, fit_top=method == "debevec")


def _hat(codes: np.ndarray) -> np.ndarray:
    """Debevec's trust in a code value: 0 at both ends (clipped, black), 127 in the middle."""
    codes = codes.astype(np.float64)
    return np.minimum(codes, 255.0 - codes)


def _pick_samples(channel: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of about ``count`` pixels to calibrate one channel with.

    ``channel``: (N, H, W) uint8, frames ordered by exposure time. Pixels
    whose code falls while the exposure grows (misregistration, motion) or
    that sit on an edge in any frame (see _ROUGHNESS_FLOOR) are left out.
    Then every frame's unclipped codes are split into _CODE_BINS bins and
    each bin takes its share of the flattest remaining pixels showing such a
    code in that frame: every part of the curve gets data from every frame,
    not just the most common tones (nor the rare, usually broken, pixels
    at the extremes of the bracket's brightness).
    """
    frames = channel.shape[0]
    flat = channel.reshape(frames, -1)
    kernel = np.ones((3, 3), np.uint8)
    roughness = np.max([cv2.dilate(f, kernel) - cv2.erode(f, kernel) for f in channel], axis=0).ravel()
    limit = max(_ROUGHNESS_FLOOR, float(np.median(roughness)))
    rising = np.all(np.diff(flat.astype(np.int16), axis=0) >= -2, axis=0)
    candidates = np.flatnonzero(rising & (roughness <= limit))
    if candidates.size < count:  # a tiny or busy image: better rough data than none
        candidates = np.flatnonzero(rising) if np.count_nonzero(rising) >= count else np.arange(flat.shape[1])
    # Among equally flat pixels, a fixed shuffle spreads the picks over the image.
    shuffle = np.random.default_rng(0).permutation(flat.shape[1])
    per_bin = max(1, round(count / (frames * _CODE_BINS)))
    picked = []
    for codes in flat:
        usable = candidates[(codes[candidates] > 0) & (codes[candidates] < 255)]
        bins = codes[usable].astype(np.int64) * _CODE_BINS // 256
        order = np.lexsort((shuffle[usable], roughness[usable], bins))
        sorted_bins = bins[order]
        rank = np.arange(order.size) - np.searchsorted(sorted_bins, sorted_bins)
        picked.append(usable[order[rank < per_bin]])
    return np.unique(np.concatenate(picked))


def _sample_weights(codes: np.ndarray) -> np.ndarray:
    """(P, N) int codes of sample pixels, frames by exposure time -> (P, N) squared hat weights.

    A bright code that a longer exposure of the same pixel does not clearly
    exceed was clipped (JPEG turns clipping into 248-254, and some cameras
    clip below 255), and a dark code that a shorter exposure reaches was on
    the noise floor: either says nothing about the response, so its weight is 0.
    """
    weights = _hat(codes) ** 2
    brightest_before = np.maximum.accumulate(codes, axis=1)
    dimmest_after = np.minimum.accumulate(codes[:, ::-1], axis=1)[:, ::-1]
    clipped = (codes >= 128) & (np.concatenate([dimmest_after[:, 1:], np.full_like(codes[:, :1], 999)], axis=1)
                                <= codes + 2)
    floored = (codes < 128) & (np.concatenate([np.full_like(codes[:, :1], -999), brightest_before[:, :-1]], axis=1)
                               >= codes - 2)
    weights[clipped | floored] = 0.0
    return weights


def _solve_debevec(channel: np.ndarray, log_times: np.ndarray, samples: int, smoothness: float) -> np.ndarray:
    """Log inverse response g(code) of one channel, (256,), with g(128) = 0.

    Debevec & Malik's least squares: weighted g(Z_ij) - ln E_i - ln t_j = 0
    for sample pixel i in frame j, plus smoothness * hat(z) * g''(z) = 0.
    Each ln E_i is eliminated in closed form (it is the weighted mean of
    g(Z_ij) - ln t_j), which leaves, for every pair of frames j < k of a pixel,
    g(Z_ij) - g(Z_ik) = ln t_j - ln t_k with weight w_ij w_ik / sum_j w_ij
    (w: squared hat). So the normal equations are 256 x 256 whatever the
    number of samples. ``channel``: (N, H, W) uint8; ``log_times``: (N,).
    """
    order = np.argsort(log_times, kind="stable")
    channel, log_times = channel[order], log_times[order]
    picked = _pick_samples(channel, samples)
    codes = channel.reshape(channel.shape[0], -1)[:, picked].T.astype(np.int64)  # (P, N)
    weights = _sample_weights(codes)
    total = weights.sum(axis=1, keepdims=True)
    useful = total[:, 0] > 0
    codes, weights, total = codes[useful], weights[useful], total[useful]

    first, second = np.triu_indices(codes.shape[1], 1)
    z1, z2 = codes[:, first].ravel(), codes[:, second].ravel()
    pair_weight = (weights[:, first] * weights[:, second] / total).ravel()
    step = np.broadcast_to(log_times[first] - log_times[second], (codes.shape[0], first.size)).ravel()
    normal = np.zeros((256, 256))
    rhs = np.zeros(256)
    np.add.at(normal, (z1, z1), pair_weight)
    np.add.at(normal, (z2, z2), pair_weight)
    np.add.at(normal, (z1, z2), -pair_weight)
    np.add.at(normal, (z2, z1), -pair_weight)
    np.add.at(rhs, z1, pair_weight * step)
    np.add.at(rhs, z2, -pair_weight * step)

    inner = np.arange(1, 255)
    scale = smoothness * np.sqrt(max(codes.shape[0], 1) / _SMOOTHNESS_PIXELS) * _hat(inner)
    curvature = np.zeros((254, 256))
    curvature[inner - 1, inner - 1] = scale
    curvature[inner - 1, inner] = -2.0 * scale
    curvature[inner - 1, inner + 1] = scale
    normal += curvature.T @ curvature
    normal[128, 128] += 1.0  # fixes the curve's free offset: g(128) = 0
    return np.linalg.solve(normal, rhs)


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


def _tidy_curve(curve: np.ndarray, *, fit_top: bool) -> np.ndarray:
    """(256, 3) raw solver output -> (256, 3) float32 decoding LUT (see calibrate_response).

    ``fit_top``: replace codes from _TOP_FIT.stop up by a fit (Debevec), else
    only extrapolate code 255 from 253-254 (Robertson).
    """
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
    # Code 255 is the clipping code: no radiance measurement (every brighter
    # light lands there too; Robertson averages those in and overshoots), so
    # it is defined by continuing the curve below, and the whole curve's scale
    # hangs on it. Debevec's last few codes are barely better (see _TOP_FIT):
    # continue its well-measured upper tones smoothly instead. Robertson's
    # curve (OpenCV) wiggles by up to +-20% over tens of codes with widely
    # spaced frames, so a fit over _TOP_FIT would extrapolate a wiggle; its
    # top codes average many pixels, so continue from codes 253-254.
    if fit_top:
        top = codes[_TOP_FIT]
        for c in range(3):
            fit = np.polyfit(top, log_curve[_TOP_FIT, c], 2)
            log_curve[_TOP_FIT.stop :, c] = np.polyval(fit, codes[_TOP_FIT.stop :])
    else:
        log_curve[255] = 2.0 * log_curve[254] - log_curve[253]
    # A response cannot fall: raise the dips the solver left where data were
    # thin (and a continuation that bent over).
    log_curve = np.maximum.accumulate(log_curve, axis=0)

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
