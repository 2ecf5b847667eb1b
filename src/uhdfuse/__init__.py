"""uhdfuse: exposure-bracket fusion for photographers.

>>> import uhdfuse
>>> result = uhdfuse.merge(["bracket/"], "fused.tif")          # doctest: +SKIP
>>> result.ev, result.align_model                               # doctest: +SKIP
"""

__version__ = "0.1.0"

from .config import AlignConfig, MergeConfig, MertensWeights  # noqa: E402
from .errors import UhdfuseError  # noqa: E402
from .pipeline import load_bracket, merge  # noqa: E402
from .types import AlignedBracket, Bracket, Frame, FuseResult  # noqa: E402

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
