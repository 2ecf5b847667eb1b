"""The ``uhdfuse`` command: parses, reports, and leaves the work to the library.

Human output goes to stderr (rich); ``--json`` prints one JSON object per result on
stdout. Exit codes: 0 success, 1 failure (bad input, failed alignment, unwritable
output), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import json
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import ALIGN_MODELS, ENGINES, RESPONSES, AlignConfig, MergeConfig
from .errors import UhdfuseError, UsageError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fuse exposure brackets (RAW or JPEG) into one 16-bit image that keeps the camera's metadata.",
)
err = Console(stderr=True, highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"uhdfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """Fuse exposure brackets (RAW or JPEG) into one 16-bit image that keeps the camera's metadata."""


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return value


def _parse_ev(text: Optional[str]) -> Optional[tuple[float, ...]]:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint="--ev") from None


def _parse_reference(text: Optional[str]) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


@contextmanager
def _reported(debug: bool):
    """Turn library errors into one line on stderr and the right exit code."""
    try:
        yield
    except UhdfuseError as e:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {e}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        if debug:
            raise
        err.print("[bold red]interrupted[/]: no output was written")
        raise typer.Exit(130) from None


def _warn_to_stderr() -> None:
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)

    warnings.showwarning = show


@app.command()
def merge(
    inputs: list[Path] = typer.Argument(..., help="A folder holding one bracket, or the bracket's files."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file: .tif (default 16-bit) or .png."),
    engine: str = typer.Option("mertens", "--engine", "-e", help=f"Fusion engine: {' | '.join(ENGINES)}."),
    align: str = typer.Option("auto", "--align", help=f"Motion model: {' | '.join(ALIGN_MODELS)}."),
    crop: bool = typer.Option(True, "--crop/--no-crop", help="Crop to the area every aligned frame covers."),
    reference: Optional[str] = typer.Option(
        None, "--reference", "-r", help="Reference frame: file name, or index from darkest (0). Default: the middle exposure."
    ),
    ev: Optional[str] = typer.Option(None, "--ev", help="EV of each input, in input order, e.g. '-2,0,2'."),
    response: str = typer.Option(
        "srgb", "--response", help=f"How JPEG/PNG/TIFF values are linearised: {' | '.join(RESPONSES)}."
    ),
    hdr: bool = typer.Option(False, "--hdr", help="Write the linear radiance merge as a 32-bit float TIFF."),
    bit_depth: int = typer.Option(16, "--bit-depth", "-b", help="8 or 16 bits per channel (32 with --hdr)."),
    device: str = typer.Option("auto", "--device", help="IPL engine device: auto | cpu | cuda | mps."),
    chunk: Optional[int] = typer.Option(None, "--chunk", min=1, help="IPL slice height in tokens."),
    cache_bits: int = typer.Option(8, "--cache-bits", help="IPL attention-cache precision: 16, 8 or 4."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
    no_metadata: bool = typer.Option(False, "--no-metadata", help="Do not carry EXIF/XMP/ICC over."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Fuse one bracket into one image.

    Example: uhdfuse merge ~/shoot/bracket_012/ -o bracket_012.tif
    """
    _choice(engine, ENGINES, "--engine")
    _choice(align, ALIGN_MODELS, "--align")
    _choice(response, RESPONSES, "--response")
    _choice(device, ("auto", "cpu", "cuda", "mps"), "--device")
    if cache_bits not in (16, 8, 4):
        raise typer.BadParameter(f"{cache_bits} is not 16, 8 or 4", param_hint="--cache-bits")
    if bit_depth not in (8, 16, 32):
        raise typer.BadParameter(f"{bit_depth} is not 8, 16 or 32", param_hint="--bit-depth")
    config = MergeConfig(
        engine=engine,  # type: ignore[arg-type]
        hdr=hdr,
        bit_depth=32 if hdr else bit_depth,
        reference=_parse_reference(reference),
        ev=_parse_ev(ev),
        response=response,  # type: ignore[arg-type]
        align=AlignConfig(model=align, crop=crop),  # type: ignore[arg-type]
        device=device,  # type: ignore[arg-type]
        chunk=chunk,
        cache_bits=cache_bits,
        force=force,
        keep_metadata=not no_metadata,
    )
    from .pipeline import merge as run_merge

    _warn_to_stderr()
    with _reported(debug):
        if hdr and bit_depth not in (16, 32):
            raise UsageError("--hdr always writes 32-bit float; drop --bit-depth")
        with err.status("reading", spinner="dots") as status:
            result = run_merge(inputs, output, config, on_stage=lambda name: status.update(f"{name}…"))
    for note in result.warnings:
        err.print(f"[yellow]warning:[/] {note}", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    evs = ", ".join(f"{e:+.2f}" for e in result.ev)
    total = sum(result.timings.values())
    err.print(
        f"[green]wrote[/] {result.output} ({result.size[0]}x{result.size[1]}, {result.engine}, "
        f"EV {evs} from {result.ev_source}, reference {result.inputs[result.reference].name}, "
        f"align {result.align_model}) in {total:.1f} s",
        soft_wrap=True,
    )


def _fmt(value: Optional[float], pattern: str) -> str:
    if value is None:
        return "–"
    if pattern == "time":
        return f"1/{round(1 / value)}" if 0 < value < 0.5 else f"{value:g}s"
    return format(value, pattern)


@app.command()
def info(
    inputs: list[Path] = typer.Argument(..., help="A folder holding one bracket, or the bracket's files."),
    ev: Optional[str] = typer.Option(None, "--ev", help="EV of each input, in input order."),
    reference: Optional[str] = typer.Option(None, "--reference", "-r", help="Reference frame: file name or index."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Show what uhdfuse sees in a bracket: frames, camera, exposures, the chosen reference.

    Example: uhdfuse info ~/shoot/bracket_012/
    """
    from .pipeline import load_bracket

    _warn_to_stderr()
    with _reported(debug):
        bracket = load_bracket(inputs, MergeConfig(ev=_parse_ev(ev), reference=_parse_reference(reference)))
    frames = [
        {
            "file": str(f.path),
            "ev": round(e, 3),
            "reference": i == bracket.reference,
            "exposure_time": f.exposure.exposure_time,
            "f_number": f.exposure.f_number,
            "iso": f.exposure.iso,
            "bias_ev": f.exposure.bias_ev,
            "kind": f.source,
            "bit_depth": f.bit_depth,
            "size": list(f.size),
        }
        for i, (f, e) in enumerate(zip(bracket.frames, bracket.ev))
    ]
    cam = bracket.frames[bracket.reference].camera
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "frames": frames,
                    "ev_source": bracket.ev_source,
                    "reference": bracket.reference,
                    "camera": {"make": cam.make, "model": cam.model, "lens": cam.lens, "datetime": cam.datetime},
                    "warnings": list(bracket.warnings),
                }
            )
        )
        return
    table = Table(title=f"{len(frames)} frames · {cam.make or '?'} {cam.model or ''} · EV from {bracket.ev_source}")
    for col in ("", "file", "EV", "shutter", "f", "ISO", "bias", "kind", "size"):
        table.add_column(col)
    for fr in frames:
        table.add_row(
            "★" if fr["reference"] else "",
            Path(fr["file"]).name,
            f"{fr['ev']:+.2f}",
            _fmt(fr["exposure_time"], "time"),
            _fmt(fr["f_number"], "g"),
            _fmt(fr["iso"], "g"),
            _fmt(fr["bias_ev"], "+g"),
            f"{fr['kind']} {fr['bit_depth']}-bit",
            f"{fr['size'][0]}x{fr['size'][1]}",
        )
    err.print(table)
    err.print("★ reference frame (the output keeps its geometry and metadata)")


@app.command()
def example(
    out_dir: Path = typer.Argument(Path("example"), help="Folder to write the example brackets into."),
    width: int = typer.Option(960, "--width", min=32),
    height: int = typer.Option(640, "--height", min=32),
    shake: float = typer.Option(0.0, "--shake", min=0.0, help="Hand-held shake, in pixels."),
    moving: int = typer.Option(0, "--moving", min=0, help="Number of objects moving between frames."),
    seed: int = typer.Option(0, "--seed"),
    force: bool = typer.Option(False, "--force", "-f", help="Write into an existing, non-empty folder."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write a procedural example bracket (JPEG, 16-bit TIFF and DNG) to fuse.

    Example: uhdfuse example example/ && uhdfuse merge example/jpeg -o fused.tif
    """
    from .synthetic import write_example_bracket

    with _reported(debug):
        if out_dir.exists() and any(out_dir.iterdir()) and not force:
            raise UsageError("folder is not empty; use --force to write into it", out_dir)
        written = write_example_bracket(
            out_dir, width=width, height=height, shake_px=shake, moving_objects=moving, seed=seed
        )
    for fmt, paths in written.items():
        err.print(f"[green]{fmt}[/]: {len(paths)} frames in {paths[0].parent}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `uhdfuse ... --json | head` closes stdout early
        sys.exit(0)


if __name__ == "__main__":
    main()
