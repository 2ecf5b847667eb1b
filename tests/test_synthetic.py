"""Tests of the synthetic scene, the simulated camera and the example bracket files."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import cv2
import exifread
import numpy as np
import pytest
import rawpy
import tifffile
from PIL import Image

from uhdfuse.colour import luma, srgb_decode, srgb_encode
from uhdfuse.errors import UsageError
from uhdfuse.synthetic import (
    RenderedBracket,
    procedural_scene,
    random_shake,
    render_bracket,
    write_bracket_files,
    write_dng,
    write_example_bracket,
)
from uhdfuse.synthetic.camera import expose, paste_moving_object, random_moving_objects
from uhdfuse.types import CameraInfo, ExposureInfo


def _exif(path: Path) -> dict:
    with open(path, "rb") as fh:
        return exifread.process_file(fh, details=False)


def _rational(tag) -> Fraction:
    value = tag.values[0]
    return Fraction(value.num, value.den)


# -- colour -------------------------------------------------------------------------


def test_srgb_curve_matches_the_standard_and_round_trips():
    assert srgb_encode(np.float32(0.0031308)) == pytest.approx(0.04045, abs=1e-5)
    assert srgb_encode(np.float32(0.18)) == pytest.approx(0.46135, abs=1e-4)
    assert srgb_encode(np.float32(1.0)) == pytest.approx(1.0, abs=1e-6)
    assert srgb_decode(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert srgb_encode(x).dtype == np.float32
    np.testing.assert_allclose(srgb_decode(srgb_encode(x)), x, atol=2e-6)


def test_luma_of_white_is_one_and_weights_green_most():
    rgb = np.array([[[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float32)
    y = luma(rgb)
    assert y.shape == (1, 4)
    assert y[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert y[0, 2] > y[0, 1] > y[0, 3]


# -- scene --------------------------------------------------------------------------


def test_scene_is_deterministic_and_varies_with_seed():
    a = procedural_scene(48, 72, seed=3)
    b = procedural_scene(48, 72, seed=3)
    c = procedural_scene(48, 72, seed=4)
    assert a.shape == (48, 72, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.abs(np.log2(a + 1e-3) - np.log2(c + 1e-3))) > 0.1


def test_scene_has_a_real_hdr_range_in_areas_not_just_pixels():
    y = luma(procedural_scene(160, 240, seed=0))
    assert np.all(np.isfinite(y)) and y.min() > 0
    assert np.log2(y.max() / y.min()) >= 14
    # The darkest and brightest 0.5 % (about 190 pixels each) still span 12 stops.
    assert np.log2(np.percentile(y, 99.5) / np.percentile(y, 0.5)) >= 12


def test_scene_is_resolution_independent():
    small = procedural_scene(80, 120, seed=5)
    large = procedural_scene(160, 240, seed=5)
    down = cv2.resize(large, (120, 80), interpolation=cv2.INTER_AREA)
    ls, ld = np.log2(luma(small) + 1e-3), np.log2(luma(down) + 1e-3)
    assert np.corrcoef(ls.ravel(), ld.ravel())[0, 1] > 0.95
    assert np.median(np.abs(ls - ld)) < 0.15


def test_scene_has_saturated_colours_and_oriented_edges():
    img = procedural_scene(200, 300, seed=1)
    display = srgb_encode(np.clip(img * 0.18 / np.median(luma(img)), 0, 1))
    chroma = display.max(axis=2) - display.min(axis=2)
    assert np.mean(chroma > 0.4) > 0.005  # awning, door, checker, flowers
    gray = display.mean(axis=2)
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    strong = np.hypot(gx, gy) > 0.5
    angles = np.degrees(np.arctan2(gy[strong], gx[strong])) % 180
    hist, _ = np.histogram(angles, bins=6, range=(0, 180))
    assert np.all(hist > 10), hist  # edges in every 30-degree orientation bin


# -- camera -------------------------------------------------------------------------


def test_expose_scales_by_ev_clips_and_quantises():
    rng = np.random.default_rng(0)
    radiance = np.full((8, 8, 3), 0.1, np.float32)
    clean = expose(radiance, 1.0, base_exposure=2.0, rng=rng, noise=False)
    np.testing.assert_allclose(clean, 0.4, rtol=1e-6)
    assert expose(radiance, 4.0, base_exposure=2.0, rng=rng, noise=False).max() == 1.0
    q = expose(radiance * 0.3, 0.0, base_exposure=1.0, rng=rng, bits=8)
    np.testing.assert_allclose(q * 255, np.round(q * 255), atol=1e-4)


def test_noise_is_worse_relative_to_signal_in_darker_exposures():
    rng = np.random.default_rng(1)
    radiance = np.full((64, 64, 3), 0.2, np.float32)
    dark = expose(radiance, -4.0, base_exposure=1.0, rng=rng)
    bright = expose(radiance, 0.0, base_exposure=1.0, rng=rng)
    snr_dark = dark.mean() / dark.std()
    snr_bright = bright.mean() / bright.std()
    assert snr_bright > 2.5 * snr_dark
    assert abs(bright.mean() - 0.2) < 0.002  # noise is unbiased


def test_random_shake_is_identity_without_shake_and_bounded_with_it():
    rng = np.random.default_rng(2)
    np.testing.assert_allclose(random_shake(rng, 100, 150, 0.0, 0.0), np.eye(3))
    hom = random_shake(rng, 100, 150, 4.0, 0.5)
    corners = np.array([[0, 0, 1], [149, 0, 1], [0, 99, 1], [149, 99, 1]], np.float64).T
    moved = hom @ corners
    moved = moved[:2] / moved[2]
    shift = np.abs(moved - corners[:2])
    # 4 px translation + 0.5 deg rotation over a 90 px radius (0.8 px) + 1 px keystone.
    assert shift.max() < 6.0
    assert shift.max() > 0.05


def test_bracket_reference_is_middle_and_homographies_follow_convention():
    height, width = 90, 120
    radiance = np.full((height, width, 3), 0.05, np.float32)
    radiance[40:43, 60:63] = 5.0  # a bright dot at (61, 41)
    out = render_bracket(
        radiance, [0.0, -2.0, 2.0], seed=7, base_exposure=0.1, shake_px=5.0, shake_deg=1.0, noise=False
    )
    assert isinstance(out, RenderedBracket)
    assert out.reference == 0
    np.testing.assert_array_equal(out.homographies[0], np.eye(3))
    for i in (1, 2):
        assert not np.allclose(out.homographies[i], np.eye(3))
        # The content at reference pixel p appears at H @ p in frame i.
        p = out.homographies[i] @ np.array([61.0, 41.0, 1.0])
        expected = p[:2] / p[2]
        y = luma(out.frames[i])
        weight = np.where(y > 0.5 * y.max(), y, 0.0)
        rows, cols = np.indices(y.shape)
        cy, cx = (weight * rows).sum() / weight.sum(), (weight * cols).sum() / weight.sum()
        assert np.hypot(cx - expected[0], cy - expected[1]) < 0.5
    without = render_bracket(radiance, [-1.0, 1.0], seed=7, noise=False)
    assert all(np.allclose(h, np.eye(3)) for h in without.homographies)


def test_bracket_exposures_times_and_auto_base_exposure():
    scene = procedural_scene(64, 96, seed=0)
    out = render_bracket(scene, [-2.0, 0.0, 2.0], seed=0, noise=False)
    ref = out.frames[1]
    assert np.median(luma(ref)) == pytest.approx(0.18, rel=0.02)
    assert out.exposure_times[2] / out.exposure_times[1] == pytest.approx(4.0)
    assert out.exposure_times[1] / out.exposure_times[0] == pytest.approx(4.0)
    unclipped = (out.frames[2] < 0.99) & (out.frames[0] > 0.002)
    ratio = out.frames[2][unclipped] / out.frames[0][unclipped]
    np.testing.assert_allclose(ratio, 16.0, rtol=1e-4)
    for f in out.frames:
        assert f.dtype == np.float32 and f.shape == (64, 96, 3)
        assert f.min() >= 0.0 and f.max() <= 1.0
    np.testing.assert_allclose(np.minimum(out.ground_truth(), 1.0), ref, atol=1e-6)


def test_bracket_is_deterministic_per_seed():
    scene = procedural_scene(48, 72, seed=0)
    kw = dict(seed=11, shake_px=3.0, shake_deg=0.5, moving_objects=2)
    a = render_bracket(scene, [-2, 0, 2], **kw)
    b = render_bracket(scene, [-2, 0, 2], **kw)
    c = render_bracket(scene, [-2, 0, 2], **{**kw, "seed": 12})
    for fa, fb in zip(a.frames, b.frames):
        np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(a.frames[0], c.frames[0])


def test_moving_objects_differ_between_frames():
    scene = procedural_scene(120, 180, seed=0)
    out = render_bracket(scene, [-1.0, 0.0, 1.0], seed=3, moving_objects=2, noise=False)
    masks = out.object_masks
    assert all(m.shape == (120, 180) for m in masks)
    assert masks[1].sum() > 50
    moved = np.abs(masks[0] - masks[1]).sum() + np.abs(masks[2] - masks[1]).sum()
    assert moved > 50
    # Where no object is in any frame, frames differ from the reference only by exposure.
    still = (np.maximum.reduce(masks) == 0) & (out.frames[0] < 0.95 / 2)[..., 0]
    np.testing.assert_allclose(out.frames[0][still] * 2, out.frames[1][still], rtol=1e-4, atol=1e-6)


def test_paste_moving_object_leaves_input_alone_and_reports_coverage():
    radiance = np.zeros((60, 90, 3), np.float32)
    obj = random_moving_objects(np.random.default_rng(0), 1)[0]
    out, cover = paste_moving_object(radiance, obj, 0.0)
    assert radiance.max() == 0.0
    assert cover.max() == 1.0 and out[cover == 1].min() > 0


def test_render_time_is_small():
    start = time.perf_counter()
    scene = procedural_scene(427, 640, seed=0)
    render_bracket(scene, [-2.0, 0.0, 2.0], seed=0, shake_px=4.0, shake_deg=0.5, moving_objects=1)
    assert time.perf_counter() - start < 2.0


# -- files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bracket() -> RenderedBracket:
    scene = procedural_scene(64, 96, seed=2)
    return render_bracket(scene, [-2.0, 0.0, 2.0], seed=2)


@pytest.mark.parametrize("fmt", ["jpeg", "tiff"])
def test_display_files_carry_exact_exif_icc_and_xmp(tmp_path, small_bracket, fmt):
    paths = write_bracket_files(tmp_path, small_bracket, fmt, stem="frame")
    assert [p.name for p in paths] == [f"frame_000{i}{'.jpg' if fmt == 'jpeg' else '.tif'}" for i in (1, 2, 3)]
    # Capture order is 0, -2, +2 EV, as cameras auto-bracket.
    expected_bias = [Fraction(0), Fraction(-2), Fraction(2)]
    expected_time = [Fraction(1, 250), Fraction(1, 1000), Fraction(2, 125)]
    stamps = []
    for path, bias, t in zip(paths, expected_bias, expected_time):
        tags = _exif(path)
        assert _rational(tags["EXIF ExposureTime"]) == t
        assert _rational(tags["EXIF ExposureBiasValue"]) == bias
        assert _rational(tags["EXIF FNumber"]) == 8
        assert tags["EXIF ISOSpeedRatings"].values[0] == 100
        assert str(tags["Image Make"]) == "uhdfuse"
        assert str(tags["Image Model"]) == "Synthetic Camera"
        assert "GPS GPSLatitude" in tags
        stamps.append(str(tags["EXIF DateTimeOriginal"]))
        raw = path.read_bytes()
        assert b"<x:xmpmeta" in raw and b"uhdfuse" in raw
    assert stamps == sorted(stamps) and len(set(stamps)) == 3

    if fmt == "jpeg":
        with Image.open(paths[0]) as im:
            assert im.size == (96, 64)
            assert len(im.info.get("icc_profile", b"")) > 0
            pixels = np.asarray(im, np.float32) / 255
        assert np.abs(srgb_decode(pixels) - small_bracket.frames[1]).mean() < 0.01
    else:
        with tifffile.TiffFile(paths[0]) as tif:
            page = tif.pages[0]
            assert page.dtype == np.uint16 and page.shape == (64, 96, 3)
            assert 34675 in page.tags  # ICC profile
            pixels = page.asarray().astype(np.float32) / 65535
        np.testing.assert_allclose(srgb_decode(pixels), small_bracket.frames[1], atol=2e-4)


def test_without_exif_display_files_have_no_exposure_tags(tmp_path, small_bracket):
    paths = write_bracket_files(tmp_path, small_bracket, "jpeg", exif=False)
    assert "EXIF ExposureTime" not in _exif(paths[0])


def _grey_card_image(height: int = 96, width: int = 144) -> np.ndarray:
    img = np.full((height, width, 3), 0.18, np.float32)
    img[:, : width // 3] = (0.45, 0.2, 0.08)  # orange
    img[:, 2 * width // 3 :] = (0.06, 0.15, 0.4)  # blue
    img[:8, :8] = 1.0  # a clipped highlight, as every real bracket frame has
    return img


def test_dng_round_trips_through_libraw(tmp_path):
    img = _grey_card_image()
    path = write_dng(
        tmp_path / "card.dng", img,
        exposure=ExposureInfo(exposure_time=1 / 60, f_number=5.6, iso=200, bias_ev=-1.0),
        camera=CameraInfo(make="uhdfuse", model="Synthetic Camera", datetime="2024:06:15 14:30:00"),
    )
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_image.shape == (96, 144)
        rgb = raw.postprocess(
            gamma=(1, 1), no_auto_bright=True, output_bps=16, use_camera_wb=True,
            output_color=rawpy.ColorSpace.sRGB,
        ).astype(np.float32) / 65535
    assert rgb.shape == (96, 144, 3)
    for cols in (slice(8, 40), slice(56, 88), slice(104, 140)):
        got = rgb[16:80, cols].reshape(-1, 3).mean(0)
        want = img[16:80, cols].reshape(-1, 3).mean(0)
        np.testing.assert_allclose(got, want, rtol=0.05)
    grey = rgb[16:80, 56:88].reshape(-1, 3).mean(0)
    assert grey.max() / grey.min() < 1.03

    tags = _exif(path)
    assert _rational(tags["EXIF ExposureTime"]) == Fraction(1, 60)
    assert tags["EXIF ISOSpeedRatings"].values[0] == 200
    assert _rational(tags["EXIF ExposureBiasValue"]) == -1
    assert str(tags["Image Make"]) == "uhdfuse"
    assert str(tags["Image Model"]) == "Synthetic Camera"
    assert list(tags["Image Tag 0xC612"].values) == [1, 4, 0, 0]  # DNGVersion


def test_dng_of_a_rendered_frame_keeps_its_tones(tmp_path, small_bracket):
    paths = write_bracket_files(tmp_path, small_bracket, "dng")
    frame = small_bracket.frames[small_bracket.reference]
    with rawpy.imread(str(paths[0])) as raw:
        rgb = raw.postprocess(
            gamma=(1, 1), no_auto_bright=True, output_bps=16, use_camera_wb=True,
            output_color=rawpy.ColorSpace.sRGB, adjust_maximum_thr=0.0,
        ).astype(np.float32) / 65535
    assert rgb.shape == frame.shape
    mid = (luma(frame) > 0.05) & (luma(frame) < 0.8)
    np.testing.assert_allclose(rgb[mid].mean(0), frame[mid].mean(0), rtol=0.05)


def test_dng_refuses_sizes_libraw_cannot_read(tmp_path):
    with pytest.raises(UsageError, match="22x22"):
        write_dng(tmp_path / "tiny.dng", np.zeros((16, 40, 3), np.float32), exposure=ExposureInfo(), camera=CameraInfo())
    assert not (tmp_path / "tiny.dng").exists()


def test_example_bracket_writes_every_format_and_a_readme(tmp_path):
    out = write_example_bracket(tmp_path / "example", width=96, height=64, shake_px=2.0)
    assert set(out) == {"jpeg", "tiff", "dng"}
    for fmt, paths in out.items():
        assert len(paths) == 3 and all(p.is_file() and p.parent.name == fmt for p in paths)
    biases = [_rational(_exif(p)["EXIF ExposureBiasValue"]) for p in out["jpeg"]]
    assert biases == [0, -2, 2]  # not sorted by exposure: readers must sort by EV
    readme = (tmp_path / "example" / "README.txt").read_text()
    assert "procedural" in readme and "EV -2" in readme and "shake" in readme.lower()
