"""What of the reference frame's metadata a fused output carries, and what it drops.

Kept: what is still true of the fused picture (exposure, dates, lens, GPS, authorship,
keywords and ratings). Dropped: what would now be false (thumbnails, RAW/DNG layout,
maker notes, pixel dimensions) or would be applied a second time (a RAW converter's
processing instructions). An XMP packet that libexiv2 refuses whole is repaired
(:func:`repair_xmp`) rather than lost; a sidecar takes precedence over embedded XMP.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

import exiv2

from uhdfuse.errors import Message, first_line
from uhdfuse.io.metadata.read import UHDFUSE_XMP, clean_text, find_datum, open_metadata

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
    "Xmp.photoshop.ICCProfile", f"{UHDFUSE_XMP}.",
)  # fmt: skip

# EXIF ColorSpace values: sRGB, or "uncalibrated" (anything else, linear data included).
EXIF_SRGB, EXIF_UNCALIBRATED = "1", "65535"


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


def keep_exif_datum(datum: exiv2.Exifdatum) -> bool:
    """:func:`keep_exif_key`, and not an empty text tag (DNG writers leave DateTime
    ""), which is only noise to readers."""
    return keep_exif_key(datum.key()) and not (datum.typeName() == "Ascii" and not clean_text(datum.toString()))


def keep_xmp_key(key: str) -> bool:
    """True for a reference XMP key that is still true of the fused output (uhdfuse's
    own properties are written afresh)."""
    return not key.startswith(_XMP_PREFIXES_DROPPED)


def output_colour(
    ref_exif: exiv2.ExifData, ref_icc: bytes | None, *, raw: bool, display: bool, srgb: bool
) -> tuple[bytes | None, str]:
    """(ICC profile to embed or None, EXIF ColorSpace value) of the output.

    Display output (8/16 bit) gets the reference's profile when the reference is a
    display file that carries one, else an sRGB profile when ``srgb`` (the caller
    encoded sRGB); float linear output gets no profile, since ICC profiles of
    scene-linear data are not understood consistently by readers. A RAW's profile
    (if any) describes the sensor data, not the developed picture.
    """
    if not display:
        return None, EXIF_UNCALIBRATED  # linear data is not sRGB-encoded
    icc = ref_icc if ref_icc and not raw else srgb_icc_profile() if srgb else None
    if icc is None or icc != ref_icc:
        return icc, EXIF_SRGB if srgb else EXIF_UNCALIBRATED
    previous = find_datum(ref_exif, "Exif.Photo.ColorSpace")
    return icc, previous.toString() if previous is not None else EXIF_UNCALIBRATED


# Where maker notes keep the lens: names first, then lens ids that exiv2 resolves to
# names. (exiv2's own lensName() crashes the Python binding on some files.)
_MAKER_NOTE_LENS_KEYS = (
    "Exif.Canon.LensModel", "Exif.OlympusEq.LensModel", "Exif.Panasonic.LensType",
    "Exif.CanonCs.LensType", "Exif.NikonLd3.LensIDNumber", "Exif.NikonLd2.LensIDNumber",
    "Exif.Sony1.LensID", "Exif.Sony2.LensID", "Exif.Minolta.LensID", "Exif.Pentax.LensType",
    "Exif.Samsung2.LensType",
)  # fmt: skip


def maker_note_lens(exif: exiv2.ExifData) -> str | None:
    """Lens name from a maker note (CR2, NEF, ...), as exiv2 interprets it: the maker
    note itself is dropped, so the lens is carried over as Exif.Photo.LensModel."""
    for key in _MAKER_NOTE_LENS_KEYS:
        datum = find_datum(exif, key)
        if datum is None:
            continue
        try:
            text = clean_text(datum.print(exif))
        except exiv2.Exiv2Error:
            continue
        # Unknown lens ids print as "(173)" or "Unknown ...": not a name.
        if text and not text.strip("()").isdigit() and not text.lower().startswith("unknown"):
            return text
    return None


# --------------------------------------------------------------------------- XMP


def merge_sidecar(ref_path: Path, embedded: exiv2.XmpData) -> tuple[exiv2.XmpData, tuple[str, ...]]:
    """The reference's XMP, with a ``name.xmp`` / ``name.ext.xmp`` sidecar taking
    precedence property by property; and a note for each sidecar that could not be read."""
    candidates = (
        ref_path.with_suffix(".xmp"),
        ref_path.with_suffix(".XMP"),
        ref_path.with_name(ref_path.name + ".xmp"),
    )
    notes: list[str] = []
    for sidecar in candidates:
        if not sidecar.is_file() or sidecar == ref_path:
            continue
        try:
            side = open_metadata(sidecar).xmpData()
        except exiv2.Exiv2Error as exc:
            notes.append(Message(f"{sidecar}: XMP sidecar not read ({first_line(exc)})"))
            continue
        merged = exiv2.XmpData()
        properties = set()
        for datum in side:
            merged.add(datum)
            properties.add(_xmp_property(datum.key()))
        for datum in embedded:
            if _xmp_property(datum.key()) not in properties:
                merged.add(datum)
        return merged, tuple(notes)
    return embedded, tuple(notes)


def _xmp_property(key: str) -> str:
    """'Xmp.dc.subject[2]' / 'Xmp.xmpMM.History[1]/stEvt:action' -> the top-level property."""
    return key.split("[", 1)[0].split("/", 1)[0]


_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_RDF_SYNTAX_ATTRIBUTES = {f"{{{_RDF}}}{name}" for name in ("about", "ID", "nodeID", "parseType", "resource")}
_XML_ATTRIBUTE = "{http://www.w3.org/XML/1998/namespace}"


def repair_xmp(packet: str) -> tuple[exiv2.XmpData, list[str]]:
    """Parse an XMP packet that libexiv2 refuses whole, dropping only what breaks it.

    Writers (and some editors) repeat a property, which the XMP toolkit treats as
    fatal and exiftool as a warning; the packet's keywords, ratings and captions
    are worth keeping. Kept: the first occurrence of each property; dropped: later
    repeats, as an element or an attribute, within or across ``rdf:Description``
    nodes. Returns the parsed data (empty when even the repaired packet is not XMP)
    and the names of what was dropped.
    """
    dropped: list[str] = []
    text = _without_repeated_attributes(packet.lstrip("\ufeff"), dropped)
    try:
        prefixes = {uri: prefix for _, (prefix, uri) in ET.iterparse(StringIO(text), events=("start-ns",))}
        root = ET.fromstring(text)
    except ET.ParseError:
        return exiv2.XmpData(), ["the packet is not well-formed XML"]
    _drop_repeated_properties(root, prefixes, dropped)
    for uri, prefix in prefixes.items():
        ET.register_namespace(prefix, uri)
    repaired = ET.tostring(root, encoding="unicode")
    try:
        xmp = open_metadata(repaired.encode()).xmpData()
    except exiv2.Exiv2Error:
        return exiv2.XmpData(), dropped or ["an error the XMP toolkit gave no detail of"]
    return xmp, list(dict.fromkeys(dropped)) or ["nothing"]


def _drop_repeated_properties(root: ET.Element, prefixes: dict[str, str], dropped: list[str]) -> None:
    """Remove from the parsed packet ``root`` every property
    already seen, as an attribute or an element of any ``rdf:Description``; their
    ``prefix:name`` are appended to ``dropped``."""
    seen: set[str] = set()

    def name(tag: str) -> str:
        uri, _, local = tag[1:].partition("}")
        return f"{prefixes.get(uri, uri)}:{local}"

    for description in root.iter(f"{{{_RDF}}}Description"):
        for attribute in list(description.attrib):
            if attribute in _RDF_SYNTAX_ATTRIBUTES or attribute.startswith(_XML_ATTRIBUTE):
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


# --------------------------------------------------------------------------- ICC

# 2024-01-01 00:00:00 as an ICC dateTimeNumber (six big-endian uint16).
_ICC_FIXED_DATE = bytes.fromhex("07e8 0001 0001 0000 0000 0000".replace(" ", ""))


@functools.cache
def srgb_icc_profile() -> bytes:
    """An sRGB ICC profile (LittleCMS's built-in one, via Pillow), the same bytes on every run."""
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    # LittleCMS stamps the header with the current time (bytes 24-35); a fixed date
    # makes outputs byte-identical across runs (batch resume relies on it). The
    # profile ID (bytes 84-99), which would cover the date, is left unset by LittleCMS.
    return profile[:24] + _ICC_FIXED_DATE + profile[36:]
