"""``uhdfuse stack``: the virtual exposures of one capture, written as files.

The frames :func:`uhdfuse.virtual.virtual_bracket` makes of a RAW file, each written as
a 16-bit TIFF in sRGB (what a raw converter exports for HDR tools), or as a 16-bit
LinearRaw DNG (linear data a raw converter develops), whose EXIF states the exposure
a real bracket frame would: the capture's exposure time times 2**EV and
its compensation plus EV. enfuse, Lightroom's HDR merge, HDRMerge and uhdfuse itself
can fuse the folder. A stack file is a frame, not a fused output: its XMP records
``uhdfuse:VirtualEV`` and the capture's name, and discovery takes it as a frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .colour import srgb_encode
from .config import MergeConfig, StackFormat, choice
from .errors import OutputError, UsageError
from .io import OutputMetadata, VirtualExposure, Written, check_output, write_image, write_linear_dng
from .types import Frame
from .pipeline import bracket_paths, load_capture
from .version import __version__

STACK_BIT_DEPTH = 16


@dataclass(frozen=True)
class StackResult:
    """What :func:`write_stack` wrote: one file per virtual EV (relative to the capture)."""

    capture: Path
    outputs: tuple[Path, ...]
    virtual_ev: tuple[float, ...]
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {
            "capture": str(self.capture),
            "outputs": [str(p) for p in self.outputs],
            "virtual_ev": list(self.virtual_ev),
            "warnings": list(self.warnings),
        }


def stack_names(capture: Path, evs: Sequence[float], fmt: StackFormat = StackFormat.TIFF) -> list[str]:
    """'IMG_0001_ev-2.tif', 'IMG_0001_ev+0.tif', 'IMG_0001_ev+1.5.tif' ... for ``evs``."""
    return [f"{capture.stem}_ev{ev:+g}.{fmt.value}" for ev in evs]


def write_stack(
    capture: Path | str, out_dir: Path | str, config: MergeConfig = MergeConfig(), fmt: StackFormat | str = StackFormat.TIFF
) -> StackResult:
    """Write the virtual exposures of one capture into ``out_dir``.

    Args:
        capture: one RAW file (or linear TIFF, see :func:`uhdfuse.virtual.check_capture`),
            or a folder holding only it.
        out_dir: the folder for the files (created when missing).
        fmt: 16-bit sRGB TIFF, or 16-bit LinearRaw DNG.
        config: ``virtual_ev`` (None: chosen from the capture), ``force``,
            ``keep_metadata``, ``max_pixels``, ``response``, ``prefer`` apply.

    Raises:
        UhdfuseError: not one capture, a capture no virtual bracket can be made of, an
            output that exists (without ``force``); nothing is written then. A failure
            while writing leaves the files written before it, never half a file.
    """
    fmt = choice(StackFormat, fmt, "format")
    paths, skipped = bracket_paths([capture], config.prefer)
    if len(paths) != 1:
        raise UsageError(f"a stack is made of one capture; {len(paths)} frames were given", Path(capture))
    bracket = load_capture(paths[0], config)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError("is a file; give a folder for the stack", out_dir)
    outputs = [out_dir / name for name in stack_names(paths[0], bracket.virtual_ev, fmt)]
    for output in outputs:  # every name checked before the first file is written
        check_output(output, paths, force=config.force)
    notes = [*skipped, *bracket.warnings]
    for frame, ev, output in zip(bracket.frames, bracket.virtual_ev, outputs):
        notes.extend(_write_frame(frame, ev, output, paths[0], fmt, config).notes)
    return StackResult(paths[0], tuple(outputs), bracket.virtual_ev, tuple(dict.fromkeys(notes)))


def _write_frame(frame: Frame, ev: float, output: Path, capture: Path, fmt: StackFormat, config: MergeConfig) -> Written:
    """One virtual exposure ``ev`` stops from ``capture``, as a file in ``fmt``."""
    metadata = None
    linear = fmt is StackFormat.DNG
    if config.keep_metadata:
        virtual = VirtualExposure(ev, frame.exposure.exposure_time, frame.exposure.bias_ev or 0.0)
        metadata = OutputMetadata(
            reference=capture, sources=(), software=f"uhdfuse {__version__}", engine="virtual", virtual=virtual,
            colour_space="linear" if linear else "sRGB",
        )  # fmt: skip
    image = np.clip(frame.image, 0.0, 1.0)
    if linear:
        return write_linear_dng(output, image, metadata=metadata, force=config.force)
    return write_image(output, srgb_encode(image), bit_depth=STACK_BIT_DEPTH, metadata=metadata, force=config.force)
