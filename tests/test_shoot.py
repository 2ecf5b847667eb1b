"""Grouping a whole shoot into brackets from metadata alone."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import exiv2
import numpy as np
import pytest
from PIL import Image

from uhdfuse.shoot import find_groups, group_auto, scan
from uhdfuse.colour import srgb_encode
from uhdfuse.errors import UsageError
from uhdfuse.synthetic import procedural_scene

T0 = datetime(2026, 11, 20, 10, 0, 0)
BASE_TIME = 1 / 60  # metered shutter time of the 0 EV frames, seconds


def write_frame(
    path: Path,
    scene: np.ndarray,
    *,
    bias: float,
    when: datetime,
    model: str = "Alpha A7",
    size: tuple[int, int] | None = None,
    base_ev: float = 0.0,
) -> Path:
    """One JPEG as a camera would write it: ``scene`` (linear) exposed at ``bias`` EV, with EXIF.

    ``size`` (width, height) resizes the picture, to fake another resolution;
    ``base_ev`` makes the metered shutter time that many EV longer.
    """
    pixels = (srgb_encode(np.clip(scene * 2.0**bias, 0.0, 1.0)) * 255 + 0.5).astype(np.uint8)
    picture = Image.fromarray(pixels, "RGB")
    if size is not None:
        picture = picture.resize(size)
    picture.save(path, "JPEG", quality=90)
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    t = Fraction(BASE_TIME * 2.0 ** (bias + base_ev)).limit_denominator(100000)
    exif["Exif.Image.Make"] = "uhdfuse"
    exif["Exif.Image.Model"] = model
    exif["Exif.Photo.LensModel"] = "Test 24mm F4"
    exif["Exif.Photo.FocalLength"] = "24/1"
    exif["Exif.Photo.DateTimeOriginal"] = when.strftime("%Y:%m:%d %H:%M:%S")
    exif["Exif.Photo.ExposureTime"] = f"{t.numerator}/{t.denominator}"
    exif["Exif.Photo.FNumber"] = "8/1"
    exif["Exif.Photo.ISOSpeedRatings"] = "100"
    b = Fraction(bias).limit_denominator(100)
    exif["Exif.Photo.ExposureBiasValue"] = f"{b.numerator}/{b.denominator}"
    image.writeMetadata()
    return path


def make_shoot(folder: Path, *, width: int = 96, height: int = 64) -> dict[str, list[str]]:
    """A small shoot with EXIF; returns the intended groups as lists of file names.

    Camera A: a 3-frame bracket (0/-2/+2), a 5-frame bracket whose file names are
    out of capture order, a single, two back-to-back brackets, two identical
    exposures (singles), a frame at another resolution right after a bracket.
    Camera B (a second body, shooting at the same time): a 3-frame bracket.
    Plus one corrupt file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    scene = procedural_scene(height, width, seed=4)
    plan: list[tuple[str, float, int, str, tuple[int, int] | None]] = [
        # name, bias, seconds after T0, camera, size
        ("A_0001.jpg", 0, 0, "Alpha A7", None), ("A_0002.jpg", -2, 0, "Alpha A7", None),
        ("A_0003.jpg", 2, 1, "Alpha A7", None),
        # names out of order: capture order is 0008, 0004, 0007, 0005, 0006
        ("A_0008.jpg", 0, 10, "Alpha A7", None), ("A_0004.jpg", -1, 11, "Alpha A7", None),
        ("A_0007.jpg", 1, 12, "Alpha A7", None), ("A_0005.jpg", -2, 13, "Alpha A7", None),
        ("A_0006.jpg", 2, 14, "Alpha A7", None),
        ("A_0009.jpg", 0, 30, "Alpha A7", None),  # single: 16 s after the bracket
        ("A_0010.jpg", 0, 60, "Alpha A7", None), ("A_0011.jpg", -2, 61, "Alpha A7", None),
        ("A_0012.jpg", 2, 62, "Alpha A7", None),
        ("A_0013.jpg", 0, 63, "Alpha A7", None), ("A_0014.jpg", -2, 64, "Alpha A7", None),
        ("A_0015.jpg", 2, 65, "Alpha A7", None),
        ("A_0016.jpg", 0, 120, "Alpha A7", None), ("A_0017.jpg", 0, 121, "Alpha A7", None),
        ("A_0018.jpg", -1, 122, "Alpha A7", (48, 32)),  # other resolution: not the same bracket
        # second body, interleaved in time with camera A's 5-frame bracket
        ("B_0001.jpg", 0, 11, "Beta B1", None), ("B_0002.jpg", -1, 12, "Beta B1", None),
        ("B_0003.jpg", 1, 13, "Beta B1", None),
    ]  # fmt: skip
    for name, bias, seconds, model, size in plan:
        write_frame(folder / name, scene, bias=bias, when=T0 + timedelta(seconds=seconds), model=model, size=size)
    (folder / "A_0099.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" + bytes(range(256)) * 4)
    return {
        "brackets": [
            ["A_0001.jpg", "A_0002.jpg", "A_0003.jpg"],
            ["A_0008.jpg", "A_0004.jpg", "A_0007.jpg", "A_0005.jpg", "A_0006.jpg"],
            ["B_0001.jpg", "B_0002.jpg", "B_0003.jpg"],
            ["A_0010.jpg", "A_0011.jpg", "A_0012.jpg"],
            ["A_0013.jpg", "A_0014.jpg", "A_0015.jpg"],
        ],
        "singles": [["A_0009.jpg"], ["A_0016.jpg"], ["A_0017.jpg"], ["A_0018.jpg"]],
        "unreadable": [["A_0099.jpg"]],
    }


@pytest.fixture(scope="module")
def shoot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[list[str]]]]:
    folder = tmp_path_factory.mktemp("shoot")
    return folder, make_shoot(folder)


def _names(groups, kind: str) -> list[list[str]]:
    return [[p.name for p in g.paths] for g in groups if g.kind == kind]


def test_auto_grouping_finds_exactly_the_intended_brackets(shoot) -> None:
    folder, intended = shoot
    groups = find_groups([folder]).groups
    assert _names(groups, "bracket") == intended["brackets"]
    assert _names(groups, "single") == intended["singles"]
    assert _names(groups, "unreadable") == intended["unreadable"]
    assert sum(len(g.paths) for g in groups) == 22  # every file is accounted for, once
    reasons = {tuple(p.name for p in g.paths): g.reason for g in groups}
    assert "bias +0/-2/+2" in reasons[("A_0001.jpg", "A_0002.jpg", "A_0003.jpg")]
    assert "gap" in reasons[("A_0009.jpg",)]
    assert "repeats an exposure" in reasons[("A_0016.jpg",)] or "repeats an exposure" in reasons[("A_0017.jpg",)]
    assert "resolution" in reasons[("A_0018.jpg",)]
    assert "cannot read metadata" in reasons[("A_0099.jpg",)]


def test_grouping_does_not_depend_on_the_order_files_are_given(shoot) -> None:
    folder, intended = shoot
    files = sorted(folder.iterdir(), reverse=True)
    assert _names(find_groups(files).groups, "bracket") == intended["brackets"]


def test_time_gap_splits_brackets(shoot) -> None:
    folder, _ = shoot
    # 0.05 s: frames one second apart no longer belong together (only same-second ones do),
    # not even as a hand-triggered bracket, whose pauses may be 10x the gap (0.5 s)
    brackets = _names(find_groups([folder], gap=0.05).groups, "bracket")
    assert brackets == [["A_0001.jpg", "A_0002.jpg"]]
    with pytest.raises(UsageError):
        group_auto(scan([folder / "A_0001.jpg"]), gap=float("nan"))


def test_fixed_size_sets_and_leftovers(shoot) -> None:
    folder, _ = shoot
    groups = find_groups([folder], mode="frames", frames=5).groups
    assert [len(g.paths) for g in groups if g.kind == "bracket"] == [5, 5, 5, 5]
    assert [len(g.paths) for g in groups if g.kind == "leftover"] == [1]
    assert _names(groups, "bracket")[0] == ["A_0001.jpg", "A_0002.jpg", "A_0003.jpg", "A_0008.jpg", "A_0004.jpg"]
    with pytest.raises(UsageError):
        find_groups([folder], mode="frames", frames=1)


def test_folder_per_bracket(tmp_path: Path) -> None:
    scene = procedural_scene(32, 48, seed=1)
    for k, biases in enumerate([(0, -2, 2), (0,), (0, -1, 1, -2, 2)]):
        sub = tmp_path / f"set{k}"
        sub.mkdir()
        for n, b in enumerate(biases):  # times and exposures say nothing: folders decide
            write_frame(sub / f"f{n}.jpg", scene, bias=b, when=T0)
    groups = find_groups([tmp_path], mode="folders").groups
    assert [(g.kind, len(g.paths)) for g in groups] == [("bracket", 3), ("single", 1), ("bracket", 5)]
    assert groups[0].reason == "folder set0/ holds 3 images"


def test_files_without_exposure_or_time_are_singles(tmp_path: Path) -> None:
    for n in range(3):
        Image.new("RGB", (32, 24), (n * 40, 0, 0)).save(tmp_path / f"plain{n}.jpg")
    groups = find_groups([tmp_path]).groups
    assert [g.kind for g in groups] == ["single"] * 3
    assert "--frames N" in groups[0].reason.spelled({"frames": "--frames"})


def test_scan_reads_metadata_only(shoot) -> None:
    folder, _ = shoot
    info = scan([folder / "A_0018.jpg"])[0]
    assert info.size == (48, 32) and info.camera.model == "Alpha A7"
    assert info.time == T0 + timedelta(seconds=122)
    assert info.exposure.bias_ev == -1
