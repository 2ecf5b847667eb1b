"""Checks made before a file is decoded: that it is a readable file, and how many
pixels its header claims (the guard against decompression bombs).

PNG and JPEG sizes are parsed here, from the first bytes, so that a bomb is refused
before OpenCV allocates its pixels; TIFF's size comes from tifffile's page header and
RAW's from LibRaw's, also before anything is decoded.
"""

from __future__ import annotations

import struct
from pathlib import Path

from uhdfuse.errors import UnsupportedInput, param


def check_readable(path: Path) -> None:
    """Raise :class:`UnsupportedInput` unless ``path`` is a non-empty regular file."""
    if not path.exists():
        raise UnsupportedInput("no such file or folder", path)
    if not path.is_file():
        raise UnsupportedInput("not a regular file", path)
    if path.stat().st_size == 0:
        raise UnsupportedInput("empty file (0 bytes)", path)


def check_pixel_count(path: Path, width: int, height: int, max_pixels: int) -> None:
    """Refuse a header size that is not positive or claims more than ``max_pixels``."""
    if width <= 0 or height <= 0:
        raise UnsupportedInput(f"image header claims an invalid size {width}x{height}", path)
    if width * height > max_pixels:
        raise UnsupportedInput(
            f"image claims {width}x{height} pixels, more than the limit of {max_pixels}; "
            f"raise it with {param('max_pixels')}",
            path,
        )


def png_size(path: Path, head: bytes) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which must come first; ``head``: the
    file's first 24 bytes or more."""
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise UnsupportedInput("cannot decode PNG (missing IHDR header)", path)
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


# Start-of-frame markers carry the image size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_frame_header(path: Path) -> tuple[int, int, int]:
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
