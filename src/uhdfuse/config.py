"""Typed, frozen settings of a merge, their choices, and the checks on them.

Every default and every allowed value is defined here and nowhere else: the CLI
reads its defaults and choices from these classes, and the stages trust a config
that has been built (``__post_init__`` checks it). Errors name the parameter
(``cache_bits``); the CLI spells it as its flag.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from uhdfuse.errors import UsageError, param


class Engine(StrEnum):
    """What fuses a bracket into a display image."""

    MERTENS = "mertens"  # classical exposure fusion (Mertens, Kautz, Van Reeth 2007)
    IPL = "ipl"  # the learned model


class AlignModel(StrEnum):
    """Motion model of global registration; AUTO picks the simplest that fits."""

    NONE = "none"
    TRANSLATION = "translation"
    EUCLIDEAN = "euclidean"
    AFFINE = "affine"
    HOMOGRAPHY = "homography"
    AUTO = "auto"


class Response(StrEnum):
    """How the values of display-encoded files (JPEG/PNG/TIFF) are made linear."""

    SRGB = "srgb"  # the sRGB curve
    LINEAR = "linear"  # already linear
    DEBEVEC = "debevec"  # calibrated from the bracket (Debevec & Malik 1997)
    ROBERTSON = "robertson"  # calibrated from the bracket (Robertson et al. 2003)


class Device(StrEnum):
    """Where the IPL model runs; AUTO: CUDA, then Apple MPS, then the CPU."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"


class Prefer(StrEnum):
    """Which half of a RAW+JPEG pair (same folder and name) is the frame."""

    RAW = "raw"
    JPEG = "jpeg"


class OutputFormat(StrEnum):
    """The file formats uhdfuse writes, named by their usual suffix."""

    TIFF = "tif"
    PNG = "png"
    JPEG = "jpg"

    @classmethod
    def _missing_(cls, value: object) -> OutputFormat | None:
        spelled = str(value).lower().lstrip(".")
        aliases = {"tiff": cls.TIFF, "jpeg": cls.JPEG}
        return aliases.get(spelled) or next((f for f in cls if f.value == spelled), None)

    @classmethod
    def of(cls, path: str | Path) -> OutputFormat:
        """The format of an output path, from its suffix (.tif .tiff .png .jpg .jpeg, any case)."""
        suffix = Path(path).suffix
        try:
            return cls(suffix)
        except ValueError:
            raise UsageError(f"unknown output format {suffix or '(none)'}; use .tif, .tiff, .png or .jpg") from None

    @property
    def suffixes(self) -> tuple[str, ...]:
        """Suffixes (with the dot, lower case) of files in this format."""
        return {"tif": (".tif", ".tiff"), "png": (".png",), "jpg": (".jpg", ".jpeg")}[self.value]

    @property
    def bit_depths(self) -> tuple[int, ...]:
        """Bits per channel the format holds, its default first; 32 is float (TIFF)."""
        return {"tif": (16, 8, 32), "png": (16, 8), "jpg": (8,)}[self.value]

    def depth_problem(self, bits: int) -> str | None:
        """Why the format cannot hold ``bits`` per channel, and which can; None when it can."""
        if bits in self.bit_depths:
            return None
        why = f"{self.name} holds {_either(sorted(self.bit_depths))} bits per channel, not {bits}"
        others = [f.name for f in OutputFormat if bits in f.bit_depths]
        return f"{why}; write {_either(others)} for {bits}-bit" if others else why


def _either(items: list[object]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    words = [str(i) for i in items]
    return " or ".join(filter(None, [", ".join(words[:-1]), words[-1]]))


class Executor(StrEnum):
    """Where ``batch`` runs its brackets."""

    LOCAL = "local"  # worker processes on this machine
    RAY = "ray"  # tasks on a Ray cluster


class StackFormat(StrEnum):
    """What ``uhdfuse stack`` writes each virtual exposure as."""

    TIFF = "tif"  # 16-bit sRGB, what raw converters export for HDR tools
    DNG = "dng"  # 16-bit LinearRaw DNG: linear data a raw converter develops

    @classmethod
    def _missing_(cls, value: object) -> StackFormat | None:
        return cls.TIFF if str(value).lower().lstrip(".") == "tiff" else None


class Singles(StrEnum):
    """What ``batch`` does with a frame that belongs to no bracket."""

    SKIP = "skip"  # report it, fuse nothing
    VIRTUAL = "virtual"  # a RAW single becomes a virtual bracket (uhdfuse.virtual)


class Grouping(StrEnum):
    """How ``batch`` finds the brackets of a shoot."""

    AUTO = "auto"  # by capture time, exposure and camera
    FRAMES = "frames"  # consecutive sets of a fixed size
    FOLDERS = "folders"  # each folder is one bracket


CACHE_BITS: tuple[int, ...] = (16, 8, 4)  # IPL attention-cache precisions
RADIANCE_BIT_DEPTH = 32  # a radiance map is always float32
# The most pixels an input's header may claim before it is decoded: a decompression
# bomb (a small file claiming a huge image) is refused. 600 MP is four times the
# largest camera sensors (~150 MP), room for stitched panoramas.
MAX_PIXELS = 600_000_000
# Virtual exposures of one capture (uhdfuse.virtual) lie within this many EV of it:
# 2**10 is far beyond the range a 14-bit sensor records.
MAX_VIRTUAL_EV = 10.0


def choice(kind: type[StrEnum], value: object, name: str) -> StrEnum:
    """``value`` as a member of ``kind``, or a UsageError naming parameter ``name``."""
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise UsageError(f"{param(name)} must be one of {allowed}, got {value!r}") from None


def _coerce(config: object, name: str, kind: type[StrEnum], path: str | None = None) -> None:
    object.__setattr__(config, name, choice(kind, getattr(config, name), path or name))


def check_cache_bits(bits: int) -> int:
    """``bits`` when it is one of :data:`CACHE_BITS`, else a UsageError naming ``cache_bits``."""
    if bits not in CACHE_BITS:
        allowed = ", ".join(map(str, CACHE_BITS))
        raise UsageError(f"{param('cache_bits')} must be one of {allowed}, got {bits}")
    return bits


def check_chunk(chunk: int | None) -> int | None:
    """``chunk`` (IPL token rows per step; None = the model's default) when positive,
    else a UsageError naming ``chunk``."""
    if chunk is not None and chunk < 1:
        raise UsageError(f"{param('chunk')} must be a positive number of token rows, got {chunk}")
    return chunk


def check_virtual_evs(evs: Sequence[float]) -> tuple[float, ...]:
    """``evs`` (relative to one capture) when they can make a virtual bracket, else a
    UsageError naming ``virtual_ev``: at least 2, finite, distinct, within ``MAX_VIRTUAL_EV``."""
    values = tuple(float(e) for e in evs)
    name = param("virtual_ev")
    if len(values) < 2:
        raise UsageError(f"{name} needs at least 2 EVs, got {len(values)}")
    if not all(math.isfinite(e) for e in values):
        raise UsageError(f"{name} values must be finite numbers")
    if any(abs(e) > MAX_VIRTUAL_EV for e in values):
        raise UsageError(f"{name} values must lie within ±{MAX_VIRTUAL_EV:g} EV of the capture")
    if len(set(values)) != len(values):
        raise UsageError(f"{name} lists an EV twice")
    return values


def check_device(device: object) -> Device:
    """``device`` as a :class:`Device`, else a UsageError naming ``device``."""
    return choice(Device, device, "device")


@dataclass(frozen=True)
class MertensWeights:
    """Exponents of the three Mertens quality measures and the well-exposedness width."""

    contrast: float = 1.0
    saturation: float = 1.0
    exposedness: float = 1.0
    sigma: float = 0.2  # Gaussian width around mid-grey (0.5, display-encoded)


@dataclass(frozen=True)
class AlignConfig:
    """Settings of global registration."""

    model: AlignModel = AlignModel.AUTO
    proxy_size: int = 1024  # long side, in pixels, of the proxy used for the coarse search
    max_residual: float = 0.12  # RMS luma difference above which a registration is rejected
    crop: bool = True  # crop to the area every frame covers

    def __post_init__(self) -> None:
        _coerce(self, "model", AlignModel, "align.model")


@dataclass(frozen=True)
class MergeConfig:
    """Everything :func:`uhdfuse.merge` needs besides the inputs and the output path.

    Strings are accepted for the enum fields (``engine="mertens"``). Raises
    :class:`~uhdfuse.errors.UsageError` for a value no output could honour.
    """

    engine: Engine = Engine.IPL
    hdr: bool = False  # write a linear 32-bit float radiance map instead of a fused image
    # Bits per channel: 8 or 16 for fused output, 32 (float TIFF) for a radiance map;
    # None = the output format's own (OutputFormat.bit_depths[0], 32 with hdr).
    bit_depth: int | None = None
    quality: int = 95  # JPEG quality (1-100); at 90 and above the chroma is kept at full resolution
    reference: int | str | None = None  # index into the exposure-sorted frames, or a file name; None = best middle
    ev: tuple[float, ...] | None = None  # user-stated EVs, in input order
    response: Response = Response.SRGB
    align: AlignConfig = AlignConfig()
    mertens: MertensWeights = MertensWeights()
    device: Device = Device.AUTO
    chunk: int | None = None  # IPL slice height in tokens; None = the model's default for the device
    cache_bits: int = 8  # IPL attention-cache precision, one of CACHE_BITS
    prefer: Prefer = Prefer.RAW
    force: bool = False  # overwrite an existing output
    max_pixels: int = MAX_PIXELS  # refuse an input whose header claims more pixels
    keep_metadata: bool = True  # carry EXIF, XMP, GPS and the ICC profile over
    # Consistency across a shoot (panoramas, timelapses): scale every output to this
    # absolute exposure, log2(t * ISO / N^2), instead of its own reference frame's, so
    # one scene brightness gives one output value in every bracket. None = each output
    # in its reference frame's exposure.
    exposure_anchor: float | None = None
    # One capture (a RAW file) is fused as a virtual bracket (uhdfuse.virtual): the EVs
    # of its frames relative to the capture; None = chosen from the capture's histogram.
    virtual_ev: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name, kind in (("engine", Engine), ("response", Response), ("device", Device), ("prefer", Prefer)):
            _coerce(self, name, kind)
        if self.bit_depth not in (None, 8, 16, RADIANCE_BIT_DEPTH):
            raise UsageError(f"{param('bit_depth')} {self.bit_depth} is not 8, 16 or 32")
        if self.hdr and self.bit_depth not in (None, RADIANCE_BIT_DEPTH):
            raise UsageError(f"{param('hdr', True)} always writes 32-bit float; drop {param('bit_depth')}")
        if not self.hdr and self.bit_depth == RADIANCE_BIT_DEPTH:
            raise UsageError(f"32-bit output is the linear radiance map: add {param('hdr', True)}")
        if not 1 <= self.quality <= 100:
            raise UsageError(f"{param('quality')} must be 1 to 100, got {self.quality}")
        check_cache_bits(self.cache_bits)
        check_chunk(self.chunk)
        if self.max_pixels < 1:
            raise UsageError(f"{param('max_pixels')} must be at least 1, got {self.max_pixels}")
        if self.ev is not None:
            object.__setattr__(self, "ev", tuple(float(e) for e in self.ev))
        if self.virtual_ev is not None:
            object.__setattr__(self, "virtual_ev", check_virtual_evs(self.virtual_ev))

    @property
    def output_engine(self) -> str:
        """What makes the output: the engine, or "radiance" for an HDR merge."""
        return "radiance" if self.hdr else self.engine.value

    def bit_depth_for(self, fmt: OutputFormat) -> int:
        """Bits per channel of an output in ``fmt``: ``bit_depth``, or the format's own
        (32-bit float for a radiance map). Raises UsageError when ``fmt`` cannot hold it."""
        if self.hdr:
            if fmt is not OutputFormat.TIFF:
                raise UsageError(f"{param('hdr', True)} writes 32-bit float, which needs a .tif output")
            return RADIANCE_BIT_DEPTH
        if self.bit_depth is None:
            return fmt.bit_depths[0]
        problem = fmt.depth_problem(self.bit_depth)
        if problem is not None:
            raise UsageError(problem)
        return self.bit_depth
