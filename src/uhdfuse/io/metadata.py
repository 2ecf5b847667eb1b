"""Exposure metadata of the inputs, and the metadata carried over into the output.

Reading (:func:`read_metadata`) must be cheap, since batch runs call it on every
file before anything is decoded: ExifRead parses only the TIFF/EXIF directories,
and python-exiv2 (libexiv2) takes over for what ExifRead cannot read (CR3, RAF,
PNG text chunks, XMP-only files).

Writing (:func:`prepare_metadata`, :func:`embed_metadata`) copies the reference
frame's EXIF, IPTC, XMP and ICC profile into the fused file with libexiv2, minus
whatever would now be false: thumbnails, RAW/DNG layout, maker notes, processing
instructions of RAW converters. Provenance (engine, source files and their EV) is
written in the ``uhdfuse`` XMP namespace and read back by :func:`read_provenance`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import exifread
import exiv2

from uhdfuse.errors import UnsupportedInput
from uhdfuse.types import CameraInfo, ExposureInfo

# Both libraries log parse problems of odd files (a duplicate XMP property, a
# truncated maker note); the application decides whether those reach the user.
logging.getLogger("exiv2").addHandler(logging.NullHandler())
logging.getLogger("exifread").addHandler(logging.NullHandler())
# tifffile logs every bad tag of a corrupt file; our one-line error says it better.
logging.getLogger("tifffile").addHandler(logging.NullHandler())

UHDFUSE_XMP_NAMESPACE = "http://ns.uhdfuse.org/1.0/"
UHDFUSE_XMP_PREFIX = "uhdfuse"
exiv2.XmpProperties.registerNs(UHDFUSE_XMP_NAMESPACE, UHDFUSE_XMP_PREFIX)


# --------------------------------------------------------------------------- reading


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
                value = _clean_text(tags[name].values)
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
    return _parse_number(str(values))


def _from_exiv2(path: Path) -> tuple[ExposureInfo, CameraInfo] | None:
    """The same fields through libexiv2, from EXIF or else XMP; None if it cannot parse."""
    try:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
    except exiv2.Exiv2Error:
        return None
    exif, xmp = image.exifData(), image.xmpData()

    def raw_text(*keys: str) -> str | None:
        for key in keys:
            datum = find_datum(exif, key) if key.startswith("Exif.") else find_datum(xmp, key)
            if datum is not None and datum.count() > 0:
                value = _clean_text(datum.toString(0))
                if value:
                    return value
        return None

    def number(*keys: str) -> float | None:
        return _parse_number(raw_text(*keys))

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
    datetime = raw_text(
        "Exif.Photo.DateTimeOriginal", "Exif.Image.DateTimeOriginal", "Xmp.exif.DateTimeOriginal"
    )
    camera = CameraInfo(
        make=raw_text("Exif.Image.Make", "Xmp.tiff.Make"),
        model=raw_text("Exif.Image.Model", "Xmp.tiff.Model"),
        lens=raw_text("Exif.Photo.LensModel", "Xmp.exifEX.LensModel", "Xmp.aux.Lens"),
        focal_length=_positive(number("Exif.Photo.FocalLength", "Xmp.exif.FocalLength")),
        datetime=_exif_datetime(datetime),
        orientation=_orientation(number("Exif.Image.Orientation", "Xmp.tiff.Orientation")),
    )
    return exposure, camera


def find_datum(data: exiv2.ExifData | exiv2.XmpData, key: str):  # noqa: ANN202 - exiv2 datum
    """The datum for ``key`` or None (indexing would create the key)."""
    try:
        if key.startswith("Exif."):
            found = data.findKey(exiv2.ExifKey(key))
        else:
            found = data.findKey(exiv2.XmpKey(key))
    except exiv2.Exiv2Error:
        return None
    return None if found == data.end() else found


def _clean_text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).replace("\x00", " ").strip()
    return text or None


def _parse_number(text: str | None) -> float | None:
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


# --------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class OutputMetadata:
    """What to embed in a fused file.

    ``reference``: the frame whose EXIF/IPTC/XMP/ICC are carried over.
    ``sources``: (file name, EV relative to the reference) of every input frame.
    ``software``: written to EXIF Software and XMP CreatorTool (e.g. "uhdfuse 0.1.0").
    ``engine``: the fusion engine that made the pixels.
    ``colour_space``: the encoding the caller produced; "sRGB" means an sRGB ICC
    profile is embedded when the reference carries no profile of its own.
    """

    reference: Path
    sources: tuple[tuple[str, float], ...]
    software: str
    engine: str
    colour_space: str = "sRGB"


@dataclass
class PreparedMetadata:
    """Metadata ready to embed; built from the reference before any pixel is written."""

    exif: exiv2.ExifData
    xmp: exiv2.XmpData
    iptc: exiv2.IptcData
    icc: bytes | None  # ICC profile to embed, None for none
    warnings: tuple[str, ...] = ()


# EXIF tags of the reference's first IFD that still describe the fused picture.
_IMAGE_TAGS_KEPT = frozenset(
    f"Exif.Image.{name}"
    for name in (
        "Make", "Model", "DateTime", "DateTimeOriginal", "Artist", "Copyright",
        "ImageDescription", "XResolution", "YResolution", "ResolutionUnit", "HostComputer",
        "DocumentName", "Rating", "RatingPercent", "XPTitle", "XPComment", "XPAuthor",
        "XPKeywords", "XPSubject",
    )
)  # fmt: skip
# Exif.Photo tags that are wrong for the new file or that the writer sets itself.
_PHOTO_TAGS_DROPPED = frozenset(
    f"Exif.Photo.{name}"
    for name in (
        "MakerNote", "PixelXDimension", "PixelYDimension", "ComponentsConfiguration",
        "CompressedBitsPerPixel", "ImageUniqueID", "InteroperabilityTag", "ColorSpace",
        "Gamma", "OffsetSchema",
    )
)  # fmt: skip
# XMP that would now be false, or that a RAW converter would apply a second time.
_XMP_PREFIXES_DROPPED = (
    "Xmp.crs.", "Xmp.crss.", "Xmp.darktable.", "Xmp.xmp.Thumbnails", "Xmp.xmpMM.InstanceID",
    "Xmp.xmpMM.DocumentID", "Xmp.tiff.ImageWidth", "Xmp.tiff.ImageLength",
    "Xmp.tiff.BitsPerSample", "Xmp.tiff.Compression", "Xmp.tiff.PhotometricInterpretation",
    "Xmp.tiff.SamplesPerPixel", "Xmp.tiff.PlanarConfiguration", "Xmp.tiff.YCbCr",
    "Xmp.tiff.NativeDigest", "Xmp.exif.NativeDigest", "Xmp.exif.PixelXDimension",
    "Xmp.exif.PixelYDimension", "Xmp.exif.ColorSpace", "Xmp.photoshop.ColorMode",
    "Xmp.photoshop.ICCProfile", f"Xmp.{UHDFUSE_XMP_PREFIX}.",
)  # fmt: skip


def keep_exif_key(key: str) -> bool:
    """True for a reference EXIF key that is still true of the fused output.

    Kept: Exif.Photo.* (exposure, dates, lens, ...) but maker notes and layout tags,
    all of Exif.GPSInfo.*, and descriptive Exif.Image tags. Dropped: thumbnails,
    sub-images, RAW/DNG/CFA tags, vendor maker-note groups, strip/tile layout.
    """
    if key.startswith("Exif.GPSInfo."):
        return True
    if key.startswith("Exif.Photo."):
        return key not in _PHOTO_TAGS_DROPPED
    return key in _IMAGE_TAGS_KEPT


def prepare_metadata(
    metadata: OutputMetadata, *, size: tuple[int, int], bit_depth: int, container: str
) -> PreparedMetadata:
    """Build the EXIF/XMP/IPTC/ICC for an output of ``size`` (width, height).

    ``container`` is "tiff", "png" or "jpeg". EXIF PixelX/YDimension are set for PNG
    and JPEG only: the EXIF standard reserves them for compressed formats, TIFF states
    its size in its own tags.

    ICC: display output (8/16 bit) gets the reference's profile when it is a
    display file that carries one, else an sRGB profile (when ``colour_space`` is
    "sRGB"); float linear output (``bit_depth`` 32) gets no profile, since ICC
    profiles of scene-linear data are not understood consistently by readers.

    A reference that cannot be read is not fatal: the output then carries only
    uhdfuse's own tags, and ``warnings`` says why.
    """
    from uhdfuse.io.read import RAW_EXTENSIONS  # late: read.py imports this module

    notes: list[str] = []
    ref_path = Path(metadata.reference)
    ref_exif, ref_xmp, ref_iptc = exiv2.ExifData(), exiv2.XmpData(), exiv2.IptcData()
    ref_icc: bytes | None = None
    try:
        ref = exiv2.ImageFactory.open(str(ref_path))
        ref.readMetadata()
        ref_exif, ref_iptc = ref.exifData(), ref.iptcData()
        ref_xmp = ref.xmpData()
        if ref.xmpPacket().strip() and ref_xmp.count() == 0:
            ref_xmp, dropped = repair_xmp(ref.xmpPacket())
            if ref_xmp.count() == 0:
                notes.append(f"{ref_path}: XMP could not be parsed; not carried over")
            else:
                notes.append(f"{ref_path}: XMP carried over without its unreadable parts ({', '.join(dropped)})")
        if ref.iccProfileDefined():
            ref_icc = bytes(ref.iccProfile().data())
    except exiv2.Exiv2Error as exc:
        notes.append(f"{ref_path}: metadata not carried over ({_first_line(exc)})")
    is_raw = ref_path.suffix.lower() in RAW_EXTENSIONS
    display = bit_depth in (8, 16)

    exif = exiv2.ExifData()
    for datum in ref_exif:
        # Empty text tags (DNG writers leave DateTime "") are only noise to readers.
        if keep_exif_key(datum.key()) and not (
            datum.typeName() == "Ascii" and not _clean_text(datum.toString())
        ):
            exif.add(datum)
    if find_datum(exif, "Exif.Photo.LensModel") is None:
        lens = maker_note_lens(ref_exif)
        if lens:
            exif["Exif.Photo.LensModel"] = lens
    # Both are mandatory in an EXIF directory.
    if find_datum(exif, "Exif.Photo.ExifVersion") is None:
        exif["Exif.Photo.ExifVersion"] = "48 50 51 50"  # "0232"
    if find_datum(exif, "Exif.Photo.FlashpixVersion") is None:
        exif["Exif.Photo.FlashpixVersion"] = "48 49 48 48"  # "0100"

    icc: bytes | None = None
    if display:
        if ref_icc and not is_raw:
            icc = ref_icc
        elif metadata.colour_space.lower() == "srgb":
            icc = srgb_icc_profile()
    if display and (icc is None or icc != ref_icc):
        colour_space = "1" if metadata.colour_space.lower() == "srgb" else "65535"
    elif display:
        previous = find_datum(ref_exif, "Exif.Photo.ColorSpace")
        colour_space = previous.toString() if previous is not None else "65535"
    else:
        colour_space = "65535"  # "uncalibrated": linear data is not sRGB-encoded

    width, height = size
    exif["Exif.Image.Orientation"] = "1"  # pixels are written upright
    exif["Exif.Image.Software"] = metadata.software
    if container in ("png", "jpeg"):
        exif["Exif.Photo.PixelXDimension"] = str(int(width))
        exif["Exif.Photo.PixelYDimension"] = str(int(height))
    exif["Exif.Photo.ColorSpace"] = colour_space

    xmp = _merge_sidecar(ref_path, ref_xmp, notes)
    out_xmp = exiv2.XmpData()
    for datum in xmp:
        if not datum.key().startswith(_XMP_PREFIXES_DROPPED):
            out_xmp.add(datum)
    if find_datum(out_xmp, "Xmp.tiff.Orientation") is not None:
        out_xmp["Xmp.tiff.Orientation"] = "1"
    out_xmp["Xmp.xmp.CreatorTool"] = metadata.software
    prefix = f"Xmp.{UHDFUSE_XMP_PREFIX}"
    out_xmp[f"{prefix}.Engine"] = metadata.engine
    out_xmp[f"{prefix}.Reference"] = ref_path.name
    out_xmp[f"{prefix}.ColourSpace"] = metadata.colour_space if display else "linear"
    sources = exiv2.XmpArrayValue(exiv2.TypeId.xmpSeq)
    for name, ev in metadata.sources:
        sources.read(f"{name}@{ev:+.2f}EV")
    out_xmp.add(exiv2.XmpKey(f"{prefix}.Sources"), sources)

    return PreparedMetadata(exif, out_xmp, ref_iptc, icc, tuple(notes))


_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RDF_SYNTAX_ATTRIBUTES = {f"{{{_RDF}}}{name}" for name in ("about", "ID", "nodeID", "parseType", "resource")}


def repair_xmp(packet: str) -> tuple[exiv2.XmpData, list[str]]:
    """Parse an XMP packet that libexiv2 refuses whole, dropping only what breaks it.

    Writers (and some editors) repeat a property, which the XMP toolkit treats as
    fatal and exiftool as a warning; the packet's keywords, ratings and captions
    are worth keeping. Kept: the first occurrence of each property; dropped: later
    repeats, as an element or an attribute, within or across ``rdf:Description``
    nodes. Returns the parsed data (empty when even the repaired packet is not XMP)
    and the names of what was dropped.
    """
    import xml.etree.ElementTree as ET
    from io import StringIO

    dropped: list[str] = []
    text = _without_repeated_attributes(packet.lstrip("\ufeff"), dropped)
    try:
        prefixes = {uri: prefix for _, (prefix, uri) in ET.iterparse(StringIO(text), events=("start-ns",))}
        root = ET.fromstring(text)
    except ET.ParseError:
        return exiv2.XmpData(), ["the packet is not well-formed XML"]
    seen: set[str] = set()

    def name(tag: str) -> str:
        uri, _, local = tag[1:].partition("}")
        return f"{prefixes.get(uri, uri)}:{local}"

    for description in root.iter(f"{{{_RDF}}}Description"):
        for attribute in list(description.attrib):
            if attribute in _RDF_SYNTAX_ATTRIBUTES or attribute.startswith("{http://www.w3.org/XML/1998/namespace}"):
                continue
            if attribute in seen:
                del description.attrib[attribute]
                dropped.append(name(attribute))
            seen.add(attribute)
        for child in list(description):
            if child.tag in seen:
                description.remove(child)
                dropped.append(name(child.tag))
            seen.add(child.tag)
    for uri, prefix in prefixes.items():
        ET.register_namespace(prefix, uri)
    repaired = ET.tostring(root, encoding="unicode")
    try:
        image = exiv2.ImageFactory.open(repaired.encode())
        image.readMetadata()
    except exiv2.Exiv2Error:
        return exiv2.XmpData(), dropped or ["an error the XMP toolkit gave no detail of"]
    return image.xmpData(), list(dict.fromkeys(dropped)) or ["nothing"]


def _without_repeated_attributes(text: str, dropped: list[str]) -> str:
    """XML with a repeated attribute in a start tag (not well-formed) keeps the first;
    the names of those removed are appended to ``dropped``."""

    def fix(tag: re.Match) -> str:
        seen: set[str] = set()

        def keep(attr: re.Match) -> str:
            if attr.group(1) in seen:
                dropped.append(attr.group(1))
                return ""
            seen.add(attr.group(1))
            return attr.group(0)

        return re.sub(r"\s+([\w:.-]+)\s*=\s*(\"[^\"]*\"|'[^']*')", keep, tag.group(0))

    return re.sub(r"<[A-Za-z_][^<>]*>", fix, text)


# Where maker notes keep the lens: names first, then lens ids that exiv2 resolves to
# names. (exiv2's own lensName() crashes the Python binding on some files.)
_MAKER_NOTE_LENS_KEYS = (
    "Exif.Canon.LensModel", "Exif.OlympusEq.LensModel", "Exif.Panasonic.LensType",
    "Exif.CanonCs.LensType", "Exif.NikonLd3.LensIDNumber", "Exif.NikonLd2.LensIDNumber",
    "Exif.Sony1.LensID", "Exif.Sony2.LensID", "Exif.Minolta.LensID", "Exif.Pentax.LensType",
    "Exif.Samsung2.LensType",
)  # fmt: skip


def maker_note_lens(exif: exiv2.ExifData) -> str | None:
    """Lens name from a maker note (CR2, NEF, ...), as exiv2 interprets it."""
    for key in _MAKER_NOTE_LENS_KEYS:
        datum = find_datum(exif, key)
        if datum is None:
            continue
        try:
            text = _clean_text(datum.print(exif))
        except exiv2.Exiv2Error:
            continue
        # Unknown lens ids print as "(173)" or "Unknown ...": not a name.
        if text and not text.strip("()").isdigit() and not text.lower().startswith("unknown"):
            return text
    return None


def _merge_sidecar(ref_path: Path, embedded: exiv2.XmpData, notes: list[str]) -> exiv2.XmpData:
    """The reference's XMP, with a ``name.xmp`` / ``name.ext.xmp`` sidecar taking precedence."""
    candidates = (
        ref_path.with_suffix(".xmp"),
        ref_path.with_suffix(".XMP"),
        ref_path.with_name(ref_path.name + ".xmp"),
    )
    for sidecar in candidates:
        if not sidecar.is_file() or sidecar == ref_path:
            continue
        try:
            image = exiv2.ImageFactory.open(str(sidecar))
            image.readMetadata()
        except exiv2.Exiv2Error as exc:
            notes.append(f"{sidecar}: XMP sidecar not read ({_first_line(exc)})")
            continue
        side = image.xmpData()
        merged = exiv2.XmpData()
        properties = set()
        for datum in side:
            merged.add(datum)
            properties.add(_xmp_property(datum.key()))
        for datum in embedded:
            if _xmp_property(datum.key()) not in properties:
                merged.add(datum)
        return merged
    return embedded


def _xmp_property(key: str) -> str:
    """'Xmp.dc.subject[2]' / 'Xmp.xmpMM.History[1]/stEvt:action' -> the top-level property."""
    return key.split("[", 1)[0].split("/", 1)[0]


def embed_metadata(path: Path, prepared: PreparedMetadata, *, with_icc: bool = True) -> None:
    """Write ``prepared`` into the image file at ``path`` (rewritten in place by libexiv2).

    EXIF tags the file already has (a TIFF's strip layout, sample format, ...) are
    kept; those of ``prepared`` are added or replace them. ``with_icc=False`` leaves
    the ICC profile to the caller (PNG: see :func:`uhdfuse.io.write.write_image`).
    Raises ``exiv2.Exiv2Error`` or ``OSError`` on failure.
    """
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    exif = image.exifData()
    for key in ("Exif.Image.Software", "Exif.Image.ImageDescription", "Exif.Image.DateTime"):
        existing = find_datum(exif, key)  # the pixel writer's own values, if any
        if existing is not None:
            exif.erase(existing)
    for datum in prepared.exif:
        exif[datum.key()] = datum.value()
    image.setExifData(exif)
    image.setXmpData(prepared.xmp)
    if prepared.iptc.count() > 0:
        image.setIptcData(prepared.iptc)
    if with_icc and prepared.icc:
        image.setIccProfile(exiv2.DataBuf(prepared.icc), True)
    image.writeMetadata()


_SRGB_ICC: bytes | None = None


def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile (LittleCMS's built-in one, via Pillow)."""
    global _SRGB_ICC
    if _SRGB_ICC is None:
        from PIL import ImageCms

        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        # LittleCMS stamps the header with the current time (bytes 24-35); a fixed date
        # makes outputs byte-identical across runs (batch resume relies on it). The
        # profile ID (bytes 84-99), which would cover the date, is left unset by LittleCMS.
        _SRGB_ICC = profile[:24] + _ICC_FIXED_DATE + profile[36:]
    return _SRGB_ICC


# 2024-01-01 00:00:00 as an ICC dateTimeNumber (six big-endian uint16).
_ICC_FIXED_DATE = bytes.fromhex("07e8 0001 0001 0000 0000 0000".replace(" ", ""))


_OUR_SOFTWARE = re.compile(r"^uhdfuse \d")  # "uhdfuse 0.1.0", as merge writes it


def written_by_uhdfuse(path: Path) -> bool:
    """True when the file's header says uhdfuse fused it: its XMP has ``uhdfuse:Sources``
    or its ``Software`` is ``uhdfuse <version>``. Reads the metadata only; a file whose
    metadata cannot be read is not ours (its reader reports it)."""
    try:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
    except exiv2.Exiv2Error:
        return False
    if find_datum(image.xmpData(), f"Xmp.{UHDFUSE_XMP_PREFIX}.Sources") is not None:
        return True
    software = find_datum(image.exifData(), "Exif.Image.Software")
    return software is not None and bool(_OUR_SOFTWARE.match(software.toString()))


def read_provenance(path: Path) -> tuple[str | None, tuple[tuple[str, float], ...]]:
    """(engine, ((source name, EV), ...)) that uhdfuse recorded in a fused file's XMP.

    ``(None, ())`` when the file carries no uhdfuse record.
    """
    try:
        image = exiv2.ImageFactory.open(str(path))
        image.readMetadata()
    except exiv2.Exiv2Error as exc:
        raise UnsupportedInput(f"cannot read metadata ({_first_line(exc)})", path) from None
    xmp = image.xmpData()
    prefix = f"Xmp.{UHDFUSE_XMP_PREFIX}"
    engine_datum = find_datum(xmp, f"{prefix}.Engine")
    engine = engine_datum.toString() if engine_datum is not None else None
    sources: list[tuple[str, float]] = []
    seq = find_datum(xmp, f"{prefix}.Sources")
    if seq is not None:
        for i in range(seq.count()):
            name, _, ev_text = seq.toString(i).rpartition("@")
            ev = _parse_number(ev_text.removesuffix("EV"))
            if name and ev is not None:
                sources.append((name, ev))
    return engine, tuple(sources)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
