"""Files or folders -> the groups of a shoot, by one of the three ways of grouping."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uhdfuse.config import Grouping, Prefer, choice
from uhdfuse.errors import UnsupportedInput, UsageError, param
from uhdfuse.io import list_inputs
from uhdfuse.io.discover import discover
from uhdfuse.shoot.auto import DEFAULT_GAP, group_auto
from uhdfuse.shoot.frames import FrameInfo, capture_sorted, scan
from uhdfuse.shoot.group import Group, Shoot, unreadable


def group_fixed(frames: Sequence[FrameInfo], n: int) -> list[Group]:
    """Consecutive runs of ``n`` frames in capture order; a shorter run at the end is a leftover."""
    if n < 2:
        raise UsageError(f"{param('frames')} must be at least 2, got {n}")
    usable = capture_sorted([f for f in frames if f.error is None])
    groups = []
    for start in range(0, len(usable), n):
        chunk = tuple(usable[start : start + n])
        if len(chunk) == n:
            reason = f"{param('frames', n)}: frames {start + 1}-{start + n} in capture order"
            groups.append(Group("bracket", chunk, reason))
        else:
            groups.append(Group("leftover", chunk, f"{param('frames', n)}: {len(chunk)} frame(s) left at the end"))
    return groups + unreadable(frames)


def group_folders(folders: Sequence[Path], *, prefer: Prefer = Prefer.RAW, exclude: Sequence[Path] = ()) -> Shoot:
    """One bracket per folder holding images: the given folders or, when a folder holds
    no images itself, each of its subfolders (sorted by name)."""
    found: list[Path] = []
    excluded = {Path(p).absolute() for p in exclude}
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise UsageError("folder mode needs folders; this is not one", folder)
        if _holds_images(folder):
            found.append(folder)
        else:
            subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            found.extend(p for p in subs if p.absolute() not in excluded and _holds_images(p))
    groups: list[Group] = []
    notes: list[str] = []
    for folder in found:
        discovery = discover([folder], prefer=prefer)
        notes.extend(discovery.notes)
        frames = scan(discovery.files)
        good = [f for f in frames if f.error is None]
        if len(good) >= 2:
            groups.append(Group("bracket", tuple(good), f"folder {folder.name}/ holds {len(good)} images"))
        elif good:
            groups.append(Group("single", tuple(good), f"folder {folder.name}/ holds one image"))
        groups.extend(unreadable(frames))
    return Shoot(groups, tuple(notes))


def _holds_images(folder: Path) -> bool:
    try:
        list_inputs([folder])
    except UnsupportedInput:
        return False
    return True


def find_groups(
    inputs: Sequence[Path],
    *,
    mode: Grouping = Grouping.AUTO,
    gap: float = DEFAULT_GAP,
    frames: int | None = None,
    recursive: bool = True,
    prefer: Prefer = Prefer.RAW,
    exclude: Sequence[Path] = (),
) -> Shoot:
    """Files or folders -> groups, by ``mode`` (a :class:`~uhdfuse.config.Grouping` or its value).

    Folders are searched with :func:`uhdfuse.io.discover.discover`: into subfolders
    unless ``recursive`` is False (hidden ones and those in ``exclude``, such as the
    batch's output folder, never), one half of each RAW+JPEG pair (``prefer``), and
    never a file uhdfuse wrote. ``gap`` applies to ``auto``, ``frames`` (the set
    size) to ``frames``. Raises :class:`UnsupportedInput` for a missing path or a
    folder without images, :class:`UsageError` for bad settings.
    """
    mode = choice(Grouping, mode, "mode")
    if mode is Grouping.FOLDERS:
        return group_folders(inputs, prefer=prefer, exclude=exclude)
    discovery = discover(inputs, recursive=recursive, prefer=prefer, exclude=exclude)
    paths = list(dict.fromkeys(p.absolute() for p in discovery.files))
    infos = scan(paths)
    if mode is Grouping.FRAMES:
        if frames is None:
            raise UsageError(f"fixed-size grouping needs {param('frames')}, the number of frames of each bracket")
        return Shoot(group_fixed(infos, frames), discovery.notes)
    return Shoot(group_auto(infos, gap=gap), discovery.notes)
