"""The bad-input corpus: every way a bracket, an output or a model can be wrong.

Each case is generated here from the project's own synthetic brackets (no binaries
from elsewhere) and run through ``uhdfuse merge`` as a photographer would. For each
the test asserts the exit code, one error line naming the file and the reason, no
traceback, nothing partial or temporary left in the output folder (hidden files
included) and inputs byte-identical afterwards.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import exiv2
import numpy as np
import pytest
import tifffile
from PIL import Image
from typer.testing import CliRunner

from uhdfuse.cli import app
from uhdfuse.errors import ModelError, UnsupportedInput, UsageError

from .conftest import tree_hashes
from .tags import set_tags

runner = CliRunner()
W, H = 96, 64


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """A valid -2/0/+2 EV bracket as JPEG, 16-bit TIFF and DNG: the originals mutated below."""
    from uhdfuse.synthetic import write_example_bracket

    return write_example_bracket(tmp_path_factory.mktemp("originals"), width=W, height=H, seed=1)


def _merge(*args: object):
    # catch_exceptions=False: an unexpected exception (a traceback for the user) fails the test
    return runner.invoke(app, ["merge", *[str(a) for a in args]], catch_exceptions=False)


def _listing(folder: Path) -> list[str]:
    """Every entry of a folder, hidden ones included."""
    return sorted(os.listdir(folder)) if folder.exists() else []


def _copy(files: list[Path], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        shutil.copyfile(f, folder / f.name)


def _assert_clean_failure(result, code: int, culprit: str, reason: str, inputs: Path, before: dict, out: Path) -> None:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert culprit in errors[0] and reason in errors[0], errors[0]
    assert "Traceback" not in result.output
    assert _listing(out) == []  # no output, no hidden temporary file
    assert tree_hashes(inputs) == before


# --------------------------------------------------------------------------- corrupt files


def _cut_in_scan(data: bytes) -> bytes:
    """A JPEG cut half-way through its entropy-coded data (a copy interrupted mid-file)."""
    sos = data.rfind(b"\xff\xda")
    return data[: sos + (len(data) - sos) // 2]


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    body = zlib.compress(b"\x00" * 64)
    idat = struct.pack(">I", len(body)) + b"IDAT" + body + struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return b"\x89PNG\r\n\x1a\n" + chunk + idat + b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _jpeg_claiming(data: bytes, width: int, height: int) -> bytes:
    """A real JPEG with its frame header's size rewritten."""
    for sof in (b"\xff\xc0", b"\xff\xc2"):
        i = data.find(sof)
        if i > 0:
            return data[: i + 5] + struct.pack(">HH", height, width) + data[i + 9 :]
    raise AssertionError("no SOF marker")


def _tiff_claiming(folder: Path, width: int, height: int) -> bytes:
    """A small TIFF whose ImageWidth/ImageLength tags claim width x height."""
    path = folder / "small.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    data = bytearray(path.read_bytes())
    path.unlink()
    (ifd,) = struct.unpack("<I", data[4:8])
    (count,) = struct.unpack("<H", data[ifd : ifd + 2])
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, typ = struct.unpack("<HH", data[entry : entry + 4])
        value = {256: width, 257: height}.get(tag)
        if value is not None:
            fmt = "<H" if typ == 3 else "<I"
            data[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


def _frames_of(corpus: dict[str, list[Path]], fmt: str) -> list[Path]:
    return corpus[fmt]


# Each builder fills `folder` (the bracket to merge) and returns the file the error must name.
Builder = Callable[[dict[str, list[Path]], Path], str]


def _with_extra(fmt: str, name: str, content: Callable[[dict[str, list[Path]], Path], bytes]) -> Builder:
    def build(corpus: dict[str, list[Path]], folder: Path) -> str:
        _copy(corpus[fmt], folder)
        (folder / name).write_bytes(content(corpus, folder))
        return name

    return build


def _replacing_last(fmt: str, mutate: Callable[[bytes], bytes]) -> Builder:
    def build(corpus: dict[str, list[Path]], folder: Path) -> str:
        _copy(corpus[fmt][:-1], folder)
        last = corpus[fmt][-1]
        (folder / last.name).write_bytes(mutate(last.read_bytes()))
        return last.name

    return build


def _resized(corpus: dict[str, list[Path]], folder: Path) -> str:
    _copy(corpus["jpeg"][:-1], folder)
    last = corpus["jpeg"][-1]
    Image.open(last).resize((W + 32, H)).save(folder / last.name, quality=95)
    return last.name


def _other_camera(corpus: dict[str, list[Path]], folder: Path) -> str:
    _copy(corpus["jpeg"], folder)
    last = folder / corpus["jpeg"][-1].name
    set_tags(last, exif={"Exif.Image.Make": "Othercam", "Exif.Image.Model": "Body Two"})
    return last.name


def _tiny(width: int, height: int) -> Builder:
    def build(corpus: dict[str, list[Path]], folder: Path) -> str:
        folder.mkdir(parents=True)
        for i, level in enumerate((40, 110, 220)):
            cv2.imwrite(str(folder / f"t{i}.png"), np.full((height, width, 3), level, np.uint8))
        return "t0.png"

    return build


def _cmyk_jpeg(corpus: dict[str, list[Path]], folder: Path) -> bytes:
    path = folder / "tmp.jpg"
    Image.open(corpus["jpeg"][0]).convert("CMYK").save(path)
    data = path.read_bytes()
    path.unlink()
    return data


def _cmyk_tiff(corpus: dict[str, list[Path]], folder: Path) -> bytes:
    path = folder / "tmp.tif"
    tifffile.imwrite(path, np.full((H, W, 4), 90, np.uint8), photometric="separated")
    data = path.read_bytes()
    path.unlink()
    return data


def _one_frame(corpus: dict[str, list[Path]], folder: Path) -> str:
    _copy(corpus["jpeg"][:1], folder)
    return corpus["jpeg"][0].name


def _raw_and_jpeg(corpus: dict[str, list[Path]], folder: Path) -> str:
    _copy(corpus["jpeg"][:2] + corpus["dng"][2:], folder)
    return corpus["dng"][2].name


FAILURES: dict[str, tuple[Builder, str]] = {
    "zero_byte_file": (_with_extra("jpeg", "empty.jpg", lambda c, f: b""), "empty file (0 bytes)"),
    "jpeg_truncated_in_scan": (_replacing_last("jpeg", _cut_in_scan), "truncated or corrupt"),
    "jpeg_truncated_in_header": (_replacing_last("jpeg", lambda d: d[:300]), "cannot decode JPEG"),
    "tiff_truncated": (_replacing_last("tiff", lambda d: d[: len(d) // 2]), "cannot decode TIFF"),
    "dng_truncated": (_replacing_last("dng", lambda d: d[: len(d) // 2]), "truncated or corrupt"),
    "dng_header_only": (_replacing_last("dng", lambda d: d[:16]), "cannot decode RAW"),
    "text_named_jpg": (_with_extra("jpeg", "notes.jpg", lambda c, f: b"shot list: 3 frames\n"), "not a JPEG, PNG or TIFF"),
    "frames_of_different_sizes": (_resized, "differs from"),
    "different_cameras": (_other_camera, "a bracket comes from one camera"),
    "one_frame_only": (_one_frame, "8-bit display-encoded image has no headroom above white"),
    "raw_mixed_with_jpeg": (_raw_and_jpeg, "mixes RAW and encoded images"),
    "image_1x1": (_tiny(1, 1), "is 1x1 pixels; fusing needs at least 16x16"),
    "image_3x2": (_tiny(3, 2), "is 3x2 pixels; fusing needs at least 16x16"),
    "cmyk_jpeg": (_with_extra("jpeg", "cmyk.jpg", _cmyk_jpeg), "CMYK JPEG is not supported"),
    "cmyk_tiff": (_with_extra("jpeg", "cmyk.tif", _cmyk_tiff), "CMYK (separated) TIFF is not supported"),
    "bomb_png": (_with_extra("jpeg", "bomb.png", lambda c, f: _png_claiming(100_000, 100_000)), "100000x100000"),
    "bomb_jpeg": (
        _with_extra("jpeg", "bomb.jpg", lambda c, f: _jpeg_claiming(c["jpeg"][0].read_bytes(), 65_000, 65_000)),
        "65000x65000",
    ),
    "bomb_tiff": (_with_extra("jpeg", "bomb.tif", lambda c, f: _tiff_claiming(f, 100_000, 100_000)), "100000x100000"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_bad_bracket_fails_with_one_line_naming_the_file(case: str, corpus, tmp_path: Path) -> None:
    build, reason = FAILURES[case]
    inputs, out = tmp_path / "in", tmp_path / "out"
    culprit = build(corpus, inputs)
    out.mkdir()
    before = tree_hashes(inputs)
    result = _merge(inputs, "-o", out / "fused.tif")
    _assert_clean_failure(result, 1, culprit, reason, inputs, before, out)


def test_bomb_limit_names_the_option_and_can_be_raised(tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(3):
        (inputs / f"b{i}.png").write_bytes(_png_claiming(4000, 3000))
    out.mkdir()
    before = tree_hashes(inputs)
    low = _merge(inputs, "-o", out / "f.tif", "--max-pixels", 1_000_000)
    _assert_clean_failure(low, 1, "b0.png", "more than the limit of 1000000; raise it with --max-pixels", inputs, before, out)
    # raised: the header is accepted and the decoder finds the file holds no such image
    high = _merge(inputs, "-o", out / "f.tif", "--max-pixels", 20_000_000)
    _assert_clean_failure(high, 1, "b0.png", "cannot decode", inputs, before, out)


def test_missing_input_file_fails_rather_than_fusing_the_rest(corpus, tmp_path: Path) -> None:
    # HDRMerge exits 0 here; a bracket with a frame missing is not what the user asked for
    out = tmp_path / "out"
    out.mkdir()
    folder = corpus["jpeg"][0].parent
    before = tree_hashes(folder)
    result = _merge(*corpus["jpeg"], folder / "bracket_0009.jpg", "-o", out / "f.tif")
    _assert_clean_failure(result, 1, "bracket_0009.jpg", "no such file", folder, before, out)


def test_the_same_file_given_twice_is_refused(corpus, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    folder = corpus["jpeg"][0].parent
    before = tree_hashes(folder)
    result = _merge(*corpus["jpeg"], corpus["jpeg"][1], "-o", out / "f.tif")
    _assert_clean_failure(result, 1, corpus["jpeg"][1].name, "given twice", folder, before, out)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(UnsupportedInput, match="empty file"):
        _merge(tmp_path / "a.jpg", "-o", tmp_path / "f.tif", "--debug")


# --------------------------------------------------------------------------- odd but fusable input


def _set_exposure_time(path: Path, type_id: exiv2.TypeId, text: str) -> None:
    """Write a nonsense Exif.Photo.ExposureTime (and drop the bias, so EXIF says nothing usable)."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    value = exiv2.Value.create(type_id)
    value.read(text)
    exif["Exif.Photo.ExposureTime"] = value
    bias = exif.findKey(exiv2.ExifKey("Exif.Photo.ExposureBiasValue"))
    if bias != exif.end():
        exif.erase(bias)
    image.setExifData(exif)
    image.writeMetadata()


def _assert_fused(result, out: Path, inputs: Path, before: dict, warning: str | None) -> None:
    assert result.exit_code == 0, result.output
    assert _listing(out) == ["fused.tif"]  # the output, and nothing temporary
    pixels = tifffile.imread(out / "fused.tif")
    assert pixels.dtype == np.uint16 and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.std() > 100
    if warning is not None:
        assert any(line.startswith("warning:") and warning in line for line in result.stderr.splitlines()), result.stderr
    assert "Traceback" not in result.output
    assert tree_hashes(inputs) == before


@pytest.mark.parametrize(
    ("label", "type_id", "text"),
    [
        ("zero", exiv2.TypeId.unsignedRational, "0/1"),
        ("negative", exiv2.TypeId.signedRational, "-1/100"),
        ("nan", exiv2.TypeId.tiffDouble, "nan"),
        ("zero_over_zero", exiv2.TypeId.unsignedRational, "0/0"),
    ],
)
def test_nonsense_exif_exposure_is_estimated_from_pixels_with_a_warning(
    label: str, type_id, text: str, corpus, tmp_path: Path
) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _copy(corpus["jpeg"], inputs)
    for f in inputs.iterdir():
        _set_exposure_time(f, type_id, text)
    out.mkdir()
    before = tree_hashes(inputs)
    result = _merge(inputs, "-o", out / "fused.tif", "--json")
    _assert_fused(result, out, inputs, before, "relative exposures estimated from the pixels")
    import json

    report = json.loads(result.stdout)
    assert report["ev_source"] == "pixels"
    assert np.allclose(sorted(report["ev"]), [-2, 0, 2], atol=0.4)


def test_duplicate_exposure_warns_and_fuses(corpus, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _copy(corpus["jpeg"], inputs)
    shutil.copyfile(corpus["jpeg"][0], inputs / "again.jpg")  # the 0 EV frame, twice under two names
    out.mkdir()
    before = tree_hashes(inputs)
    result = _merge(inputs, "-o", out / "fused.tif")
    _assert_fused(result, out, inputs, before, "have the same exposure (EV +0.00)")


def test_all_frames_same_exposure_warns_and_fuses(corpus, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for i in range(3):
        shutil.copyfile(corpus["jpeg"][0], inputs / f"same_{i}.jpg")
    out.mkdir()
    before = tree_hashes(inputs)
    result = _merge(inputs, "-o", out / "fused.tif")
    _assert_fused(result, out, inputs, before, "all frames have the same exposure")


def _write_variants(corpus: dict[str, list[Path]], folder: Path, kind: str) -> None:
    """The TIFF bracket re-encoded as greyscale JPEG, 16-bit TIFF or float TIFF (no EXIF)."""
    folder.mkdir(parents=True)
    for i, src in enumerate(corpus["tiff"]):
        data = tifffile.imread(src)  # uint16 sRGB
        if kind == "grey_jpeg":
            grey = cv2.cvtColor((data >> 8).astype(np.uint8), cv2.COLOR_RGB2GRAY)
            cv2.imwrite(str(folder / f"g{i}.jpg"), grey)
        elif kind == "grey16_tiff":
            tifffile.imwrite(folder / f"g{i}.tif", cv2.cvtColor(data, cv2.COLOR_RGB2GRAY))
        elif kind == "float_tiff":
            linear = (data / 65535.0) ** 2.2
            tifffile.imwrite(folder / f"f{i}.tif", linear.astype(np.float32), photometric="rgb")
        elif kind == "min_size_png":
            small = cv2.resize(data, (16, 16), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(folder / f"s{i}.png"), small[:, :, ::-1])


@pytest.mark.parametrize("kind", ["grey_jpeg", "grey16_tiff", "float_tiff", "min_size_png"])
def test_grey_16bit_float_and_smallest_images_fuse(kind: str, corpus, tmp_path: Path) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write_variants(corpus, inputs, kind)
    out.mkdir()
    before = tree_hashes(inputs)
    extra = ["--align", "none"] if kind == "min_size_png" else []
    result = _merge(inputs, "-o", out / "fused.tif", *extra)
    # no EXIF in these files: exposures come from the pixels, and the user is told
    _assert_fused(result, out, inputs, before, "exposure EXIF is missing")


def test_paths_with_spaces_and_non_ascii_names(corpus, tmp_path: Path) -> None:
    inputs = tmp_path / "my shoot" / "été 2026 – 東京"
    inputs.mkdir(parents=True)
    for i, f in enumerate(corpus["jpeg"]):
        shutil.copyfile(f, inputs / f"frame {i} ☀ ñ.jpg")
    out = tmp_path / "sortie finale"
    out.mkdir()
    before = tree_hashes(inputs)
    result = _merge(inputs, "-o", out / "fusionné résultat.tif")
    assert result.exit_code == 0, result.output
    assert _listing(out) == ["fusionné résultat.tif"]
    assert tifffile.imread(out / "fusionné résultat.tif").shape == (H, W, 3)
    assert tree_hashes(inputs) == before
    # and a bad file there is still named correctly
    (inputs / "broken ☂.jpg").write_bytes(b"")
    before = tree_hashes(inputs)
    bad = _merge(inputs, "-o", out / "autre.tif")
    assert bad.exit_code == 1 and "broken ☂.jpg: empty file" in bad.stderr
    assert _listing(out) == ["fusionné résultat.tif"] and tree_hashes(inputs) == before


# --------------------------------------------------------------------------- output faults


def test_existing_output_is_never_overwritten_without_force(corpus, tmp_path: Path) -> None:
    folder = corpus["jpeg"][0].parent
    before = tree_hashes(folder)
    out = tmp_path / "out"
    out.mkdir()
    (out / "fused.tif").write_bytes(b"yesterday's edit")
    result = _merge(folder, "-o", out / "fused.tif")
    assert result.exit_code == 1
    assert "fused.tif: already exists; use --force to overwrite" in result.stderr
    assert _listing(out) == ["fused.tif"] and (out / "fused.tif").read_bytes() == b"yesterday's edit"
    assert tree_hashes(folder) == before


def test_output_folder_that_cannot_exist(corpus, tmp_path: Path) -> None:
    # Root ignores permission bits, so "not writable" is made honestly: the parent is a file.
    folder = corpus["jpeg"][0].parent
    before = tree_hashes(folder)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder")
    result = _merge(folder, "-o", blocker / "fused.tif")
    assert result.exit_code == 1, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error:") and "fused.tif" in line and "cannot create folder" in line
    assert _listing(tmp_path) == ["notes.txt"] and blocker.read_text() == "a file, not a folder"
    assert tree_hashes(folder) == before


def _fail_rename(src, dst):  # noqa: ANN001
    raise OSError(errno.EROFS, os.strerror(errno.EROFS))


def _disk_full_tiff(temp: Path, pixels: np.ndarray) -> None:
    """What a full disk does to the TIFF writer: part of the file lands, then ENOSPC."""
    with open(temp, "wb") as fh:
        fh.write(b"II*\x00" + bytes(4096))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _disk_full_png(temp: Path, pixels: np.ndarray, icc, target: Path) -> None:  # noqa: ANN001
    with open(temp, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + bytes(1024))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _disk_full_metadata(path: Path, prepared, *, with_icc: bool = True) -> None:  # noqa: ANN001
    with open(path, "ab") as fh:
        fh.write(bytes(512))
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    ("where", "replacement", "suffix", "reason"),
    [
        ("os.replace", _fail_rename, ".tif", "Read-only file system"),
        ("_write_tiff", _disk_full_tiff, ".tif", "No space left on device"),
        ("_write_png", _disk_full_png, ".png", "No space left on device"),
        ("embed_metadata", _disk_full_metadata, ".tif", "No space left on device"),
    ],
)
def test_write_faults_leave_nothing_and_keep_an_overwritten_output(
    where: str, replacement, suffix: str, reason: str, corpus, tmp_path: Path, monkeypatch
) -> None:
    import uhdfuse.io.write as writer

    folder = corpus["jpeg"][0].parent
    before = tree_hashes(folder)
    out = tmp_path / "out"
    out.mkdir()
    if where == "os.replace":
        monkeypatch.setattr(writer.os, "replace", replacement)
    else:
        monkeypatch.setattr(writer, where, replacement)
    target = out / f"fused{suffix}"
    result = _merge(folder, "-o", target)
    _assert_clean_failure(result, 1, target.name, reason, folder, before, out)
    # with --force over an earlier output: the fault leaves the earlier output whole
    target.write_bytes(b"earlier output")
    again = _merge(folder, "-o", target, "--force")
    assert again.exit_code == 1 and reason in again.stderr
    assert _listing(out) == [target.name] and target.read_bytes() == b"earlier output"


# --------------------------------------------------------------------------- model faults


WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "ipl-test.safetensors"


@pytest.fixture()
def weights_copy(tmp_path: Path) -> Path:
    if not WEIGHTS.is_file():
        pytest.skip("weights/ipl-test.safetensors is absent")
    target = tmp_path / "w" / WEIGHTS.name
    target.parent.mkdir()
    shutil.copyfile(WEIGHTS, target)
    shutil.copyfile(WEIGHTS.with_suffix(".json"), target.with_suffix(".json"))
    return target


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "sha256 does not match"),
        (lambda p: p.write_bytes(b""), "sha256 does not match"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])), "sha256 does not match"),
        (lambda p: p.with_suffix(".json").unlink(), "weights manifest missing"),
        (lambda p: p.with_suffix(".json").write_text("{not json"), "weights manifest unreadable"),
    ],
    ids=["truncated", "empty", "one_bit_flipped", "manifest_missing", "manifest_corrupt"],
)
def test_corrupt_or_truncated_weights_raise_model_error(damage, reason: str, weights_copy: Path) -> None:
    from uhdfuse.nn.weights import load_weights

    damage(weights_copy)
    with pytest.raises(ModelError, match=reason) as info:
        load_weights(weights_copy)
    assert "\n" not in str(info.value) and weights_copy.stem in str(info.value)


def test_weights_are_never_unpickled(weights_copy: Path, tmp_path: Path) -> None:
    """A pickle posing as weights, with a manifest that vouches for it, runs no code."""
    import hashlib
    import json
    import pickle

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (marker,))

    data = pickle.dumps({"weight": Payload()})
    weights_copy.write_bytes(data)
    manifest = json.loads(weights_copy.with_suffix(".json").read_text())
    manifest["sha256"] = hashlib.sha256(data).hexdigest()
    weights_copy.with_suffix(".json").write_text(json.dumps(manifest))

    from uhdfuse.nn.weights import load_weights

    with pytest.raises(Exception) as info:  # noqa: PT011 - the type is asserted below
        load_weights(weights_copy)
    assert not marker.exists()  # nothing was unpickled
    assert isinstance(info.value, ModelError), f"{type(info.value).__name__}: {info.value}"


@pytest.mark.filterwarnings("ignore:IPL weights")
def test_absent_gpu_is_a_usage_error_before_any_output(corpus, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    from uhdfuse.runtime import fuse_ipl

    images = np.full((2, 32, 32, 3), 0.3, np.float32)
    with pytest.raises(UsageError, match="no CUDA GPU is available"):
        fuse_ipl(images, (0.0, 1.0), 0, device="cuda")

    folder = corpus["jpeg"][0].parent
    before = tree_hashes(folder)
    out = tmp_path / "out"
    out.mkdir()
    result = _merge(folder, "-o", out / "fused.tif", "--engine", "ipl", "--device", "cuda")
    assert result.exit_code == 2, result.output
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(line) == 1 and "device cuda requested but no CUDA GPU is available" in line[0]
    assert _listing(out) == [] and tree_hashes(folder) == before
