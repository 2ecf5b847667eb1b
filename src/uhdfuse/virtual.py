"""One capture made into a bracket: virtual exposures of its linear sensor data.

A RAW file holds 12-14 stops of the scene linearly: shadows a landscape exposed for
its sky left too dark to see are in the file, only dim. Frame k of a virtual bracket
is that linear signal scaled by ``2**ev[k]`` and clipped at white, as a real
exposure would clip, so the frames are exactly consistent with one another (no
motion, no misregistration) and the usual fusion turns them into one image.

Two things a real bracket has that one capture has not, and how they are treated:

* **Highlights that clipped in the capture stay clipped.** A darker virtual frame
  keeps such a pixel at its captured value instead of dimming it to a grey a real
  darker exposure would have resolved into detail; pixels approaching clipping
  (``SHOULDER`` to ``CLIP_LEVEL``) go over to that smoothly, so no edge is drawn
  around a blown sky.
* **Pushed shadows carry the capture's noise, amplified.** The sensor's noise is
  measured from the capture itself (:func:`estimate_noise`, a signal-dependent
  Poisson-Gaussian model); automatic EVs never lift what lies below the noise floor
  to mid-tone, and brighter virtual frames are made from a copy denoised in proportion
  to that noise (:func:`denoise`: an edge-preserving filter in a variance-stabilised
  domain), so the fusion does not take noise up from the shadows with their detail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .colour import luma
from .config import Response, check_virtual_evs
from .errors import InconsistentBracket, Message, param
from .exposure import check_size, reference_index
from .types import Bracket, ExposureInfo, Frame

# A capture pixel whose brightest channel reaches CLIP_LEVEL (1.0 = the sensor's white
# level) is clipped; from SHOULDER on, darker virtual frames keep more of its value.
CLIP_LEVEL = 0.99
SHOULDER = 0.8
MIDDLE_GREY = 0.18  # linear level automatic EVs lift the shadows to
HIGHLIGHT_TARGET = 0.36  # ... and bring the brightest unclipped highlights down to
# A camera's bracket steps by 1-3 EV; fusion blends 2 EV steps without visible seams.
MAX_STEP_EV = 2.0
MAX_LIFT_EV = 6.0  # beyond this the capture's quantisation shows, whatever its noise
MAX_LOWER_EV = 4.0
MIN_SNR = 5.0  # what automatic EVs bring to mid-tone stands at least this far above its noise
EV_ROUNDING = 0.5  # automatic EVs are multiples of half a stop
# The edge-preserving filter's range, in units of the local noise: wide enough to
# average noise away, narrow enough to stop at edges that stand above it.
DENOISE_RANGE_SIGMAS = 2.0
DENOISE_DIAMETER = 5
_CLEAN_SIGMA = 1e-6  # the least read noise assumed: a noiseless capture is left as it is
_NOISE_ROWS = 384  # rows of the full-resolution frame the noise is measured on
_NOISE_RUN = 16  # pixels of a row over which one variance is taken
_NOISE_BINS = 16
_NOISE_MIN_RUNS = 16
_NOISE_TOP = 0.3  # levels above this are left out of the fit: they are lifted little, and texture rules them
_NOISE_QUANTILE = 0.1
# The 0.1 quantile of a run's variance (the lesser of two directions), in units of the noise variance, for noise
# alone (measured on white Gaussian noise through the same second difference).
_NOISE_QUANTILE_OF_NOISE = 0.441


@dataclass(frozen=True)
class NoiseModel:
    """Signal-dependent sensor noise of one channel: variance = shot * level + read.

    Levels in the frame's linear units (1.0 = white). ``shot`` is the Poisson part
    (1 / electrons at white), ``read`` the variance at black.
    """

    shot: float
    read: float

    def sigma(self, level: np.ndarray | float) -> np.ndarray | float:
        """Standard deviation of the noise at linear ``level``."""
        return np.sqrt(np.maximum(self.shot * np.asarray(level) + self.read, 0.0))

    def floor(self, snr: float) -> float:
        """The level whose signal-to-noise ratio is ``snr``: level / sigma(level) = snr."""
        k2 = snr * snr
        return float((k2 * self.shot + math.sqrt((k2 * self.shot) ** 2 + 4.0 * k2 * self.read)) / 2.0)


def estimate_noise(image: np.ndarray) -> tuple[NoiseModel, NoiseModel, NoiseModel]:
    """The noise of each channel of a linear capture, measured from its pixels.

    ``image``: (H, W, 3) float32 linear, full resolution (downscaling averages noise
    away). The noise is read from second differences at a distance of two pixels (a
    demosaiced frame's neighbours share samples), along and across evenly spaced rows,
    as their variance over runs of ``_NOISE_RUN`` pixels, the lesser direction of each
    run. Texture only adds to a run's variance, so in each bin of level a low quantile of the runs' variances is the
    noise (scaled by what that quantile is for noise alone); a line variance = shot *
    level + read is fitted to the bins up to ``_NOISE_TOP``, where the shadows that
    virtual exposures lift lie, with each bin's relative error weighed alike.
    """
    height = image.shape[0]
    centre = np.arange(2, height - 2, max(1, (height - 4) // _NOISE_ROWS))
    width = (image.shape[1] - 4) // _NOISE_RUN * _NOISE_RUN
    models = []
    for c in range(3):
        x = image[centre, :, c]
        across = (image[centre - 2, 2 : 2 + width, c] - 2.0 * x[:, 2 : 2 + width] + image[centre + 2, 2 : 2 + width, c])
        along = x[:, 4 : 4 + width] - 2.0 * x[:, 2 : 2 + width] + x[:, :width]
        # the lesser of the two directions: an edge or a stripe raises one of them only
        variance = np.minimum(_run_variance(along), _run_variance(across)) * np.float32(1.0 / 6.0)
        level = x[:, 2 : 2 + width].reshape(len(x), -1, _NOISE_RUN).mean(axis=2).ravel()
        ok = (level > 0.0) & (level < _NOISE_TOP)
        models.append(_fit_noise(level[ok], variance[ok]))
    return models[0], models[1], models[2]


def _run_variance(diff: np.ndarray) -> np.ndarray:
    """Mean square of ``diff`` (rows, n * _NOISE_RUN) over each run of _NOISE_RUN pixels, flattened."""
    return (diff * diff).reshape(len(diff), -1, _NOISE_RUN).mean(axis=2).ravel()


def _fit_noise(level: np.ndarray, variance: np.ndarray) -> NoiseModel:
    """A :class:`NoiseModel` fitted to runs of mean ``level`` and variance ``variance`` (1-D)."""
    if level.size < 2 * _NOISE_MIN_RUNS:
        return NoiseModel(0.0, float(np.quantile(variance, _NOISE_QUANTILE) / _NOISE_QUANTILE_OF_NOISE) if level.size else 0.0)
    edges = np.unique(np.quantile(level, np.linspace(0.0, 1.0, _NOISE_BINS + 1)))
    which = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    means, noise = [], []
    for b in range(len(edges) - 1):
        sel = which == b
        if sel.sum() >= _NOISE_MIN_RUNS:
            means.append(float(level[sel].mean()))
            noise.append(float(np.quantile(variance[sel], _NOISE_QUANTILE)) / _NOISE_QUANTILE_OF_NOISE)
    if len(means) < 2:
        return NoiseModel(0.0, noise[0] if noise else 0.0)
    target = np.asarray(noise)
    weight = 1.0 / np.maximum(target, 1e-20)  # relative errors: the darkest bins count as much as the brightest
    design = np.stack([means, np.ones(len(means))], axis=1) * weight[:, None]
    shot, read = np.linalg.lstsq(design, target * weight, rcond=None)[0]
    if shot < 0:  # noise falling with level is not a sensor's: keep the mean
        return NoiseModel(0.0, float(target.mean()))
    return NoiseModel(float(shot), float(max(read, 0.0)))


def auto_evs(image: np.ndarray, noise: Sequence[NoiseModel], *, clipped_at: float | None = CLIP_LEVEL) -> tuple[float, ...]:
    """EVs (relative to the capture) of a virtual bracket that shows ``image``'s whole range.

    Lifts the shadows (the median of the darkest quarter of the luma) to middle grey,
    but never further than brings the noise floor (the level with SNR ``MIN_SNR``)
    there, nor more than ``MAX_LIFT_EV``; lowers the brightest unclipped highlights
    (99th percentile of the pixels below ``clipped_at``) to ``HIGHLIGHT_TARGET`` when
    they lie above it. Frames step by at most ``MAX_STEP_EV``; the capture (0) is
    always one of them, and at least one frame lies 1 EV above it.
    """
    small = _proxy(image)
    y = luma(small)
    shadows = float(np.percentile(y, 12.5))
    # texture only ever inflates a channel's measured noise: the least is the sensor's
    floor = min(n.floor(MIN_SNR) for n in noise)
    lift = math.log2(MIDDLE_GREY / max(shadows, floor, 1e-6))
    lift = min(max(_rounded(lift), 1.0), MAX_LIFT_EV)
    unclipped = y[small.max(axis=2) < clipped_at] if clipped_at is not None else y.ravel()
    lower = 0.0
    if unclipped.size:
        highlights = float(np.percentile(unclipped, 99.0))
        if highlights > HIGHLIGHT_TARGET:
            lower = max(_rounded(math.log2(HIGHLIGHT_TARGET / highlights)), -MAX_LOWER_EV)
    return (*_steps(lower), 0.0, *_steps(lift))


def _proxy(image: np.ndarray, side: int = 512) -> np.ndarray:
    """``image`` (H, W, 3) shrunk to a long side of about ``side`` (statistics need no more)."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def _rounded(ev: float) -> float:
    return round(ev / EV_ROUNDING) * EV_ROUNDING


def _steps(extent: float) -> list[float]:
    """EVs from 0 (exclusive) to ``extent`` (inclusive) in equal steps of at most MAX_STEP_EV."""
    if extent == 0:
        return []
    count = math.ceil(abs(extent) / MAX_STEP_EV - 1e-9)
    values = [round(extent * i / count, 3) for i in range(1, count + 1)]
    return values if extent > 0 else values[::-1]


def expose(capture: np.ndarray, ev: float, *, clipped_at: float | None = CLIP_LEVEL) -> np.ndarray:
    """The virtual exposure ``ev`` stops from ``capture``: (H, W, 3) float32 linear in [0, 1].

    ``capture`` * 2**ev, clipped at white as a sensor clips. In a darker frame (ev < 0)
    a pixel whose brightest channel reached ``clipped_at`` keeps its captured value
    (its highlight detail is not in the file to show), fading in from ``SHOULDER``;
    None (a float capture, which has no white level) dims every pixel alike.
    """
    out = capture * np.float32(2.0**ev)
    if ev < 0 and clipped_at is not None:
        rows, cols = np.nonzero(capture.max(axis=2) > SHOULDER)  # few pixels: only these are touched
        near = capture[rows, cols]
        keep = np.clip((near.max(axis=1) - SHOULDER) * np.float32(1.0 / (clipped_at - SHOULDER)), 0.0, 1.0)
        out[rows, cols] += keep[:, None] * (near - out[rows, cols])
    return np.clip(out, 0.0, 1.0, out=out)


def denoise(capture: np.ndarray, noise: Sequence[NoiseModel]) -> np.ndarray:
    """``capture`` (H, W, 3) float32 linear, filtered in proportion to its noise.

    Each channel is variance-stabilised: the generalised Anscombe transform of its
    :class:`NoiseModel`, written ``f(x) = 2x / (sqrt(shot x + read) + sqrt(read))`` (no
    cancellation, and no division by a vanishing ``shot``), under which the noise is
    1 at every level; it is filtered bilaterally with a range of
    ``DENOISE_RANGE_SIGMAS``, and mapped back by ``x = f (shot f / 4 + sqrt(read))``.
    A clean capture (noise near 0) comes back as it was.
    """
    stable = np.empty_like(capture)
    for c, n in enumerate(noise):
        shot, root_read = np.float32(n.shot), np.float32(max(math.sqrt(n.read), _CLEAN_SIGMA))
        x = capture[..., c]
        stable[..., c] = 2.0 * x / (np.sqrt(np.maximum(shot * x, 0.0) + root_read * root_read) + root_read)
    filtered = cv2.bilateralFilter(stable, DENOISE_DIAMETER, DENOISE_RANGE_SIGMAS, DENOISE_DIAMETER / 3.0)
    for c, n in enumerate(noise):
        shot, root_read = np.float32(n.shot), np.float32(max(math.sqrt(n.read), _CLEAN_SIGMA))
        f = filtered[..., c]
        filtered[..., c] = f * (shot * f * np.float32(0.25) + root_read)
    return np.clip(filtered, 0.0, None, out=filtered)


def check_capture(frame: Frame, response: Response) -> float | None:
    """Refuse a lone frame no virtual bracket can be made of; return its clipping level.

    A RAW file (white level 1.0) and a float TIFF (linear, no white level: None) are
    captures; so is a 16-bit TIFF/PNG read with ``response`` LINEAR. An 8-bit JPEG or
    PNG, or a 16-bit file in a display encoding, has no headroom above white.
    """
    if frame.source == "raw":
        return CLIP_LEVEL
    if frame.bit_depth == 32:
        return None
    if frame.bit_depth == 16 and response is Response.LINEAR:
        return CLIP_LEVEL
    if frame.bit_depth == 16:
        hint = f"; if it holds linear values, add {param('response', Response.LINEAR.value)}"
    else:
        hint = "; give the bracket's other frames, or the RAW file"
    raise InconsistentBracket(
        f"one {frame.bit_depth}-bit display-encoded image has no headroom above white to make a bracket of{hint}", frame.path
    )


def virtual_bracket(
    capture: Frame,
    evs: Sequence[float] | None = None,
    *,
    response: Response = Response.SRGB,
    reference: int | None = None,
    clean: bool = True,
) -> Bracket:
    """A :class:`Bracket` of virtual exposures of one ``capture``.

    Args:
        capture: one linear frame (see :func:`check_capture`).
        evs: EVs of the virtual frames relative to the capture, any order; None picks
            them (:func:`auto_evs`).
        response: how the capture was linearised (a 16-bit file counts as linear
            only with ``Response.LINEAR``).
        reference: index into the EV-sorted frames; None = the best-exposed middle one.
        clean: make brighter frames from a denoised copy of the capture (:func:`denoise`).

    Returns:
        The bracket, frames sorted by EV, ``ev_source`` "virtual"; ``virtual_ev`` holds
        the EVs relative to the capture, ``ev`` relative to the reference as always.
        Each frame's exposure time is the capture's times ``2**ev``.

    Raises:
        InconsistentBracket: the capture cannot make a bracket (``check_capture``).
        UsageError: fewer than 2 EVs, repeated or non-finite EVs, an EV beyond ±10; a
            reference out of range.
    """
    clipped_at = check_capture(capture, response)
    check_size(capture)
    noise = estimate_noise(capture.image)
    chosen = sorted(check_virtual_evs(evs)) if evs is not None else list(auto_evs(capture.image, noise, clipped_at=clipped_at))
    cleaned = denoise(capture.image, noise) if clean and max(chosen) > 0 else capture.image
    frames = tuple(
        replace(capture, image=expose(cleaned if ev > 0 else capture.image, ev, clipped_at=clipped_at),
                exposure=_scaled(capture.exposure, ev), notes=())
        for ev in chosen
    )  # fmt: skip
    reference = reference_index(frames, chosen, reference)
    notes = [Message(n) for n in dict.fromkeys(capture.notes)]
    return Bracket(
        frames=frames, ev=tuple(e - chosen[reference] for e in chosen), reference=reference, ev_source="virtual",
        warnings=tuple(notes), virtual_ev=tuple(chosen),
    )  # fmt: skip


def _scaled(exposure: ExposureInfo, ev: float) -> ExposureInfo:
    """The capture's exposure settings, as a capture ``ev`` stops brighter would record them."""
    time = exposure.exposure_time * 2.0**ev if exposure.is_usable() else None  # type: ignore[operator]
    bias = (exposure.bias_ev or 0.0) + ev
    return replace(exposure, exposure_time=time, bias_ev=bias)
