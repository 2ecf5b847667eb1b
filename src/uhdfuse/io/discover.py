"""Which files of a folder, a card or a list are frames: one rule for ``merge`` and ``batch``.

Cameras write more than frames next to each other, and a photographer's folders
collect more than the camera wrote. :func:`discover` expands the given paths into
image files and then drops, each with a note naming the files:

* **the other half of a RAW+JPEG pair**: a RAW file and a JPEG/PNG/TIFF with the
  same stem in the same folder (``IMG_0001.CR2`` + ``IMG_0001.JPG``) are two
  renderings of one capture. ``prefer="raw"`` (the default) keeps the RAW, which
  holds the sensor's whole range; ``prefer="jpeg"`` keeps the camera's rendering.
* **files uhdfuse wrote**: a fused output carries ``uhdfuse:Sources`` in its XMP and
  ``Software`` ``uhdfuse <version>``; fusing it again as a frame of its own bracket
  would be a mistake at best (it has another size after a crop, or would be picked
  as the reference). Only the header is read.
* **excluded folders**: hidden ones (``.thumbnails``, ``.Trash``), and those given in
  ``exclude`` (the output folder of a batch), when descending.

A folder is one level unless ``recursive`` (a card: ``DCIM/100CANON``,
``DCIM/101CANON``; a shoot with a folder per day).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from uhdfuse.config import Prefer
from uhdfuse.errors import InconsistentBracket, Message, UnsupportedInput, param
from uhdfuse.io.inputs import DISPLAY_EXTENSIONS, is_raw, list_inputs
from uhdfuse.io.metadata.read import written_by_uhdfuse


@dataclass(frozen=True)
class Discovery:
    """The frames found, in order, and what was left out and why (one line per kind)."""

    files: tuple[Path, ...]
    notes: tuple[str, ...] = ()


def discover(
    paths: Sequence[Path | str],
    *,
    recursive: bool = False,
    prefer: Prefer = Prefer.RAW,
    exclude: Iterable[Path] = (),
) -> Discovery:
    """Expand files and folders into the frames they hold (see the module docstring).

    Files keep the given order (a file given twice is listed twice: the caller
    decides); a folder contributes its images sorted by name (recursively: folder by
    folder, depth first, by name). Raises
    :class:`UnsupportedInput` for a missing path, a file of an unsupported type, or a
    folder without images (naming its subfolders when that is all it holds).
    """
    prefer = Prefer(prefer)
    excluded = {Path(p).absolute() for p in exclude}
    found: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir() and recursive:
            found.extend(_walk(path, excluded))
        elif path.is_dir():
            found.extend(_one_folder(path))
        else:
            found.extend(list_inputs([path]))
    kept, siblings = _drop_pair_siblings(found, prefer)
    ours = [p for p in kept if not is_raw(p) and written_by_uhdfuse(p)]
    kept = [p for p in kept if p not in ours]
    notes = []
    if siblings:
        other = Prefer.JPEG if prefer is Prefer.RAW else Prefer.RAW
        notes.append(
            Message(
                f"{_listed(siblings)}: {other.name} half of a RAW+JPEG pair; the {prefer.name} is used "
                f"({param('prefer', other.value)} uses the {other.name}s)"
            )
        )
    if ours:
        notes.append(Message(f"{_listed(ours)}: written by uhdfuse (a fused output), not a frame; skipped"))
    return Discovery(tuple(kept), tuple(notes))


def check_one_kind(files: Sequence[Path]) -> None:
    """Refuse a bracket that mixes RAW files with JPEG/PNG/TIFF files that pair with none.

    Raises :class:`InconsistentBracket` saying which files are which and what to do.
    """
    raws = [p for p in files if is_raw(p)]
    others = [p for p in files if not is_raw(p)]
    if raws and others:
        odd = raws if len(raws) <= len(others) else others  # the file(s) most likely misplaced
        raise InconsistentBracket(
            f"mixes RAW and encoded images (RAW: {_listed(raws)}; JPEG/PNG/TIFF: {_listed(others)}), and they "
            "are not RAW+JPEG pairs of one name; a bracket is fused from one kind: give only the RAW files "
            "or only the others",
            odd[0],
        )


def _one_folder(folder: Path) -> list[Path]:
    try:
        return list_inputs([folder])
    except UnsupportedInput:
        subfolders = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not subfolders:
            raise
        shown = ", ".join(subfolders[:3]) + (", ..." if len(subfolders) > 3 else "")
        raise UnsupportedInput(
            f"folder holds no images, only subfolders ({shown}): give one of them, or let 'uhdfuse batch' "
            f"look into them (it does unless {param('recursive', False)})",
            folder,
        ) from None


def _walk(root: Path, excluded: set[Path]) -> list[Path]:
    """Images under ``root``, folder by folder; hidden and excluded folders are skipped."""
    found: list[Path] = []
    for folder, subfolders, _ in os.walk(root):
        here = Path(folder)
        subfolders[:] = sorted(
            d for d in subfolders if not d.startswith(".") and (here / d).absolute() not in excluded
        )
        try:
            found.extend(list_inputs([here]))
        except UnsupportedInput:  # a folder with no images of its own (DCIM/, a day folder)
            continue
    if not found:
        raise UnsupportedInput("holds no supported image files, in it or in its subfolders", root)
    return found


def _drop_pair_siblings(files: Sequence[Path], prefer: Prefer) -> tuple[list[Path], list[Path]]:
    """(kept, dropped): of a RAW and display file sharing folder and stem, one is dropped."""
    by_stem: dict[tuple[Path, str], list[Path]] = {}
    for p in files:
        by_stem.setdefault((p.parent.absolute(), p.stem.lower()), []).append(p)
    dropped: set[Path] = set()
    for members in by_stem.values():
        raws = [p for p in members if is_raw(p)]
        displays = [p for p in members if p.suffix.lower() in DISPLAY_EXTENSIONS]
        if raws and displays:
            dropped.update(displays if prefer is Prefer.RAW else raws)
    kept = [p for p in files if p not in dropped]
    return kept, [p for p in files if p in dropped]


def _listed(paths: Sequence[Path], most: int = 3) -> str:
    names = [p.name for p in paths[:most]]
    more = f" and {len(paths) - most} more" if len(paths) > most else ""
    return ", ".join(names) + more
