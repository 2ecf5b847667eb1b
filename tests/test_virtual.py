"""Single-capture HDR: one RAW file becomes a virtual bracket, fused like a real one.

The RAW files are rendered by the project's own camera model and DNG writer from
procedural HDR scenes, so the real bracket of the same scene is at hand to compare.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
from typer.testing import CliRunner

from uhdfuse import MergeConfig, merge
from uhdfuse.cli import app
from uhdfuse.colour import luma, srgb_encode
from uhdfuse.config import Response
from uhdfuse.errors import InconsistentBracket, UsageError
from uhdfuse.io import read_frame, read_metadata, read_provenance
from uhdfuse.io.discover import discover
from uhdfuse.metrics import psnr
from uhdfuse.stack import write_stack
from uhdfuse.synthetic import procedural_scene, write_dng
from uhdfuse.synthetic.camera import render_bracket
from uhdfuse.types import CameraInfo, ExposureInfo
from uhdfuse.virtual import (
    CLIP_LEVEL,
    NoiseModel,
    auto_evs,
    denoise,
    estimate_noise,
    expose,
    virtual_bracket,
)

from .conftest import shared_data, tree_hashes

runner = CliRunner()
EVS = (0.0, 2.0, 4.0)  # the capture and two brighter frames: a landscape exposed for its sky
CAMERA = CameraInfo(make="uhdfuse", model="Synthetic Camera", lens="Test 35mm", focal_length=35.0)
BITS = 14
QUANTUM = 1.0 / (2**BITS - 1 - 2 ** (BITS - 5))  # one raw step of write_dng, in linear units


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _write_bracket(folder: Path, *, height: int, width: int, seed: int, noise: bool = True) -> list[Path]:
    """The real bracket EVS of a procedural scene, one DNG per frame (EXIF exposure times)."""
    rendered = render_bracket(procedural_scene(height, width, seed=seed), EVS, seed=seed, noise=noise)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(rendered.frames):
        exposure = ExposureInfo(exposure_time=rendered.exposure_times[i], f_number=8.0, iso=100.0)
        paths.append(write_dng(folder / f"IMG_{i + 1:04d}.dng", frame, exposure=exposure, camera=CAMERA, bits=BITS))
    return paths


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _write_bracket(tmp_path_factory.mktemp("noisy"), height=200, width=300, seed=4)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return _write_bracket(tmp_path_factory.mktemp("clean"), height=128, width=192, seed=5, noise=False)


def _read16(path: Path) -> np.ndarray:
    return iio.imread(path).astype(np.float32) / 65535.0


def test_virtual_frames_equal_the_real_bracket_up_to_quantisation(clean: list[Path]) -> None:
    """Frame k is the capture times 2**EV: the real exposure of the same scene, but for the
    capture's quantisation (scaled by 2**EV) and where demosaicing follows other edges."""
    real = [read_frame(p) for p in clean]
    bracket = virtual_bracket(real[0], EVS, clean=False)
    assert bracket.virtual_ev == EVS and bracket.ev_source == "virtual"
    assert np.array_equal(bracket.frames[0].image, real[0].image)  # the capture itself, untouched
    for k in (1, 2):
        virtual, actual = bracket.frames[k].image, real[k].image
        # away from what clips in the real frame (its demosaicing sees the clipped edge)
        near_clip = cv2.dilate((actual.max(axis=2) >= 0.95).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        error = np.abs(virtual - actual)[~near_clip]
        step = QUANTUM * 2.0 ** EVS[k]
        assert error.size > 1000
        assert np.median(error) <= step
        assert np.percentile(error, 90) <= 1.5 * step
        # and what clips in a real exposure clips in the virtual one (inside the clipped areas)
        clipped = cv2.erode((actual.min(axis=2) >= 0.999).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert clipped.sum() > 20 and np.all(virtual[clipped] >= 0.98)


def test_exposure_times_scale_with_the_ev(clean: list[Path]) -> None:
    capture = read_frame(clean[0])
    bracket = virtual_bracket(capture, (-2.0, 0.0, 2.0), clean=False)
    times = [f.exposure.exposure_time for f in bracket.frames]
    assert times == pytest.approx([capture.exposure.exposure_time * 2.0**e for e in (-2, 0, 2)])
    assert [f.exposure.bias_ev for f in bracket.frames] == [-2.0, 0.0, 2.0]
    assert bracket.reference == 1 and bracket.ev == (-2.0, 0.0, 2.0)


def test_clipped_highlights_stay_clipped_in_darker_frames() -> None:
    capture = np.full((32, 32, 3), 0.2, np.float32)
    capture[:8] = 1.0  # a blown sky
    capture[8:16] = 0.9  # just below clipping: on the shoulder
    dark = expose(capture, -2.0)
    assert np.all(dark[:8] == 1.0)  # not dimmed into a grey a real darker frame would have resolved
    assert np.all(dark[16:] == pytest.approx(0.05))  # the rest scaled exactly
    assert np.all((dark[8:16] > 0.9 / 4) & (dark[8:16] < 0.9))  # fading over between them
    bright = expose(capture, 2.0)
    assert np.all(bright[:16] == 1.0) and np.all(bright[16:] == pytest.approx(0.8))
    # a float capture has no white level: everything is scaled alike
    assert np.all(expose(capture, -2.0, clipped_at=None)[:8] == 0.25)


def test_noise_is_measured_from_the_capture() -> None:
    rng = np.random.default_rng(1)
    shot, read = 4e-5, (5e-4) ** 2
    ramp = np.linspace(0.002, 0.6, 1200, dtype=np.float32)[None, :, None].repeat(800, axis=0).repeat(3, axis=2)
    noisy = ramp + np.sqrt(shot * ramp + read) * rng.standard_normal(ramp.shape).astype(np.float32)
    for model in estimate_noise(noisy):
        for level in (0.01, 0.05, 0.2):
            truth = np.sqrt(shot * level + read)
            assert model.sigma(level) == pytest.approx(truth, rel=0.25)
    assert NoiseModel(shot, read).floor(5.0) == pytest.approx(25 * shot / 2 + np.sqrt((25 * shot) ** 2 + 100 * read) / 2)


def test_denoise_removes_noise_and_keeps_edges() -> None:
    rng = np.random.default_rng(2)
    image = np.full((200, 200, 3), 0.02, np.float32)
    image[:, 100:] = 0.2  # an edge standing far above the noise
    noise = NoiseModel(1e-4, 1e-6)
    noisy = image + np.sqrt(noise.shot * image + noise.read) * rng.standard_normal(image.shape).astype(np.float32)
    out = denoise(noisy, [noise] * 3)
    flat = (slice(20, 180), slice(20, 80))
    assert out[flat].std() < 0.7 * noisy[flat].std()
    assert out[:, 98:100].mean() == pytest.approx(0.02, abs=0.003)  # the edge stays where it is, as sharp
    assert out[:, 100:102].mean() == pytest.approx(0.2, abs=0.01)


def test_automatic_evs_lift_the_shadows_within_the_noise() -> None:
    rng = np.random.default_rng(3)
    scene = np.full((300, 300, 3), 0.5, np.float32)
    scene[150:] = 0.01  # a foreground 5.6 EV below middle grey
    clean_noise = [NoiseModel(1e-5, 1e-8)] * 3
    evs = auto_evs(scene, clean_noise)
    assert evs[0] < 0 < evs[-1] and 0.0 in evs  # the bright half brought down, the capture kept
    assert evs[-1] == pytest.approx(np.log2(0.18 / 0.01), abs=0.5)  # the shadows to middle grey
    assert all(b - a <= 2.0 + 1e-9 for a, b in zip(evs, evs[1:]))
    # a noisy capture: its shadows sit at the noise floor and are lifted less
    noisy_noise = [NoiseModel(1e-3, 1e-5)] * 3
    assert auto_evs(scene + 0 * rng.random(scene.shape, np.float32), noisy_noise)[-1] < evs[-1] - 1.0


def test_merge_of_one_raw_matches_the_real_bracket(noisy: list[Path], tmp_path: Path) -> None:
    before = tree_hashes(noisy[0].parent)
    real = merge(noisy, tmp_path / "real.tif")
    virtual = merge([noisy[0]], tmp_path / "virtual.tif", MergeConfig(virtual_ev=EVS))
    assert virtual.virtual_ev == EVS and virtual.align_model == "none" and virtual.ev == (-2.0, 0.0, 2.0)
    a, b = _read16(virtual.output), _read16(real.output)
    assert psnr(a, b, data_range=1.0) >= 30.0
    # the shadows read: far brighter than the capture shown as it is
    capture = srgb_encode(np.clip(read_frame(noisy[0]).image, 0, 1))
    shadows = luma(capture) < np.percentile(luma(capture), 25)
    assert luma(a)[shadows].mean() > 2.0 * luma(capture)[shadows].mean()
    assert tree_hashes(noisy[0].parent) == before


def test_merge_of_one_raw_keeps_its_metadata_and_names_it(noisy: list[Path], tmp_path: Path) -> None:
    result = _run("merge", noisy[0], "-o", tmp_path / "out.tif", "--virtual-ev", "0,2,4", "--json", "-e", "mertens")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["virtual_ev"] == [0.0, 2.0, 4.0] and report["ev_source"] == "virtual"
    assert "virtual bracket EV +0, +2, +4 of IMG_0001.dng" in result.stderr
    exposure, camera = read_metadata(tmp_path / "out.tif")
    assert camera.model == "Synthetic Camera" and camera.lens == "Test 35mm"
    assert exposure.exposure_time == pytest.approx(read_metadata(noisy[0])[0].exposure_time)
    engine, sources = read_provenance(tmp_path / "out.tif")
    assert engine == "mertens"
    assert sources == (("IMG_0001.dng", -2.0), ("IMG_0001.dng", 0.0), ("IMG_0001.dng", 2.0))


def test_merge_of_one_raw_picks_its_evs(noisy: list[Path], tmp_path: Path) -> None:
    result = _run("merge", noisy[0], "-o", tmp_path / "out.tif", "--json", "-e", "mertens")
    assert result.exit_code == 0, result.output
    evs = json.loads(result.stdout)["virtual_ev"]
    assert 0.0 in evs and evs[-1] >= 2.0 and len(evs) >= 2
    assert "virtual bracket EV" in result.stderr


def test_stack_writes_frames_other_tools_and_uhdfuse_can_fuse(noisy: list[Path], tmp_path: Path) -> None:
    result = _run("stack", noisy[0], "--virtual-ev", "-2,0,2,4", "-o", tmp_path / "stack")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "stack").iterdir())
    assert [f.name for f in files] == ["IMG_0001_ev+0.tif", "IMG_0001_ev+2.tif", "IMG_0001_ev+4.tif", "IMG_0001_ev-2.tif"]
    capture_time = read_metadata(noisy[0])[0].exposure_time
    for f, ev in zip(files, (0, 2, 4, -2)):
        exposure, camera = read_metadata(f)
        assert exposure.exposure_time == pytest.approx(capture_time * 2.0**ev, rel=1e-4)
        assert exposure.bias_ev == ev and camera.model == "Synthetic Camera"
        assert iio.imread(f).dtype == np.uint16
    # the files are frames (not fused outputs), and they fuse like the virtual bracket itself
    assert discover([tmp_path / "stack"]).files and len(discover([tmp_path / "stack"]).files) == 4
    fused = merge([tmp_path / "stack"], tmp_path / "from_stack.tif", MergeConfig(engine="mertens"))
    assert fused.ev_source == "exif" and fused.ev == pytest.approx((-4.0, -2.0, 0.0, 2.0))
    # an existing stack is not overwritten without force
    again = _run("stack", noisy[0], "--virtual-ev", "-2,0,2,4", "-o", tmp_path / "stack")
    assert again.exit_code == 1 and "already exists" in again.stderr


def test_stack_as_linear_dng_develops_back_to_the_virtual_frames(noisy: list[Path], tmp_path: Path) -> None:
    result = write_stack(noisy[0], tmp_path / "dng", MergeConfig(virtual_ev=(-1.0, 0.0, 2.0)), "dng")
    assert [p.name for p in result.outputs] == ["IMG_0001_ev-1.dng", "IMG_0001_ev+0.dng", "IMG_0001_ev+2.dng"]
    bracket = virtual_bracket(read_frame(noisy[0]), (-1.0, 0.0, 2.0))
    capture_time = read_metadata(noisy[0])[0].exposure_time
    for path, frame, ev in zip(result.outputs, bracket.frames, (-1, 0, 2)):
        developed = read_frame(path)  # LibRaw, as any RAW file
        assert developed.source == "raw" and developed.size == frame.size
        assert np.abs(developed.image - frame.image).max() < 1e-3
        exposure, camera = read_metadata(path)
        assert exposure.exposure_time == pytest.approx(capture_time * 2.0**ev, rel=1e-4) and exposure.bias_ev == ev
        assert camera.model == "Synthetic Camera"
    fused = merge([tmp_path / "dng"], tmp_path / "from_dng.tif", MergeConfig(engine="mertens"))
    assert fused.ev_source == "exif" and fused.ev == pytest.approx((-1.0, 0.0, 2.0))
    assert fused.inputs[fused.reference].name == "IMG_0001_ev+0.dng"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2", "--virtual-ev needs at least 2 EVs, got 1"),
        ("0,0", "--virtual-ev lists an EV twice"),
        ("0,12", "--virtual-ev values must lie within ±10 EV"),
        ("0,two", "is not a comma-separated list of numbers for --virtual-ev"),
        ("0,nan", "--virtual-ev values must be finite"),
    ],
)
def test_bad_virtual_evs_are_usage_errors(noisy: list[Path], tmp_path: Path, value: str, reason: str) -> None:
    result = _run("merge", noisy[0], "-o", tmp_path / "out.tif", "--virtual-ev", value)
    assert result.exit_code == 2 and reason in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out.tif").exists()


def test_virtual_evs_need_one_capture(noisy: list[Path], tmp_path: Path) -> None:
    result = _run("merge", *noisy, "-o", tmp_path / "out.tif", "--virtual-ev", "0,2")
    assert result.exit_code == 2 and "--virtual-ev makes a bracket of one capture; 3 frames were given" in result.stderr
    with pytest.raises(UsageError, match="for one capture give virtual_ev"):
        merge([noisy[0]], tmp_path / "x.tif", MergeConfig(ev=(0.0,)))


def test_a_single_display_file_is_refused_with_its_reason(tmp_path: Path) -> None:
    pixels = (np.random.default_rng(0).random((64, 96, 3)) * 255).astype(np.uint8)
    iio.imwrite(tmp_path / "one.jpg", pixels)
    result = _run("merge", tmp_path / "one.jpg", "-o", tmp_path / "out.tif")
    assert result.exit_code == 1
    assert "one.jpg: one 8-bit display-encoded image has no headroom above white" in result.stderr
    iio.imwrite(tmp_path / "one16.tif", pixels.astype(np.uint16) * 257)
    with pytest.raises(InconsistentBracket, match="if it holds linear values, add response='linear'"):
        merge([tmp_path / "one16.tif"], tmp_path / "out.tif")
    # told it is linear, a 16-bit TIFF is a capture like a RAW file
    result16 = merge([tmp_path / "one16.tif"], tmp_path / "out16.tif", MergeConfig(response=Response.LINEAR, engine="mertens"))
    assert result16.virtual_ev is not None


def test_batch_fuses_raw_singles_when_asked(noisy: list[Path], tmp_path: Path) -> None:
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / noisy[0].name).write_bytes(noisy[0].read_bytes())  # one RAW, nothing else: a single
    skipped = _run("batch", shoot, "-o", tmp_path / "out", "--json", "-e", "mertens")
    assert skipped.exit_code == 1 and not list((tmp_path / "out").glob("*.tif"))  # nothing to fuse by default
    fused = _run("batch", shoot, "-o", tmp_path / "out", "--json", "-e", "mertens", "--singles", "virtual")
    assert fused.exit_code == 0, fused.output
    line = json.loads(fused.stdout.strip().splitlines()[-1])
    assert line["status"] == "ok" and "virtual bracket (--singles virtual)" in line["reason"]
    assert line["result"]["virtual_ev"] and Path(line["output"]).exists()


def test_real_canon_dng_makes_a_virtual_bracket(tmp_path: Path) -> None:
    dng = shared_data("raw_single_dng", "colorchart.dng")
    result = merge([dng], tmp_path / "chart.tif", MergeConfig(engine="mertens"))
    assert result.virtual_ev is not None and 0.0 in result.virtual_ev
    fused = _read16(result.output)
    assert fused.shape[2] == 3 and 0.2 < fused.mean() < 0.8  # neither black nor blown
    assert CLIP_LEVEL < 1.0
