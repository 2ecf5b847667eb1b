"""Write a linear RGB image as a minimal, standard-conforming Bayer DNG.

Layout (the one cameras and Adobe's converter use): IFD0 is a small 8-bit RGB
preview that carries the DNG and camera tags and points (SubIFDs) to the raw
CFA image; an EXIF IFD holds the exposure settings.

The "camera" of these files sees linear sRGB: ColorMatrix1 is the D65
XYZ -> linear-sRGB matrix, so a raw converter's camera -> sRGB step is the
identity and ``rawpy ... postprocess(use_camera_wb=True, output_color=sRGB,
gamma=(1, 1), no_auto_bright=True)`` returns the input. Readers should pass
``adjust_maximum_thr=0`` to LibRaw: otherwise, when the brightest raw value is
between 75 % and 100 % of the white level, LibRaw takes it as the white level
and brightens the image.
"""

from __future__ import annotations

import struct
from datetime import datetime
from pathlib import Path

import numpy as np
import tifffile

from uhdfuse.colour import srgb_encode
from uhdfuse.errors import OutputError, UsageError
from uhdfuse.io.dng import colour_tags, rational
from uhdfuse.types import CameraInfo, ExposureInfo

_CFA_COLOURS = {"R": 0, "G": 1, "B": 2}
_PREVIEW_LONG_SIDE = 256
MIN_SIZE = 22  # LibRaw takes smaller images for non-raw files

# TIFF tag codes used below.
_ORIENTATION, _DATETIME = 274, 306
_CFA_REPEAT_DIM, _CFA_PATTERN, _EXIF_IFD = 33421, 33422, 34665
# tifffile refuses to write an ExifIFD pointer, so IFD0 gets this unassigned code,
# which sorts into the same slot of the (ordered) IFD, and it is renamed afterwards.
_EXIF_PLACEHOLDER = 34666
_CFA_PLANE_COLOR, _CFA_LAYOUT = 50710, 50711
_BLACK_REPEAT_DIM, _BLACK_LEVEL, _WHITE_LEVEL = 50713, 50714, 50717
_ACTIVE_AREA = 50829


def mosaic(linear_rgb: np.ndarray, cfa: str) -> np.ndarray:
    """Sample (H, W, 3) RGB through a 2x2 colour filter array such as "RGGB" -> (H, W)."""
    if len(cfa) != 4 or any(ch not in _CFA_COLOURS for ch in cfa.upper()):
        raise ValueError(f"cfa must be four letters of R, G, B such as 'RGGB', got {cfa!r}")
    out = np.empty(linear_rgb.shape[:2], linear_rgb.dtype)
    for k, ch in enumerate(cfa.upper()):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = linear_rgb[dy::2, dx::2, _CFA_COLOURS[ch]]
    return out


def _exif_ifd(exposure: ExposureInfo, camera: CameraInfo) -> list[tuple[int, int, int, bytes]]:
    """Entries (tag, type, count, packed little-endian value) of the EXIF sub-IFD."""
    entries: list[tuple[int, int, int, bytes]] = []

    def ascii_tag(tag: int, text: str) -> None:
        data = text.encode("ascii", "replace") + b"\0"
        entries.append((tag, 2, len(data), data))

    def rational_tag(tag: int, value: float, signed: bool = False) -> None:
        num, den = rational(value, 10000 if signed else 1_000_000)
        entries.append((tag, 10 if signed else 5, 1, struct.pack("<ii" if signed else "<II", num, den)))

    entries.append((36864, 7, 4, b"0231"))  # ExifVersion
    if exposure.exposure_time is not None:
        rational_tag(33434, exposure.exposure_time)
    if exposure.f_number is not None:
        rational_tag(33437, exposure.f_number)
    if exposure.iso is not None:
        entries.append((34855, 3, 1, struct.pack("<H", int(round(exposure.iso)))))
    if camera.datetime is not None:
        ascii_tag(36867, camera.datetime)
    if exposure.bias_ev is not None:
        rational_tag(37380, exposure.bias_ev, signed=True)
    if camera.focal_length is not None:
        rational_tag(37386, camera.focal_length)
    if camera.lens is not None:
        ascii_tag(42036, camera.lens)
    return sorted(entries)


def _append_ifd(fh, entries: list[tuple[int, int, int, bytes]]) -> int:
    """Write a little-endian classic-TIFF IFD at the end of ``fh``; return its offset."""
    fh.seek(0, 2)
    if fh.tell() % 2:
        fh.write(b"\0")
    start = fh.tell()
    data_at = start + 2 + 12 * len(entries) + 4
    table, blob = [], b""
    for tag, typ, count, value in entries:
        if len(value) <= 4:
            table.append(struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0"))
        else:
            table.append(struct.pack("<HHII", tag, typ, count, data_at + len(blob)))
            blob += value + (b"\0" if len(value) % 2 else b"")
    fh.write(struct.pack("<H", len(entries)) + b"".join(table) + struct.pack("<I", 0) + blob)
    return start


def write_dng(
    path: Path,
    linear_rgb: np.ndarray,
    *,
    exposure: ExposureInfo,
    camera: CameraInfo,
    bits: int = 14,
    cfa: str = "RGGB",
    wb_multipliers: tuple[float, float, float] = (2.0, 1.0, 1.5),
) -> Path:
    """Write ``linear_rgb`` (H, W, 3) float in [0, 1], scene-referred and white-balanced, as a DNG.

    The mosaic is what a sensor with these white-balance multipliers would have
    recorded: each channel divided by its multiplier (normalised so the smallest
    is 1, hence nothing exceeds the white level), plus a black level of
    ``2**(bits - 5)``, quantised to ``bits``. AsShotNeutral is the inverse of
    the multipliers, so raw converters that apply the camera white balance
    recover the input. Returns ``path``.
    """
    path = Path(path)
    rgb = np.asarray(linear_rgb, np.float32)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"write_dng needs an (H, W, 3) image, got shape {rgb.shape}")
    if min(rgb.shape[:2]) < MIN_SIZE:
        raise UsageError(
            f"a DNG needs at least {MIN_SIZE}x{MIN_SIZE} pixels (LibRaw rejects smaller ones),"
            f" got {rgb.shape[1]}x{rgb.shape[0]}", path,
        )
    if not 8 <= bits <= 16:
        raise ValueError(f"write_dng supports 8 to 16 bits per sample, got {bits}")
    wb = np.asarray(wb_multipliers, np.float64)
    if wb.shape != (3,) or not np.all(wb > 0):
        raise ValueError(f"wb_multipliers must be three positive numbers, got {wb_multipliers}")
    wb = wb / wb.min()

    white = 2**bits - 1
    black = 2 ** (bits - 5)
    sensor = np.clip(rgb, 0.0, 1.0) / wb.astype(np.float32)
    raw = np.round(black + mosaic(sensor, cfa) * (white - black)).astype(np.uint16)

    height, width = rgb.shape[:2]
    step = max(1, int(np.ceil(max(height, width) / _PREVIEW_LONG_SIDE)))
    preview = (srgb_encode(np.clip(rgb[::step, ::step], 0, 1)) * 255 + 0.5).astype(np.uint8)
    try:
        _write_tiff(path, preview, raw, _ifd0_tags(camera, 1.0 / wb), _raw_tags(cfa, black, white, (height, width)))
        _append_exif(path, exposure, camera)
    except OSError as exc:
        raise OutputError(f"cannot write DNG: {exc.strerror or exc}", path) from exc
    return path


# (tag, type, count, value, write once) entries for tifffile's ``extratags``
_TiffTag = tuple[int, int, int, object, bool]


def _ifd0_tags(camera: CameraInfo, neutral: np.ndarray) -> list[_TiffTag]:
    """IFD0 (preview) tags: camera, DNG version, colour calibration, AsShotNeutral ``neutral`` (3,)."""
    make = camera.make or "uhdfuse"
    model = camera.model or "Synthetic Camera"
    stamp = camera.datetime or datetime.now().strftime("%Y:%m:%d %H:%M:%S")
    return [
        *colour_tags(make, model, (float(neutral[0]), float(neutral[1]), float(neutral[2]))),
        (_ORIENTATION, 3, 1, camera.orientation, True),
        (_DATETIME, 2, 0, stamp, True),
        (_EXIF_PLACEHOLDER, 4, 1, 0, True),  # becomes the ExifIFD pointer in _append_exif
    ]


def _raw_tags(cfa: str, black: int, white: int, size: tuple[int, int]) -> list[_TiffTag]:
    """Tags of the raw CFA sub-IFD; ``size`` is (height, width)."""
    cfa_codes = bytes(_CFA_COLOURS[ch] for ch in cfa.upper())
    return [
        (_CFA_REPEAT_DIM, 3, 2, (2, 2), True),
        (_CFA_PATTERN, 1, 4, tuple(cfa_codes), True),
        (_CFA_PLANE_COLOR, 1, 3, (0, 1, 2), True),
        (_CFA_LAYOUT, 3, 1, 1, True),
        (_BLACK_REPEAT_DIM, 3, 2, (1, 1), True),
        (_BLACK_LEVEL, 4, 1, black, True),
        (_WHITE_LEVEL, 4, 1, white, True),
        (_ACTIVE_AREA, 4, 4, (0, 0, *size), True),
    ]


def _write_tiff(path: Path, preview: np.ndarray, raw: np.ndarray,
                ifd0_tags: list[_TiffTag], raw_tags: list[_TiffTag]) -> None:
    """IFD0 with the 8-bit ``preview`` (h, w, 3), and the 16-bit CFA ``raw`` (H, W) as its SubIFD."""
    with tifffile.TiffWriter(path, bigtiff=False, byteorder="<") as tif:
        tif.write(
            preview, photometric="rgb", subfiletype=1, subifds=1, extratags=ifd0_tags,
            software="uhdfuse", metadata=None,
        )
        tif.write(
            raw, photometric=32803, subfiletype=0, extratags=raw_tags, bitspersample=16,
            metadata=None, software=False,
        )


def _append_exif(path: Path, exposure: ExposureInfo, camera: CameraInfo) -> None:
    """Append the EXIF IFD to the file and turn IFD0's placeholder tag into its pointer."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[_EXIF_PLACEHOLDER]
        entry_at, value_at = tag.offset, tag.valueoffset
    with open(path, "r+b") as fh:
        exif_offset = _append_ifd(fh, _exif_ifd(exposure, camera))
        fh.seek(entry_at)
        fh.write(struct.pack("<H", _EXIF_IFD))
        fh.seek(value_at)
        fh.write(struct.pack("<I", exif_offset))
