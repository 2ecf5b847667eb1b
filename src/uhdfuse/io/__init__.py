"""Reading frames and their exposure metadata; writing outputs with metadata carried over.

Modules, in the order data moves: :mod:`.inputs` (which files are images),
:mod:`.discover` (which of them are frames), :mod:`.headers` (checks before decoding),
:mod:`.raw` and :mod:`.display` (decoding), :mod:`.read` (a linear
:class:`~uhdfuse.types.Frame`), :mod:`.metadata` (read / policy / write), :mod:`.write`
(the output file).
"""

from uhdfuse.io.display import apply_orientation
from uhdfuse.io.inputs import DISPLAY_EXTENSIONS, RAW_EXTENSIONS, SUPPORTED_EXTENSIONS, is_raw, list_inputs
from uhdfuse.io.metadata import (
    OutputMetadata,
    VirtualExposure,
    find_datum,
    keep_exif_key,
    read_metadata,
    read_provenance,
    srgb_icc_profile,
    written_by_uhdfuse,
)
from uhdfuse.io.read import read_encoded, read_frame
from uhdfuse.io.write import Written, check_output, write_image, write_linear_dng

__all__ = [
    "DISPLAY_EXTENSIONS",
    "RAW_EXTENSIONS",
    "SUPPORTED_EXTENSIONS",
    "OutputMetadata",
    "VirtualExposure",
    "Written",
    "apply_orientation",
    "check_output",
    "find_datum",
    "is_raw",
    "keep_exif_key",
    "list_inputs",
    "read_encoded",
    "read_frame",
    "read_metadata",
    "read_provenance",
    "srgb_icc_profile",
    "write_image",
    "write_linear_dng",
    "written_by_uhdfuse",
]
