"""Generated hand-held brackets with their true motion, for registration tests and
benchmarks: unknown tone curves, wide EV steps, shake with rotation and perspective,
things that move.

A case is drawn from a seed: a procedural HDR street scene; 3 or 5 frames spanning
+-2 to +-3 EV around the middle one (``wide``: 1 to 4 EV apart, up to +-8 EV, where
the outer frames are mostly clipped or black); a response curve (sRGB, a gamma or
an S-curve) and 8-bit quantisation; a shake of up to 3 % of the width with up to
1.5 degrees of rotation and a mild perspective (up to about 1 % of the width at the
corners) per frame; and an object of up to 15 % of the frame that moves between
frames. The EVs are given 20 % off, as estimated ones are.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from uhdfuse.align.checks import corner_distance
from uhdfuse.colour import srgb_decode, srgb_encode
from uhdfuse.synthetic.scene import procedural_scene
from uhdfuse.types import Bracket, Frame

SIZE = (400, 600)  # (H, W) of a case unless asked otherwise
MARGIN = 0.07  # scene margin around the frame, as a fraction of the width (room for the shake)


def _response(kind: str, rng: np.random.Generator):  # noqa: ANN202 - linear -> encoded in [0, 1]
    """A camera response curve: linear light in [0, 1] -> encoded value in [0, 1]."""
    if kind == "srgb":
        return lambda x: srgb_encode(x)
    if kind == "gamma":
        g = rng.uniform(1.6, 2.8)
        return lambda x: x ** (1 / g)
    contrast = rng.uniform(4.0, 8.0)  # an S-curve on log exposure, as camera JPEG engines apply
    return lambda x: 1 / (1 + np.exp(-contrast * (np.log2(np.maximum(x, 1e-6)) + 2.5) / 4.0))


def _shake(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Reference -> frame matrix of one hand-held frame of ``size`` (H, W)."""
    h, w = size
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    t = np.deg2rad(rng.uniform(-1.5, 1.5))
    M = np.eye(3)
    M[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    M[:2, 2] = c - M[:2, :2] @ c + rng.uniform(-0.03 * w, 0.03 * w, 2)
    M[2, :2] = rng.uniform(-1, 1, 2) * 0.012 / w  # mild perspective
    return M


def _capture(scene: np.ndarray, M: np.ndarray, ev: float, response, rng: np.random.Generator,  # noqa: ANN001
             size: tuple[int, int]) -> np.ndarray:  # fmt: skip
    """An 8-bit frame decoded as the sRGB curve would (the response is unknown to uhdfuse),
    whose content satisfies reference(x) = frame(M x)."""
    h, w = size
    m = round(MARGIN * w)
    C = np.array([[1, 0, m], [0, 1, m], [0, 0, 1]], float)
    img = cv2.warpPerspective(scene, C @ np.linalg.inv(M), (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    img = np.clip(img, 0, None) * np.float32(2.0**ev)
    img = img * (1 + rng.normal(0, 0.01, img.shape)) + rng.normal(0, 0.001, img.shape)
    encoded = np.round(np.clip(response(np.clip(img, 0, 1)), 0, 1) * 255) / 255
    return srgb_decode(encoded.astype(np.float32))


def _mover(frame: np.ndarray, rng: np.random.Generator) -> None:
    """A flat object of up to ~15 % of the frame, somewhere else in every frame."""
    H, W = frame.shape[:2]
    h, w = rng.integers(H // 5, H // 2), rng.integers(W // 5, W // 3)
    y, x = rng.integers(0, H - h), rng.integers(0, W - w)
    frame[y : y + h, x : x + w] = rng.uniform(0.05, 0.6, 3).astype(np.float32)


def make_case(
    seed: int, *, still: bool = False, wide: bool = False, size: tuple[int, int] = SIZE
) -> tuple[Bracket, list[np.ndarray]]:
    """A bracket of ``size`` (H, W) frames and, per frame, the true reference -> frame
    matrix (3, 3); ``still``: a tripod bracket (identity matrices, nothing moves);
    ``wide``: frames 1 to 4 EV apart."""
    rng = np.random.default_rng(seed)
    h, w = size
    m = round(MARGIN * w)
    scene = procedural_scene(h + 2 * m, w + 2 * m, seed=seed).astype(np.float32)
    scene *= np.float32(0.5 / np.percentile(scene, 60))  # the middle exposure about right
    n = int(rng.choice([3, 5]))
    if wide:
        step = float(rng.choice([1.0, 2.0, 3.0, 4.0]))
    else:
        step = float(rng.uniform(2.0, 3.0)) / (n // 2)
    evs = [step * (k - n // 2) for k in range(n)]
    response = _response(str(rng.choice(["srgb", "gamma", "s-curve"])), rng)
    truth = [np.eye(3) if still or k == n // 2 else _shake(rng, size) for k in range(n)]
    frames = []
    for k, (M, ev) in enumerate(zip(truth, evs)):
        image = _capture(scene, M, ev, response, rng, size)
        if k != n // 2 and not still:
            _mover(image, rng)
        frames.append(Frame(Path(f"f{k}.jpg"), image, "display", 8))
    # EVs as a camera without EXIF would give them: estimated, here deliberately off.
    bracket = Bracket(tuple(frames), tuple(e * 0.8 for e in evs), n // 2, "pixels")
    return bracket, truth


def corner_error(A: np.ndarray, B: np.ndarray, size: tuple[int, int] = SIZE) -> float:
    """Largest distance in pixels between where A and B send the corners of a frame of
    ``size`` (H, W)."""
    return corner_distance(A, B, (size[1], size[0]))
