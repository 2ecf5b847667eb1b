"""Writing EXIF/XMP tags into test files (python-exiv2), in one place."""

from __future__ import annotations

from pathlib import Path

import exiv2


def set_tags(path: Path, exif: dict[str, str] | None = None, xmp: dict[str, str] | None = None) -> Path:
    """Set EXIF and XMP tags (exiv2 keys to string values) in a file, in place."""
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    if exif:
        data = image.exifData()
        for key, value in exif.items():
            data[key] = value
        image.setExifData(data)
    if xmp:
        data = image.xmpData()
        for key, value in xmp.items():
            data[key] = value
        image.setXmpData(data)
    image.writeMetadata()
    return path
