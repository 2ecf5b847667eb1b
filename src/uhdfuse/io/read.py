"""Decoding one exposure to linear light.

Two kinds of input exist (:mod:`uhdfuse.io.inputs`):

* *display* files (JPEG, PNG, TIFF): pixel values are encoded for a screen, so they
  are linearised with the sRGB curve, or with a camera-response look-up table when
  one was calibrated (decoding: :mod:`uhdfuse.io.display`);
* *RAW* files: sensor data, developed by LibRaw (through rawpy) straight to linear
  values with the camera's white balance (:mod:`uhdfuse.io.raw`).

Either way :func:`read_frame` returns a :class:`~uhdfuse.types.Frame` whose image is
``float32`` ``(H, W, 3)``, upright, with 1.0 at the clipping level of the file.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from uhdfuse.colour import srgb_decode
from uhdfuse.config import MAX_PIXELS
from uhdfuse.errors import UnsupportedInput
from uhdfuse.io.display import decode_display
from uhdfuse.io.headers import check_readable
from uhdfuse.io.inputs import is_raw
from uhdfuse.io.metadata.read import read_metadata
from uhdfuse.io.raw import read_raw
from uhdfuse.types import Frame


def read_frame(path: Path, *, lut: np.ndarray | None = None, max_pixels: int = MAX_PIXELS) -> Frame:
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
    header claims is checked before anything is decoded. What the reader tolerated
    (a JPEG without its end marker) is in ``Frame.notes``.

    Raises :class:`UnsupportedInput` with a one-line reason for anything that cannot
    be decoded. The input file is only read, never modified.
    """
    path = Path(path)
    check_readable(path)
    exposure, camera = read_metadata(path)
    if is_raw(path):
        image, bit_depth = read_raw(path, max_pixels)
        return Frame(path, image, "raw", bit_depth, exposure, camera)

    encoded, notes = decode_display(path, max_pixels, camera.orientation)
    if encoded.dtype == np.float32:
        linear = encoded
        bit_depth = 32
    else:
        bit_depth = 8 if encoded.dtype == np.uint8 else 16
        linear = _linearise(encoded, bit_depth, lut)
    return Frame(path, np.ascontiguousarray(linear), "display", bit_depth, exposure, camera, notes)


def read_encoded(path: Path, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The encoded pixel values of a JPEG/PNG/TIFF, as stored: no linearisation.

    Returns ``uint8`` or ``uint16`` ``(H, W, 3)`` RGB, upright. Used to calibrate a
    camera response. Raises :class:`UnsupportedInput` for RAW and float files, which
    hold no display encoding, and for anything that cannot be decoded.
    """
    path = Path(path)
    check_readable(path)
    if is_raw(path):
        raise UnsupportedInput("RAW files have no display encoding to calibrate", path)
    _, camera = read_metadata(path)
    encoded, _ = decode_display(path, max_pixels, camera.orientation)
    if encoded.dtype == np.float32:
        raise UnsupportedInput("float TIFF holds linear values, not encoded ones", path)
    return encoded


@functools.cache
def _srgb_table(bit_depth: int) -> np.ndarray:
    """Linear value of every ``bit_depth``-bit sRGB code: ``float32`` ``(2**bit_depth,)``."""
    levels = 1 << bit_depth
    return srgb_decode(np.arange(levels, dtype=np.float64) / (levels - 1))


def _linearise(encoded: np.ndarray, bit_depth: int, lut: np.ndarray | None) -> np.ndarray:
    """Encoded ``uint8``/``uint16`` ``(H, W, 3)`` -> linear ``float32`` ``(H, W, 3)``."""
    if lut is None and bit_depth == 8:
        return cv2.LUT(encoded, _srgb_table(8))  # several times numpy's fancy indexing
    if lut is None:
        return _srgb_table(bit_depth)[encoded]

    levels = 1 << bit_depth
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
