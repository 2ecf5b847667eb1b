"""`uhdfuse merge | info | example` end to end, as a photographer runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import exifread
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import uhdfuse
from uhdfuse.cli import app
from uhdfuse.io.metadata import read_provenance

from .conftest import tree_hashes

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _exif(path: Path) -> dict:
    with open(path, "rb") as fh:
        return exifread.process_file(fh, details=False)


def test_merge_jpeg_folder_to_16bit_tiff_keeps_metadata(example_bracket, tmp_path: Path) -> None:
    folder = example_bracket["jpeg"][0].parent
    before = tree_hashes(folder)
    out = tmp_path / "fused.tif"
    result = _run("merge", folder, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["output"] == str(out)
    assert report["ev"] == [-2.0, 0.0, 2.0] and report["ev_source"] == "exif"
    # Files are numbered in capture order 0/-2/+2; the reference is the middle exposure.
    assert Path(report["reference_file"]).name == example_bracket["jpeg"][0].name
    assert set(report["timings"]) == {"read", "align", "fuse", "fuse_model", "fuse_render", "write"}
    assert report["model_peak_bytes"] > 0  # the default engine is IPL

    pixels = tifffile.imread(out)
    assert pixels.dtype == np.uint16 and pixels.shape == (240, 360, 3)
    assert len(np.unique(pixels)) > 4096  # real 16-bit output, not 8-bit scaled up

    tags = _exif(out)
    assert str(tags["Image Make"]) == "uhdfuse"
    assert str(tags["Image Model"]) == "Synthetic Camera"
    assert str(tags["EXIF ExposureTime"]) == "1/250"
    assert str(tags["Image Software"]).startswith("uhdfuse")
    assert str(tags["Image Orientation"]).startswith("Horizontal")
    assert "GPS GPSLatitude" in tags and "EXIF DateTimeOriginal" in tags
    engine, sources = read_provenance(out)
    assert engine == "ipl"
    assert [round(ev, 2) for _, ev in sources] == [-2.0, 0.0, 2.0]
    assert tree_hashes(folder) == before


def test_merge_with_the_ipl_engine_reports_its_stages(example_bracket, tmp_path: Path) -> None:
    """The shipped trained weights end to end: output, provenance, model-stage report."""
    out = tmp_path / "ipl.tif"
    result = _run("merge", *example_bracket["jpeg"], "-o", out, "--engine", "ipl", "--device", "cpu",
                  "--cache-bits", "4", "--chunk", "3", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"] == "ipl"
    assert set(report["timings"]) == {"read", "align", "fuse", "fuse_model", "fuse_render", "write"}
    assert report["timings"]["fuse_model"] + report["timings"]["fuse_render"] <= report["timings"]["fuse"]
    assert report["model_peak_bytes"] > 0
    pixels = tifffile.imread(out)
    assert pixels.dtype == np.uint16 and pixels.shape == (240, 360, 3)
    assert read_provenance(out)[0] == "ipl"


def test_merge_16bit_tiff_to_16bit_png_and_dng_to_tiff(example_bracket, tmp_path: Path) -> None:
    png = tmp_path / "fused.png"
    assert _run("merge", *example_bracket["tiff"], "-o", png).exit_code == 0
    import cv2

    data = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert data.dtype == np.uint16 and data.shape == (240, 360, 3)
    assert str(_exif(png)["Image Model"]) == "Synthetic Camera"

    tif = tmp_path / "raw.tif"
    result = _run("merge", example_bracket["dng"][0].parent, "-o", tif, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ev"] == [-2.0, 0.0, 2.0]
    tags = _exif(tif)
    assert str(tags["Image Make"]) == "uhdfuse"
    assert "Image DNGVersion" not in tags and "Image CFAPattern" not in tags  # RAW layout tags dropped


def test_hdr_writes_linear_float_radiance(example_bracket, tmp_path: Path) -> None:
    out = tmp_path / "radiance.tif"
    assert _run("merge", example_bracket["dng"][0].parent, "-o", out, "--hdr").exit_code == 0
    radiance = tifffile.imread(out)
    assert radiance.dtype == np.float32
    assert radiance.max() > 1.5  # highlights beyond the reference frame's clipping level survive
    assert np.isfinite(radiance).all() and radiance.min() >= 0


def test_8bit_png(example_bracket, tmp_path: Path) -> None:
    out = tmp_path / "fused8.png"
    assert _run("merge", example_bracket["jpeg"][0].parent, "-o", out, "-b", "8").exit_code == 0
    import cv2

    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def test_never_overwrites_without_force(example_bracket, tmp_path: Path) -> None:
    out = tmp_path / "fused.tif"
    out.write_bytes(b"precious")
    result = _run("merge", example_bracket["jpeg"][0].parent, "-o", out)
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert out.read_bytes() == b"precious"
    assert _run("merge", example_bracket["jpeg"][0].parent, "-o", out, "--force").exit_code == 0
    assert tifffile.imread(out).dtype == np.uint16
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.tif"]  # no temporary files left


@pytest.mark.parametrize(
    "args, message",
    [
        (["--engine", "magic"], "--engine"),
        (["--align", "wobbly"], "--align"),
        (["--ev", "0,1"], "--ev gives 2 values for 3 frames"),
        (["--ev", "a,b,c"], "--ev"),
        (["--cache-bits", "3"], "--cache-bits"),
    ],
)
def test_usage_errors_exit_2(example_bracket, tmp_path: Path, args: list[str], message: str) -> None:
    result = _run("merge", example_bracket["jpeg"][0].parent, "-o", tmp_path / "x.tif", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "x.tif").exists()


def test_unknown_output_format_is_a_usage_error(example_bracket, tmp_path: Path) -> None:
    result = _run("merge", example_bracket["jpeg"][0].parent, "-o", tmp_path / "x.webp")
    assert result.exit_code == 2 and "x.webp" in result.stderr


def test_missing_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    proc = subprocess.run(
        [sys.executable, "-m", "uhdfuse", "merge", str(missing), "-o", str(tmp_path / "o.tif")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope.jpg" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_corrupt_frame_fails_cleanly_and_debug_shows_traceback(example_bracket, tmp_path: Path) -> None:
    folder = tmp_path / "bracket"
    folder.mkdir()
    for p in example_bracket["jpeg"]:
        shutil.copy(p, folder)
    (folder / "bracket_0002.jpg").write_bytes(b"this is not a JPEG")
    out = tmp_path / "o.tif"
    result = _run("merge", folder, "-o", out)
    assert result.exit_code == 1 and "bracket_0002.jpg" in result.stderr
    assert not out.exists() and list(tmp_path.glob(".*")) == []
    debug = runner.invoke(app, ["merge", str(folder), "-o", str(out), "--debug"])
    assert isinstance(debug.exception, uhdfuse.UhdfuseError)


def test_handheld_bracket_is_aligned(handheld_bracket, tmp_path: Path) -> None:
    out = tmp_path / "fused.tif"
    result = _run("merge", handheld_bracket["jpeg"][0].parent, "-o", out, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["align_model"] != "none"
    assert max(report["align_residuals"]) < 0.05
    x, y, w, h = report["crop"]
    assert (w, h) == tuple(report["size"]) and w < 360 and h < 240  # the uncovered border is cropped
    assert w > 300 and h > 190


def test_info_reports_frames_and_reference(example_bracket) -> None:
    result = _run("info", example_bracket["jpeg"][0].parent, "--json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert [f["ev"] for f in info["frames"]] == [-2.0, 0.0, 2.0]
    assert [f["reference"] for f in info["frames"]] == [False, True, False]
    assert info["camera"]["model"] == "Synthetic Camera"
    assert info["frames"][1]["exposure_time"] == pytest.approx(1 / 250)
    human = _run("info", example_bracket["jpeg"][0].parent)
    # the table is what was asked for: on stdout, whole and plain when piped (`info dir | less`)
    assert human.exit_code == 0 and "reference" in human.stdout
    assert "bracket_0001.jpg" in human.stdout and "\x1b[" not in human.stdout


def test_example_command_writes_a_fusable_bracket(tmp_path: Path) -> None:
    out = tmp_path / "ex"
    result = _run("example", out, "--width", "96", "--height", "64")
    assert result.exit_code == 0
    assert len(list((out / "jpeg").glob("*.jpg"))) == 3 and len(list((out / "dng").glob("*.dng"))) == 3
    again = _run("example", out)
    assert again.exit_code == 2 and "not empty" in again.stderr


@pytest.mark.parametrize("command", ["merge", "info", "example"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = _run(command, "--help")
    assert result.exit_code == 0 and "Example:" in result.stdout


def test_python_api(example_bracket, tmp_path: Path) -> None:
    result = uhdfuse.merge([example_bracket["jpeg"][0].parent], tmp_path / "api.tif")
    assert isinstance(result, uhdfuse.FuseResult)
    assert result.output.exists() and result.engine == "ipl" and result.reference == 1


def test_calibrated_response_and_reference_override(example_bracket, tmp_path: Path) -> None:
    folder = example_bracket["jpeg"][0].parent
    out = tmp_path / "debevec.tif"
    darkest = "bracket_0002.jpg"  # capture order 0/-2/+2: the second file is the -2 EV frame
    result = _run("merge", folder, "-o", out, "--response", "debevec", "--reference", darkest, "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["reference_file"]).name == darkest
    assert report["ev"] == [0.0, 2.0, 4.0]  # EVs are relative to the chosen reference
    assert str(_exif(out)["EXIF ExposureTime"]) == "1/1000"  # metadata follows the reference
    # The example camera encodes with the sRGB curve, so the calibrated curve must fuse
    # to nearly what the default sRGB linearisation gives.
    plain = tmp_path / "srgb.tif"
    assert _run("merge", folder, "-o", plain, "--reference", darkest).exit_code == 0
    a = tifffile.imread(out).astype(np.float64) / 65535
    b = tifffile.imread(plain).astype(np.float64) / 65535
    psnr = 10 * np.log10(1.0 / np.mean((a - b) ** 2))
    assert psnr > 30


def _options(command: str) -> dict[str, tuple[str, ...]]:
    import typer.main

    click_command = typer.main.get_command(app).commands[command]
    return {p.name: tuple(p.opts) + tuple(p.secondary_opts) for p in click_command.params}


def test_merge_and_batch_share_every_fusion_flag_with_one_spelling() -> None:
    from uhdfuse.cli.options import FUSION_OPTIONS

    merge, batch = _options("merge"), _options("batch")
    for option in FUSION_OPTIONS:
        assert merge[option.name] == batch[option.name], option.name


# Parameters library messages name that no uhdfuse command sets: Python-only API
# (metrics, calibration and Mertens internals, unreachable through a checked config;
# the grouping mode, which batch derives from --frames/--folders) and the training
# tool, which spells its own flags.
PYTHON_ONLY = {"data_range", "scales", "levels", "mertens.sigma", "method", "samples", "mode"}


def test_every_parameter_a_library_message_names_is_spelled_as_a_flag() -> None:
    import ast

    from uhdfuse.cli.options import FLAGS

    package = Path(uhdfuse.__file__).parent
    unspelled = set()
    for path in package.rglob("*.py"):
        if "train" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            # param("name", ...) in messages; choice(kind, value, "name") and
            # _coerce(config, "field", kind[, "name"]) name the setting they check
            position = {"param": 0, "choice": 2, "_coerce": -1}.get(getattr(node.func, "id", None))
            if position is None or not node.args or not isinstance(node.args[position], ast.Constant):
                continue
            name = node.args[position].value
            if node.func.id == "_coerce" and len(node.args) == 3:
                name = node.args[1].value
            if name not in FLAGS and name not in PYTHON_ONLY:
                unspelled.add(f"{path.relative_to(package)}: {name}")
    assert unspelled == set()


def test_a_setting_the_config_refuses_is_a_usage_error_naming_the_flag(example_bracket, tmp_path: Path) -> None:
    folder = example_bracket["jpeg"][0].parent
    result = _run("merge", folder, "-o", tmp_path / "x.tif", "--hdr", "--bit-depth", "16")
    assert result.exit_code == 2 and "--hdr" in result.stderr and "--bit-depth" in result.stderr
    result = _run("batch", folder, "-o", tmp_path / "out", "--consistent", "--exposure-anchor", "3")
    assert result.exit_code == 2 and "--exposure-anchor" in result.stderr
    assert not (tmp_path / "x.tif").exists() and not (tmp_path / "out").exists()
