"""The one orchestrator: read -> exposure -> align -> fuse -> write.

:func:`merge` is what ``uhdfuse merge`` runs and what Python users call. Each stage
lives in its own module; this file only wires them together, times them and
collects the notes each stage returns (:attr:`FuseResult.warnings`).
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import numpy as np

from .align import align_bracket
from .classical import calibrate_response, fuse_mertens, merge_radiance
from .config import AlignConfig, AlignModel, Engine, MergeConfig, OutputFormat, Prefer, Response
from .errors import InconsistentBracket, Message, UsageError, joined, param
from .exposure import build_bracket
from .io import OutputMetadata, check_output, read_encoded, read_frame, read_metadata, write_image
from .io.discover import check_one_kind, discover
from .threads import worker_threads
from .types import AlignedBracket, Bracket, FuseResult
from .version import __version__
from .virtual import virtual_bracket

if TYPE_CHECKING:  # torch is only imported when the model is asked for
    from .runtime import FuseStats

StageCallback = Callable[[str], None]


@dataclass(frozen=True)
class _Stopwatch:
    on_stage: StageCallback | None
    timings: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.on_stage is not None:
            self.on_stage(name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _once(notes: Sequence[str]) -> tuple[str, ...]:
    """Every note once, in the order the stages gave them."""
    return tuple(dict.fromkeys(notes))


def _issue(notes: Sequence[str]) -> None:
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=3)


def bracket_paths(inputs: Sequence[Path | str], prefer: Prefer = Prefer.RAW) -> tuple[list[Path], tuple[str, ...]]:
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
        raise InconsistentBracket(f"no frames left to fuse: {joined(found.notes).template}", given[0] if given else None)
    check_one_kind(found.files)
    return list(found.files), found.notes


def _response_lut(paths: Sequence[Path], config: MergeConfig) -> np.ndarray | None:
    """The encoded -> linear lookup table for display files, or None for the sRGB curve."""
    if config.response is Response.SRGB:
        return None
    if config.response is Response.LINEAR:
        return np.repeat(np.linspace(0.0, 1.0, 256, dtype=np.float32)[:, None], 3, axis=1)
    response = param("response", config.response.value)
    if config.ev is not None:
        log2_times = list(config.ev)
    else:
        log2_times = []
        for p in paths:
            value = read_metadata(p)[0].log2_exposure()
            if value is None:
                raise UsageError(f"{response} needs exposure times; this file has none, give {param('ev')}", p)
            log2_times.append(value)
    encoded = [read_encoded(p, max_pixels=config.max_pixels) for p in paths]
    if any(e.dtype != np.uint8 for e in encoded):
        raise UsageError(f"{response} calibrates 8-bit files only; use the default sRGB curve")
    return calibrate_response(encoded, [2.0**v for v in log2_times], method=config.response)


def _load(paths: Sequence[Path], config: MergeConfig) -> Bracket:
    """Decode and sort the frames; their notes and the exposure notes are the bracket's.

    One file is a capture made into a virtual bracket (:mod:`uhdfuse.virtual`).
    """
    if len(paths) == 1:
        return load_capture(paths[0], config)
    if config.virtual_ev is not None:
        raise UsageError(f"{param('virtual_ev')} makes a bracket of one capture; {len(paths)} frames were given")
    lut = _response_lut(paths, config)
    with ThreadPoolExecutor(max_workers=worker_threads()) as pool:  # the decoders release the GIL
        frames = list(pool.map(lambda p: read_frame(p, lut=lut, max_pixels=config.max_pixels), paths))
    bracket = build_bracket(frames, ev=config.ev, reference=config.reference)
    return _with_response_note(bracket, config)


def load_capture(path: Path, config: MergeConfig = MergeConfig()) -> Bracket:
    """The virtual bracket (:mod:`uhdfuse.virtual`) of one capture, a file discovery
    took as a frame, with the settings that apply to one file checked."""
    if config.ev is not None:
        raise UsageError(f"{param('ev')} states the EVs of a bracket's frames; for one capture give {param('virtual_ev')}")
    if config.response in (Response.DEBEVEC, Response.ROBERTSON):
        raise UsageError(f"{param('response', config.response.value)} calibrates from a bracket; one capture holds none", path)
    if isinstance(config.reference, str):
        raise UsageError(f"the virtual frames all come from {path.name}: give {param('reference')} as an index")
    frame = read_frame(path, lut=_response_lut([path], config), max_pixels=config.max_pixels)
    bracket = virtual_bracket(frame, config.virtual_ev, response=config.response, reference=config.reference)
    return _with_response_note(bracket, config)


def _with_response_note(bracket: Bracket, config: MergeConfig) -> Bracket:
    """``bracket``, with a note when a response was asked for RAW frames (already linear)."""
    if bracket.frames[0].source != "raw" or config.response is Response.SRGB:
        return bracket
    note = Message(f"{param('response')} applies to JPEG/PNG/TIFF only; RAW frames are already linear")
    return replace(bracket, warnings=(*bracket.warnings, note))


def load_bracket(inputs: Sequence[Path | str], config: MergeConfig = MergeConfig(), *, warn: bool = False) -> Bracket:
    """Read and sort the frames of one bracket (a folder or a list of files).

    What discovery left out (RAW+JPEG siblings, earlier outputs) and what the stages
    tolerated are in ``warnings``; ``warn=True`` also issues each as a UserWarning.
    """
    paths, skipped = bracket_paths(inputs, config.prefer)
    bracket = _load(paths, config)
    bracket = replace(bracket, warnings=_once([*skipped, *bracket.warnings]))
    if warn:
        _issue(bracket.warnings)
    return bracket


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then act on them as their handlers would.

    For torch's import: a KeyboardInterrupt raised while its C++ initialisation calls
    back into Python cannot unwind through it, and the process aborts ("terminate
    called ... KeyboardInterrupt") instead of reaching the caller's clean-up. Outside
    the main thread (where handlers cannot be set) the block runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[tuple[int, FrameType | None]] = []
    watched = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: held.append((signum, frame))) for s in watched}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for signum, frame in held[:1]:  # the first one decides, as it would have
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def fuse(
    aligned: AlignedBracket, config: MergeConfig, *, raw: bool = False, overwrite: bool = False
) -> tuple[np.ndarray, FuseStats | None]:
    """Run the configured engine: returns the fused image and IPL's statistics (None for
    the classical engines), whose ``notes`` are warnings for the user. ``overwrite``:
    the engine may use ``aligned.images`` as its working memory (the frames are then
    no longer valid).

    The image is (H, W, 3) float32: display-encoded sRGB in [0, 1], or, with
    ``config.hdr``, linear radiance in the reference frame's units.
    """
    if config.hdr:
        return merge_radiance(aligned.images, aligned.ev, reference=aligned.reference, raw=raw), None
    if config.engine is Engine.MERTENS:
        return fuse_mertens(aligned.images, config.mertens, overwrite=overwrite), None
    with _signals_held():  # torch is only imported when the model is asked for
        from .runtime import fuse_ipl

    return fuse_ipl(
        aligned.images, aligned.ev, aligned.reference, device=config.device, chunk=config.chunk,
        cache_bits=config.cache_bits, overwrite=overwrite,
    )  # fmt: skip


def exposure_gain(bracket: Bracket, anchor: float) -> float | None:
    """Factor taking linear values from the reference frame's exposure to ``anchor``, or
    None when the reference has no exposure time.

    ``anchor`` is an absolute log2(t * ISO / N^2) (``MergeConfig.exposure_anchor``).
    Fused output scales the frames before fusion (they are clipped at 1.0 as a camera
    would); a radiance map is scaled after the merge.
    """
    own = bracket.frames[bracket.reference].exposure.log2_exposure()
    return None if own is None else float(2.0 ** (anchor - own))


def _align_config(bracket: Bracket, config: MergeConfig) -> AlignConfig:
    """``config.align``, or no registration for a virtual bracket: its frames are one image."""
    if bracket.virtual_ev is not None:
        return replace(config.align, model=AlignModel.NONE)
    return config.align


@dataclass(frozen=True)
class _Shot:
    """What the output needs to know of the bracket once its decoded frames are gone."""

    raw: bool  # RAW frames (the radiance merge weighs them differently)
    gain: float  # exposure_gain, 1.0 without an anchor
    sources: tuple[Path, ...]
    ev: tuple[float, ...]
    ev_source: str
    reference: int
    notes: tuple[str, ...]
    virtual_ev: tuple[float, ...] | None

    @classmethod
    def of(cls, bracket: Bracket, config: MergeConfig) -> _Shot:
        gain, notes = 1.0, bracket.warnings
        if config.exposure_anchor is not None:
            found = exposure_gain(bracket, config.exposure_anchor)
            if found is None:
                notes = (*notes, Message(f"{bracket.frames[bracket.reference].path}: no exposure time; output not normalised"))
            gain = 1.0 if found is None else found
        sources = tuple(f.path for f in bracket.frames)
        raw = bracket.frames[0].source == "raw"
        return cls(raw, gain, sources, bracket.ev, bracket.ev_source, bracket.reference, notes, bracket.virtual_ev)

    def metadata(self, config: MergeConfig) -> OutputMetadata | None:
        if not config.keep_metadata:
            return None
        return OutputMetadata(
            reference=self.sources[self.reference],
            sources=tuple((p.name, e) for p, e in zip(self.sources, self.ev)),
            software=f"uhdfuse {__version__}",
            engine=config.output_engine,
        )


def _fuse_at_exposure(aligned: AlignedBracket, config: MergeConfig, shot: _Shot) -> tuple[np.ndarray, FuseStats | None]:
    """:func:`fuse`, with the frames (fused output) or the radiance (HDR) scaled by the gain;
    ``aligned.images`` are the pipeline's own and are used up."""
    gain = np.float32(shot.gain)
    if shot.gain != 1.0 and not config.hdr:
        # fusion then sees the frames at the shoot's common exposure
        np.multiply(aligned.images, gain, out=aligned.images)
        np.minimum(aligned.images, 1.0, out=aligned.images)
    image, stats = fuse(aligned, config, raw=shot.raw, overwrite=True)
    if shot.gain != 1.0 and config.hdr:
        image *= gain  # radiance: exact, no clipping
    return image, stats


def merge(
    inputs: Sequence[Path | str],
    output: Path | str,
    config: MergeConfig = MergeConfig(),
    *,
    on_stage: StageCallback | None = None,
    warn: bool = False,
) -> FuseResult:
    """Fuse one bracket into one output file, carrying the reference frame's metadata.

    Args:
        inputs: one folder holding the bracket, or the bracket's files.
        output: .tif/.tiff (16-bit by default; 32-bit float with ``config.hdr``), .png or .jpg.
        config: engine, alignment, exposure and output settings.
        on_stage: called with each stage's name as it starts (for progress displays).
        warn: also issue each of the result's ``warnings`` as a UserWarning.

    Returns:
        What was done: EVs, reference, alignment residuals, timings, warnings.

    Raises:
        UhdfuseError: bad input, failed alignment or an unwritable output; the output
            is then left untouched (or absent) and no temporary file remains.
    """
    started = time.perf_counter()
    output = Path(output)
    paths, skipped = bracket_paths(inputs, config.prefer)
    try:
        config = replace(config, bit_depth=config.bit_depth_for(OutputFormat.of(output)))
    except UsageError as exc:
        raise UsageError(exc.reason, output) from None
    check_output(output, paths, force=config.force)

    clock = _Stopwatch(on_stage)
    with clock.stage("read"):
        bracket = _load(paths, config)
    with clock.stage("align"):
        aligned = align_bracket(bracket, _align_config(bracket, config), release_frames=True)
    shot = _Shot.of(bracket, config)
    del bracket  # the aligned copies are all fusion needs: let the decoded frames go (3 x 100 MB at 4K)
    with clock.stage("fuse"):
        image, stats = _fuse_at_exposure(aligned, config, shot)
    align_model, residuals, crop = aligned.model, aligned.residuals, aligned.crop
    del aligned  # the frames (the fusion's working memory) go before the output is encoded
    if stats is not None:  # IPL: the fuse stage's two parts
        clock.timings.update(fuse_model=stats.model_seconds, fuse_render=stats.render_seconds)
    with clock.stage("write"):
        written = write_image(
            output, image, bit_depth=config.bit_depth, metadata=shot.metadata(config), force=config.force,
            quality=config.quality,
        )  # fmt: skip
    notes = _once([*skipped, *shot.notes, *(stats.notes if stats else ()), *written.notes])
    if warn:
        _issue(notes)
    return FuseResult(
        output=written.path, inputs=shot.sources, ev=shot.ev, ev_source=shot.ev_source, reference=shot.reference,
        engine=config.output_engine, align_model=align_model, align_residuals=residuals, crop=crop,
        size=(image.shape[1], image.shape[0]), timings=clock.timings, warnings=notes,
        model_peak_bytes=stats.model_peak_bytes if stats else None, seconds=time.perf_counter() - started,
        virtual_ev=shot.virtual_ev,
    )  # fmt: skip
