"""Metadata of inputs and outputs: reading (:mod:`.read`), what a fused file carries
over from its reference frame (:mod:`.policy`), and writing it (:mod:`.write`)."""

from uhdfuse.io.metadata.policy import keep_exif_key, maker_note_lens, repair_xmp, srgb_icc_profile
from uhdfuse.io.metadata.read import find_datum, read_metadata, read_provenance, written_by_uhdfuse
from uhdfuse.io.metadata.write import OutputMetadata, PreparedMetadata, VirtualExposure, embed_metadata, prepare_metadata

__all__ = [
    "OutputMetadata",
    "PreparedMetadata",
    "VirtualExposure",
    "embed_metadata",
    "find_datum",
    "keep_exif_key",
    "maker_note_lens",
    "prepare_metadata",
    "read_metadata",
    "read_provenance",
    "repair_xmp",
    "srgb_icc_profile",
    "written_by_uhdfuse",
]
