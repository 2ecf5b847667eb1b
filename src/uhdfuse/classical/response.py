"""Camera response recovery: which linear light each 8-bit code value stands for.

Two estimators share one set of sample pixels (flat ones, spread over every
frame's codes, clipped and noise-floor samples rejected):

- Debevec & Malik (1997), a small least-squares problem in log space with a
  curvature penalty;
- Robertson, Borman & Stevenson (2003), which alternates each sample's
  irradiance and each code's mean exposure until they agree. Our version
  adds the same kind of curvature penalty to the per-code step: without
  it, widely spaced frames leave the curve ill-determined (OpenCV's
  CalibrateRobertson, which has none, wiggles and is up to 50% off).

On the example JPEG brackets (480x320, 3 frames 2 EV apart or 5 frames 1 EV
apart, sRGB camera curve) codes 32-240 come out within about 1.5-3% of the
truth with Debevec and 2-6% with Robertson. Either curve is then made fit
for decoding by the same steps: codes without data interpolated, the top
codes continued from the well-measured upper tones, monotonic, channels
balanced, and scaled so that code 255 (the clipping code) decodes to 1.0,
the clipping level every linear image in uhdfuse is scaled to.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..config import Response
from ..errors import InconsistentBracket, UsageError, param

METHODS: tuple[Response, ...] = (Response.DEBEVEC, Response.ROBERTSON)  # the calibrated responses
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
# Sampling: each frame's codes are split into this many bins, and
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
# Robertson's alternation stops once no code's log value moves by more than
# this in one round (or after the cap; it takes 10-20 rounds).
_ROBERTSON_TOLERANCE = 1e-5
_ROBERTSON_MAX_ITERATIONS = 200
# Robertson's curvature penalty, relative to the square root of the mean
# number of samples per code (each code's data term weighs its sample count).
_ROBERTSON_SMOOTHNESS = 5.0


def calibrate_response(
    encoded: Sequence[np.ndarray],
    exposure_times: Sequence[float],
    *,
    method: str = Response.DEBEVEC,
    samples: int = 1000,
    smoothness: float = 30.0,
) -> np.ndarray:
    """Recover the inverse camera response of an 8-bit bracket.

    ``encoded``: the frames, uint8 (H, W, 3), same size, aligned, static
    scene. ``exposure_times``: seconds (or anything proportional), one per
    frame. ``samples``: about how many pixels are sampled per channel (both
    methods). ``smoothness``: Debevec's curvature penalty, as in Debevec &
    Malik for 70 pixels (Robertson's is fixed). Returns a (256, 3) float32
    lookup table code -> linear light: finite, non-decreasing, lut[255] ==
    1.0 in every channel, and equal codes in the mid-tones decode to
    (nearly) equal values in all channels.
    """
    if method not in METHODS:
        choices = ", ".join(m.value for m in METHODS)
        raise UsageError(f"unknown response calibration {param('method')} {method!r}; choose one of {choices}")
    frames = _check_frames(encoded, exposure_times)
    if samples < 2:
        raise UsageError(f"response calibration needs at least 2 {param('samples')}, got {samples}")
    stack = np.stack(frames)  # (N, H, W, 3) uint8
    times = np.asarray(exposure_times, dtype=np.float64)
    if method == Response.DEBEVEC:
        curve = np.stack([np.exp(_solve_debevec(stack[..., c], times, samples, smoothness)) for c in range(3)], axis=1)
    else:
        curve = np.stack([np.exp(_solve_robertson(stack[..., c], times, samples)) for c in range(3)], axis=1)
    return _tidy_curve(curve)


def _hat(codes: np.ndarray) -> np.ndarray:
    """Debevec's trust in a code value: 0 at both ends (clipped, black), 127 in the middle."""
    codes = codes.astype(np.float64)
    return np.minimum(codes, 255.0 - codes)


def _certainty(codes: np.ndarray) -> np.ndarray:
    """Robertson's Gaussian-like trust in a code value: 1 in the middle, exp(-4) at both ends."""
    return np.exp(-4.0 * ((codes - 127.5) / 127.5) ** 2)


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


def _calibration_samples(channel: np.ndarray, times: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample pixels of one channel for a response solver, with their trust.

    ``channel``: (N, H, W) uint8; ``times``: (N,) exposure times. Returns
    ``codes`` (P, N) int64 and ``weights`` (P, N) squared hat weights (0 for
    clipped or noise-floor samples, see _sample_weights), frames in the order
    of ``times`` sorted (stable). Pixels with no usable frame are dropped.
    """
    order = np.argsort(times, kind="stable")
    channel = channel[order]
    picked = _pick_samples(channel, count)
    codes = channel.reshape(channel.shape[0], -1)[:, picked].T.astype(np.int64)
    weights = _sample_weights(codes)
    useful = weights.sum(axis=1) > 0
    return codes[useful], weights[useful]


def _solve_debevec(channel: np.ndarray, times: np.ndarray, samples: int, smoothness: float) -> np.ndarray:
    """Log inverse response g(code) of one channel, (256,), with g(128) = 0.

    Debevec & Malik's least squares: weighted g(Z_ij) - ln E_i - ln t_j = 0
    for sample pixel i in frame j, plus smoothness * hat(z) * g''(z) = 0.
    Each ln E_i is eliminated in closed form (it is the weighted mean of
    g(Z_ij) - ln t_j), which leaves, for every pair of frames j < k of a pixel,
    g(Z_ij) - g(Z_ik) = ln t_j - ln t_k with weight w_ij w_ik / sum_j w_ij
    (w: squared hat). So the normal equations are 256 x 256 whatever the
    number of samples. ``channel``: (N, H, W) uint8; ``times``: (N,).
    """
    codes, weights = _calibration_samples(channel, times, samples)
    log_times = np.log(np.sort(times, kind="stable"))
    total = weights.sum(axis=1, keepdims=True)

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

    normal += _curvature_normal(smoothness * np.sqrt(max(codes.shape[0], 1) / _SMOOTHNESS_PIXELS))
    normal[128, 128] += 1.0  # fixes the curve's free offset: g(128) = 0
    return np.linalg.solve(normal, rhs)


def _solve_robertson(channel: np.ndarray, times: np.ndarray, samples: int) -> np.ndarray:
    """Log inverse response g(code) = ln I(code) of one channel, (256,), with g(128) = 0.

    Robertson, Borman & Stevenson (2003) alternate two estimates until they
    agree: each sample pixel's irradiance, E_i = sum_j w_ij t_j I(Z_ij) /
    sum_j w_ij t_j^2 (w: the paper's Gaussian certainty of a code, 0 where
    _sample_weights rejects the sample), and each code's inverse response,
    I(m) = mean of E_i t_j over the usable samples (i, j) showing m.
    Alone, that second step ties a code only to the codes the same pixels
    show in the other frames, a factor t_k / t_j away: with frames 1-2 EV
    apart the codes fall into chains coupled only through noise, and each
    chain floats to its own scale (the periodic wiggle of OpenCV's curve;
    on noiseless frames the fixed point is not even unique). So the step
    fits ln I to the log means, weighted by how many samples show each code,
    under Debevec's hat-weighted curvature penalty (see _curvature_normal).
    Codes no sample shows come out of that fit too, interpolated smoothly.
    ``channel``: (N, H, W) uint8; ``times``: (N,).
    """
    codes, hat_weights = _calibration_samples(channel, times, samples)
    # A pixel usable in one frame only would just vote for the current curve.
    seen_twice = np.count_nonzero(hat_weights, axis=1) >= 2
    codes, hat_weights = codes[seen_twice], hat_weights[seen_twice]
    times = np.sort(times, kind="stable")
    usable = hat_weights > 0
    weights = np.where(usable, _certainty(codes), 0.0)
    # Codes above _TOP_FIT are replaced later anyway, and their votes are the
    # most biased (pixels clipped in the longest frame, which no longer
    # frame can expose): the smoothing would carry that bias down.
    usable &= codes < _TOP_FIT.stop
    voters = codes[usable]
    if voters.size == 0:
        return np.full(256, np.nan)  # nothing to go on: _tidy_curve falls back to linear
    votes = np.bincount(voters, minlength=256).astype(np.float64)
    normal = np.diag(votes) + _curvature_normal(_ROBERTSON_SMOOTHNESS * np.sqrt(votes.mean()))
    normal[128, 128] += 1.0  # removes the free offset; g(128) = 0 is set after each solve
    # The system is the same every round: invert it once (pinv: data on too
    # few codes can leave it singular).
    smoother = np.linalg.pinv(normal)
    exposure_norm = (weights * times**2).sum(axis=1)
    log_inverse = np.log(np.maximum(np.arange(256.0), 0.5) / 128.0)  # start from a linear response
    for _ in range(_ROBERTSON_MAX_ITERATIONS):
        radiance = (weights * times * np.exp(log_inverse)[codes]).sum(axis=1) / exposure_norm
        exposure_sums = np.bincount(voters, weights=(radiance[:, None] * times)[usable], minlength=256)
        log_means = np.log(np.where(votes > 0, exposure_sums / np.maximum(votes, 1.0), 1.0))
        updated = smoother @ (votes * log_means)
        updated -= updated[128]
        change = np.max(np.abs(updated - log_inverse))
        log_inverse = updated
        if change < _ROBERTSON_TOLERANCE:
            break
    return log_inverse


def _curvature_normal(scale: float) -> np.ndarray:
    """(256, 256) normal-equation term of the penalty sum_z (scale * hat(z) * g''(z))^2 over codes 1-254."""
    inner = np.arange(1, 255)
    weight = scale * _hat(inner)
    curvature = np.zeros((254, 256))
    curvature[inner - 1, inner - 1] = weight
    curvature[inner - 1, inner] = -2.0 * weight
    curvature[inner - 1, inner + 1] = weight
    return curvature.T @ curvature


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
    """(256, 3) raw solver output (linear, NaN where unknown) -> (256, 3) float32 decoding LUT (see calibrate_response)."""
    codes = np.arange(256, dtype=np.float64)
    log_curve = np.empty_like(curve)
    for c in range(3):
        values = curve[:, c]
        known = np.isfinite(values) & (values > 0)
        if known.sum() < 2:
            # Nothing to go on (e.g. a channel that never varies): fall back to linear.
            log_curve[:, c] = np.log(np.maximum(codes, 0.5) / 255.0)
            continue
        # Codes with no value (a solver that had no data there): interpolate
        # between neighbours, hold the ends (np.interp's behaviour).
        log_curve[:, c] = np.interp(codes, codes[known], np.log(values[known]))
    # Code 255 is the clipping code: no radiance measurement (every brighter
    # light lands there too, so an average of its pixels overshoots), so
    # it is defined by continuing the curve below, and the whole curve's scale
    # hangs on it. The last few codes below it are barely better (see
    # _TOP_FIT): continue the well-measured upper tones smoothly instead.
    top = codes[_TOP_FIT]
    for c in range(3):
        fit = np.polyfit(top, log_curve[_TOP_FIT, c], 2)
        log_curve[_TOP_FIT.stop :, c] = np.polyval(fit, codes[_TOP_FIT.stop :])
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
