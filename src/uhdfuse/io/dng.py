"""Encoding linear RGB as a LinearRaw DNG: demosaiced sensor data other raw converters develop.

IFD0 holds the image itself, 16 bits per sample, PhotometricInterpretation LinearRaw
(34892), black level 0 and white level 65535, with the DNG tags a reader needs to
develop it: ColorMatrix1 for the D65 XYZ -> linear sRGB step (the values are linear
sRGB / Rec. 709 primaries, as :func:`uhdfuse.io.read.read_frame` develops a RAW) and a
neutral AsShotNeutral (they are white-balanced already). EXIF and XMP are embedded
afterwards like any TIFF's (:func:`uhdfuse.io.metadata.embed_metadata`).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# XYZ (D65) -> linear sRGB, IEC 61966-2-1. Rows sum so that D65 white maps to (1, 1, 1),
# which is the normalisation the DNG spec asks of ColorMatrix1.
XYZ_TO_SRGB = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)
LINEAR_RAW = 34892  # PhotometricInterpretation of demosaiced raw data
D65 = 21  # EXIF LightSource code, for CalibrationIlluminant1
DNG_VERSION = (1, 4, 0, 0)
DNG_BACKWARD_VERSION = (1, 1, 0, 0)
# TIFF/DNG tag codes
MAKE, MODEL = 271, 272
TAG_DNG_VERSION, TAG_DNG_BACKWARD, UNIQUE_MODEL = 50706, 50707, 50708
BLACK_LEVEL, WHITE_LEVEL = 50714, 50717
COLOR_MATRIX1, AS_SHOT_NEUTRAL, CALIBRATION_ILLUMINANT1 = 50721, 50728, 50778


def srational_matrix(matrix: np.ndarray) -> tuple[int, ...]:
    """A matrix as the flat (numerator, denominator) pairs of a TIFF SRATIONAL array."""
    flat: list[int] = []
    for v in np.asarray(matrix).ravel():
        flat.extend((int(round(float(v) * 10000)), 10000))
    return tuple(flat)


def rational(value: float, max_den: int = 1_000_000) -> tuple[int, int]:
    f = Fraction(value).limit_denominator(max_den)
    return f.numerator, f.denominator


def colour_tags(make: str, model: str, neutral: tuple[float, float, float]) -> list[tuple[int, int, int, object, bool]]:
    """The DNG version, camera and colour-calibration tags (tifffile ``extratags``) of a
    file whose camera sees linear sRGB; ``neutral`` is AsShotNeutral."""
    return [
        (MAKE, 2, 0, make, True),
        (MODEL, 2, 0, model, True),
        (TAG_DNG_VERSION, 1, 4, DNG_VERSION, True),
        (TAG_DNG_BACKWARD, 1, 4, DNG_BACKWARD_VERSION, True),
        (UNIQUE_MODEL, 2, 0, f"{make} {model}", True),
        (COLOR_MATRIX1, 10, 9, srational_matrix(XYZ_TO_SRGB), True),
        (CALIBRATION_ILLUMINANT1, 3, 1, D65, True),
        (AS_SHOT_NEUTRAL, 5, 3, tuple(v for n in neutral for v in rational(float(n), 10000)), True),
    ]


def encode_linear_dng(path: Path, pixels: np.ndarray, *, make: str, model: str) -> None:
    """Write ``pixels`` (H, W, 3) ``uint16`` linear RGB (65535 = white) as a LinearRaw DNG."""
    import tifffile

    tags = [*colour_tags(make, model, (1.0, 1.0, 1.0)), (BLACK_LEVEL, 4, 1, 0, True), (WHITE_LEVEL, 4, 1, 65535, True)]
    # uncompressed: LibRaw, and so rawpy's wheels, refuse deflate-compressed DNG data
    with tifffile.TiffWriter(path, bigtiff=False, byteorder="<") as tif:
        tif.write(
            pixels, photometric=LINEAR_RAW, subfiletype=0, extratags=tags,
            rowsperstrip=64, metadata=None, software=False,
        )  # fmt: skip
