"""Finding input files and decoding them to linear light.

Two kinds of input exist:

* *display* files (JPEG, PNG, TIFF): pixel values are encoded for a screen, so they
  are linearised with the sRGB curve, or with a camera-response look-up table when
  one was calibrated;
* *RAW* files: sensor data, developed by LibRaw (through rawpy) straight to linear
  values with the camera's white balance.

Either way :func:`read_frame` returns a :class:`~uhdfuse.types.Frame` whose image is
``float32`` ``(H, W, 3)``, upright, with 1.0 at the clipping level of the file.
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from uhdfuse.colour import srgb_decode
from uhdfuse.errors import UnsupportedInput
from uhdfuse.io.metadata import read_metadata
from uhdfuse.types import Frame

DISPLAY_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
        ".orf", ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc",
        ".mrw", ".mos",
    }
)  # fmt: skip
SUPPORTED_EXTENSIONS: frozenset[str] = DISPLAY_EXTENSIONS | RAW_EXTENSIONS

DEFAULT_MAX_PIXELS = 600_000_000


# --------------------------------------------------------------------------- inputs


def list_inputs(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into the image files they hold; keep files in the given order.

    A folder contributes its supported images (not its subfolders, hidden files or
    sidecars such as ``.xmp``), sorted by name. Raises :class:`UnsupportedInput` for
    a missing path, a file of an unsupported type, or a folder without images.
    """
    found: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            images = sorted(
                (p for p in path.iterdir() if _is_listed_image(p)), key=lambda p: p.name
            )
            if not images:
                raise UnsupportedInput("folder holds no supported image files", path)
            found.extend(images)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                raise UnsupportedInput(_unsupported_type_reason(path), path)
            found.append(path)
        elif path.exists():
            raise UnsupportedInput("not a regular file or folder", path)
        else:
            raise UnsupportedInput("no such file or folder", path)
    return found


def _is_listed_image(path: Path) -> bool:
    return (
        not path.name.startswith(".")
        and path.suffix.lower() in SUPPORTED_EXTENSIONS
        and path.is_file()
    )


def _unsupported_type_reason(path: Path) -> str:
    kind = f"'{path.suffix}'" if path.suffix else "without an extension"
    return f"unsupported file type {kind}; expected JPEG, PNG, TIFF or a camera RAW file"


# --------------------------------------------------------------------------- frames


def read_frame(
    path: Path, *, lut: np.ndarray | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Frame:
    """Decode one exposure to linear light.

    Returns a :class:`Frame` whose ``image`` is ``float32`` ``(H, W, 3)``, upright
    (the EXIF orientation is applied), scaled so that 1.0 is the clipping level.

    * JPEG / PNG / TIFF with 8 or 16 bits per sample (``source="display"``): the
      encoded values are linearised with the sRGB curve, or with ``lut`` when given.
      ``lut`` is ``float32`` ``(L, 3)``: row ``v`` holds the linear value of encoded
      value ``v`` per channel. With ``L == 2**bits`` it is indexed directly; any other
      length is interpolated over the encoded range (a 256-entry table serves 16-bit
      files too). Grey files are repeated to 3 channels; alpha is dropped.
    * Float TIFF (``bit_depth=32``): already linear, taken as is (NaN/inf become 0).
    * RAW (``source="raw"``): developed by LibRaw with the camera's white balance, no
      gamma, no auto-brightening and the sensor's own white level (no LibRaw
      "adjust maximum"), into **linear sRGB / Rec. 709 primaries, D65 white**;
      ``bit_depth`` is the sensor's bit depth derived from its white level.

    ``max_pixels`` guards against decompression bombs: the pixel count the file
    header claims is checked before anything is decoded.

    Raises :class:`UnsupportedInput` with a one-line reason for anything that cannot
    be decoded. The input file is only read, never modified.
    """
    path = Path(path)
    _check_readable(path)
    exposure, camera = read_metadata(path)
    if path.suffix.lower() in RAW_EXTENSIONS:
        image, bit_depth = _read_raw(path, max_pixels)
        return Frame(path, image, "raw", bit_depth, exposure, camera)

    encoded = _decode_display(path, max_pixels, camera.orientation)
    if encoded.dtype == np.float32:
        linear = encoded
        bit_depth = 32
    else:
        bit_depth = 8 if encoded.dtype == np.uint8 else 16
        linear = _linearise(encoded, bit_depth, lut)
    return Frame(path, np.ascontiguousarray(linear), "display", bit_depth, exposure, camera)


def read_encoded(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The encoded pixel values of a JPEG/PNG/TIFF, as stored: no linearisation.

    Returns ``uint8`` or ``uint16`` ``(H, W, 3)`` RGB, upright. Used to calibrate a
    camera response. Raises :class:`UnsupportedInput` for RAW and float files, which
    hold no display encoding, and for anything that cannot be decoded.
    """
    path = Path(path)
    _check_readable(path)
    if path.suffix.lower() in RAW_EXTENSIONS:
        raise UnsupportedInput("RAW files have no display encoding to calibrate", path)
    _, camera = read_metadata(path)
    encoded = _decode_display(path, max_pixels, camera.orientation)
    if encoded.dtype == np.float32:
        raise UnsupportedInput("float TIFF holds linear values, not encoded ones", path)
    return encoded


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise UnsupportedInput("no such file or folder", path)
    if not path.is_file():
        raise UnsupportedInput("not a regular file", path)
    if path.stat().st_size == 0:
        raise UnsupportedInput("empty file (0 bytes)", path)


# --------------------------------------------------------------------------- RAW


def _read_raw(path: Path, max_pixels: int) -> tuple[np.ndarray, int]:
    """Develop a RAW file: ``float32`` ``(H, W, 3)`` linear sRGB primaries, sensor bits."""
    import rawpy  # imported late: LibRaw is only needed for RAW inputs

    try:
        with rawpy.imread(str(path)) as raw:
            width, height = raw.sizes.width, raw.sizes.height
            _check_pixel_count(path, width, height, max_pixels)
            rgb = raw.postprocess(
                gamma=(1, 1),
                no_auto_bright=True,
                output_bps=16,
                use_camera_wb=True,
                output_color=rawpy.ColorSpace.sRGB,
                user_flip=None,
                # LibRaw otherwise lowers the white level to the brightest pixel when
                # that lies within 75 % of it: frames of one bracket would then be
                # scaled differently and "1.0 = clipping" would not hold.
                adjust_maximum_thr=0.0,
            )
            white_level = int(raw.white_level)
    except UnsupportedInput:
        raise
    except rawpy.LibRawFileUnsupportedError:
        raise UnsupportedInput("not a RAW format LibRaw can decode", path) from None
    except rawpy.LibRawTooBigError:
        raise UnsupportedInput("RAW image too large for LibRaw", path) from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError):
        # LibRaw reads past the end of a cut-off file as an I/O error
        raise UnsupportedInput("cannot decode RAW file (truncated or corrupt data)", path) from None
    except (rawpy.LibRawError, OSError, MemoryError) as exc:
        raise UnsupportedInput(f"cannot decode RAW file ({_one_line(exc)})", path) from None
    bit_depth = white_level.bit_length() if 0 < white_level < 65536 else 16
    image = rgb.astype(np.float32)
    image *= np.float32(1.0 / 65535.0)
    return image, bit_depth


# --------------------------------------------------------------------------- display files


def _decode_display(path: Path, max_pixels: int, orientation: int) -> np.ndarray:
    """Decode a JPEG/PNG/TIFF to its stored values, RGB, upright.

    Returns ``(H, W, 3)`` ``uint8``, ``uint16`` or (float TIFF) ``float32``.
    """
    with open(path, "rb") as fh:
        head = fh.read(32)
    if head.startswith(b"\xff\xd8"):
        width, height, components = _jpeg_header(path)
        if components == 4:
            raise UnsupportedInput("CMYK JPEG is not supported; convert it to RGB", path)
        _check_pixel_count(path, width, height, max_pixels)
        image = _decode_jpeg(path)
    elif head.startswith(b"\x89PNG\r\n\x1a\n"):
        width, height = _png_header(path, head)
        _check_pixel_count(path, width, height, max_pixels)
        image = _decode_with_opencv(path)
    elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        image = _decode_tiff(path, max_pixels)
    else:
        raise UnsupportedInput("not a JPEG, PNG or TIFF file (unrecognised content)", path)
    return np.ascontiguousarray(apply_orientation(image, orientation))


_JPEG_EOI = b"\xff\xd9"


def _decode_jpeg(path: Path) -> np.ndarray:
    """A JPEG's stored values; one whose scan is whole but whose end marker is missing
    (a card writer or a copy that lost the last two bytes) is decoded, with a warning.

    libjpeg refuses a file without its EOI marker, and accepts a cut-off scan once one
    is appended (it fills the missing blocks in). Decoding twice, once with filler
    bytes before the appended marker, tells the two apart: a whole scan ends before
    the filler, which is then skipped, so both decodes agree; a cut-off scan reads the
    filler as image data, so they differ.
    """
    data = np.fromfile(path, dtype=np.uint8)
    if bytes(data[-2:]) == _JPEG_EOI or data.size < 4:
        return _decode_with_opencv(path, data)
    ended = np.frombuffer(data.tobytes() + _JPEG_EOI, dtype=np.uint8)
    padded = np.frombuffer(data.tobytes() + b"\x55" * 64 + _JPEG_EOI, dtype=np.uint8)
    with _libjpeg_silenced():  # its "Corrupt JPEG data" lines would garble our one-line report
        image = _decode_with_opencv(path, ended)
        whole = np.array_equal(image, _decode_with_opencv(path, padded))
    if not whole:
        raise UnsupportedInput("cannot decode image (truncated or corrupt file: the scan data is cut off)", path)
    warnings.warn(f"{path}: JPEG lacks its end marker; every scan line is present, decoded as is", UserWarning)
    return image


@contextmanager
def _libjpeg_silenced():
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
        raise UnsupportedInput(f"cannot decode image ({_one_line(exc)})", path) from None
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


def _decode_tiff(path: Path, max_pixels: int) -> np.ndarray:
    """First image of a TIFF, via tifffile (OpenCV when tifffile lacks the codec)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.pages:
                raise UnsupportedInput("TIFF file holds no image", path)
            page = tif.pages.first
            width, height = int(page.imagewidth), int(page.imagelength)
            _check_pixel_count(path, width, height, max_pixels)
            photometric = int(page.photometric)
            samples = int(page.samplesperpixel)
            dtype = np.dtype(page.dtype) if page.dtype is not None else None
            if photometric == 5:  # SEPARATED
                raise UnsupportedInput(
                    "CMYK (separated) TIFF is not supported; convert it to RGB", path
                )
            if photometric in (8, 9, 10):
                raise UnsupportedInput("CIELab TIFF is not supported; convert it to RGB", path)
            if photometric == 0:
                raise UnsupportedInput(
                    "white-is-zero greyscale TIFF is not supported; convert it", path
                )
            if photometric not in (1, 2) or dtype is None:
                # Palette, YCbCr/JPEG-compressed and other layouts: libtiff in OpenCV
                # converts them to plain RGB for us.
                return _decode_with_opencv(path)
            try:
                data = page.asarray()
                axes = page.axes
            except Exception as exc:  # noqa: BLE001 - decoders raise anything on corrupt data
                if "imagecodecs" in str(exc):  # a codec tifffile lacks (LZW, JPEG, ...)
                    return _decode_with_opencv(path)
                raise UnsupportedInput(f"cannot decode TIFF ({_one_line(exc)})", path) from None
    except UnsupportedInput:
        raise
    except Exception as exc:  # noqa: BLE001 - tifffile raises anything on corrupt IFDs (IndexError, TypeError, ...)
        raise UnsupportedInput(f"cannot decode TIFF ({_one_line(exc)})", path) from None

    data = _tiff_to_hwc(data, axes)
    if photometric == 1 or samples < 3:
        data = np.repeat(data[:, :, :1], 3, axis=2)  # greyscale (+ alpha)
    else:
        data = data[:, :, :3]  # extra samples (alpha) dropped

    if data.dtype.kind == "f":
        linear = data.astype(np.float32)
        return np.nan_to_num(linear, nan=0.0, posinf=0.0, neginf=0.0)
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.uint16:
        bits = int(page.bitspersample)
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


# --------------------------------------------------------------------------- headers


def _check_pixel_count(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise UnsupportedInput(f"image header claims an invalid size {width}x{height}", path)
    if width * height > max_pixels:
        raise UnsupportedInput(
            f"image claims {width}x{height} pixels, more than the limit of {max_pixels}; "
            "raise it with --max-pixels",
            path,
        )


def _png_header(path: Path, head: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first."""
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise UnsupportedInput("cannot decode PNG (missing IHDR header)", path)
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(path: Path) -> tuple[int, int, int]:
    """(width, height, components) from the first start-of-frame segment."""
    no_frame = UnsupportedInput("cannot decode JPEG (no frame header found)", path)
    with open(path, "rb") as fh:
        fh.read(2)  # SOI, already checked
        while True:
            if fh.read(1) != b"\xff":
                raise no_frame
            code = 0xFF
            while code == 0xFF:  # any number of fill bytes may precede the marker code
                byte = fh.read(1)
                if not byte:
                    raise no_frame
                code = byte[0]
            if code == 0x01 or 0xD0 <= code <= 0xD8:
                continue  # markers without a length field
            if code in (0xD9, 0xDA):  # end of image / start of scan before any frame
                raise no_frame
            length_bytes = fh.read(2)
            if len(length_bytes) < 2:
                raise no_frame
            (length,) = struct.unpack(">H", length_bytes)
            if code in _JPEG_SOF:
                segment = fh.read(6)
                if len(segment) < 6:
                    raise no_frame
                _precision, height, width, components = struct.unpack(">BHHB", segment)
                return int(width), int(height), int(components)
            if length < 2:
                raise no_frame
            fh.seek(length - 2, 1)


# --------------------------------------------------------------------------- pixels


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


_SRGB_TABLES: dict[int, np.ndarray] = {}


def _linearise(encoded: np.ndarray, bit_depth: int, lut: np.ndarray | None) -> np.ndarray:
    """Encoded ``uint8``/``uint16`` ``(H, W, 3)`` -> linear ``float32`` ``(H, W, 3)``."""
    levels = 1 << bit_depth
    if lut is None:
        table = _SRGB_TABLES.get(bit_depth)
        if table is None:
            table = srgb_decode(np.arange(levels, dtype=np.float64) / (levels - 1))
            _SRGB_TABLES[bit_depth] = table
        return table[encoded]

    lut = np.asarray(lut, dtype=np.float32)
    if lut.ndim != 2 or lut.shape[1] != 3 or lut.shape[0] < 2:
        raise ValueError(f"response LUT must be shaped (L, 3) with L >= 2, got {lut.shape}")
    out = np.empty(encoded.shape, dtype=np.float32)
    if lut.shape[0] == levels:
        for c in range(3):
            out[:, :, c] = lut[encoded[:, :, c], c]
        return out
    # A table of another length (a 256-entry response for a 16-bit file): interpolate
    # once per possible encoded value, then index.
    positions = np.arange(levels) * ((lut.shape[0] - 1) / (levels - 1))
    grid = np.arange(lut.shape[0])
    for c in range(3):
        table = np.interp(positions, grid, lut[:, c]).astype(np.float32)
        out[:, :, c] = table[encoded[:, :, c]]
    return out


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
