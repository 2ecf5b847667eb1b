"""Classical (non-learned) merging: Mertens exposure fusion, linear radiance merge,
and camera-response calibration for display-encoded brackets."""

from .mertens import fuse_mertens
from .radiance import merge_radiance
from .response import apply_lut, calibrate_response

__all__ = ["apply_lut", "calibrate_response", "fuse_mertens", "merge_radiance"]
