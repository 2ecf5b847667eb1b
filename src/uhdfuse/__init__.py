"""uhdfuse: exposure-bracket fusion for photographers.

>>> import uhdfuse
>>> result = uhdfuse.merge(["bracket/"], "fused.tif")          # doctest: +SKIP
>>> result.ev, result.align_model                               # doctest: +SKIP
"""

from .config import AlignConfig, MergeConfig, MertensWeights
from .errors import UhdfuseError
from .pipeline import load_bracket, merge
from .types import AlignedBracket, Bracket, Frame, FuseResult
from .version import __version__

__all__ = [
    "AlignConfig",
    "AlignedBracket",
    "Bracket",
    "Frame",
    "FuseResult",
    "MergeConfig",
    "MertensWeights",
    "UhdfuseError",
    "__version__",
    "load_bracket",
    "merge",
]
