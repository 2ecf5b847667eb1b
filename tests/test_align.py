"""Global registration: known synthetic motions across exposures, crop, failures, real data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from uhdfuse.align import align_bracket, estimate_transform, frame_luma, rank_luma
from uhdfuse.config import AlignConfig
from uhdfuse.errors import AlignmentFailed, InconsistentBracket
from uhdfuse.types import Bracket, Frame

H, W, MARGIN = 144, 208, 48
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ------------------------------------------------------------------ synthetic data


def make_scene(h: int, w: int, seed: int, margin: int = MARGIN) -> np.ndarray:
    """(h+2m, w+2m, 3) float32 linear radiance of about 0.01..8: blobs, edges, texture."""
    rng = np.random.default_rng(seed)
    hh, ww = h + 2 * margin, w + 2 * margin
    yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
    logr = np.full((hh, ww), -3.0, np.float32)
    for _ in range(30):
        cx, cy = rng.uniform(0, ww), rng.uniform(0, hh)
        s = rng.uniform(0.03, 0.15) * max(hh, ww)
        logr += rng.normal(0, 1.5) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    for _ in range(10):
        x0, y0 = rng.integers(0, ww), rng.integers(0, hh)
        dy, dx = rng.integers(hh // 10, hh // 3), rng.integers(ww // 10, ww // 3)
        logr[y0 : y0 + dy, x0 : x0 + dx] += rng.normal(0, 1)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (hh, ww)).astype(np.float32), (0, 0), 1.5)
    logr += 0.8 * tex / tex.std()
    colour = rng.uniform(0.6, 1.2, 3).astype(np.float32)
    return np.exp2(logr)[..., None] * colour


def render(scene: np.ndarray, M: np.ndarray, ev: float, seed: int = 0, margin: int = MARGIN) -> np.ndarray:
    """A linear frame at ``ev`` whose content satisfies reference(x) = frame(M x)."""
    h, w = scene.shape[0] - 2 * margin, scene.shape[1] - 2 * margin
    C = np.array([[1, 0, margin], [0, 1, margin], [0, 0, 1]], float)
    img = cv2.warpPerspective(scene, C @ np.linalg.inv(M), (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    img = np.clip(img, 0, None) * np.float32(2.0**ev)
    img += np.random.default_rng(seed).normal(0, 0.002, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)  # clipping at 1, like a camera


def rotation(deg: float, tx: float, ty: float, w: int = W, h: int = H) -> np.ndarray:
    """Rotation by ``deg`` around the image centre followed by a shift."""
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    t = np.deg2rad(deg)
    R = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    M = np.eye(3)
    M[:2, :2] = R
    M[:2, 2] = c - R @ c + (tx, ty)
    return M


SHIFT = np.array([[1, 0, 7.3], [0, 1, -4.6], [0, 0, 1.0]])
ROTATION = rotation(1.5, 3.0, -2.0)
HOMOGRAPHY = np.array([[1.01, 0.02, 4.0], [-0.015, 0.99, -3.0], [4e-5, -3e-5, 1.0]])


def corner_error(A: np.ndarray, B: np.ndarray, w: int = W, h: int = H) -> float:
    """Largest distance in pixels between where A and B send the image corners."""
    c = np.array([[0, 0, 1], [w - 1, 0, 1], [w - 1, h - 1, 1], [0, h - 1, 1]], float)
    pa, pb = c @ A.T, c @ B.T
    return float(np.max(np.linalg.norm(pa[:, :2] / pa[:, 2:] - pb[:, :2] / pb[:, 2:], axis=1)))


def make_bracket(frames: list[np.ndarray], evs: list[float], reference: int = 1) -> Bracket:
    return Bracket(
        frames=tuple(Frame(Path(f"frame{i}.tif"), img, "display", 16) for i, img in enumerate(frames)),
        ev=tuple(evs),
        reference=reference,
        ev_source="user",
    )


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return make_scene(H, W, seed=0)


@pytest.fixture(scope="module")
def reference(scene: np.ndarray) -> np.ndarray:
    return render(scene, np.eye(3), 0.0, seed=1)


# ------------------------------------------------------------------------- luma


def test_rank_luma_is_comparable_across_exposures_and_tone_curves(scene: np.ndarray, reference: np.ndarray) -> None:
    # Another exposure through another tone curve (a gamma, not sRGB): same ranks.
    dark = render(scene, np.eye(3), -2.0, seed=2) ** np.float32(0.7)
    tr, mr = frame_luma(reference)
    td, md = frame_luma(dark)
    rr, rd = rank_luma(tr), rank_luma(td)
    assert rr.shape == (H, W) and rr.dtype == np.float32 and 0.0 <= rr.min() and rr.max() <= 1.0
    both = (mr > 0) & (md > 0)
    assert both.mean() > 0.3
    assert np.abs(rr[both] - rd[both]).mean() < 0.03
    # Clipped and black pixels are not trusted (the scene does clip at 0 and +2 EV).
    assert (reference.max(axis=2) >= 0.97).mean() > 0.02
    assert (render(scene, np.eye(3), 2.0).max(axis=2) >= 0.97).mean() > 0.2
    assert not mr[reference.max(axis=2) >= 0.97].any()
    assert not md[(dark @ np.array([0.2126, 0.7152, 0.0722], np.float32)) <= 0.0005].any()


# --------------------------------------------------------------- estimate_transform


@pytest.mark.parametrize("ev", [-2.0, 2.0])
@pytest.mark.parametrize(
    ("true_M", "model"),
    [(SHIFT, "translation"), (ROTATION, "euclidean"), (HOMOGRAPHY, "homography")],
    ids=["shift", "rotation", "homography"],
)
def test_recovers_known_motion_across_exposures(
    scene: np.ndarray, reference: np.ndarray, true_M: np.ndarray, model: str, ev: float
) -> None:
    moving = render(scene, true_M, ev, seed=3)
    M, residual = estimate_transform(reference, moving, model=model)
    assert M.shape == (3, 3) and M.dtype == np.float64
    assert corner_error(M, true_M) < 0.5
    assert residual < 0.05
    if model == "translation":
        np.testing.assert_allclose(M[:2, 2], (7.3, -4.6), atol=0.5)


def test_large_motion_through_the_proxy_levels() -> None:
    # Larger than proxy_size, so the search runs on a proxy and is refined at full size:
    # checks the coordinate scaling between levels and the feature-based first guess.
    h, w = 240, 320
    big = make_scene(h, w, seed=4, margin=80)
    true_M = rotation(2.0, 41.0, -27.0, w, h)
    ref = render(big, np.eye(3), 0.0, seed=1, margin=80)
    mov = render(big, true_M, -2.0, seed=2, margin=80)
    M, _ = estimate_transform(ref, mov, model="euclidean", proxy_size=128)
    assert corner_error(M, true_M, w, h) < 0.5


@pytest.mark.parametrize("kind", ["noise", "other scene"])
def test_unrelated_frame_is_rejected(reference: np.ndarray, kind: str) -> None:
    if kind == "noise":
        other = np.random.default_rng(5).random((H, W, 3)).astype(np.float32)
    else:
        other = render(make_scene(H, W, seed=9), np.eye(3), 0.0)
    bracket = make_bracket([other, reference], [0.0, 0.0])
    with pytest.raises(AlignmentFailed, match="align.model='none'") as info:
        align_bracket(bracket, AlignConfig(model="auto"))
    assert "frame0.tif" in str(info.value)


def test_residual_limit_is_enforced(scene: np.ndarray, reference: np.ndarray) -> None:
    moving = render(scene, SHIFT, 2.0, seed=3)
    bracket = make_bracket([reference, moving], [0.0, 2.0], reference=0)
    with pytest.raises(AlignmentFailed, match="residual"):
        align_bracket(bracket, AlignConfig(model="translation", max_residual=1e-4))


# -------------------------------------------------------------------- align_bracket


def test_bracket_is_registered_warped_and_cropped(scene: np.ndarray, reference: np.ndarray) -> None:
    dark = render(scene, SHIFT, -2.0, seed=2)
    bright = render(scene, ROTATION, 2.0, seed=3)
    ab = align_bracket(make_bracket([dark, reference, bright], [-2.0, 0.0, 2.0]), AlignConfig(model="auto"))

    assert ab.model == "euclidean"  # the most complex model any frame needed
    assert corner_error(ab.transforms[0], SHIFT) < 0.5
    assert corner_error(ab.transforms[2], ROTATION) < 0.5
    np.testing.assert_array_equal(ab.transforms[1], np.eye(3))
    assert ab.residuals[1] == 0.0 and all(0 < r < 0.05 for r in (ab.residuals[0], ab.residuals[2]))

    x, y, w, h = ab.crop
    assert ab.images.shape == (3, h, w, 3) and ab.images.dtype == np.float32
    # Every pixel of the crop lies inside every frame...
    for M in ab.transforms:
        corners = np.array([[x, y, 1], [x + w - 1, y, 1], [x + w - 1, y + h - 1, 1], [x, y + h - 1, 1]], float)
        mapped = corners @ M.T
        mapped = mapped[:, :2] / mapped[:, 2:]
        assert (mapped >= -0.5).all()
        assert (mapped[:, 0] <= W - 0.5).all() and (mapped[:, 1] <= H - 0.5).all()
    # ...and the crop is not needlessly small (1.5 degrees on 208x144 costs about 5 px a side).
    assert w >= W - 20 and h >= H - 20
    np.testing.assert_array_equal(ab.images[1], reference[y : y + h, x : x + w])

    # The warped frames now match the reference, where all three are trusted.
    lumas = [frame_luma(img) for img in ab.images]
    ranks = [rank_luma(tone) for tone, _ in lumas]
    trusted = (lumas[0][1] > 0) & (lumas[1][1] > 0) & (lumas[2][1] > 0)
    for i in (0, 2):
        assert np.sqrt(np.mean((ranks[i][trusted] - ranks[1][trusted]) ** 2)) < 0.03
    assert float(ab.images.min()) >= 0.0 and float(ab.images.max()) <= 1.0


@pytest.mark.parametrize(
    ("true_M", "expected"),
    [(np.eye(3), "none"), (SHIFT, "translation"), (ROTATION, "euclidean"), (HOMOGRAPHY, "homography")],
    ids=["still", "shift", "rotation", "homography"],
)
def test_auto_uses_the_simplest_sufficient_model(
    scene: np.ndarray, reference: np.ndarray, true_M: np.ndarray, expected: str
) -> None:
    moving = render(scene, true_M, 2.0, seed=3)
    ab = align_bracket(make_bracket([reference, moving], [0.0, 2.0], reference=0), AlignConfig(model="auto"))
    assert ab.model == expected
    assert corner_error(ab.transforms[1], true_M) < 0.5


def test_wide_bracket_is_registered_through_neighbours(scene: np.ndarray, reference: np.ndarray) -> None:
    # Frames 4 EV from the reference share few trusted pixels with it; they are
    # registered to their 2 EV neighbours and the matrices composed.
    motions = [rotation(0.8, -5.0, 3.0), SHIFT, np.eye(3), rotation(-1.0, 2.5, 4.0), HOMOGRAPHY]
    evs = [-4.0, -2.0, 0.0, 2.0, 4.0]
    frames = [render(scene, M, ev, seed=10 + k) for k, (M, ev) in enumerate(zip(motions, evs))]
    frames[2] = reference
    ab = align_bracket(make_bracket(frames, evs, reference=2), AlignConfig(model="homography"))
    for M, true_M in zip(ab.transforms, motions):
        assert corner_error(M, true_M) < 0.5


def test_shift_crop_is_exactly_the_covered_area(scene: np.ndarray, reference: np.ndarray) -> None:
    moving = render(scene, SHIFT, 0.0, seed=3)
    bracket = make_bracket([reference, moving], [0.0, 0.0], reference=0)
    ab = align_bracket(bracket, AlignConfig(model="translation"))
    # reference pixel (x, y) shows moving pixel (x + 7.3, y - 4.6): columns up to W-8 and
    # rows from 5 have data.
    assert ab.crop == (0, 5, W - 7, H - 5)


def test_uncropped_border_is_filled_from_the_scaled_reference(scene: np.ndarray, reference: np.ndarray) -> None:
    moving = render(scene, SHIFT, -2.0, seed=3)
    config = AlignConfig(model="translation", crop=False)
    ab = align_bracket(make_bracket([moving, reference], [-2.0, 0.0]), config)
    assert ab.crop == (0, 0, W, H) and ab.images.shape == (2, H, W, 3)
    # Columns beyond W-8 are outside the moving frame: the reference at -2 EV stands in.
    np.testing.assert_allclose(ab.images[0][10:, W - 5 :], reference[10:, W - 5 :] * 0.25, atol=1e-6)
    # Inside, the frame's own (warped) data.
    inner = ab.images[0][20:-20, 20:-20] * 4.0
    ok = reference[20:-20, 20:-20].max(axis=2) < 0.9
    assert np.abs(inner - reference[20:-20, 20:-20])[ok].mean() < 0.01


def test_unmoved_frames_give_exactly_the_identity_and_are_not_resampled(scene: np.ndarray, reference: np.ndarray) -> None:
    frames = [render(scene, np.eye(3), ev, seed=s) for ev, s in ((-2.0, 7), (2.0, 8))]
    bracket = make_bracket([frames[0], reference, frames[1]], [-2.0, 0.0, 2.0])
    ab = align_bracket(bracket, AlignConfig(model="auto"))
    assert ab.model == "none"
    for M in ab.transforms:
        np.testing.assert_array_equal(M, np.eye(3))
    assert ab.crop == (0, 0, W, H)
    for image, frame in zip(ab.images, bracket.frames):
        np.testing.assert_array_equal(image, frame.image)


def test_align_none_keeps_frames_untouched(scene: np.ndarray, reference: np.ndarray) -> None:
    moving = render(scene, SHIFT, 2.0, seed=3)
    ab = align_bracket(make_bracket([reference, moving], [0.0, 2.0], reference=0), AlignConfig(model="none"))
    assert ab.model == "none" and ab.crop == (0, 0, W, H)
    for M in ab.transforms:
        np.testing.assert_array_equal(M, np.eye(3))
    np.testing.assert_array_equal(ab.images[1], moving)
    assert ab.residuals[0] == 0.0 and ab.residuals[1] > 0.0  # the misalignment is reported


def test_frames_of_different_sizes_are_rejected(reference: np.ndarray) -> None:
    bracket = make_bracket([reference, reference[:-2]], [0.0, 0.0], reference=0)
    with pytest.raises(InconsistentBracket):
        align_bracket(bracket, AlignConfig())


# ---------------------------------------------------------------------- real data


def _srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def load_real_bracket(folder: Path) -> Bracket:
    """A JPEG bracket with an exposures.txt (file, exposure time), sorted, middle reference."""
    if not (folder / "exposures.txt").exists():
        pytest.skip("real data not available")
    lines = (folder / "exposures.txt").read_text().splitlines()
    rows = [line.split() for line in lines if not line.startswith("#")]
    times = {r[0]: float(r[1]) for r in rows if r}
    names = sorted(times, key=times.get)  # darkest first
    ref = len(names) // 2
    frames = []
    for name in names:
        bgr = cv2.imread(str(folder / name), cv2.IMREAD_COLOR)
        frames.append(Frame(folder / name, _srgb_decode(bgr[..., ::-1] / 255.0), "display", 8))
    evs = tuple(float(np.log2(times[n] / times[names[ref]])) for n in names)
    return Bracket(tuple(frames), evs, ref, "exif")


@pytest.mark.shared_data
def test_real_handheld_bracket() -> None:
    bracket = load_real_bracket(DATA / "banterle_hdrtoolbox_stacks" / "stack_alignment")
    unaligned = align_bracket(bracket, AlignConfig(model="none"))
    aligned = align_bracket(bracket, AlignConfig(model="auto"))
    assert aligned.model in ("euclidean", "homography")
    for i in (0, 2):
        assert aligned.residuals[i] < 0.5 * unaligned.residuals[i]
        assert aligned.residuals[i] < 0.04
        # Hand-held: a shift of some pixels, nothing wild.
        assert 2.0 < np.hypot(*aligned.transforms[i][:2, 2]) < 60.0
    x, y, w, h = aligned.crop
    assert w > 0.9 * 720 and h > 0.9 * 1080


@pytest.mark.shared_data
def test_real_tripod_bracket_of_seven_frames() -> None:
    # 7 frames over 13 stops on a tripod: near-identity transforms, almost no crop.
    bracket = load_real_bracket(DATA / "banterle_hdrtoolbox_stacks" / "stack")
    aligned = align_bracket(bracket, AlignConfig(model="auto"))
    assert aligned.model == "translation"
    w, h = bracket.frames[0].size
    for M in aligned.transforms:
        assert corner_error(M, np.eye(3), w, h) < 2.0
    assert aligned.crop[2] >= w - 2 and aligned.crop[3] >= h - 2
