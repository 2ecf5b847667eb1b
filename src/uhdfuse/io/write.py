"""Writing the fused image: 8/16-bit PNG or TIFF, 8-bit JPEG, or 32-bit float TIFF, atomically.

The file is first written under a hidden temporary name in the output folder,
metadata is embedded there, the data is flushed to disk, and only then is the
temporary file renamed onto the output. An interrupted or failed write therefore
never leaves a half-written output (nor clobbers an existing one).
"""

from __future__ import annotations

import errno
import functools
import os
import secrets
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import exiv2
import numpy as np

from uhdfuse.config import OutputFormat
from uhdfuse.errors import Message, OutputError, UhdfuseError, UsageError, first_line, param
from uhdfuse.io.dng import encode_linear_dng
from uhdfuse.io.metadata.read import find_datum
from uhdfuse.io.metadata.write import OutputMetadata, PreparedMetadata, embed_metadata, prepare_metadata
from uhdfuse.threads import in_row_blocks, worker_threads

# Below this quality the eye no longer tells full-resolution chroma from 4:2:0, and the
# file is a fifth smaller; above it, photographers proofing colour edges expect 4:4:4.
FULL_CHROMA_QUALITY = 90


@dataclass(frozen=True)
class Written:
    """An output file written, and what could not go into it (metadata that was not
    carried over, and why)."""

    path: Path
    notes: tuple[str, ...] = ()


def check_output(path: Path, inputs: Sequence[Path] = (), *, force: bool = False) -> None:
    """Refuse an output path that must not be written: a folder, one of ``inputs``, or
    an existing file when ``force`` is False. Raises :class:`OutputError`.

    Cheap (no file is opened), so callers check before any slow work;
    :func:`write_image` checks again when it writes.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError("is a folder", path)
    resolved = path.resolve()
    if any(resolved == Path(p).resolve() for p in inputs):
        raise OutputError("is one of the inputs; choose another output path", path)
    if (path.exists() or path.is_symlink()) and not force:
        raise OutputError(f"already exists; use {param('force', True)} to overwrite", path)


def write_image(
    path: Path,
    image: np.ndarray,
    *,
    bit_depth: int,
    metadata: OutputMetadata | None = None,
    force: bool = False,
    quality: int = 95,
) -> Written:
    """Write ``image`` to ``path`` (format from the suffix, :meth:`OutputFormat.of`).

    ``image`` is float ``(H, W, 3)`` RGB. For ``bit_depth`` 8 or 16 it is
    display-encoded in [0, 1] (clipped, then rounded to ``uint8``/``uint16``); for 32
    it is linear and written as float TIFF. ``bit_depth`` must be one the format holds
    (:attr:`OutputFormat.bit_depths`; :meth:`MergeConfig.bit_depth_for` picks it). JPEG
    is written at ``quality`` (1-100, as :class:`MergeConfig` checks it), with
    full-resolution chroma from ``FULL_CHROMA_QUALITY`` up.

    ``metadata``: carry the reference frame's EXIF/IPTC/XMP/ICC over and record
    provenance (see :func:`uhdfuse.io.metadata.write.prepare_metadata`); None writes
    the pixels alone. Display output gets the reference's ICC profile or sRGB; float
    output gets none. What could not be carried over is in the result's ``notes``.

    Missing parent folders are created. Raises :class:`OutputError` for an unknown
    suffix, a bit depth the format cannot hold, a path :func:`check_output` refuses
    (checked before any work), and every failure while writing (permissions, disk
    full, ...); the temporary file is removed on any failure, including
    KeyboardInterrupt (which is re-raised as is).
    """
    path = Path(path)
    fmt = _output_format(path, bit_depth)
    check_output(path, force=force)
    image = _checked_image(image)
    prepared = _prepared(metadata, image, bit_depth, fmt)
    pixels = _quantise(image, bit_depth)
    encode = functools.partial(_encode, pixels=pixels, fmt=fmt, quality=quality, icc=prepared.icc if prepared else None, target=path)
    return _write_atomically(path, encode, prepared, with_icc=fmt is not OutputFormat.PNG)


def write_linear_dng(path: Path, image: np.ndarray, *, metadata: OutputMetadata | None = None, force: bool = False) -> Written:
    """Write linear ``image`` (H, W, 3) float in [0, 1] (1.0 = white) as a 16-bit
    LinearRaw DNG (:mod:`uhdfuse.io.dng`), atomically and with metadata as
    :func:`write_image` writes a TIFF. ``metadata.colour_space`` should be "linear"
    (no ICC profile: a DNG's colour is in its own tags). Raises as :func:`write_image`."""
    path = Path(path)
    check_output(path, force=force)
    image = _checked_image(image)
    prepared = _prepared(metadata, image, 16, OutputFormat.TIFF)  # a DNG is a TIFF
    pixels = _quantise(image, 16)
    make, model = _camera(prepared)
    return _write_atomically(path, lambda temp: encode_linear_dng(temp, pixels, make=make, model=model), prepared, with_icc=False)


def _checked_image(image: np.ndarray) -> np.ndarray:
    """``image`` as an array, or a ValueError unless it is shaped (H, W, 3) with H, W >= 1."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must be shaped (H, W, 3), got {image.shape}")
    return image


def _prepared(metadata: OutputMetadata | None, image: np.ndarray, bit_depth: int, fmt: OutputFormat) -> PreparedMetadata | None:
    """The metadata to embed in an output of ``image``'s size, or None to write the pixels alone."""
    if metadata is None:
        return None
    height, width = image.shape[:2]
    return prepare_metadata(metadata, size=(width, height), bit_depth=bit_depth, fmt=fmt)


def _camera(prepared: PreparedMetadata | None) -> tuple[str, str]:
    """(make, model) the EXIF about to be embedded states, for a DNG's UniqueCameraModel."""
    names = []
    for key, fallback in (("Exif.Image.Make", "uhdfuse"), ("Exif.Image.Model", "virtual exposure")):
        datum = find_datum(prepared.exif, key) if prepared is not None else None
        names.append(datum.toString().strip() if datum is not None and datum.toString().strip() else fallback)
    return names[0], names[1]


def _write_atomically(
    path: Path, encode: Callable[[Path], None], prepared: PreparedMetadata | None, *, with_icc: bool
) -> Written:
    """Create the folder, ``encode`` into a hidden temporary file beside ``path``, embed
    ``prepared``, flush, and rename onto ``path``; the temporary file is removed on any
    failure. Returns what was written and what metadata could not go into it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create folder {path.parent} ({_os_reason(exc)})", path) from exc
    notes = list(prepared.notes) if prepared is not None else []
    temp = _create_temp(path)
    try:
        encode(temp)
        if prepared is not None and _is_bigtiff(temp):
            notes.append(Message(f"{path}: metadata not embedded (too large for a classic TIFF)"))
        elif prepared is not None:
            embed_metadata(temp, prepared, with_icc=with_icc)
        _fsync(temp)
        os.replace(temp, path)
    except BaseException as exc:
        _remove_quietly(temp)
        error = _output_error(exc, path)
        if error is None:
            raise
        raise error from exc
    _fsync_folder(path.parent)
    return Written(path, tuple(notes))


def _output_format(path: Path, bit_depth: int) -> OutputFormat:
    """The format of ``path``, refused with :class:`OutputError` when it is unknown or
    cannot hold ``bit_depth``."""
    try:
        fmt = OutputFormat.of(path)
    except UsageError as exc:
        raise OutputError(exc.reason, path) from None
    problem = fmt.depth_problem(bit_depth)
    if problem is not None:
        raise OutputError(problem, path)
    return fmt


def _encode(temp: Path, *, pixels: np.ndarray, fmt: OutputFormat, quality: int, icc: bytes | None, target: Path) -> None:
    """Write ``pixels`` to ``temp`` in ``fmt``; a PNG gets the ICC profile ``icc`` here
    (the other formats get theirs with the rest of the metadata)."""
    if fmt is OutputFormat.PNG:
        _write_png(temp, pixels, icc, target)
    elif fmt is OutputFormat.JPEG:
        _write_jpeg(temp, pixels, quality, target)
    else:
        _write_tiff(temp, pixels)


def _output_error(exc: BaseException, path: Path) -> OutputError | None:
    """The :class:`OutputError` a failure while writing is reported as; None for one
    that is re-raised as it is (an UhdfuseError, KeyboardInterrupt, a bug)."""
    if isinstance(exc, UhdfuseError):
        return None
    if isinstance(exc, OSError):
        return OutputError(_os_reason(exc), path)
    if isinstance(exc, exiv2.Exiv2Error):
        return OutputError(f"cannot embed metadata ({first_line(exc)})", path)
    if isinstance(exc, MemoryError):
        return OutputError("out of memory while writing", path)
    if isinstance(exc, cv2.error):
        return OutputError(f"cannot encode image ({first_line(exc)})", path)
    return None


def _quantise(image: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float (H, W, 3) -> uint8/uint16 (display, clipped to [0, 1], NaN as 0) or float32 (linear).

    Rounds to the nearest code value exactly (in float64, a block of rows at a time
    on a few threads), so that ``v / 65535`` written and read back is ``v``.
    """
    if bit_depth == 32:
        return np.ascontiguousarray(image, dtype=np.float32)
    top = float((1 << bit_depth) - 1)
    out = np.empty(image.shape, dtype=np.uint8 if bit_depth == 8 else np.uint16)

    def block(rows: slice) -> None:
        values = np.fmax(np.asarray(image[rows], dtype=np.float64), 0.0)  # NaN -> 0
        np.fmin(values, 1.0, out=values)
        values *= top
        out[rows] = np.rint(values, out=values)

    in_row_blocks(block, image.shape[0], image.shape[1])
    return out


def _create_temp(path: Path) -> Path:
    """A new hidden file next to ``path``, created with the usual permissions (umask)."""
    for _ in range(100):
        temp = path.with_name(f".{path.name}.uhdfuse-{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(_os_reason(exc), path) from exc
        os.close(fd)
        return temp
    raise OutputError("cannot create a temporary file next to it", path)


def _write_png(temp: Path, pixels: np.ndarray, icc: bytes | None, target: Path) -> None:
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels[:, :, ::-1]))
    if not ok:
        raise OutputError("cannot encode PNG", target)
    data = encoded.tobytes()
    if icc:
        data = _png_insert_icc(data, icc)
    with open(temp, "wb") as fh:
        fh.write(data)


def _write_jpeg(temp: Path, pixels: np.ndarray, quality: int, target: Path) -> None:
    chroma = cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444 if quality >= FULL_CHROMA_QUALITY else cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality), cv2.IMWRITE_JPEG_SAMPLING_FACTOR, chroma]
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(pixels[:, :, ::-1]), params)
    if not ok:
        raise OutputError("cannot encode JPEG", target)
    with open(temp, "wb") as fh:
        fh.write(encoded.tobytes())


def _png_insert_icc(png: bytes, icc: bytes) -> bytes:
    """Insert an iCCP chunk right after IHDR (which the PNG format puts first).

    Done here rather than by libexiv2, which writes the chunk with an empty profile
    name that libpng rejects ("iCCP: bad keyword"); libexiv2 keeps an existing chunk.
    """
    ihdr_end = 8 + 4 + 4 + 13 + 4  # signature, length, type, IHDR data, CRC
    if png[12:16] != b"IHDR":
        raise ValueError("PNG encoder output does not start with IHDR")
    body = b"ICC profile\x00\x00" + zlib.compress(icc)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body
    chunk += struct.pack(">I", zlib.crc32(b"iCCP" + body) & 0xFFFFFFFF)
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def _write_tiff(temp: Path, pixels: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(
        temp,
        pixels,
        photometric="rgb",
        compression="zlib",
        # Level 1 is as small as the default within 3% on photographs, at half the time;
        # strips of 64 rows let tifffile compress them in parallel.
        compressionargs={"level": 1},
        rowsperstrip=64,
        maxworkers=worker_threads(),
        # Horizontal differencing shrinks photographs a lot; the floating-point
        # predictor would need the optional imagecodecs package.
        predictor=pixels.dtype != np.float32,
        resolution=(72, 72),
        resolutionunit="INCH",
        metadata=None,  # no tifffile JSON in ImageDescription
        software=False,
    )


def _is_bigtiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II+\x00", b"MM\x00+")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems refuse, which is harmless."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "No space left on device"
    return exc.strerror or first_line(exc)
