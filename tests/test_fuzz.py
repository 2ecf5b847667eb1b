"""Property-based fuzzing of the readers: any bytes give a Frame or UnsupportedInput.

Valid JPEG, PNG, 8/16-bit and float TIFF and DNG files made by the project's own
code are mutated (truncated, bytes flipped, ranges overwritten, bytes inserted) and
random bytes are named like images; :func:`read_frame`, :func:`read_encoded` and
:func:`read_metadata` must then either succeed with well-formed results or raise
:class:`UnsupportedInput`: never another exception, never a crash or a hang.

CI runs about 200 cases. A long run (see RELIABILITY.md)::

    UHDFUSE_FUZZ_EXAMPLES=20000 PYTHONPATH=src python -m pytest tests/test_fuzz.py -q
"""

from __future__ import annotations

import functools
import math
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uhdfuse.errors import UnsupportedInput
from uhdfuse.io import read_encoded, read_frame, read_metadata
from uhdfuse.types import Frame

EXAMPLES = int(os.environ.get("UHDFUSE_FUZZ_EXAMPLES", "200"))
# The decompression-bomb guard is the readers' defence against headers claiming huge
# sizes; a fuzzed header may claim anything, so the limit keeps memory bounded here.
MAX_PIXELS = 2_000_000
FUZZ = settings(
    max_examples=max(1, EXAMPLES * 4 // 5),
    deadline=None,
    derandomize=EXAMPLES <= 200,  # CI: the same cases every run; long runs explore
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@functools.cache
def _seeds() -> dict[str, bytes]:
    """suffix-tagged valid files: {"name.ext": bytes}."""
    import tifffile

    from uhdfuse.synthetic import write_example_bracket

    folder = Path(tempfile.mkdtemp(prefix="uhdfuse-fuzz-"))
    written = write_example_bracket(folder, width=48, height=32, seed=7)
    seeds = {
        "frame.jpg": written["jpeg"][0].read_bytes(),
        "frame16.tif": written["tiff"][0].read_bytes(),
        "frame.dng": written["dng"][0].read_bytes(),
    }
    import cv2

    pixels = cv2.imread(str(written["jpeg"][0]))
    ok, png = cv2.imencode(".png", pixels)
    assert ok
    seeds["frame.png"] = png.tobytes()
    for name, data in {
        "frame8.tif": pixels[:, :, ::-1].copy(),
        "float.tif": (pixels / 255.0).astype(np.float32),
        "grey.tif": pixels[:, :, 0].copy(),
    }.items():
        path = folder / name
        tifffile.imwrite(path, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        seeds[name] = path.read_bytes()
    return seeds


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(_seeds())))
    data = bytearray(_seeds()[name])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "zero_range"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[pos:]
        elif op == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[pos : pos + len(chunk)] = chunk
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "zero_range":
            data[pos : pos + draw(st.integers(1, 256))] = bytes(min(256, len(data) - pos))
    return name, bytes(data)


def _check_all_readers(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            exposure, camera = read_metadata(path)
        except UnsupportedInput:
            pass
        else:
            for value in (exposure.exposure_time, exposure.f_number, exposure.iso):
                assert value is None or (math.isfinite(value) and value > 0)
            assert camera.orientation in range(1, 9)
        try:
            frame = read_frame(path, max_pixels=MAX_PIXELS)
        except UnsupportedInput as exc:
            assert "\n" not in str(exc) and path.name in str(exc)
        else:
            assert isinstance(frame, Frame)
            image = frame.image
            assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
            assert image.shape[0] * image.shape[1] <= MAX_PIXELS
            assert np.isfinite(image).all()
        try:
            encoded = read_encoded(path, max_pixels=MAX_PIXELS)
        except UnsupportedInput as exc:
            assert "\n" not in str(exc) and path.name in str(exc)
        else:
            assert encoded.dtype in (np.uint8, np.uint16) and encoded.ndim == 3 and encoded.shape[2] == 3
        assert path.read_bytes() == data  # readers never write


@FUZZ
@given(mutated())
def test_mutated_images_read_or_raise_unsupported_input(case: tuple[str, bytes]) -> None:
    _check_all_readers(*case)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 5))
@given(
    st.sampled_from([".jpg", ".png", ".tif", ".dng", ".cr2", ".nef"]),
    st.sampled_from([b"", b"\xff\xd8", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"II+\x00"]),
    st.binary(max_size=2048),
)
def test_random_bytes_read_or_raise_unsupported_input(suffix: str, magic: bytes, body: bytes) -> None:
    # a plausible magic number sends the bytes down each decoder's path
    _check_all_readers("random" + suffix, magic + body)


def test_seeds_are_valid() -> None:
    """The fuzzing starts from files every reader accepts (else it tests nothing)."""
    for name, data in _seeds().items():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            assert read_frame(path).image.shape[:2] == (32, 48), name
            if not name.endswith((".dng", "float.tif")):
                read_encoded(path)



def _with_tag_count(tiff: bytes, tag: int, count: int) -> bytes:
    """A little-endian TIFF with the value count of one first-IFD tag rewritten."""
    data = bytearray(tiff)
    (ifd,) = struct.unpack("<I", data[4:8])
    (entries,) = struct.unpack("<H", data[ifd : ifd + 2])
    for k in range(entries):
        at = ifd + 2 + 12 * k
        if struct.unpack("<H", data[at : at + 2])[0] == tag:
            data[at + 4 : at + 8] = struct.pack("<I", count)
            return bytes(data)
    raise AssertionError(f"tag {tag} not found")


def test_found_by_fuzzing_tiff_without_bits_per_sample(tmp_path: Path) -> None:
    """The long fuzz run's finding: tifffile raised IndexError/TypeError on an empty
    BitsPerSample tag, which escaped the reader as a traceback."""
    path = tmp_path / "cut.tif"
    path.write_bytes(_with_tag_count(_seeds()["float.tif"], 258, 0))
    with pytest.raises(UnsupportedInput, match="cut.tif: cannot decode TIFF"):
        read_frame(path)
