"""Every flag of the CLI, defined once: its spelling, its help, its default.

:data:`FLAGS` maps each library parameter to its flag; the options below are
built from it and the library's messages are spelled with it, so a flag renamed
here is renamed everywhere. Defaults and choices come from the library's configs
(:class:`~uhdfuse.config.MergeConfig`, the enums of :mod:`uhdfuse.config`), never
restated. ``merge`` and ``batch`` share the fusion options under the same names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from uhdfuse.config import AlignConfig, AlignModel, Device, Engine, MergeConfig, OutputFormat, Prefer, Response
from uhdfuse.errors import UsageError, param

DEFAULTS = MergeConfig()

# library parameter -> flag; "name=value" entries spell one value of a setting as a whole
FLAGS: dict[str, str] = {
    "engine": "--engine",
    "align.model": "--align",
    "align.crop": "--crop",
    "align.crop=False": "--no-crop",
    "reference": "--reference",
    "ev": "--ev",
    "response": "--response",
    "hdr": "--hdr",
    "bit_depth": "--bit-depth",
    "quality": "--quality",
    "prefer": "--prefer",
    "device": "--device",
    "chunk": "--chunk",
    "cache_bits": "--cache-bits",
    "force": "--force",
    "keep_metadata": "--metadata",
    "keep_metadata=False": "--no-metadata",
    "max_pixels": "--max-pixels",
    "exposure_anchor": "--exposure-anchor",
    "virtual_ev": "--virtual-ev",
    "recursive": "--recursive",
    "recursive=False": "--no-recursive",
    # batch
    "output_dir": "--output",
    "gap": "--gap",
    "frames": "--frames",
    "folders": "--folders",
    "template": "--name",
    "format": "--format",
    "workers": "--workers",
    "executor": "--executor",
    "address": "--address",
    "resume": "--resume",
    "resume=False": "--no-resume",
    "consistent": "--consistent",
    "report": "--report",
    "singles": "--singles",
}


def _switch(name: str) -> str:
    """'--crop/--no-crop' for a boolean setting with both spellings."""
    return f"{FLAGS[name]}/{FLAGS[name + '=False']}"


# ---------------------------------------------------------------- fusion (merge and batch)

EngineOption = Annotated[Engine, typer.Option(FLAGS["engine"], "-e", help="Fusion engine.")]
AlignOption = Annotated[AlignModel, typer.Option(FLAGS["align.model"], help="Motion model; auto picks the simplest that fits.")]
CropOption = Annotated[bool, typer.Option(_switch("align.crop"), help="Crop to the area every aligned frame covers.")]
ResponseOption = Annotated[Response, typer.Option(FLAGS["response"], help="How JPEG/PNG/TIFF values are linearised.")]
HdrOption = Annotated[bool, typer.Option(FLAGS["hdr"], help="Write the linear radiance merge as a 32-bit float TIFF.")]
BitDepthOption = Annotated[
    Optional[int],
    typer.Option(FLAGS["bit_depth"], "-b", help="8 or 16 bits per channel. Default: 16 for TIFF/PNG, 8 for JPEG."),
]
QualityOption = Annotated[
    int, typer.Option(FLAGS["quality"], "-q", min=1, max=100, help="JPEG quality (full-resolution chroma from 90).")
]
PreferOption = Annotated[Prefer, typer.Option(FLAGS["prefer"], help="Of RAW+JPEG pairs, fuse the raw or the jpeg files.")]
DeviceOption = Annotated[Device, typer.Option(FLAGS["device"], help="Where the IPL model runs.")]
ChunkOption = Annotated[
    Optional[int], typer.Option(FLAGS["chunk"], min=1, help="IPL slice height in tokens. Default: the device's.")
]
CacheBitsOption = Annotated[int, typer.Option(FLAGS["cache_bits"], help="IPL attention-cache precision: 16, 8 or 4.")]
ForceOption = Annotated[bool, typer.Option(FLAGS["force"], "-f", help="Overwrite existing output files.")]
MetadataOption = Annotated[bool, typer.Option(_switch("keep_metadata"), help="Carry EXIF/XMP/GPS/ICC over.")]
MaxPixelsOption = Annotated[
    int,
    typer.Option(FLAGS["max_pixels"], min=1, help="Refuse inputs whose header claims more pixels (decompression bombs)."),
]
AnchorOption = Annotated[
    Optional[float],
    typer.Option(
        FLAGS["exposure_anchor"],
        help="Scale the output to this absolute exposure, log2(t·ISO/N²), instead of its reference frame's "
        "(batch --consistent reports the one it used).",
    ),
]
VirtualEvOption = Annotated[
    Optional[str],
    typer.Option(
        FLAGS["virtual_ev"],
        help="One RAW file is fused as a bracket of virtual exposures: their EVs relative to it, e.g. '0,2,4'. "
        "Default: chosen from its histogram and noise.",
    ),
]

# ---------------------------------------------------------------- one bracket (merge and info)

ReferenceOption = Annotated[
    Optional[str],
    typer.Option(
        FLAGS["reference"], "-r", help="Reference frame: file name, or index from darkest (0). Default: the middle exposure."
    ),
]
EvOption = Annotated[Optional[str], typer.Option(FLAGS["ev"], help="EV of each input, in input order, e.g. '-2,0,2'.")]

# ---------------------------------------------------------------- every command

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
BracketArgument = Annotated[list[Path], typer.Argument(help="A folder holding one bracket, or the bracket's files.")]
_FORMAT_SPELLINGS = [s.lstrip(".") for f in OutputFormat for s in f.suffixes]


def _output_format(value: str | OutputFormat) -> OutputFormat:
    """Any suffix of a format (tif, tiff, jpeg): its outputs get the format's usual one."""
    try:
        return OutputFormat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(_FORMAT_SPELLINGS)}") from None


FormatOption = Annotated[
    OutputFormat,
    typer.Option(FLAGS["format"], parser=_output_format, metavar="|".join(_FORMAT_SPELLINGS), help="Output format."),
]


def parse_ev(text: str | None, name: str = "ev") -> tuple[float, ...] | None:
    """'-2, 0, 2' -> (-2.0, 0.0, 2.0) for the setting ``name``; None stays None."""
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UsageError(f"{text!r} is not a comma-separated list of numbers for {param(name)}") from None


def parse_reference(text: str | None) -> int | str | None:
    """An index ('0', '-1') or a file name."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


# The fusion settings merge and batch share, with their defaults from MergeConfig:
# one list, so the two commands cannot drift apart in names, meanings or defaults.
_FUSION: dict[str, Any] = {  # parameter -> option
    "engine": EngineOption, "align": AlignOption, "crop": CropOption, "response": ResponseOption, "hdr": HdrOption,
    "bit_depth": BitDepthOption, "quality": QualityOption, "prefer": PreferOption, "device": DeviceOption,
    "chunk": ChunkOption, "cache_bits": CacheBitsOption, "exposure_anchor": AnchorOption, "virtual_ev": VirtualEvOption,
    "metadata": MetadataOption, "max_pixels": MaxPixelsOption, "force": ForceOption,
}
_CONFIG_FIELD = {"align": "align.model", "crop": "align.crop", "metadata": "keep_metadata"}  # where the name differs


def _default(name: str) -> Any:
    value: Any = DEFAULTS
    for part in _CONFIG_FIELD.get(name, name).split("."):
        value = getattr(value, part)
    return value


FUSION_OPTIONS: tuple[inspect.Parameter, ...] = tuple(
    _keyword(name, option, _default(name)) for name, option in _FUSION.items()
)
_LAST = ("as_json", "debug")  # a command's own options that close its help


def fusion_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the :data:`FUSION_OPTIONS`; it receives their values as one dict
    ``fusion`` (parameter -> value), which :func:`merge_config` turns into a config."""
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inspect.signature(command, eval_str=True).parameters.values()
           if p.name != "fusion"]  # fmt: skip
    first = [p for p in own if p.name not in _LAST]
    last = [p for p in own if p.name in _LAST]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        fusion = {p.name: values.pop(p.name) for p in FUSION_OPTIONS}
        command(fusion=fusion, **values)

    run.__signature__ = inspect.Signature([*first, *FUSION_OPTIONS, *last])  # type: ignore[attr-defined]
    return run


def merge_config(fusion: dict[str, Any], **settings: Any) -> MergeConfig:
    """The config of the :data:`FUSION_OPTIONS` values plus a command's own ``settings``
    (MergeConfig fields). Raises UsageError for contradictory settings."""
    values = dict(fusion)
    values["virtual_ev"] = parse_ev(values["virtual_ev"], "virtual_ev")
    align = AlignConfig(model=values.pop("align"), crop=values.pop("crop"))
    return MergeConfig(align=align, keep_metadata=values.pop("metadata"), **values, **settings)
