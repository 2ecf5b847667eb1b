"""Fixtures shared by the end-to-end tests: brackets made by the project's own code."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, skipping the test when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real brackets live in ../shared/data)")
    return path


def tree_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under a folder, to prove inputs are left untouched."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def example_bracket(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """A small static bracket (-2/0/+2 EV) as JPEG, 16-bit TIFF and DNG files."""
    from uhdfuse.synthetic import write_example_bracket

    out = tmp_path_factory.mktemp("example")
    return write_example_bracket(out, width=360, height=240, seed=3)


@pytest.fixture(scope="session")
def handheld_bracket(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """The same kind of bracket shot hand-held: a few pixels of shake and a small rotation."""
    from uhdfuse.synthetic import write_example_bracket

    out = tmp_path_factory.mktemp("handheld")
    return write_example_bracket(out, width=360, height=240, formats=("jpeg",), shake_px=6.0, shake_deg=0.8, seed=5)
