"""Decoding display files (JPEG, PNG, TIFF) to their stored values, RGB, upright.

The format is told by the file's first bytes, not its name. OpenCV decodes JPEG and
PNG; tifffile decodes TIFF (8/16-bit, float, planar), with OpenCV's libtiff for the
layouts and codecs tifffile lacks. Linearisation is left to the caller
(:func:`uhdfuse.io.read.read_frame`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from uhdfuse.errors import Message, UnsupportedInput, first_line
from uhdfuse.io.headers import check_pixel_count, jpeg_frame_header, png_size

# tifffile logs every bad tag of a corrupt file; our one-line error says it better.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, both byte orders
_JPEG_EOI = b"\xff\xd9"


def decode_display(path: Path, max_pixels: int, orientation: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode a JPEG/PNG/TIFF to its stored values, RGB, upright.

    Returns the values, ``(H, W, 3)`` ``uint8``, ``uint16`` or (float TIFF) ``float32``,
    and notes on what was tolerated (a JPEG without its end marker). Raises
    :class:`UnsupportedInput` for anything that cannot be decoded.
    """
    with open(path, "rb") as fh:
        head = fh.read(32)
    notes: tuple[str, ...] = ()
    if head.startswith(b"\xff\xd8"):
        width, height, components = jpeg_frame_header(path)
        if components == 4:
            raise UnsupportedInput("CMYK JPEG is not supported; convert it to RGB", path)
        check_pixel_count(path, width, height, max_pixels)
        image, notes = _decode_jpeg(path)
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        width, height = png_size(path, head)
        check_pixel_count(path, width, height, max_pixels)
        image = _decode_with_opencv(path)
    elif head[:4] in _TIFF_MAGIC:
        image = _decode_tiff(path, max_pixels)
    else:
        raise UnsupportedInput("not a JPEG, PNG or TIFF file (unrecognised content)", path)
    return np.ascontiguousarray(apply_orientation(image, orientation)), notes


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn an ``(H, W, C)`` array stored with EXIF ``orientation`` (1..8) upright.

    Returns a view; orientation values outside 1..8 are treated as 1.
    """
    if orientation == 2:
        return image[:, ::-1]
    if orientation == 3:
        return image[::-1, ::-1]
    if orientation == 4:
        return image[::-1]
    if orientation == 5:
        return image.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(image, k=-1)  # stored rotated 90 degrees anticlockwise
    if orientation == 7:
        return image[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(image, k=1)
    return image


# --------------------------------------------------------------------------- JPEG and PNG


def _decode_jpeg(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """A JPEG's stored values; one whose scan is whole but whose end marker is missing
    (a card writer or a copy that lost the last two bytes) is decoded, with a note.

    libjpeg refuses a file without its EOI marker, and accepts a cut-off scan once one
    is appended (it fills the missing blocks in). Decoding twice, once with filler
    bytes before the appended marker, tells the two apart: a whole scan ends before
    the filler, which is then skipped, so both decodes agree; a cut-off scan reads the
    filler as image data, so they differ.
    """
    data = np.fromfile(path, dtype=np.uint8)
    if bytes(data[-2:]) == _JPEG_EOI or data.size < 4:
        return _decode_with_opencv(path, data), ()
    ended = np.frombuffer(data.tobytes() + _JPEG_EOI, dtype=np.uint8)
    padded = np.frombuffer(data.tobytes() + b"\x55" * 64 + _JPEG_EOI, dtype=np.uint8)
    with _libjpeg_silenced():  # its "Corrupt JPEG data" lines would garble our one-line report
        image = _decode_with_opencv(path, ended)
        whole = np.array_equal(image, _decode_with_opencv(path, padded))
    if not whole:
        raise UnsupportedInput("cannot decode image (truncated or corrupt file: the scan data is cut off)", path)
    return image, (Message(f"{path}: JPEG lacks its end marker; every scan line is present, decoded as is"),)


@contextmanager
def _libjpeg_silenced() -> Iterator[None]:
    """Send the C library's stderr (file descriptor 2) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _decode_with_opencv(path: Path, data: np.ndarray | None = None) -> np.ndarray:
    """JPEG/PNG (and TIFF fallback) via OpenCV; stored values, RGB, no orientation.

    ``data``: the file's bytes, when the caller has them (already read or repaired).
    """
    if data is None:
        data = np.fromfile(path, dtype=np.uint8)
    # IMREAD_UNCHANGED keeps 16 bits and alpha, and leaves EXIF orientation to us, so
    # that every format is rotated by the same code.
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise UnsupportedInput(f"cannot decode image ({first_line(exc)})", path) from None
    if image is None:
        raise UnsupportedInput("cannot decode image (truncated or corrupt file)", path)
    if image.dtype == np.float32:  # only float TIFFs: linear values
        image = np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)
    elif image.dtype not in (np.uint8, np.uint16):
        raise UnsupportedInput(f"unsupported sample type {image.dtype}", path)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=2)
    if channels == 2:  # grey + alpha
        return np.repeat(image[:, :, :1], 3, axis=2)
    if channels in (3, 4):
        return image[:, :, 2::-1]  # BGR(A) -> RGB, alpha dropped
    raise UnsupportedInput(f"unsupported layout with {channels} channels", path)


# --------------------------------------------------------------------------- TIFF

# Photometric interpretations refused with a reason (0: white is zero, 5: separated,
# 8-10: CIELab variants); 1 (grey) and 2 (RGB) are decoded by tifffile, the rest
# (palette, YCbCr, ...) converted to RGB by OpenCV's libtiff.
_TIFF_REFUSED = {
    0: "white-is-zero greyscale TIFF is not supported; convert it",
    5: "CMYK (separated) TIFF is not supported; convert it to RGB",
    8: "CIELab TIFF is not supported; convert it to RGB",
    9: "CIELab TIFF is not supported; convert it to RGB",
    10: "CIELab TIFF is not supported; convert it to RGB",
}


def _decode_tiff(path: Path, max_pixels: int) -> np.ndarray:
    """First image of a TIFF, via tifffile (OpenCV when tifffile lacks the codec)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise UnsupportedInput("TIFF file holds no image", path)
            page = tif.pages.first
            check_pixel_count(path, int(page.imagewidth), int(page.imagelength), max_pixels)
            photometric = int(page.photometric)
            if photometric in _TIFF_REFUSED:
                raise UnsupportedInput(_TIFF_REFUSED[photometric], path)
            if photometric not in (1, 2) or page.dtype is None:
                return _decode_with_opencv(path)
            try:
                data = page.asarray()
            except Exception as exc:  # noqa: BLE001 - decoders raise anything on corrupt data
                if "imagecodecs" in str(exc):  # a codec tifffile lacks (LZW, JPEG, ...)
                    return _decode_with_opencv(path)
                raise UnsupportedInput(f"cannot decode TIFF ({first_line(exc)})", path) from None
            grey = photometric == 1 or int(page.samplesperpixel) < 3
            return _tiff_samples(path, _tiff_to_hwc(data, page.axes), grey, int(page.bitspersample))
    except UnsupportedInput:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises anything on corrupt IFDs (IndexError, TypeError, ...)
        raise UnsupportedInput(f"cannot decode TIFF ({first_line(exc)})", path) from None


def _tiff_samples(path: Path, data: np.ndarray, grey: bool, bits: int) -> np.ndarray:
    """A decoded page ``(H, W, S)`` as three channels of ``uint8``, ``uint16`` (samples of
    fewer ``bits`` stretched to the full range) or finite ``float32``."""
    if grey:
        data = np.repeat(data[:, :, :1], 3, axis=2)  # greyscale (+ alpha)
    else:
        data = data[:, :, :3]  # extra samples (alpha) dropped
    if data.dtype.kind == "f":
        return np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.uint16:
        if bits < 16:  # e.g. 12-bit samples in 16-bit words: stretch to the full range
            scaled = np.rint(data.astype(np.float64) * (65535.0 / ((1 << bits) - 1)))
            return np.clip(scaled, 0, 65535).astype(np.uint16)
        return data
    raise UnsupportedInput(f"unsupported TIFF sample type {data.dtype}", path)


def _tiff_to_hwc(data: np.ndarray, axes: str) -> np.ndarray:
    """Bring a tifffile page array (axes "YX", "YXS" or planar "SYX") to (H, W, S)."""
    if axes == "YXS":
        return data
    if axes == "SYX":
        return np.transpose(data, (1, 2, 0))
    if axes == "YX":
        return data[:, :, None]
    raise ValueError(f"unexpected TIFF layout {axes}")
