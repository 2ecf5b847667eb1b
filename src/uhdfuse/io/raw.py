"""Developing camera RAW files to linear light with LibRaw (through rawpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uhdfuse.errors import UnsupportedInput, first_line
from uhdfuse.io.headers import check_pixel_count


def read_raw(path: Path, max_pixels: int) -> tuple[np.ndarray, int]:
    """Develop a RAW file: ``float32`` ``(H, W, 3)`` linear sRGB / Rec. 709 primaries
    (D65 white, the camera's white balance, 1.0 = the sensor's white level), and the
    sensor's bit depth derived from its white level.

    Raises :class:`UnsupportedInput` for a file LibRaw cannot decode, or whose size
    exceeds ``max_pixels`` (checked before developing).
    """
    import rawpy  # imported late: LibRaw is only needed for RAW inputs

    try:
        with rawpy.imread(str(path)) as raw:
            check_pixel_count(path, raw.sizes.width, raw.sizes.height, max_pixels)
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
        raise UnsupportedInput(f"cannot decode RAW file ({first_line(exc)})", path) from None
    bit_depth = white_level.bit_length() if 0 < white_level < 65536 else 16
    image = rgb.astype(np.float32)
    image *= np.float32(1.0 / 65535.0)
    return image, bit_depth
