"""uhdfuse.io: finding inputs, decoding frames, exposure metadata, writing outputs."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import exifread
import exiv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from uhdfuse.colour import srgb_decode
from uhdfuse.errors import OutputError, UnsupportedInput
from uhdfuse.io import (
    SUPPORTED_EXTENSIONS,
    OutputMetadata,
    check_output,
    keep_exif_key,
    list_inputs,
    read_encoded,
    read_frame,
    read_metadata,
    read_provenance,
    srgb_icc_profile,
    write_image,
)
from uhdfuse.io import write as io_write
from uhdfuse.io.metadata import maker_note_lens
from uhdfuse.types import ExposureInfo

from .tags import set_tags

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --------------------------------------------------------------------------- helpers


def _gradient(height: int = 48, width: int = 64) -> np.ndarray:
    """A uint8 RGB image whose channels differ, so that channel swaps and flips show."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack(
        [(x * 255 // (width - 1)), (y * 255 // (height - 1)), ((x + y) % 256)], axis=2
    ).astype(np.uint8)


def _save_rgb(path: Path, rgb: np.ndarray) -> Path:
    """Write RGB uint8/uint16 with OpenCV (which wants BGR)."""
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _distinct_icc() -> bytes:
    """A valid RGB profile that differs from uhdfuse's fallback sRGB one (other date)."""
    icc = bytearray(srgb_icc_profile())
    icc[24:36] = struct.pack(">6H", 2001, 2, 3, 4, 5, 6)
    return bytes(icc)


def _tag_camera_file(path: Path, *, orientation: int = 1, exposure: str = "1/80") -> Path:
    """Give an image file the metadata a camera JPEG has: EXIF, GPS, XMP, IPTC, ICC."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    exif["Exif.Image.Make"] = "TestMaker"
    exif["Exif.Image.Model"] = "Model X100"
    exif["Exif.Image.Orientation"] = str(orientation)
    exif["Exif.Image.Artist"] = "Ada Photographer"
    exif["Exif.Image.Copyright"] = "(c) Ada"
    exif["Exif.Image.Software"] = "Camera firmware 1.0"
    exif["Exif.Photo.ExposureTime"] = exposure
    exif["Exif.Photo.FNumber"] = "56/10"
    exif["Exif.Photo.ISOSpeedRatings"] = "200"
    exif["Exif.Photo.ExposureBiasValue"] = "-2/3"
    exif["Exif.Photo.DateTimeOriginal"] = "2024:06:15 14:30:00"
    exif["Exif.Photo.LensModel"] = "Test 35mm F2"
    exif["Exif.Photo.FocalLength"] = "35/1"
    exif["Exif.Photo.ColorSpace"] = "65535"
    exif["Exif.Photo.MakerNote"] = "1 2 3 4 5 6 7 8"
    exif["Exif.GPSInfo.GPSVersionID"] = "2 3 0 0"
    exif["Exif.GPSInfo.GPSLatitudeRef"] = "N"
    exif["Exif.GPSInfo.GPSLatitude"] = "47/1 22/1 1812/100"
    exif["Exif.GPSInfo.GPSLongitudeRef"] = "E"
    exif["Exif.GPSInfo.GPSLongitude"] = "8/1 32/1 3228/100"
    ok, thumb = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    exiv2.ExifThumb(exif).setJpegThumbnail(thumb.tobytes(), exiv2.URational((72, 1)),
                                            exiv2.URational((72, 1)), 2)
    image.setExifData(exif)
    xmp = image.xmpData()
    xmp["Xmp.dc.creator"] = "Ada Photographer"
    xmp["Xmp.tiff.Orientation"] = str(orientation)
    xmp["Xmp.crs.Exposure2012"] = "+1.50"  # a RAW converter's edit: must not be re-applied
    xmp["Xmp.xmp.Rating"] = "4"
    image.setXmpData(xmp)
    iptc = image.iptcData()
    iptc["Iptc.Application2.Keywords"] = "bracket"
    image.setIptcData(iptc)
    image.setIccProfile(exiv2.DataBuf(_distinct_icc()), True)
    image.writeMetadata()
    return path


def _exiv2_keys(path: Path) -> tuple[dict[str, str], dict[str, str], bytes | None]:
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = {d.key(): d.toString() for d in image.exifData()}
    xmp = {d.key(): d.toString() for d in image.xmpData()}
    icc = bytes(image.iccProfile().data()) if image.iccProfileDefined() else None
    return exif, xmp, icc


def _exifread(path: Path) -> dict[str, str]:
    with open(path, "rb") as fh:
        return {k: str(v) for k, v in exifread.process_file(fh, details=False).items()}


@pytest.fixture
def io_camera_jpeg(tmp_path: Path) -> Path:
    path = _save_rgb(tmp_path / "camera.jpg", _gradient())
    return _tag_camera_file(path)


# --------------------------------------------------------------------------- inputs


def test_supported_extensions_cover_display_and_raw_formats():
    for ext in (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dng", ".cr2", ".cr3", ".nef",
                ".arw", ".raf", ".orf", ".rw2", ".mos"):
        assert ext in SUPPORTED_EXTENSIONS
    assert all(e == e.lower() and e.startswith(".") for e in SUPPORTED_EXTENSIONS)
    assert ".xmp" not in SUPPORTED_EXTENSIONS and ".txt" not in SUPPORTED_EXTENSIONS


def test_list_inputs_expands_folder_sorted_and_skips_hidden_sidecars_and_subfolders(tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in ("c.JPG", "a.png", "b.cr2", "b.cr2.xmp", "a.xmp", ".hidden.jpg", "notes.txt"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.jpg").write_bytes(b"x")
    assert [p.name for p in list_inputs([folder])] == ["a.png", "b.cr2", "c.JPG"]


def test_list_inputs_keeps_given_file_order_and_mixes_with_folders(tmp_path):
    for name in ("z.jpg", "y.tif"):
        (tmp_path / name).write_bytes(b"x")
    folder = tmp_path / "more"
    folder.mkdir()
    (folder / "m.png").write_bytes(b"x")
    result = list_inputs([tmp_path / "z.jpg", folder, tmp_path / "y.tif"])
    assert [p.name for p in result] == ["z.jpg", "m.png", "y.tif"]


def test_list_inputs_errors_name_the_path(tmp_path):
    with pytest.raises(UnsupportedInput, match="no such file or folder") as err:
        list_inputs([tmp_path / "missing.jpg"])
    assert err.value.path == tmp_path / "missing.jpg"
    (tmp_path / "photo.xmp").write_text("<x/>")
    with pytest.raises(UnsupportedInput, match=r"unsupported file type '\.xmp'"):
        list_inputs([tmp_path / "photo.xmp"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(UnsupportedInput, match="no supported image") as err:
        list_inputs([empty])
    assert "empty" in str(err.value)


# --------------------------------------------------------------------------- display decoding


def test_read_frame_8bit_png_is_srgb_linearised_rgb(tmp_path):
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255  # pure red must land in channel 0 (OpenCV works in BGR)
    rgb[0, 0] = (128, 64, 0)
    frame = read_frame(_save_rgb(tmp_path / "red.png", rgb))
    assert frame.source == "display" and frame.bit_depth == 8
    assert frame.image.dtype == np.float32 and frame.image.shape == (4, 6, 3)
    assert frame.size == (6, 4)
    np.testing.assert_allclose(frame.image[1, 1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(frame.image[0, 0], [0.2158605, 0.0512695, 0.0], atol=1e-6)


def test_read_frame_16bit_png_and_tiff_scale_by_65535(tmp_path):
    rng = np.random.default_rng(3)
    rgb16 = rng.integers(0, 65536, size=(16, 20, 3), dtype=np.uint16)
    expected = srgb_decode(rgb16 / 65535.0)
    png = read_frame(_save_rgb(tmp_path / "a.png", rgb16))
    tif_path = tmp_path / "a.tif"
    tifffile.imwrite(tif_path, rgb16, photometric="rgb")
    tif = read_frame(tif_path)
    for frame in (png, tif):
        assert frame.bit_depth == 16
        np.testing.assert_allclose(frame.image, expected, atol=2e-6)


def test_read_frame_grey_and_alpha_become_three_channels(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    assert cv2.imwrite(str(tmp_path / "g.png"), grey)
    frame = read_frame(tmp_path / "g.png")
    assert frame.image.shape == (3, 4, 3)
    np.testing.assert_array_equal(frame.image[..., 0], frame.image[..., 2])
    rgba = np.dstack([_gradient(8, 8), np.full((8, 8), 7, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "a.png"), rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_encoded(tmp_path / "a.png"), rgba[:, :, :3])
    grey_tif = tmp_path / "g.tif"
    tifffile.imwrite(grey_tif, grey, photometric="minisblack")
    np.testing.assert_array_equal(read_encoded(grey_tif), np.repeat(grey[:, :, None], 3, 2))


def test_read_frame_float_tiff_is_taken_as_linear(tmp_path):
    linear = np.random.default_rng(4).random((8, 9, 3)).astype(np.float32) * 4.0
    linear[0, 0, 0] = np.nan
    path = tmp_path / "hdr.tif"
    tifffile.imwrite(path, linear, photometric="rgb")
    frame = read_frame(path)
    assert frame.bit_depth == 32 and frame.source == "display"
    assert frame.image[0, 0, 0] == 0.0  # NaN does not leak into the pipeline
    np.testing.assert_array_equal(frame.image.ravel()[1:], linear.ravel()[1:])


def test_read_frame_planar_and_lzw_tiffs(tmp_path):
    rgb = _gradient(10, 12)
    planar = tmp_path / "planar.tif"
    tifffile.imwrite(planar, np.moveaxis(rgb, 2, 0), photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_encoded(planar), rgb)
    lzw = _save_rgb(tmp_path / "lzw.tif", rgb)  # OpenCV writes LZW, which tifffile alone cannot
    np.testing.assert_array_equal(read_encoded(lzw), rgb)


def test_read_frame_uses_response_lut_directly_or_interpolated(tmp_path):
    lut = np.stack([np.linspace(0, 1, 256) ** p for p in (1.0, 2.0, 3.0)], axis=1).astype(np.float32)
    rgb8 = np.array([[[0, 128, 255], [10, 20, 30]]], np.uint8)
    frame8 = read_frame(_save_rgb(tmp_path / "a.png", rgb8), lut=lut)
    expected8 = np.stack([lut[rgb8[..., c], c] for c in range(3)], axis=-1)
    np.testing.assert_allclose(frame8.image, expected8, atol=1e-7)
    # 16-bit file with a 256-entry LUT: v16 = 257 * v8 hits LUT entries exactly.
    rgb16 = rgb8.astype(np.uint16) * 257
    frame16 = read_frame(_save_rgb(tmp_path / "b.png", rgb16), lut=lut)
    np.testing.assert_allclose(frame16.image, expected8, atol=1e-6)
    mid = np.full((1, 1, 3), 257 * 100 + 128, np.uint16)  # halfway between entries 100 and 101
    frame_mid = read_frame(_save_rgb(tmp_path / "c.png", mid), lut=lut)
    halfway = (lut[100] + lut[101]) / 2
    np.testing.assert_allclose(frame_mid.image[0, 0], halfway, rtol=2e-3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path, orientation):
    rgb = _gradient(6, 10)
    path = _save_rgb(tmp_path / "o.png", rgb)
    set_tags(path, exif={"Exif.Image.Orientation": str(orientation)})
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    frame = read_frame(path)
    assert frame.camera.orientation == orientation
    np.testing.assert_array_equal(read_encoded(path), expected)
    np.testing.assert_allclose(frame.image, srgb_decode(expected / 255.0), atol=1e-6)


def test_rotated_jpeg_reads_upright(tmp_path):
    path = _save_rgb(tmp_path / "portrait.jpg", _gradient(48, 64))
    _tag_camera_file(path, orientation=6)
    frame = read_frame(path)
    assert frame.image.shape == (64, 48, 3)
    assert frame.camera.orientation == 6


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image\n" * 5, "unrecognised content"),
        ("text.png", b"hello", "unrecognised content"),
        ("noframe.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 7 + b"\xff\xd9", "JPEG"),
        ("junk.cr2", b"II*\x00" + b"\x00" * 200, "RAW"),
        ("junk.dng", b"garbage" * 50, "RAW"),
    ],
)
def test_unreadable_files_raise_unsupported_input_with_one_line_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UnsupportedInput, match=reason) as err:
        read_frame(path)
    assert err.value.path == path
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == content  # never modified


def test_truncated_files_raise_unsupported_input(tmp_path):
    rng = np.random.default_rng(5)
    noisy = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    for suffix in (".png", ".jpg"):
        full = _save_rgb(tmp_path / f"full{suffix}", noisy).read_bytes()
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(full[: len(full) // 3])
        try:
            frame = read_frame(cut)
        except UnsupportedInput as err:
            assert err.path == cut
        else:  # libjpeg pads a truncated scan with grey instead of failing: still no crash
            assert suffix == ".jpg" and frame.image.shape == (64, 64, 3)
    tif = tmp_path / "cut.tif"
    tifffile.imwrite(tmp_path / "full.tif", noisy, photometric="rgb", compression="zlib")
    tif.write_bytes((tmp_path / "full.tif").read_bytes()[:300])
    with pytest.raises(UnsupportedInput):
        read_frame(tif)


def test_jpeg_missing_only_its_end_marker_is_read_with_a_note(tmp_path):
    whole = _save_rgb(tmp_path / "whole.jpg", _gradient())
    assert read_frame(whole).notes == ()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[:-2])
    frame = read_frame(cut)
    np.testing.assert_array_equal(frame.image, read_frame(whole).image)
    assert len(frame.notes) == 1 and "cut.jpg: JPEG lacks its end marker" in frame.notes[0]


def test_cmyk_inputs_are_refused_with_a_clear_reason(tmp_path):
    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(tmp_path / "cmyk.jpg")
    with pytest.raises(UnsupportedInput, match="CMYK"):
        read_frame(tmp_path / "cmyk.jpg")
    tifffile.imwrite(tmp_path / "cmyk.tif", np.zeros((8, 8, 4), np.uint8), photometric="separated")
    with pytest.raises(UnsupportedInput, match="CMYK"):
        read_frame(tmp_path / "cmyk.tif")


def test_pixel_limit_is_checked_from_the_header(tmp_path):
    png = _save_rgb(tmp_path / "a.png", _gradient(40, 50))
    jpg = _save_rgb(tmp_path / "a.jpg", _gradient(40, 50))
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, _gradient(40, 50), photometric="rgb")
    for path in (png, jpg, tif):
        with pytest.raises(UnsupportedInput, match=r"claims 50x40 pixels.*raise it with max_pixels"):
            read_frame(path, max_pixels=1999)
        assert read_frame(path, max_pixels=2000).size == (50, 40)
    # A bomb: a valid PNG header claiming 100000 x 100000 pixels and no data behind it.
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
        + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)) + b"\x00" * 16
    )
    with pytest.raises(UnsupportedInput, match="100000x100000"):
        read_frame(bomb)


def test_read_encoded_refuses_raw_and_float(tmp_path):
    (tmp_path / "x.nef").write_bytes(b"x" * 10)
    with pytest.raises(UnsupportedInput, match="RAW"):
        read_encoded(tmp_path / "x.nef")
    tifffile.imwrite(tmp_path / "f.tif", np.zeros((4, 4, 3), np.float32), photometric="rgb")
    with pytest.raises(UnsupportedInput, match="float"):
        read_encoded(tmp_path / "f.tif")


# --------------------------------------------------------------------------- metadata in


def test_read_metadata_reads_camera_exif(io_camera_jpeg):
    before = _digest(io_camera_jpeg)
    exposure, camera = read_metadata(io_camera_jpeg)
    assert exposure.exposure_time == pytest.approx(1 / 80)
    assert exposure.f_number == pytest.approx(5.6)
    assert exposure.iso == 200
    assert exposure.bias_ev == pytest.approx(-2 / 3)
    assert camera.make == "TestMaker" and camera.model == "Model X100"
    assert camera.lens == "Test 35mm F2" and camera.focal_length == 35
    assert camera.datetime == "2024:06:15 14:30:00" and camera.orientation == 1
    assert _digest(io_camera_jpeg) == before


@pytest.mark.parametrize("exposure", ["0/1", "1/0", "0/0"])
def test_nonsense_exposure_time_is_none(tmp_path, exposure):
    path = _tag_camera_file(_save_rgb(tmp_path / "a.jpg", _gradient()), exposure=exposure)
    assert read_metadata(path)[0].exposure_time is None


def test_read_metadata_falls_back_to_xmp_and_defaults(tmp_path):
    path = _save_rgb(tmp_path / "xmp_only.png", _gradient(8, 8))
    set_tags(path, xmp={"Xmp.exif.ExposureTime": "1/250", "Xmp.exif.DateTimeOriginal": "2020-01-02T03:04:05",
                        "Xmp.tiff.Make": "XmpCam"})  # fmt: skip
    exposure, camera = read_metadata(path)
    assert exposure.exposure_time == pytest.approx(1 / 250)
    assert exposure.f_number is None and exposure.bias_ev is None
    assert camera.make == "XmpCam" and camera.datetime == "2020:01:02 03:04:05"
    negative = _save_rgb(tmp_path / "negative.png", _gradient(8, 8))
    set_tags(negative, xmp={"Xmp.exif.ExposureTime": "-1/50", "Xmp.exif.FNumber": "0/0"})
    assert read_metadata(negative)[0] == ExposureInfo()
    bare = _save_rgb(tmp_path / "bare.png", _gradient(8, 8))
    assert read_metadata(bare)[0].exposure_time is None
    assert read_metadata(bare)[1].orientation == 1
    with pytest.raises(UnsupportedInput):
        read_metadata(tmp_path / "gone.jpg")


def test_read_metadata_is_fast(io_camera_jpeg):
    import time

    start = time.perf_counter()
    for _ in range(200):
        read_metadata(io_camera_jpeg)
    assert time.perf_counter() - start < 2.0  # 1,500 files must take seconds, not minutes


# --------------------------------------------------------------------------- writing


@pytest.mark.parametrize(("name", "bit_depth"), [("o.png", 8), ("o.png", 16), ("o.tif", 8), ("o.tif", 16)])
def test_write_image_round_trips_code_values_exactly(tmp_path, name, bit_depth):
    top = (1 << bit_depth) - 1
    rng = np.random.default_rng(6)
    codes = rng.integers(0, top + 1, size=(33, 47, 3))
    image = (codes / top).astype(np.float32)
    image[0, 0] = (-0.5, 1.5, np.nan)  # clipped; NaN -> 0
    out = write_image(tmp_path / name, image, bit_depth=bit_depth).path
    assert out == tmp_path / name
    read = read_encoded(out)
    assert read.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    codes[0, 0] = (0, top, 0)
    np.testing.assert_array_equal(read, codes)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


def test_write_float_tiff_is_lossless(tmp_path):
    linear = (np.random.default_rng(7).random((20, 30, 3)) * 50).astype(np.float32)
    out = write_image(tmp_path / "hdr.tiff", linear, bit_depth=32).path
    np.testing.assert_array_equal(tifffile.imread(out), linear)
    assert read_frame(out).bit_depth == 32


def test_write_image_refuses_bad_requests_before_writing(tmp_path):
    image = np.zeros((4, 4, 3), np.float32)
    with pytest.raises(OutputError, match="TIFF"):
        write_image(tmp_path / "hdr.png", image, bit_depth=32)
    with pytest.raises(OutputError, match=r"unknown output format \.webp"):
        write_image(tmp_path / "out.webp", image, bit_depth=8)
    with pytest.raises(OutputError, match="JPEG holds 8 bits"):
        write_image(tmp_path / "out.jpg", image, bit_depth=16)
    target = tmp_path / "exists.png"
    target.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists; use force=True to overwrite"):
        write_image(target, image, bit_depth=8)
    assert target.read_bytes() == b"precious"
    write_image(target, image, bit_depth=8, force=True)
    assert read_encoded(target).shape == (4, 4, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.png"]


def test_check_output_refuses_inputs_folders_and_existing_files(tmp_path):
    frame = _save_rgb(tmp_path / "frame.png", _gradient(4, 4))
    with pytest.raises(OutputError, match="is one of the inputs"):
        check_output(tmp_path / "." / "frame.png", [frame], force=True)
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path, [frame], force=True)
    with pytest.raises(OutputError, match="already exists; use force=True to overwrite"):
        check_output(frame)
    check_output(frame, force=True)
    check_output(tmp_path / "new.tif", [frame])


def test_write_image_creates_missing_folders(tmp_path):
    out = write_image(tmp_path / "a" / "b" / "o.png", np.ones((2, 2, 3), np.float32), bit_depth=8).path
    assert out.is_file()


@pytest.mark.parametrize("failure", ["disk_full", "interrupt"])
def test_failed_write_leaves_no_temp_and_keeps_the_old_file(tmp_path, monkeypatch, failure):
    target = tmp_path / "o.tif"
    target.write_bytes(b"old")

    def broken_fsync(path):
        assert path.name.startswith(".o.tif.uhdfuse-") and path.exists()
        if failure == "disk_full":
            raise OSError(errno.ENOSPC, "No space left on device")
        raise KeyboardInterrupt

    monkeypatch.setattr(io_write, "_fsync", broken_fsync)
    expected = OutputError if failure == "disk_full" else KeyboardInterrupt
    with pytest.raises(expected) as err:
        write_image(target, np.zeros((4, 4, 3), np.float32), bit_depth=16, force=True)
    if failure == "disk_full":
        assert "No space left on device" in str(err.value) and err.value.path == target
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.tif"]


def test_output_folder_that_is_a_file_raises_output_error(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OutputError, match="cannot create folder") as err:
        write_image(tmp_path / "taken" / "o.png", np.zeros((2, 2, 3), np.float32), bit_depth=8)
    assert err.value.path == tmp_path / "taken" / "o.png"


def test_unwritable_folder_raises_output_error(tmp_path):
    import os

    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            write_image(folder / "o.png", np.zeros((2, 2, 3), np.float32), bit_depth=8)
    finally:
        folder.chmod(0o700)


# --------------------------------------------------------------------------- metadata out


def _metadata(reference: Path) -> OutputMetadata:
    return OutputMetadata(
        reference=reference,
        sources=(("dark@night.jpg", -2.0), ("camera.jpg", 0.0), ("bright.jpg", 1.333)),
        software="uhdfuse 0.1.0",
        engine="mertens",
    )


@pytest.mark.parametrize("name", ["fused.tif", "fused.png"])
def test_metadata_is_carried_over_to_16bit_output(tmp_path, io_camera_jpeg, name):
    pixels = np.random.default_rng(8).random((40, 56, 3)).astype(np.float32)
    out = write_image(tmp_path / "out" / name, pixels, bit_depth=16, metadata=_metadata(io_camera_jpeg)).path

    # Pixels survive exiv2 rewriting the file.
    read = tifffile.imread(out) if name.endswith(".tif") else read_encoded(out)
    np.testing.assert_array_equal(read, np.rint(pixels.astype(np.float64) * 65535))

    tags = _exifread(out)
    assert tags["Image Make"] == "TestMaker" and tags["Image Model"] == "Model X100"
    assert tags["EXIF ExposureTime"] == "1/80"
    assert tags["EXIF DateTimeOriginal"] == "2024:06:15 14:30:00"
    assert tags["EXIF LensModel"] == "Test 35mm F2"
    assert tags["GPS GPSLatitudeRef"] == "N" and tags["GPS GPSLatitude"] == "[47, 22, 453/25]"
    assert tags["Image Software"] == "uhdfuse 0.1.0"
    assert tags["Image Orientation"] == "Horizontal (normal)"
    assert tags["Image Artist"] == "Ada Photographer"

    exif, xmp, icc = _exiv2_keys(out)
    assert not [k for k in exif if k.startswith(("Exif.Thumbnail.", "Exif.Canon", "Exif.Nikon"))]
    assert "Exif.Photo.MakerNote" not in exif
    assert exif["Exif.Photo.ColorSpace"] == "65535"  # the reference's, with its own ICC profile
    assert icc == _distinct_icc()
    assert xmp["Xmp.dc.creator"] == "Ada Photographer" and xmp["Xmp.xmp.Rating"] == "4"
    assert xmp["Xmp.tiff.Orientation"] == "1"
    assert not [k for k in xmp if k.startswith("Xmp.crs.")]
    assert read_provenance(out) == (
        "mertens", (("dark@night.jpg", -2.0), ("camera.jpg", 0.0), ("bright.jpg", 1.33))
    )
    image = exiv2.ImageFactory.open(str(out))
    image.readMetadata()
    assert [d.toString() for d in image.iptcData()] == ["bracket"]
    if name.endswith(".png"):
        assert exif["Exif.Photo.PixelXDimension"] == "56"
        assert exif["Exif.Photo.PixelYDimension"] == "40"
        # The ICC chunk must be one libpng accepts: Pillow exposes it only then.
        assert Image.open(out).info["icc_profile"] == _distinct_icc()


def test_rotated_reference_gives_orientation_1(tmp_path):
    ref = _tag_camera_file(_save_rgb(tmp_path / "r.jpg", _gradient()), orientation=6)
    out = write_image(tmp_path / "o.tif", np.zeros((64, 48, 3), np.float32), bit_depth=8,
                      metadata=_metadata(ref)).path
    exif, xmp, _ = _exiv2_keys(out)
    assert exif["Exif.Image.Orientation"] == "1" and xmp["Xmp.tiff.Orientation"] == "1"
    assert read_frame(out).image.shape == (64, 48, 3)


def test_untagged_reference_gets_srgb_profile_and_float_output_none(tmp_path):
    ref = _save_rgb(tmp_path / "plain.png", _gradient(8, 8))
    display = write_image(tmp_path / "o.png", np.zeros((8, 8, 3), np.float32), bit_depth=8,
                          metadata=_metadata(ref)).path
    exif, _, icc = _exiv2_keys(display)
    assert icc == srgb_icc_profile() and exif["Exif.Photo.ColorSpace"] == "1"
    hdr = write_image(tmp_path / "o.tif", np.zeros((8, 8, 3), np.float32), bit_depth=32,
                      metadata=_metadata(ref)).path
    exif, xmp, icc = _exiv2_keys(hdr)
    assert icc is None and exif["Exif.Photo.ColorSpace"] == "65535"
    assert xmp["Xmp.uhdfuse.ColourSpace"] == "linear"


def test_raw_sidecar_xmp_is_carried_and_unreadable_reference_only_warns(tmp_path):
    raw = tmp_path / "IMG_1.CR3"
    raw.write_bytes(b"not really a raw file")
    (tmp_path / "IMG_1.xmp").write_text(
        '<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        'xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/" xmp:Rating="5" crs:Exposure2012="+1.0"/>'
        '</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )
    written = write_image(tmp_path / "o.png", np.zeros((4, 4, 3), np.float32), bit_depth=8,
                          metadata=_metadata(raw))
    assert any("metadata not carried over" in note for note in written.notes)
    out = written.path
    _, xmp, icc = _exiv2_keys(out)
    assert xmp["Xmp.xmp.Rating"] == "5" and "Xmp.crs.Exposure2012" not in xmp
    assert icc == srgb_icc_profile()
    assert _exifread(out)["Image Software"] == "uhdfuse 0.1.0"


def test_exif_filter_keeps_capture_tags_and_drops_layout():
    for key in ("Exif.Photo.ExposureTime", "Exif.Photo.LensModel", "Exif.GPSInfo.GPSLatitude",
                "Exif.Image.Make", "Exif.Image.Copyright"):
        assert keep_exif_key(key), key
    for key in ("Exif.Photo.MakerNote", "Exif.Thumbnail.JPEGInterchangeFormat", "Exif.Image.DNGVersion",
                "Exif.Image.BlackLevel", "Exif.Image.CFAPattern", "Exif.Image.StripOffsets",
                "Exif.Image.BitsPerSample", "Exif.SubImage1.NewSubfileType", "Exif.Canon.LensModel",
                "Exif.Image.NewSubfileType", "Exif.Image.SubIFDs"):
        assert not keep_exif_key(key), key


def test_maker_note_lens_fills_lens_model():
    exif = exiv2.ExifData()
    exif["Exif.Image.Make"] = "Canon"
    exif["Exif.Canon.LensModel"] = "EF-S18-55mm f/3.5-5.6 IS"
    assert maker_note_lens(exif) == "EF-S18-55mm f/3.5-5.6 IS"
    unknown = exiv2.ExifData()
    unknown["Exif.CanonCs.LensType"] = "173"  # an id exiv2 cannot name out of context
    assert maker_note_lens(unknown) is None


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool not installed")
@pytest.mark.parametrize("name", ["fused.tif", "fused.png"])
def test_exiftool_reads_the_output_without_errors(tmp_path, io_camera_jpeg, name):
    out = write_image(tmp_path / name, np.full((16, 16, 3), 0.5, np.float32), bit_depth=16,
                      metadata=_metadata(io_camera_jpeg)).path
    result = subprocess.run(
        ["exiftool", "-j", "-n", "-warning", "-error", "-a",
         "-Make", "-Model", "-ExposureTime", "-DateTimeOriginal", "-GPSLatitude", "-Software",
         "-Orientation", "-ThumbnailImage", "-XMP-uhdfuse:all", str(out)],
        capture_output=True, text=True, check=True,
    )
    info = json.loads(result.stdout)[0]
    assert info["Make"] == "TestMaker" and info["Model"] == "Model X100"
    assert info["ExposureTime"] == pytest.approx(1 / 80)
    assert info["DateTimeOriginal"] == "2024:06:15 14:30:00"
    assert info["GPSLatitude"] == pytest.approx(47 + 22 / 60 + 18.12 / 3600, abs=1e-6)
    assert info["Software"] == "uhdfuse 0.1.0" and info["Orientation"] == 1
    assert "ThumbnailImage" not in info and "Error" not in info
    assert "Warning" not in info, info["Warning"]  # a broken IFD, XMP or ICC would show here
    assert info["Engine"] == "mertens"


# --------------------------------------------------------------------------- RAW


def _synthetic_dng(path: Path) -> Path:
    dng = pytest.importorskip("uhdfuse.synthetic.dng")
    from uhdfuse.types import CameraInfo, ExposureInfo

    linear = np.zeros((32, 48, 3), np.float32)
    linear[:, :24] = (0.5, 0.25, 0.125)
    linear[:, 24:] = (0.05, 0.1, 0.2)
    return dng.write_dng(
        path, linear,
        exposure=ExposureInfo(exposure_time=1 / 125, f_number=8.0, iso=100, bias_ev=1.0),
        camera=CameraInfo(make="uhdfuse", model="Synthetic Camera", datetime="2024:06:15 14:30:00"),
    )


def test_read_frame_and_metadata_of_a_dng(tmp_path):
    path = _synthetic_dng(tmp_path / "frame.dng")
    before = _digest(path)
    frame = read_frame(path)
    assert frame.source == "raw" and frame.bit_depth == 14
    assert frame.image.dtype == np.float32 and frame.image.shape[2] == 3
    # The synthetic camera sees linear sRGB: developed values come back (demosaic aside).
    np.testing.assert_allclose(frame.image[8:24, 4:18].mean(axis=(0, 1)), (0.5, 0.25, 0.125), rtol=0.03)
    np.testing.assert_allclose(frame.image[8:24, 30:44].mean(axis=(0, 1)), (0.05, 0.1, 0.2), rtol=0.05)
    assert frame.exposure.exposure_time == pytest.approx(1 / 125)
    assert frame.exposure.bias_ev == pytest.approx(1.0)
    assert frame.camera.make == "uhdfuse" and frame.camera.datetime == "2024:06:15 14:30:00"
    assert _digest(path) == before


def test_dng_reference_drops_raw_tags_and_gets_srgb(tmp_path):
    ref = _synthetic_dng(tmp_path / "frame.dng")
    out = write_image(tmp_path / "o.tif", np.zeros((32, 48, 3), np.float32), bit_depth=16,
                      metadata=_metadata(ref)).path
    exif, _, icc = _exiv2_keys(out)
    assert exif["Exif.Image.Make"] == "uhdfuse"
    assert exif["Exif.Photo.ExposureTime"] == "1/125"
    dropped = ("DNGVersion", "BlackLevel", "WhiteLevel", "CFAPattern", "ColorMatrix1", "SubIFDs",
               "AsShotNeutral", "UniqueCameraModel")
    assert not [k for k in exif if k.split(".")[-1] in dropped or k.startswith("Exif.SubImage")]
    assert exif["Exif.Image.BitsPerSample"] == "16 16 16"  # the TIFF's own structure survives
    assert icc == srgb_icc_profile() and exif["Exif.Photo.ColorSpace"] == "1"


# --------------------------------------------------------------------------- real data


def _shared(*parts: str) -> Path:
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


def _exposure_table(folder: Path) -> dict[str, tuple[float, ...]]:
    rows = {}
    for line in (folder / "exposures.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, *values = line.split()
            rows[name] = tuple(float(v) for v in values)
    return rows


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "folder", [("banterle_hdrtoolbox_stacks", "stack_alignment"), ("dsift_ef_dynamic", "ForrestSequence")]
)
def test_real_files_metadata_matches_exiftool_table(folder):
    directory = _shared(*folder)
    for name, (time, f_number, iso, bias) in _exposure_table(directory).items():
        exposure, camera = read_metadata(directory / name)
        assert exposure.exposure_time == pytest.approx(time, rel=1e-6), name
        assert exposure.f_number == pytest.approx(f_number) and exposure.iso == pytest.approx(iso)
        assert exposure.bias_ev == pytest.approx(bias)
        assert camera.make == "Canon" and camera.datetime is not None


@pytest.mark.shared_data
def test_real_memorial_png_and_forrest_tiff_decode():
    png = read_frame(_shared("debevec_memorial", "memorial0061.png"))
    assert png.size == (512, 768) and png.bit_depth == 8
    assert 0.0 <= png.image.min() and png.image.max() <= 1.0 and png.image.mean() > 0.05
    tif = read_frame(_shared("dsift_ef_dynamic", "ForrestSequence", "1_Scene7_10.tif"))
    assert tif.size == (1024, 683) and tif.exposure.exposure_time == pytest.approx(1 / 500)


@pytest.mark.shared_data
def test_real_dng_develops_to_linear_srgb():
    frame = read_frame(_shared("raw_single_dng", "colorchart.dng"))
    assert frame.source == "raw" and frame.bit_depth == 14
    assert frame.size == (1734, 1156)
    assert 0.0 <= frame.image.min() and frame.image.max() <= 1.0
