"""The real brackets in ../shared/data fuse into 16-bit TIFFs whose metadata reads back.

Skipped when ../shared/data is absent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import exifread
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from uhdfuse.cli import app

from .conftest import shared_data, tree_hashes

runner = CliRunner()

BRACKETS = [
    # (folder under ../shared/data, reference has camera EXIF)
    ("banterle_hdrtoolbox_stacks/stack_alignment", True),
    ("mertens_house", False),
    ("ssarcandy_brackets/taipei", False),
    ("debevec_memorial", False),
]


@pytest.mark.shared_data
@pytest.mark.parametrize("folder, has_exif", BRACKETS, ids=[b[0].split("/")[-1] for b in BRACKETS])
def test_real_bracket_fuses_with_metadata(folder: str, has_exif: bool, tmp_path: Path) -> None:
    source = shared_data(*folder.split("/"))
    before = tree_hashes(source)
    out = tmp_path / "fused.tif"
    result = runner.invoke(app, ["merge", str(source), "-o", str(out), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)

    pixels = tifffile.imread(out)
    assert pixels.dtype == np.uint16 and pixels.ndim == 3
    assert (pixels.shape[1], pixels.shape[0]) == tuple(report["size"])
    # A fusion, not a black, white or flat frame: most of the tonal range is used.
    assert 0.15 < pixels.mean() / 65535 < 0.85
    assert np.percentile(pixels, 99) - np.percentile(pixels, 1) > 0.5 * 65535

    with open(out, "rb") as fh:
        tags = exifread.process_file(fh, details=False)
    assert str(tags["Image Software"]).startswith("uhdfuse")
    if has_exif:
        reference = Path(report["reference_file"])
        with open(reference, "rb") as fh:
            ref_tags = exifread.process_file(fh, details=False)
        for key in ("Image Make", "Image Model", "EXIF ExposureTime", "EXIF DateTimeOriginal"):
            assert str(tags[key]) == str(ref_tags[key])
        assert max(report["align_residuals"]) < 0.05  # the hand-held stack really was registered
    if shutil.which("exiftool"):
        proc = subprocess.run(["exiftool", "-j", "-G", str(out)], capture_output=True, text=True, check=True)
        info = json.loads(proc.stdout)[0]
        assert info["EXIF:Software"].startswith("uhdfuse")
        assert "ExifTool:Error" not in info and "ExifTool:Warning" not in info
        assert "ICC_Profile:ProfileDescription" in info
    assert tree_hashes(source) == before
