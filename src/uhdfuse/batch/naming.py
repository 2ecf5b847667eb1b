"""Output file names from a template: one per bracket, never two alike."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from uhdfuse.config import OutputFormat, choice
from uhdfuse.errors import UsageError, param

if TYPE_CHECKING:
    from uhdfuse.shoot import Group

DEFAULT_TEMPLATE = "{date}_{first}_{n}"
TEMPLATE_FIELDS = ("date", "time", "first", "last", "n", "index", "camera")
# Field values that stand in for a real group's when a template is checked on its own.
_SAMPLE = {"date": "2000-01-01", "time": "000000", "first": "a", "last": "b", "n": "3", "index": "0001", "camera": "c"}


def output_names(
    groups: Sequence[Group], template: str = DEFAULT_TEMPLATE, format: OutputFormat | str = OutputFormat.TIFF
) -> list[str]:
    """One output file name per group, from ``template``, in ``format`` (its first suffix); never two alike.

    Fields: ``{date}`` (YYYY-MM-DD of the first frame, or "undated"), ``{time}``
    (HHMMSS), ``{first}`` / ``{last}`` (file stems), ``{n}`` (frames), ``{index}``
    (4 digits, 1-based position among ``groups``), ``{camera}`` (model). A name
    that repeats (case-insensitively) gets ``-2``, ``-3``, ... appended.

    Raises :class:`UsageError` for an unknown field or a template that would leave
    the output folder.
    """
    suffix = choice(OutputFormat, format, "format").suffixes[0]
    names: list[str] = []
    seen: set[str] = set()
    for i, group in enumerate(groups, start=1):
        stem = _stem(template, _fields(group, i))
        name, k = stem + suffix, 2
        while name.lower() in seen:
            name, k = f"{stem}-{k}{suffix}", k + 1
        seen.add(name.lower())
        names.append(name)
    return names


def check_template(template: str) -> None:
    """Raise :class:`UsageError` when ``template`` has an unknown field or leaves the output folder."""
    _stem(template, _SAMPLE)


def _fields(group: Group, index: int) -> dict[str, str]:
    first, last = group.frames[0], group.frames[-1]
    return {
        "date": first.time.strftime("%Y-%m-%d") if first.time else "undated",
        "time": first.time.strftime("%H%M%S") if first.time else "000000",
        "first": first.path.stem,
        "last": last.path.stem,
        "n": str(len(group.frames)),
        "index": f"{index:04d}",
        "camera": first.camera.model or "camera",
    }


def _stem(template: str, values: Mapping[str, str]) -> str:
    """The file name ``template`` gives for these field values, without its suffix."""
    try:
        stem = template.format_map({k: _safe(v) for k, v in values.items()})
    except (KeyError, IndexError, ValueError) as exc:
        fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        raise UsageError(f"bad name template {param('template')} {template!r} ({exc}); fields: {fields}") from None
    parts = Path(stem).parts
    if not stem or Path(stem).is_absolute() or ".." in parts or not stem.strip(". "):
        raise UsageError(f"{param('template')} {template!r} gives {stem!r}, not a name inside the output folder")
    return stem


def _safe(value: str) -> str:
    """A field value that cannot add folders or odd characters to a file name."""
    return re.sub(r"[^\w.\-+]+", "-", value).strip("-") or "x"
