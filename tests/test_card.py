"""A photographer's memory card: RAW+JPEG pairs, DCIM folders, slow brackets, earlier outputs."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path

import exiv2
import numpy as np
import pytest
from PIL import Image, JpegImagePlugin
from typer.testing import CliRunner

from uhdfuse.shoot import camera_name, find_groups
from uhdfuse.cli import app
from uhdfuse.colour import srgb_encode
from uhdfuse.synthetic import procedural_scene, write_dng
from uhdfuse.types import CameraInfo, ExposureInfo

from .conftest import tree_hashes

runner = CliRunner()
T0 = datetime(2026, 6, 13, 15, 0, 0)
SIZE = (96, 64)  # width, height
METERED = 1 / 250  # shutter of the 0 EV frame, seconds


def _run(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _scene(seed: int = 3) -> np.ndarray:
    return procedural_scene(SIZE[1], SIZE[0], seed=seed) * 0.25


def write_jpeg(
    path: Path,
    *,
    ev: float,
    when: datetime,
    bias: float | None = None,
    program: int = 3,
    mode: int | None = None,
    seed: int = 3,
    subsec: str | None = None,
) -> Path:
    """A camera JPEG of the scene at ``ev`` (shutter METERED * 2**ev), with EXIF as a Canon writes it."""
    pixels = (srgb_encode(np.clip(_scene(seed) * 2.0**ev, 0.0, 1.0)) * 255 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, "RGB").save(path, "JPEG", quality=92)
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    t = Fraction(METERED * 2.0**ev).limit_denominator(100000)
    exif["Exif.Image.Make"] = "Canon"
    exif["Exif.Image.Model"] = "Canon EOS 30D"
    exif["Exif.Photo.LensModel"] = "EF 24mm f/2.8"
    exif["Exif.Photo.FocalLength"] = "24/1"
    exif["Exif.Photo.DateTimeOriginal"] = when.strftime("%Y:%m:%d %H:%M:%S")
    if subsec is not None:
        exif["Exif.Photo.SubSecTimeOriginal"] = subsec
    exif["Exif.Photo.ExposureTime"] = f"{t.numerator}/{t.denominator}"
    exif["Exif.Photo.FNumber"] = "8/1"
    exif["Exif.Photo.ISOSpeedRatings"] = "100"
    exif["Exif.Photo.ExposureProgram"] = str(program)
    if mode is not None:
        exif["Exif.Photo.ExposureMode"] = str(mode)
    if bias is not None:
        b = Fraction(bias).limit_denominator(100)
        exif["Exif.Photo.ExposureBiasValue"] = f"{b.numerator}/{b.denominator}"
    image.writeMetadata()
    return path


def write_raw_pair(folder: Path, stem: str, *, ev: float, when: datetime) -> tuple[Path, Path]:
    """IMG_xxxx.DNG and its camera JPEG, as a body set to RAW+JPEG writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = when.strftime("%Y:%m:%d %H:%M:%S")
    dng = write_dng(
        folder / f"{stem}.DNG",
        np.clip(_scene() * 2.0**ev, 0.0, 1.0),
        exposure=ExposureInfo(exposure_time=METERED * 2.0**ev, f_number=8.0, iso=100, bias_ev=ev),
        camera=CameraInfo(make="Canon", model="Canon EOS 30D", lens="EF 24mm f/2.8", focal_length=24.0, datetime=stamp),
    )
    jpg = write_jpeg(folder / f"{stem}.JPG", ev=ev, when=when, bias=ev, mode=2)
    return dng, jpg


@pytest.fixture(scope="module")
def card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DCIM/100CANON: a RAW+JPEG auto-bracket, a hand-triggered 5-frame tripod bracket, a
    single; DCIM/101CANON: a JPEG bracket with an earlier uhdfuse output inside it."""
    root = tmp_path_factory.mktemp("card")
    first = root / "DCIM" / "100CANON"
    for n, ev in enumerate((0, -2, 2)):  # Canon AEB order
        write_raw_pair(first, f"IMG_000{n + 1}", ev=ev, when=T0 + timedelta(seconds=n))
    when = T0 + timedelta(minutes=5)
    for n, ev in enumerate((-2, -1, 0, 1, 2)):  # manual mode, shutter changed by hand, 12-20 s pauses
        write_jpeg(first / f"IMG_000{n + 4}.JPG", ev=ev, when=when, program=1)
        when += timedelta(seconds=12 + 2 * n)
    write_jpeg(first / "IMG_0009.JPG", ev=0, when=T0 + timedelta(minutes=20))  # a single
    second = root / "DCIM" / "101CANON"
    for n, ev in enumerate((0, -2, 2)):
        write_jpeg(second / f"IMG_010{n + 1}.JPG", ev=ev, bias=ev, mode=2, when=T0 + timedelta(hours=1, seconds=n))
    result = _run("merge", second, "-o", second / "fused.tif", "--engine", "mertens")
    assert result.exit_code == 0, result.stderr
    hidden = root / "DCIM" / ".thumbnails"
    write_jpeg(hidden / "THM_0001.JPG", ev=0, when=T0)
    return root


def _dry_run(*args: object) -> tuple[list[dict], str]:
    result = _run("batch", *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()], result.stderr


def _names(line: dict) -> list[str]:
    return [Path(f).name for f in line["files"]]


def test_batch_on_a_card_finds_the_brackets_raws_not_jpegs_never_an_output(card: Path) -> None:
    before = tree_hashes(card)
    lines, stderr = _dry_run(card)
    brackets = [_names(line) for line in lines if line["kind"] == "bracket"]
    assert brackets == [
        ["IMG_0001.DNG", "IMG_0002.DNG", "IMG_0003.DNG"],
        ["IMG_0004.JPG", "IMG_0005.JPG", "IMG_0006.JPG", "IMG_0007.JPG", "IMG_0008.JPG"],
        ["IMG_0101.JPG", "IMG_0102.JPG", "IMG_0103.JPG"],
    ]
    assert [_names(line) for line in lines if line["kind"] != "bracket"] == [["IMG_0009.JPG"]]
    listed = {name for line in lines for name in _names(line)}
    assert "fused.tif" not in listed and "THM_0001.JPG" not in listed
    # what was left out is said, once per kind, naming the files
    assert "IMG_0001.JPG" in stderr and "RAW+JPEG" in stderr and "--prefer jpeg" in stderr
    assert "fused.tif" in stderr and "written by uhdfuse" in stderr
    hand = next(line for line in lines if _names(line)[0] == "IMG_0004.JPG")
    assert "hand-triggered" in hand["reason"]
    assert lines[0]["camera"] == "Canon EOS 30D"
    assert tree_hashes(card) == before


def test_batch_prefer_jpeg_and_no_recursive(card: Path) -> None:
    lines, _ = _dry_run(card, "--prefer", "jpeg")
    assert _names(lines[0]) == ["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG"]
    result = _run("batch", card, "--dry-run", "--no-recursive")
    assert result.exit_code == 1 and "only subfolders (DCIM)" in result.stderr
    lines, _ = _dry_run(card / "DCIM" / "101CANON", "--no-recursive")
    assert [_names(line) for line in lines] == [["IMG_0101.JPG", "IMG_0102.JPG", "IMG_0103.JPG"]]


def test_batch_fuses_a_card_into_a_folder_on_it_without_rescanning_it(card: Path, tmp_path: Path) -> None:
    copy = tmp_path / "card"
    shutil.copytree(card, copy)
    out = copy / "fused"
    result = _run("batch", copy, "-o", out, "--format", "jpg", "-j", "2", "--json")  # ipl, device auto
    assert result.exit_code == 0, result.stderr
    done = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["status"] for d in done] == ["ok"] * 3
    assert all(Path(d["output"]).suffix == ".jpg" for d in done)
    assert not (out / ".uhdfuse-gpu.lock").exists()  # a CPU machine: no lock left behind
    # a second look at the card does not take the outputs, nor the output folder, as frames
    lines, _ = _dry_run(copy, "-o", out, "--format", "jpg")
    assert all(line["up_to_date"] for line in lines if line["kind"] == "bracket")
    assert not any("fused" in f for line in lines for f in line["files"])


def test_merge_on_a_raw_jpeg_folder_fuses_the_raws(tmp_path: Path) -> None:
    folder = tmp_path / "pairs"
    for n, ev in enumerate((0, -2, 2)):
        write_raw_pair(folder, f"IMG_000{n + 1}", ev=ev, when=T0 + timedelta(seconds=n))
    result = _run("merge", folder, "-o", tmp_path / "raw.tif", "--engine", "mertens", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [Path(p).suffix for p in report["inputs"]] == [".DNG"] * 3
    assert any("RAW+JPEG" in w for w in report["warnings"])
    jpeg = _run("merge", folder, "-o", tmp_path / "jpeg.tif", "--engine", "mertens", "--prefer", "jpeg", "--json")
    assert [Path(p).suffix for p in json.loads(jpeg.stdout)["inputs"]] == [".JPG"] * 3


def test_merge_skips_an_earlier_output_in_the_bracket_folder(card: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bracket"
    shutil.copytree(card / "DCIM" / "101CANON", folder)
    result = _run("merge", folder, "-o", tmp_path / "again.tif", "--engine", "mertens", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [Path(p).name for p in report["inputs"]] == ["IMG_0102.JPG", "IMG_0101.JPG", "IMG_0103.JPG"]
    assert Path(report["reference_file"]).name == "IMG_0101.JPG"
    assert any("fused.tif" in w and "written by uhdfuse" in w for w in report["warnings"])


def test_merge_on_a_folder_of_folders_says_so(card: Path) -> None:
    result = _run("merge", card / "DCIM", "-o", card / "never.tif")
    assert result.exit_code == 1
    assert "only subfolders (100CANON, 101CANON)" in result.stderr and "uhdfuse batch" in result.stderr
    assert "Traceback" not in result.output and not (card / "never.tif").exists()


def test_info_and_dry_run_tables_go_to_stdout_whole(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    long = "a_very_long_file_name_from_a_tethering_tool_that_would_not_fit_in_eighty_columns"
    for n, ev in enumerate((0, -2, 2)):
        write_jpeg(folder / f"{long}_{n}.jpg", ev=ev, bias=ev, when=T0 + timedelta(seconds=n))
    info = _run("info", folder)
    assert info.exit_code == 0 and f"{long}_0.jpg" in info.stdout and "\x1b[" not in info.stdout
    dry = _run("batch", folder, "--dry-run")
    assert dry.exit_code == 0 and f"{long}_0.jpg" in dry.stdout and "bracket" in dry.stdout


# --------------------------------------------------------------------------- grouping


def _groups(folder: Path) -> list[list[str]]:
    return [[p.name for p in g.paths] for g in find_groups([folder]).groups]


def test_two_slow_brackets_of_one_scene_a_minute_apart_stay_two(tmp_path: Path) -> None:
    when = T0
    for k in range(2):
        for n, ev in enumerate((-2, 0, 2)):
            write_jpeg(tmp_path / f"S{k}_{n}.jpg", ev=ev, when=when, program=1)
            when += timedelta(seconds=15)
        when += timedelta(seconds=60)
    assert _groups(tmp_path) == [["S0_0.jpg", "S0_1.jpg", "S0_2.jpg"], ["S1_0.jpg", "S1_1.jpg", "S1_2.jpg"]]


def test_metered_singles_in_an_auto_mode_are_not_a_slow_bracket(tmp_path: Path) -> None:
    # aperture priority, no compensation: the meter changed the shutter, not the photographer
    for n, ev in enumerate((-1, 0, 1)):
        write_jpeg(tmp_path / f"P_{n}.jpg", ev=ev, bias=0, when=T0 + timedelta(seconds=10 * n))
    assert _groups(tmp_path) == [["P_0.jpg"], ["P_1.jpg"], ["P_2.jpg"]]


def test_two_slow_frames_alone_are_singles_and_turning_back_splits(tmp_path: Path) -> None:
    for n, ev in enumerate((0, 2, 1)):  # 0 -> +2, then back down: not one progression
        write_jpeg(tmp_path / f"M_{n}.jpg", ev=ev, when=T0 + timedelta(seconds=15 * n), program=1)
    assert _groups(tmp_path) == [["M_0.jpg"], ["M_1.jpg"], ["M_2.jpg"]]


def test_the_gap_runs_from_the_end_of_the_exposure(tmp_path: Path) -> None:
    # 8 s, 2 s and 0.5 s exposures (a night bracket), each started 1.5 s after the last ended
    start, names = T0, []
    for n, seconds in enumerate((8.0, 2.0, 0.5)):
        ev = np.log2(seconds / METERED)
        names.append(write_jpeg(tmp_path / f"N_{n}.jpg", ev=ev, bias=0, when=start, program=3).name)
        start += timedelta(seconds=seconds + 1.5)
    assert _groups(tmp_path) == [names]


def test_subsec_times_order_frames_of_one_second(tmp_path: Path) -> None:
    for name, ev, subsec in (("B.jpg", 0, "10"), ("A.jpg", -2, "60"), ("C.jpg", 2, "90")):
        write_jpeg(tmp_path / name, ev=ev, bias=ev, when=T0, subsec=subsec, mode=2)
    assert _groups(tmp_path) == [["B.jpg", "A.jpg", "C.jpg"]]


def test_the_cameras_bracket_mark_comes_first(tmp_path: Path) -> None:
    for n, ev in enumerate((0, -2, 2)):
        write_jpeg(tmp_path / f"K_{n}.jpg", ev=ev, bias=ev, mode=2, when=T0 + timedelta(seconds=n))
    write_jpeg(tmp_path / "K_3.jpg", ev=1, bias=1, mode=0, when=T0 + timedelta(seconds=3))  # not in the AEB
    groups = find_groups([tmp_path]).groups
    assert [[p.name for p in g.paths] for g in groups] == [["K_0.jpg", "K_1.jpg", "K_2.jpg"], ["K_3.jpg"]]
    assert "auto-bracket" in groups[1].reason


def test_camera_name_does_not_repeat_the_make() -> None:
    assert camera_name(CameraInfo(make="Canon", model="Canon EOS 30D")) == "Canon EOS 30D"
    assert camera_name(CameraInfo(make="NIKON CORPORATION", model="NIKON D850")) == "NIKON D850"
    assert camera_name(CameraInfo(make="SONY", model="ILCE-7M3")) == "SONY ILCE-7M3"
    assert camera_name(CameraInfo()) is None


def test_unreadable_reason_is_plain_words(tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG" + bytes(range(256)) * 4)
    write_jpeg(tmp_path / "ok.jpg", ev=0, when=T0)
    groups = find_groups([tmp_path]).groups
    reason = next(g.reason for g in groups if g.kind == "unreadable")
    assert reason.startswith("cannot read metadata (") and "ErrorCode" not in reason and "(<" not in reason


# --------------------------------------------------------------------------- output and input leniency


def _exiftool(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-n", "-G", str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)[0]


def test_merge_writes_jpeg_with_metadata_and_full_chroma(card: Path, tmp_path: Path) -> None:
    bracket = card / "DCIM" / "101CANON"
    out = tmp_path / "x.jpg"
    result = _run("merge", bracket, "-o", out, "--engine", "mertens", "--json")
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.size == SIZE and im.mode == "RGB"
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4 at the default quality 95
        assert im.info.get("icc_profile")
    low = tmp_path / "low.jpg"
    assert _run("merge", bracket, "-o", low, "--engine", "mertens", "--quality", "80").exit_code == 0
    with Image.open(low) as im:
        assert JpegImagePlugin.get_sampling(im) == 2  # 4:2:0 below 90
    assert _run("merge", bracket, "-o", tmp_path / "y.jpg", "-b", "16").exit_code == 2
    if shutil.which("exiftool") is None:
        pytest.skip("exiftool not installed: the second reader's check did not run")
    tags = _exiftool(out)
    assert tags["EXIF:Model"] == "Canon EOS 30D" and tags["EXIF:ExposureTime"] == pytest.approx(METERED)
    assert tags["EXIF:ExifImageWidth"] == SIZE[0] and tags["EXIF:Software"].startswith("uhdfuse ")
    assert "IMG_0101.JPG@+0.00EV" in str(tags["XMP:Sources"])


def _insert_xmp(path: Path, packet: str) -> None:
    """Put a raw XMP packet into a JPEG, as a writer that repeats a property leaves it."""
    body = b"http://ns.adobe.com/xap/1.0/\x00" + packet.encode()
    data = path.read_bytes()
    path.write_bytes(data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:])


XMP_WITH_A_REPEAT = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<xmp:Rating>4</xmp:Rating><xmp:Rating>4</xmp:Rating>
<dc:subject><rdf:Bag><rdf:li>wedding</rdf:li><rdf:li>church</rdf:li></rdf:Bag></dc:subject>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


def test_xmp_with_a_repeated_property_is_kept_without_the_repeat(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    for n, ev in enumerate((0, -2, 2)):
        write_jpeg(folder / f"X_{n}.jpg", ev=ev, bias=ev, when=T0 + timedelta(seconds=n))
    _insert_xmp(folder / "X_0.jpg", XMP_WITH_A_REPEAT)  # the reference
    before = tree_hashes(folder)
    result = _run("merge", folder, "-o", tmp_path / "out.tif", "--engine", "mertens", "--json")
    assert result.exit_code == 0, result.stderr
    assert any("xmp:Rating" in w and "without its unreadable parts" in w for w in json.loads(result.stdout)["warnings"])
    image = exiv2.ImageFactory.open(str(tmp_path / "out.tif"))
    image.readMetadata()
    xmp = {d.key(): d.toString() for d in image.xmpData()}
    assert xmp["Xmp.dc.subject"] == "wedding, church" and xmp["Xmp.xmp.Rating"] == "4"
    assert tree_hashes(folder) == before


def test_jpeg_missing_only_its_end_marker_is_decoded_with_a_warning(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    for n, ev in enumerate((0, -2, 2)):
        write_jpeg(folder / f"E_{n}.jpg", ev=ev, bias=ev, when=T0 + timedelta(seconds=n))
    whole = tmp_path / "whole.tif"
    assert _run("merge", folder, "-o", whole, "--engine", "mertens").exit_code == 0
    cut = folder / "E_1.jpg"
    data = cut.read_bytes()
    assert data.endswith(b"\xff\xd9")
    cut.write_bytes(data[:-2])
    result = _run("merge", folder, "-o", tmp_path / "cut.tif", "--engine", "mertens", "--json")
    assert result.exit_code == 0, result.stderr
    assert any("E_1.jpg" in w and "end marker" in w for w in json.loads(result.stdout)["warnings"])
    import tifffile

    assert np.array_equal(tifffile.imread(whole), tifffile.imread(tmp_path / "cut.tif"))
    # half the scan gone is still refused
    sos = data.rfind(b"\xff\xda")
    cut.write_bytes(data[: sos + (len(data) - sos) // 2])
    refused = _run("merge", folder, "-o", tmp_path / "half.tif")
    assert refused.exit_code == 1 and "E_1.jpg" in refused.stderr and "truncated" in refused.stderr


def test_printed_total_is_the_wall_time_with_parts_inside_their_stage(card: Path, tmp_path: Path) -> None:
    result = _run("merge", card / "DCIM" / "101CANON", "-o", tmp_path / "t.tif", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    t = report["timings"]
    stages = t["read"] + t["align"] + t["fuse"] + t["write"]
    assert t["fuse_model"] + t["fuse_render"] <= t["fuse"]  # parts of the fuse stage, not more stages
    assert stages <= report["seconds"] < stages + t["fuse_model"] + t["fuse_render"]
    # the printed total is the reported one to 0.1 s (the JSON keeps 4 decimals, so compare numbers, not strings)
    printed = re.search(r" in (\d+\.\d) s: ", result.stderr)
    assert printed is not None, result.stderr
    assert abs(float(printed.group(1)) - report["seconds"]) <= 0.05 + 1e-4
    assert "fuse " in result.stderr and "(model" in result.stderr


def test_brackets_keep_to_one_kind_of_file(tmp_path: Path) -> None:
    # the same bracket exported as JPEG into another folder of the shoot: two brackets, never a mix
    for n, ev in enumerate((0, -2, 2)):
        when = T0 + timedelta(seconds=n)
        write_raw_pair(tmp_path / "raw", f"IMG_000{n + 1}", ev=ev, when=when)
        (tmp_path / "raw" / f"IMG_000{n + 1}.JPG").rename(tmp_path / f"export_{n + 1}.jpg")
    assert _groups(tmp_path) == [
        ["IMG_0001.DNG", "IMG_0002.DNG", "IMG_0003.DNG"],
        ["export_1.jpg", "export_2.jpg", "export_3.jpg"],
    ]
