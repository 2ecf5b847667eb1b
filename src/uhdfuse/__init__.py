"""uhdfuse: exposure-bracket fusion for photographers.

>>> import uhdfuse
>>> result = uhdfuse.merge(["bracket/"], "fused.tif")          # doctest: +SKIP
>>> result.ev, result.align_model                               # doctest: +SKIP
"""

from .config import AlignConfig, AlignModel, Device, Engine, MergeConfig, MertensWeights, OutputFormat, Prefer, Response
from .errors import UhdfuseError
from .pipeline import load_bracket, merge
from .types import AlignedBracket, Bracket, Frame, FuseResult
from .version import __version__

__all__ = [
    "AlignConfig",
    "AlignModel",
    "AlignedBracket",
    "Bracket",
    "Device",
    "Engine",
    "Frame",
    "FuseResult",
    "MergeConfig",
    "MertensWeights",
    "OutputFormat",
    "Prefer",
    "Response",
    "UhdfuseError",
    "__version__",
    "load_bracket",
    "merge",
]
