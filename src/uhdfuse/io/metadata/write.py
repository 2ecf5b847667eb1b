"""Writing metadata into a fused file: the reference frame's EXIF, IPTC, XMP and ICC
profile (as :mod:`uhdfuse.io.metadata.policy` filters them) and uhdfuse's provenance.

:func:`prepare_metadata` builds everything from the reference before any pixel is
written; :func:`embed_metadata` writes it into the encoded file with libexiv2.
Provenance (engine, source files and their EV) goes into the ``uhdfuse`` XMP
namespace and is read back by :func:`uhdfuse.io.metadata.read.read_provenance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import exiv2

from uhdfuse.config import RADIANCE_BIT_DEPTH, OutputFormat
from uhdfuse.errors import Message, first_line
from uhdfuse.io.inputs import is_raw
from uhdfuse.io.metadata.policy import (
    keep_exif_datum,
    keep_xmp_key,
    maker_note_lens,
    merge_sidecar,
    output_colour,
    repair_xmp,
)
from uhdfuse.io.metadata.read import UHDFUSE_XMP, find_datum, open_metadata


@dataclass(frozen=True)
class VirtualExposure:
    """What the EXIF of a virtual exposure of its capture (``uhdfuse stack``) states
    instead of the capture's: another exposure time and compensation, as a camera's
    bracket would record them."""

    ev: float  # stops relative to the capture
    exposure_time: float | None  # seconds: the capture's times 2**ev (None when it has none)
    bias_ev: float  # the capture's compensation plus ev


@dataclass(frozen=True)
class OutputMetadata:
    """What to embed in a fused file (or in a virtual exposure of one capture).

    ``reference``: the frame whose EXIF/IPTC/XMP/ICC are carried over.
    ``sources``: (file name, EV relative to the reference) of every input frame.
    ``software``: written to EXIF Software and XMP CreatorTool (e.g. "uhdfuse 0.1.0").
    ``engine``: the fusion engine that made the pixels.
    ``colour_space``: the encoding the caller produced; "sRGB" means an sRGB ICC
    profile is embedded when the reference carries no profile of its own, "linear"
    (linear data at any bit depth, as a 32-bit radiance map is) that none is.
    ``virtual``: the file is not fused but one virtual exposure of the reference; it
    records that (``uhdfuse:VirtualEV``, ``uhdfuse:Capture``) instead of sources and
    engine, so that it stays a frame other tools, and uhdfuse, can fuse.
    """

    reference: Path
    sources: tuple[tuple[str, float], ...]
    software: str
    engine: str
    colour_space: str = "sRGB"
    virtual: VirtualExposure | None = None


@dataclass(frozen=True, eq=False)
class PreparedMetadata:
    """Metadata ready to embed; built from the reference before any pixel is written."""

    exif: exiv2.ExifData
    xmp: exiv2.XmpData
    iptc: exiv2.IptcData
    icc: bytes | None  # ICC profile to embed, None for none
    notes: tuple[str, ...] = ()  # what could not be carried over, and why


@dataclass(frozen=True, eq=False)
class _Reference:
    """What the reference file holds, as far as it could be read."""

    exif: exiv2.ExifData
    xmp: exiv2.XmpData
    iptc: exiv2.IptcData
    icc: bytes | None
    notes: tuple[str, ...]


def prepare_metadata(
    metadata: OutputMetadata, *, size: tuple[int, int], bit_depth: int, fmt: OutputFormat
) -> PreparedMetadata:
    """Build the EXIF/XMP/IPTC/ICC for an output of ``size`` (width, height) in ``fmt``.

    EXIF PixelX/YDimension are set for PNG and JPEG only: the EXIF standard reserves
    them for compressed formats, TIFF states its size in its own tags. The ICC profile
    follows :func:`~uhdfuse.io.metadata.policy.output_colour` (none for ``bit_depth``
    32, float linear data).

    A reference that cannot be read is not fatal: the output then carries only
    uhdfuse's own tags, and ``notes`` says why.
    """
    ref_path = Path(metadata.reference)
    ref = _read_reference(ref_path)
    display = bit_depth != RADIANCE_BIT_DEPTH and metadata.colour_space.lower() != "linear"
    srgb = metadata.colour_space.lower() == "srgb"
    icc, colour_space = output_colour(ref.exif, ref.icc, raw=is_raw(ref_path), display=display, srgb=srgb)
    exif = _output_exif(ref.exif, metadata.software, colour_space, None if fmt is OutputFormat.TIFF else size)
    if metadata.virtual is not None:
        _state_exposure(exif, metadata.virtual, "Exif.Photo")
    xmp, sidecar_notes = merge_sidecar(ref_path, ref.xmp)
    out_xmp = _output_xmp(xmp, metadata, metadata.colour_space if display else "linear")
    return PreparedMetadata(exif, out_xmp, ref.iptc, icc, (*ref.notes, *sidecar_notes))


def _read_reference(path: Path) -> _Reference:
    """The reference's EXIF, XMP (repaired if libexiv2 refuses it whole), IPTC and ICC;
    what could not be read stays empty, with a note."""
    notes: list[str] = []
    exif, xmp, iptc = exiv2.ExifData(), exiv2.XmpData(), exiv2.IptcData()
    icc: bytes | None = None
    try:
        image = open_metadata(path)
        exif, iptc = image.exifData(), image.iptcData()
        xmp = image.xmpData()
        if image.xmpPacket().strip() and xmp.count() == 0:
            xmp, dropped = repair_xmp(image.xmpPacket())
            if xmp.count() == 0:
                notes.append(Message(f"{path}: XMP could not be parsed; not carried over"))
            else:
                notes.append(Message(f"{path}: XMP carried over without its unreadable parts ({', '.join(dropped)})"))
        if image.iccProfileDefined():
            icc = bytes(image.iccProfile().data())
    except exiv2.Exiv2Error as exc:
        notes.append(Message(f"{path}: metadata not carried over ({first_line(exc)})"))
    return _Reference(exif, xmp, iptc, icc, tuple(notes))


def _output_exif(
    ref_exif: exiv2.ExifData, software: str, colour_space: str, size: tuple[int, int] | None
) -> exiv2.ExifData:
    """The reference's EXIF that is still true, with the lens from its maker note, the
    mandatory version tags, and what the writer states itself (``size``: the pixel
    dimensions to state, None for none)."""
    exif = exiv2.ExifData()
    for datum in ref_exif:
        if keep_exif_datum(datum):
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
    exif["Exif.Image.Orientation"] = "1"  # pixels are written upright
    exif["Exif.Image.Software"] = software
    if size is not None:
        exif["Exif.Photo.PixelXDimension"] = str(int(size[0]))
        exif["Exif.Photo.PixelYDimension"] = str(int(size[1]))
    exif["Exif.Photo.ColorSpace"] = colour_space
    return exif


def _state_exposure(data: exiv2.ExifData | exiv2.XmpData, virtual: VirtualExposure, group: str) -> None:
    """Write a virtual exposure's time and compensation as ``group``.ExposureTime and
    .ExposureBiasValue (EXIF "Exif.Photo", XMP "Xmp.exif")."""
    if virtual.exposure_time is not None:
        time = Fraction(virtual.exposure_time).limit_denominator(1_000_000)
        data[f"{group}.ExposureTime"] = f"{time.numerator}/{time.denominator}"
    bias = Fraction(virtual.bias_ev).limit_denominator(100)
    data[f"{group}.ExposureBiasValue"] = f"{bias.numerator}/{bias.denominator}"


def _output_xmp(xmp: exiv2.XmpData, metadata: OutputMetadata, colour_space: str) -> exiv2.XmpData:
    """The reference's XMP that is still true, and uhdfuse's provenance record."""
    out = exiv2.XmpData()
    for datum in xmp:
        if keep_xmp_key(datum.key()):
            out.add(datum)
    if find_datum(out, "Xmp.tiff.Orientation") is not None:
        out["Xmp.tiff.Orientation"] = "1"
    out["Xmp.xmp.CreatorTool"] = metadata.software
    if metadata.virtual is not None:
        if find_datum(out, "Xmp.exif.ExposureTime") is not None or find_datum(out, "Xmp.exif.ExposureBiasValue") is not None:
            _state_exposure(out, metadata.virtual, "Xmp.exif")
        out[f"{UHDFUSE_XMP}.Capture"] = Path(metadata.reference).name
        out[f"{UHDFUSE_XMP}.VirtualEV"] = f"{metadata.virtual.ev:+g}"
        out[f"{UHDFUSE_XMP}.ColourSpace"] = colour_space
        return out
    out[f"{UHDFUSE_XMP}.Engine"] = metadata.engine
    out[f"{UHDFUSE_XMP}.Reference"] = Path(metadata.reference).name
    out[f"{UHDFUSE_XMP}.ColourSpace"] = colour_space
    sources = exiv2.XmpArrayValue(exiv2.TypeId.xmpSeq)
    for name, ev in metadata.sources:
        sources.read(f"{name}@{ev:+.2f}EV")
    out.add(exiv2.XmpKey(f"{UHDFUSE_XMP}.Sources"), sources)
    return out


def embed_metadata(path: Path, prepared: PreparedMetadata, *, with_icc: bool = True) -> None:
    """Write ``prepared`` into the image file at ``path`` (rewritten in place by libexiv2).

    EXIF tags the file already has (a TIFF's strip layout, sample format, ...) are
    kept; those of ``prepared`` are added or replace them. ``with_icc=False`` leaves
    the ICC profile to the caller (PNG: see :func:`uhdfuse.io.write.write_image`).
    Raises ``exiv2.Exiv2Error`` or ``OSError`` on failure.
    """
    image = open_metadata(path)
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
