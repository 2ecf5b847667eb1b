"""HDR radiance maps from files: OpenEXR (through the optional OpenEXR package) and Radiance RGBE."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from uhdfuse.errors import UnsupportedInput, first_line


def read_radiance(path: Path) -> np.ndarray:
    """An HDR radiance map (.exr via the OpenEXR package, .hdr Radiance RGBE) as (H, W, 3) float32 >= 0."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".exr":
        try:
            import OpenEXR  # optional: only training needs it
        except ModuleNotFoundError:
            raise UnsupportedInput("reading EXR needs the OpenEXR package (pip install OpenEXR)", path) from None
        try:
            channels = OpenEXR.File(str(path)).channels()
        except (OSError, RuntimeError, ValueError) as exc:  # OpenEXR raises RuntimeError for corrupt files
            raise UnsupportedInput(f"not a readable EXR file ({first_line(exc)})", path) from None
        key = "RGB" if "RGB" in channels else "RGBA" if "RGBA" in channels else None
        if key is None:
            raise UnsupportedInput(f"EXR without RGB channels (has {sorted(channels)})", path)
        image = np.asarray(channels[key].pixels)[..., :3].astype(np.float32)
    elif suffix == ".hdr":
        image = _read_rgbe(path)
    else:
        raise UnsupportedInput("not an HDR radiance map (.exr or .hdr)", path)
    # Lossy EXR compression leaves tiny negative values; a file may hold NaN/inf.
    return np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0).clip(0.0, None)


def _read_rgbe(path: Path) -> np.ndarray:
    """Radiance RGBE (.hdr), new-style run-length encoded or flat, as (H, W, 3) float32."""
    data = path.read_bytes()
    end = data.find(b"\n\n")
    # the "#?" magic is usually first, but some writers put other header lines before it
    if end < 0 or (b"#?" not in data[:end] and b"FORMAT=32-bit_rle_rgbe" not in data[:end]):
        raise UnsupportedInput("not a Radiance RGBE file", path)
    line_end = data.index(b"\n", end + 2)
    size = data[end + 2: line_end].split()
    if len(size) != 4 or size[0] != b"-Y" or size[2] != b"+X":
        raise UnsupportedInput(f"unsupported RGBE orientation {b' '.join(size).decode(errors='replace')}", path)
    height, width = int(size[1]), int(size[3])
    raw = data[line_end + 1:]  # bytes: scalar reads as Python ints (fast, no uint8 overflow)
    buf = np.frombuffer(raw, np.uint8)
    rgbe = np.empty((height, width, 4), np.uint8)
    pos = 0
    try:
        for y in range(height):
            if 8 <= width < 32768 and raw[pos] == 2 and raw[pos + 1] == 2 and (raw[pos + 2] << 8 | raw[pos + 3]) == width:
                pos += 4
                for c in range(4):
                    x = 0
                    while x < width:
                        count = raw[pos]
                        if count > 128:  # a run of one value
                            count -= 128
                            rgbe[y, x: x + count, c] = raw[pos + 1]
                            pos += 2
                        else:  # literal values
                            rgbe[y, x: x + count, c] = buf[pos + 1: pos + 1 + count]
                            pos += 1 + count
                        x += count
            else:
                rgbe[y] = buf[pos: pos + 4 * width].reshape(width, 4)
                pos += 4 * width
    except (IndexError, ValueError):
        raise UnsupportedInput("truncated or corrupt RGBE data", path) from None
    exponent = rgbe[..., 3].astype(np.int32)
    scale = np.where(exponent > 0, np.ldexp(1.0, exponent - 136), 0.0).astype(np.float32)
    return (rgbe[..., :3].astype(np.float32) + 0.5) * scale[..., None]


__all__ = ["read_radiance"]
