"""Reading metadata: the exposure and camera of an input, and uhdfuse's own record in
an output.

:func:`read_metadata` must be cheap, since batch runs call it on every file before
anything is decoded: ExifRead parses only the TIFF/EXIF directories, and
python-exiv2 (libexiv2) takes over for what ExifRead cannot read (CR3, RAF, PNG text
chunks, XMP-only files).
"""

from __future__ import annotations

import logging
import math
import re
from fractions import Fraction
from pathlib import Path

import exifread
import exiv2

from uhdfuse.errors import UnsupportedInput, first_line
from uhdfuse.types import CameraInfo, ExposureInfo

# Both libraries log parse problems of odd files (a duplicate XMP property, a
# truncated maker note); the application decides whether those reach the user.
logging.getLogger("exiv2").addHandler(logging.NullHandler())
logging.getLogger("exifread").addHandler(logging.NullHandler())

UHDFUSE_XMP_NAMESPACE = "http://ns.uhdfuse.org/1.0/"
UHDFUSE_XMP_PREFIX = "uhdfuse"
exiv2.XmpProperties.registerNs(UHDFUSE_XMP_NAMESPACE, UHDFUSE_XMP_PREFIX)
UHDFUSE_XMP = f"Xmp.{UHDFUSE_XMP_PREFIX}"  # the key prefix of uhdfuse's properties

_OUR_SOFTWARE = re.compile(r"^uhdfuse \d")  # "uhdfuse 0.1.0", as merge writes it


def open_metadata(source: Path | bytes) -> exiv2.Image:
    """libexiv2's view of a file (or of an in-memory packet), its metadata read.

    Raises ``exiv2.Exiv2Error`` when libexiv2 cannot parse it.
    """
    image = exiv2.ImageFactory.open(source if isinstance(source, bytes) else str(source))
    image.readMetadata()
    return image


def read_metadata(path: Path) -> tuple[ExposureInfo, CameraInfo]:
    """Exposure settings and camera identity of one file, without decoding pixels.

    Missing or nonsense values (zero, negative, NaN or infinite exposure time,
    f-number, ISO or focal length) are ``None``. A file without metadata gives the
    defaults. Raises :class:`UnsupportedInput` only when the path is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise UnsupportedInput("no such file" if not path.exists() else "not a file", path)
    tags = _exifread_tags(path)
    if tags and ("EXIF ExposureTime" in tags or "Image Make" in tags):
        return _from_exifread(tags)
    from_exiv2 = _from_exiv2(path)
    if from_exiv2 is not None:
        return from_exiv2
    return _from_exifread(tags or {})


def _exifread_tags(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            return exifread.process_file(fh, details=False, extract_thumbnail=False)
    except Exception:  # noqa: BLE001 - ExifRead raises anything on odd files; exiv2 follows
        return None


def _from_exifread(tags: dict) -> tuple[ExposureInfo, CameraInfo]:
    def number(*names: str) -> float | None:
        for name in names:
            if name in tags:
                value = _exifread_number(tags[name])
                if value is not None:
                    return value
        return None

    def text(*names: str) -> str | None:
        for name in names:
            if name in tags:
                value = clean_text(tags[name].values)
                if value:
                    return value
        return None

    exposure = ExposureInfo(
        exposure_time=_positive(number("EXIF ExposureTime")),
        f_number=_positive(number("EXIF FNumber")),
        iso=_positive(
            number(
                "EXIF ISOSpeedRatings",
                "EXIF PhotographicSensitivity",
                "EXIF RecommendedExposureIndex",
                "EXIF ISOSpeed",
            )
        ),
        bias_ev=_finite(number("EXIF ExposureBiasValue")),
    )
    camera = CameraInfo(
        make=text("Image Make"),
        model=text("Image Model"),
        lens=text("EXIF LensModel"),
        focal_length=_positive(number("EXIF FocalLength")),
        datetime=text("EXIF DateTimeOriginal", "Image DateTimeOriginal"),
        orientation=_orientation(number("Image Orientation")),
    )
    return exposure, camera


def _exifread_number(tag: object) -> float | None:
    values = getattr(tag, "values", None)
    if isinstance(values, (list, tuple)):
        if not values:
            return None
        values = values[0]
    if hasattr(values, "denominator"):
        if values.denominator == 0:  # ExifRead keeps "0/0" rationals as they are
            return None
        return values.numerator / values.denominator
    if isinstance(values, (int, float)):
        return float(values)
    return parse_number(str(values))


def _from_exiv2(path: Path) -> tuple[ExposureInfo, CameraInfo] | None:
    """The same fields through libexiv2, from EXIF or else XMP; None if it cannot parse."""
    try:
        image = open_metadata(path)
    except exiv2.Exiv2Error:
        return None
    exif, xmp = image.exifData(), image.xmpData()

    def raw_text(*keys: str) -> str | None:
        for key in keys:
            datum = find_datum(exif, key) if key.startswith("Exif.") else find_datum(xmp, key)
            if datum is not None and datum.count() > 0:
                value = clean_text(datum.toString(0))
                if value:
                    return value
        return None

    def number(*keys: str) -> float | None:
        return parse_number(raw_text(*keys))

    exposure = ExposureInfo(
        exposure_time=_positive(number("Exif.Photo.ExposureTime", "Xmp.exif.ExposureTime")),
        f_number=_positive(number("Exif.Photo.FNumber", "Xmp.exif.FNumber")),
        iso=_positive(
            number(
                "Exif.Photo.ISOSpeedRatings",
                "Exif.Photo.RecommendedExposureIndex",
                "Exif.Photo.ISOSpeed",
                "Xmp.exif.ISOSpeedRatings",
                "Xmp.exifEX.PhotographicSensitivity",
            )
        ),
        bias_ev=_finite(number("Exif.Photo.ExposureBiasValue", "Xmp.exif.ExposureBiasValue")),
    )
    datetime = raw_text("Exif.Photo.DateTimeOriginal", "Exif.Image.DateTimeOriginal", "Xmp.exif.DateTimeOriginal")
    camera = CameraInfo(
        make=raw_text("Exif.Image.Make", "Xmp.tiff.Make"),
        model=raw_text("Exif.Image.Model", "Xmp.tiff.Model"),
        lens=raw_text("Exif.Photo.LensModel", "Xmp.exifEX.LensModel", "Xmp.aux.Lens"),
        focal_length=_positive(number("Exif.Photo.FocalLength", "Xmp.exif.FocalLength")),
        datetime=_exif_datetime(datetime),
        orientation=_orientation(number("Exif.Image.Orientation", "Xmp.tiff.Orientation")),
    )
    return exposure, camera


def find_datum(data: exiv2.ExifData | exiv2.XmpData, key: str):  # noqa: ANN201 - exiv2 datum
    """The datum for ``key`` or None (indexing would create the key)."""
    try:
        if key.startswith("Exif."):
            found = data.findKey(exiv2.ExifKey(key))
        else:
            found = data.findKey(exiv2.XmpKey(key))
    except exiv2.Exiv2Error:
        return None
    return None if found == data.end() else found


def clean_text(value: object) -> str | None:
    """A tag's text without NUL padding and surrounding space; None when nothing is left."""
    if value is None:
        return None
    text = str(value).replace("\x00", " ").strip()
    return text or None


def parse_number(text: str | None) -> float | None:
    """'1/80', '5.6', '+2/3', '0/0' -> float (None when unparsable or x/0)."""
    if text is None:
        return None
    text = text.strip().split()[0] if text.strip() else ""
    try:
        if "/" in text:
            numerator, denominator = text.split("/", 1)
            if float(denominator) == 0:
                return None
            return float(Fraction(numerator) / Fraction(denominator))
        return float(text)
    except (ValueError, ZeroDivisionError):
        return None


def _positive(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) and value > 0 else None


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _orientation(value: float | None) -> int:
    return int(value) if value is not None and value in range(1, 9) else 1


def _exif_datetime(text: str | None) -> str | None:
    """XMP's ISO 8601 '2012-07-19T05:16:25(.00+02:00)' -> EXIF '2012:07:19 05:16:25'."""
    if text is None or "T" not in text or "-" not in text[:8]:
        return text
    date, _, time = text.partition("T")
    return f"{date.replace('-', ':')} {time[:8]}"


# --------------------------------------------------------------------------- uhdfuse's record


def written_by_uhdfuse(path: Path) -> bool:
    """True when the file's header says uhdfuse fused it: its XMP has ``uhdfuse:Sources``
    or its ``Software`` is ``uhdfuse <version>``; a virtual exposure ``uhdfuse stack``
    wrote (``uhdfuse:VirtualEV``) is a frame, not a fused output. Reads the metadata only;
    a file whose metadata cannot be read is not ours (its reader reports it)."""
    try:
        image = open_metadata(path)
    except exiv2.Exiv2Error:
        return False
    xmp = image.xmpData()
    if find_datum(xmp, f"{UHDFUSE_XMP}.Sources") is not None:
        return True
    if find_datum(xmp, f"{UHDFUSE_XMP}.VirtualEV") is not None:
        return False
    software = find_datum(image.exifData(), "Exif.Image.Software")
    return software is not None and bool(_OUR_SOFTWARE.match(software.toString()))


def read_provenance(path: Path) -> tuple[str | None, tuple[tuple[str, float], ...]]:
    """(engine, ((source name, EV), ...)) that uhdfuse recorded in a fused file's XMP.

    ``(None, ())`` when the file carries no uhdfuse record.
    """
    try:
        image = open_metadata(path)
    except exiv2.Exiv2Error as exc:
        raise UnsupportedInput(f"cannot read metadata ({first_line(exc)})", path) from None
    xmp = image.xmpData()
    engine_datum = find_datum(xmp, f"{UHDFUSE_XMP}.Engine")
    engine = engine_datum.toString() if engine_datum is not None else None
    sources: list[tuple[str, float]] = []
    seq = find_datum(xmp, f"{UHDFUSE_XMP}.Sources")
    if seq is not None:
        for i in range(seq.count()):
            name, _, ev_text = seq.toString(i).rpartition("@")
            ev = parse_number(ev_text.removesuffix("EV"))
            if name and ev is not None:
                sources.append((name, ev))
    return engine, tuple(sources)
