"""What grouping knows of each file: its metadata, read without decoding a pixel."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import exiv2

from uhdfuse.errors import UnsupportedInput, first_line
from uhdfuse.io import RAW_EXTENSIONS, read_metadata
from uhdfuse.io.metadata import find_datum
from uhdfuse.types import CameraInfo, ExposureInfo

AUTO_BRACKET_MODE = 2  # EXIF ExposureMode: 0 auto, 1 manual, 2 auto bracket
MANUAL_PROGRAM = 1  # EXIF ExposureProgram: 1 manual, 2 program, 3 aperture priority, ...


@dataclass(frozen=True)
class FrameInfo:
    """What grouping knows of one file: its metadata, never its pixels."""

    path: Path
    exposure: ExposureInfo
    camera: CameraInfo
    size: tuple[int, int] | None  # (width, height) as stored, None when unknown
    time: datetime | None  # capture time (DateTimeOriginal + SubSecTimeOriginal), None when absent
    error: str | None = None  # why the file cannot be used (then the rest is defaults)
    auto_bracket: bool | None = None  # EXIF ExposureMode says auto bracket; None when not recorded
    manual: bool | None = None  # EXIF ExposureProgram says manual; None when not recorded

    @property
    def format(self) -> str:
        """The kind of file, for keeping brackets to one: "raw", "jpeg", "png" or "tiff"."""
        suffix = self.path.suffix.lower()
        if suffix in RAW_EXTENSIONS:
            return "raw"
        return {".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff"}.get(suffix, suffix.lstrip("."))

    @property
    def end(self) -> datetime | None:
        """When the exposure ended: the capture time plus the exposure time."""
        if self.time is None:
            return None
        t = self.exposure.exposure_time
        return self.time + timedelta(seconds=t) if t is not None and 0 < t < 86400 else self.time

    @property
    def body(self) -> tuple:
        """What must be equal for two frames to belong to one bracket."""
        c = self.camera
        focal = round(c.focal_length, 1) if c.focal_length is not None else None
        return (c.make, c.model, c.lens, focal, self.size, c.orientation)

    @property
    def ev_value(self) -> float | None:
        """log2 of the exposure (t * ISO / N^2), the bracket's ordering quantity."""
        return self.exposure.log2_exposure()


def camera_name(camera: CameraInfo) -> str | None:
    """'Canon EOS 30D', not 'Canon Canon EOS 30D': most models already start with the make."""
    make, model = camera.make, camera.model
    if make and model and model.lower().startswith(make.split()[0].lower()):
        return model
    return " ".join(x for x in (make, model) if x) or None


def scan(paths: Sequence[Path]) -> list[FrameInfo]:
    """Read the metadata of every file (about 1-2 ms each); files keep the given order.

    A file whose metadata libexiv2 cannot parse (corrupt, truncated header, not really
    an image) gets ``error`` set instead of raising, so one bad file never stops a shoot.
    """
    return [_frame_info(Path(p)) for p in paths]


def _frame_info(path: Path) -> FrameInfo:
    try:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
        width, height = int(image.pixelWidth()), int(image.pixelHeight())
        exposure, camera = read_metadata(path)
        exif = image.exifData()
        subsec = _exif_text(exif, "Exif.Photo.SubSecTimeOriginal")
        mode = _exif_text(exif, "Exif.Photo.ExposureMode")
        program = _exif_text(exif, "Exif.Photo.ExposureProgram")
    except (exiv2.Exiv2Error, UnsupportedInput, OSError) as exc:
        error = f"cannot read metadata ({first_line(exc)})"
        return FrameInfo(path, ExposureInfo(), CameraInfo(), None, None, error=error)
    size = (width, height) if width > 0 and height > 0 else None
    auto_bracket = int(mode) == AUTO_BRACKET_MODE if mode and mode.isdigit() else None
    manual = int(program) == MANUAL_PROGRAM if program and program.isdigit() else None
    time = _parse_time(camera.datetime, subsec)
    return FrameInfo(path, exposure, camera, size, time, auto_bracket=auto_bracket, manual=manual)


def _exif_text(exif: exiv2.ExifData, key: str) -> str | None:
    datum = find_datum(exif, key)
    if datum is None:
        return None
    return datum.toString().strip() or None


def _parse_time(text: str | None, subsec: str | None = None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.strptime(text.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    if subsec and subsec.isdigit():
        when += timedelta(seconds=int(subsec) / 10 ** len(subsec))
    return when


def capture_sorted(frames: Sequence[FrameInfo]) -> list[FrameInfo]:
    """Frames by capture time, then by name; frames without a time keep name order, last."""
    return sorted(frames, key=lambda f: (f.time is None, f.time or datetime.min, f.path.name, str(f.path)))
