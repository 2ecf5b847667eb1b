"""Which files are images uhdfuse reads: the two kinds of input, by extension.

* *display* files (JPEG, PNG, TIFF): pixel values encoded for a screen;
* *RAW* files: sensor data, developed by LibRaw.

The extension names the kind before anything is read (a RAW file's own content is
often TIFF-like, so its bytes would not tell).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from uhdfuse.errors import UnsupportedInput

DISPLAY_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {
        ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf",
        ".orf", ".rw2", ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".rwl", ".erf", ".kdc",
        ".mrw", ".mos",
    }
)  # fmt: skip
SUPPORTED_EXTENSIONS: frozenset[str] = DISPLAY_EXTENSIONS | RAW_EXTENSIONS


def is_raw(path: Path) -> bool:
    """True for a camera RAW file, by its extension (any case)."""
    return Path(path).suffix.lower() in RAW_EXTENSIONS


def list_inputs(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into the image files they hold; keep files in the given order.

    A folder contributes its supported images (not its subfolders, hidden files or
    sidecars such as ``.xmp``), sorted by name. Raises :class:`UnsupportedInput` for
    a missing path, a file of an unsupported type, or a folder without images.
    """
    found: list[Path] = []
    for raw_path in paths:
        path = Path(raw_path)
        if path.is_dir():
            images = sorted((p for p in path.iterdir() if _is_listed_image(p)), key=lambda p: p.name)
            if not images:
                raise UnsupportedInput("folder holds no supported image files", path)
            found.extend(images)
        elif path.is_file():
            if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                raise UnsupportedInput(_unsupported_type_reason(path), path)
            found.append(path)
        elif path.exists():
            raise UnsupportedInput("not a regular file or folder", path)
        else:
            raise UnsupportedInput("no such file or folder", path)
    return found


def _is_listed_image(path: Path) -> bool:
    return not path.name.startswith(".") and path.suffix.lower() in SUPPORTED_EXTENSIONS and path.is_file()


def _unsupported_type_reason(path: Path) -> str:
    kind = f"'{path.suffix}'" if path.suffix else "without an extension"
    return f"unsupported file type {kind}; expected JPEG, PNG, TIFF or a camera RAW file"
