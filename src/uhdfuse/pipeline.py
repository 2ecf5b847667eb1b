"""The one orchestrator: read -> exposure -> align -> fuse -> write.

:func:`merge` is what ``uhdfuse merge`` runs and what Python users call. Each stage
lives in its own module; this file only wires them together, times them and
collects their warnings.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import __version__
from .align import align_bracket
from .classical import calibrate_response, fuse_mertens, merge_radiance
from .config import ENGINES, MergeConfig, Prefer
from .errors import InconsistentBracket, OutputError, UsageError
from .exposure import build_bracket
from .io import OutputMetadata, read_encoded, read_frame, read_metadata, write_image
from .io.discover import check_one_kind, discover
from .io.read import DEFAULT_MAX_PIXELS
from .io.write import JPEG_SUFFIXES, OUTPUT_SUFFIXES, TIFF_SUFFIXES
from .types import AlignedBracket, Bracket, FuseResult

StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class _Stopwatch:
    timings: dict[str, float]
    on_stage: StageCallback | None

    @contextmanager
    def stage(self, name: str):
        if self.on_stage is not None:
            self.on_stage(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def output_bit_depth(suffix: str, config: MergeConfig) -> int:
    """Bits per channel of the output file: ``config.bit_depth``, or the format's own
    (16 for TIFF/PNG, 8 for JPEG, 32-bit float for a radiance map) when it is None.

    ``suffix``: the output's, with its dot (".jpg"). Raises :class:`UsageError` for a
    suffix uhdfuse does not write or a depth the format cannot hold.
    """
    given, suffix = suffix, suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"unknown output format {given or '(none)'}; use .tif, .tiff, .png or .jpg")
    jpeg = suffix in JPEG_SUFFIXES
    if config.hdr:
        if suffix not in TIFF_SUFFIXES:
            raise UsageError("--hdr writes 32-bit float, which needs a .tif output")
        if config.bit_depth not in (None, 32):
            raise UsageError("--hdr always writes 32-bit float; drop --bit-depth")
        return 32
    if config.bit_depth is None:
        return 8 if jpeg else 16
    if config.bit_depth == 32:
        raise UsageError("32-bit output is the linear radiance map: add --hdr")
    if config.bit_depth not in (8, 16):
        raise UsageError(f"bit depth {config.bit_depth} is not 8 or 16 (32-bit float needs --hdr)")
    if jpeg and config.bit_depth != 8:
        raise UsageError("JPEG holds 8 bits per channel; write .tif or .png for 16-bit")
    return config.bit_depth


def check_output(output: Path, inputs: Sequence[Path], config: MergeConfig) -> None:
    """Refuse an output that cannot or must not be written, before any slow work.

    Raises:
        UsageError: unknown suffix, or a bit depth the format cannot hold.
        OutputError: the output exists (without ``force``) or is one of the inputs.
    """
    try:
        output_bit_depth(output.suffix, config)
    except UsageError as exc:
        raise UsageError(exc.reason, output) from None
    resolved = output.resolve()
    if any(resolved == p.resolve() for p in inputs):
        raise OutputError("is one of the inputs; choose another output path", output)
    if output.exists() and not config.force:
        raise OutputError("already exists; use --force to overwrite", output)


def _bracket_paths(inputs: Sequence[Path | str], prefer: Prefer = "raw") -> tuple[list[Path], tuple[str, ...]]:
    """The frames of one bracket and what discovery left out (see :mod:`uhdfuse.io.discover`).

    A file given twice (also via its folder) is refused, and so is a mix of RAW files
    and JPEG/PNG/TIFF files that are not their pair siblings.
    """
    given = [Path(p) for p in inputs]
    found = discover(given, prefer=prefer)
    seen: dict[Path, Path] = {}
    for p in found.files:
        key = p.resolve()
        if key in seen:
            raise InconsistentBracket(f"given twice (also as {seen[key]})", p)
        seen[key] = p
    if not found.files:
        raise InconsistentBracket("no frames left to fuse: " + "; ".join(found.notes), given[0] if given else None)
    check_one_kind(found.files)
    return list(found.files), found.notes


def _response_lut(paths: Sequence[Path], config: MergeConfig, max_pixels: int) -> np.ndarray | None:
    """The encoded -> linear lookup table for display files, or None for the sRGB curve."""
    if config.response == "srgb":
        return None
    if config.response == "linear":
        return np.repeat(np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None], 3, axis=1)
    if config.ev is not None:
        log2_times = list(config.ev)
    else:
        log2_times = []
        for p in paths:
            value = read_metadata(p)[0].log2_exposure()
            if value is None:
                raise UsageError(f"--response {config.response} needs exposure times; this file has none, give --ev", p)
            log2_times.append(value)
    encoded = [read_encoded(p, max_pixels=max_pixels) for p in paths]
    if any(e.dtype != np.uint8 for e in encoded):
        raise UsageError(f"--response {config.response} calibrates 8-bit files only; use the default sRGB curve")
    return calibrate_response(encoded, [2.0**v for v in log2_times], method=config.response)


def load_bracket(
    inputs: Sequence[Path | str], config: MergeConfig = MergeConfig(), *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> Bracket:
    """Read and sort the frames of one bracket (a folder or a list of files).

    ``max_pixels``: the decompression-bomb limit, checked on each file's header. What
    discovery left out (RAW+JPEG siblings, earlier outputs) is in ``warnings``.
    """
    paths, skipped = _bracket_paths(inputs, config.prefer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bracket = _load(paths, config, max_pixels)
    notes = _notes(skipped, caught)
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return replace(bracket, warnings=notes)


def _notes(first: Sequence[str], caught: Sequence[warnings.WarningMessage]) -> tuple[str, ...]:
    """Every note once, in order: ``first``, then the user warnings the stages raised."""
    raised = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return tuple(dict.fromkeys([*first, *raised]))


def _load(paths: Sequence[Path], config: MergeConfig, max_pixels: int = DEFAULT_MAX_PIXELS) -> Bracket:
    lut = _response_lut(paths, config, max_pixels)
    frames = [read_frame(p, lut=lut, max_pixels=max_pixels) for p in paths]
    if frames and frames[0].source == "raw" and config.response != "srgb":
        warnings.warn("--response applies to JPEG/PNG/TIFF only; RAW frames are already linear", UserWarning)
    return build_bracket(frames, ev=config.ev, reference=config.reference)


def fuse(aligned: AlignedBracket, config: MergeConfig, *, raw: bool = False) -> tuple[np.ndarray, dict]:
    """Run the configured engine: returns the fused image and the engine's statistics.

    The image is (H, W, 3) float32: display-encoded sRGB in [0, 1], or, with
    ``config.hdr``, linear radiance in the reference frame's units.
    """
    if config.hdr:
        return merge_radiance(aligned.images, aligned.ev, reference=aligned.reference, raw=raw), {}
    if config.engine == "mertens":
        return fuse_mertens(aligned.images, config.mertens), {}
    if config.engine == "ipl":
        from .runtime import fuse_ipl  # torch is only imported when the model is asked for

        return fuse_ipl(
            aligned.images,
            aligned.ev,
            aligned.reference,
            device=config.device,
            chunk=config.chunk,
            cache_bits=config.cache_bits,
        )
    raise UsageError(f"unknown engine {config.engine!r}; choose one of {', '.join(ENGINES)}")


def exposure_gain(bracket: Bracket, anchor: float) -> float:
    """Factor taking linear values from the reference frame's exposure to ``anchor``.

    ``anchor`` is an absolute log2(t * ISO / N^2) (``MergeConfig.exposure_anchor``).
    Fused output scales the frames before fusion (they are clipped at 1.0 as a camera
    would); a radiance map is scaled after the merge. A reference without exposure
    metadata gives 1.0, with a warning.
    """
    reference = bracket.frames[bracket.reference]
    own = reference.exposure.log2_exposure()
    if own is None:
        warnings.warn(f"{reference.path}: no exposure time; output not normalised", UserWarning)
        return 1.0
    return float(2.0 ** (anchor - own))


def merge(
    inputs: Sequence[Path | str],
    output: Path | str,
    config: MergeConfig = MergeConfig(),
    *,
    on_stage: StageCallback | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FuseResult:
    """Fuse one bracket into one output file, carrying the reference frame's metadata.

    Args:
        inputs: one folder holding the bracket, or the bracket's files.
        output: .tif/.tiff (16-bit by default; 32-bit float with ``config.hdr``) or .png.
        config: engine, alignment, exposure and output settings.
        on_stage: called with each stage's name as it starts (for progress displays).
        max_pixels: the most pixels an input's header may claim (decompression-bomb
            guard); larger files are refused before decoding.

    Returns:
        What was done: EVs, reference, alignment residuals, timings, warnings.

    Raises:
        UhdfuseError: bad input, failed alignment or an unwritable output; the output
            is then left untouched (or absent) and no temporary file remains.
    """
    started = time.perf_counter()
    output = Path(output)
    paths, skipped = _bracket_paths(inputs, config.prefer)
    check_output(output, paths, config)
    cfg = replace(config, bit_depth=output_bit_depth(output.suffix, config))

    timings: dict[str, float] = {}
    clock = _Stopwatch(timings, on_stage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with clock.stage("read"):
            bracket = _load(paths, cfg, max_pixels)
        with clock.stage("align"):
            aligned = align_bracket(bracket, cfg.align)
        # The aligned copies are all fusion needs: let the decoded frames go (3 x 100 MB at 4K).
        sources = tuple(f.path for f in bracket.frames)
        raw = bracket.frames[0].source == "raw"
        gain = exposure_gain(bracket, cfg.exposure_anchor) if cfg.exposure_anchor is not None else 1.0
        ev, ev_source, reference = bracket.ev, bracket.ev_source, bracket.reference
        del bracket
        with clock.stage("fuse"):
            if gain != 1.0 and not cfg.hdr:
                # fusion then sees the frames at the shoot's common exposure
                np.multiply(aligned.images, np.float32(gain), out=aligned.images)
                np.minimum(aligned.images, 1.0, out=aligned.images)
            image, stats = fuse(aligned, cfg, raw=raw)
            if gain != 1.0 and cfg.hdr:
                image *= np.float32(gain)  # radiance: exact, no clipping
        if "render_seconds" in stats:  # IPL: the fuse stage's two parts
            timings["fuse_model"] = stats["seconds"]
            timings["fuse_render"] = stats["render_seconds"]
        metadata = None
        if cfg.keep_metadata:
            metadata = OutputMetadata(
                reference=sources[reference],
                sources=tuple((p.name, e) for p, e in zip(sources, ev)),
                software=f"uhdfuse {__version__}",
                engine="radiance" if cfg.hdr else cfg.engine,
            )
        with clock.stage("write"):
            written = write_image(
                output, image, bit_depth=cfg.bit_depth, metadata=metadata, force=cfg.force, quality=cfg.quality
            )

    h, w = image.shape[:2]
    return FuseResult(
        output=written,
        inputs=sources,
        ev=ev,
        ev_source=ev_source,
        reference=reference,
        engine="radiance" if cfg.hdr else cfg.engine,
        align_model=aligned.model,
        align_residuals=aligned.residuals,
        crop=aligned.crop,
        size=(w, h),
        timings=timings,
        warnings=_notes(skipped, caught),
        model_peak_bytes=stats.get("model_peak_bytes"),
        seconds=time.perf_counter() - started,
    )
