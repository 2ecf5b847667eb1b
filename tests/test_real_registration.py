"""Every real bracket in ../shared/data fuses with default settings, as a user runs
``uhdfuse merge DIR -o OUT.tif``; where registration moved frames, the fusion is no
worse than the same engine on the frames as they are (``--align none``) by more
than 0.01 MEF-SSIM. Skipped when ../shared is absent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from uhdfuse import merge
from uhdfuse.align import align_bracket
from uhdfuse.colour import srgb_encode
from uhdfuse.config import AlignConfig, MergeConfig
from uhdfuse.metrics import mef_ssim
from uhdfuse.pipeline import load_bracket
from uhdfuse.types import FuseResult

from .conftest import SHARED_DATA as DATA

OTHER_SETS = (
    "banterle_hdrtoolbox_stacks/stack",
    "banterle_hdrtoolbox_stacks/stack_alignment",
    "banterle_hdrtoolbox_stacks/stack_ghost",
    "dsift_ef_dynamic/ForrestSequence",
    "dsift_ef_dynamic/garage",
    "ssarcandy_brackets/taipei",
    "ssarcandy_brackets/desktop",
    "ssarcandy_brackets/living_room2",
    "merianos_mef/Flowers",
    "merianos_mef/OldHouse",
    "merianos_mef/Rovinia",
    "merianos_mef/SeaRock",
    "merianos_mef/SecretBeach",
    "mertens_house",
    "debevec_memorial",
)
MEF_SSIM_SLACK = 0.01


def _sets() -> list[str]:
    if not DATA.is_dir():
        return []
    mefb = sorted(f"mefb/{d.name}" for d in (DATA / "mefb").iterdir() if d.is_dir()) if (DATA / "mefb").is_dir() else []
    return mefb + [s for s in OTHER_SETS if (DATA / s).is_dir()]


def _score(folder: Path, output: Path, config: MergeConfig, result: FuseResult) -> float:
    """MEF-SSIM of the 16-bit TIFF ``merge`` wrote to ``output`` with ``config`` (its
    ``result``) against the frames it fused (registered and cropped as ``config`` says)."""
    aligned = align_bracket(load_bracket([folder], config), config.align)
    assert tuple(aligned.crop) == tuple(result.crop)
    fused = tifffile.imread(output).astype(np.float32) / 65535.0
    return mef_ssim(srgb_encode(np.clip(aligned.images, 0.0, 1.0)), fused)


@pytest.mark.shared_data
@pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize("name", _sets() or ["(no data)"])
def test_every_real_bracket_fuses_with_default_settings(name: str, tmp_path: Path) -> None:
    folder = DATA / name
    registered = MergeConfig()  # default settings: the IPL engine, auto registration
    result = merge([folder], tmp_path / "registered.tif", registered)
    assert (tmp_path / "registered.tif").is_file()
    if result.align_model == "none":
        return  # nothing moved: the same fusion as --align none
    unregistered = MergeConfig(align=AlignConfig(model="none"))
    plain = merge([folder], tmp_path / "unregistered.tif", unregistered)
    with_registration = _score(folder, tmp_path / "registered.tif", registered, result)
    without = _score(folder, tmp_path / "unregistered.tif", unregistered, plain)
    assert with_registration >= without - MEF_SSIM_SLACK, (with_registration, without)
