"""Reading frames and their exposure metadata; writing outputs with metadata carried over."""

from uhdfuse.io.metadata import (
    OutputMetadata,
    keep_exif_key,
    read_metadata,
    read_provenance,
    srgb_icc_profile,
)
from uhdfuse.io.read import (
    DISPLAY_EXTENSIONS,
    RAW_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    apply_orientation,
    list_inputs,
    read_encoded,
    read_frame,
)
from uhdfuse.io.write import write_image

__all__ = [
    "DISPLAY_EXTENSIONS",
    "RAW_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "OutputMetadata",
    "apply_orientation",
    "keep_exif_key",
    "list_inputs",
    "read_encoded",
    "read_frame",
    "read_metadata",
    "read_provenance",
    "srgb_icc_profile",
    "write_image",
]
