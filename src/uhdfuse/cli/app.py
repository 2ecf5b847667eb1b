"""The commands: each maps its flags to the library's parameters, calls it, reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from uhdfuse.config import StackFormat
from uhdfuse.version import __version__

from .batch import batch
from .options import (
    DEFAULTS,
    BracketArgument,
    FLAGS,
    DebugOption,
    EvOption,
    ForceOption,
    JsonOption,
    MaxPixelsOption,
    MetadataOption,
    PreferOption,
    ReferenceOption,
    VirtualEvOption,
    fusion_options,
    merge_config,
    parse_ev,
    parse_reference,
)
from .report import console, err, frames_table, print_notes, reported, say, sigterm_interrupts

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fuse exposure brackets (RAW or JPEG) into one 16-bit image that keeps the camera's metadata.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"uhdfuse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Fuse exposure brackets (RAW or JPEG) into one 16-bit image that keeps the camera's metadata."""


def _spelled_json(result: Any) -> dict:
    """A result's JSON with its warnings spelled as this CLI's flags."""
    data = result.to_json()
    data["warnings"] = [say(w) for w in result.warnings]
    return data


@app.command()
@fusion_options
def merge(
    inputs: BracketArgument,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file: .tif, .png (16-bit by default) or .jpg.")],
    reference: ReferenceOption = None,
    ev: EvOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
    *,
    fusion: dict[str, Any],
) -> None:
    """Fuse one bracket into one image.

    Example: uhdfuse merge ~/shoot/bracket_012/ -o bracket_012.tif
    """
    from uhdfuse.pipeline import merge as run_merge

    with reported(debug), sigterm_interrupts():
        config = merge_config(fusion, reference=parse_reference(reference), ev=parse_ev(ev))
        with err.status("reading", spinner="dots") as status:
            result = run_merge(inputs, output, config, on_stage=lambda name: status.update(f"{name}…"))
    print_notes(result.warnings)
    if as_json:
        typer.echo(json.dumps(_spelled_json(result)))
    err.print(
        f"[green]wrote[/] {result.output} ({result.size[0]}x{result.size[1]}, {result.engine}, {_exposures(result)}, "
        f"align {result.align_model}) in {result.seconds:.1f} s: {result.timings_line()}",
        soft_wrap=True,
    )


def _exposures(result: Any) -> str:
    """'EV -2.00, +0.00, +2.00 from exif, reference b.jpg', or a virtual bracket's EVs of its capture."""
    if result.virtual_ev is not None:
        evs = ", ".join(f"{e:+g}" for e in result.virtual_ev)
        return f"virtual bracket EV {evs} of {result.inputs[0].name}, reference EV {result.virtual_ev[result.reference]:+g}"
    evs = ", ".join(f"{e:+.2f}" for e in result.ev)
    return f"EV {evs} from {result.ev_source}, reference {result.inputs[result.reference].name}"


@app.command()
def stack(
    capture: Annotated[Path, typer.Argument(help="One RAW file (or a folder holding only it).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the virtual exposures (16-bit TIFF).")],
    virtual_ev: VirtualEvOption = None,
    fmt: Annotated[
        StackFormat, typer.Option(FLAGS["format"], help="16-bit sRGB TIFF, or 16-bit linear DNG for raw converters.")
    ] = StackFormat.TIFF,
    prefer: PreferOption = DEFAULTS.prefer,
    metadata: MetadataOption = DEFAULTS.keep_metadata,
    max_pixels: MaxPixelsOption = DEFAULTS.max_pixels,
    force: ForceOption = DEFAULTS.force,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Write the virtual exposures of one RAW file, for other HDR tools (or to look at).

    Example: uhdfuse stack IMG_0001.CR2 --virtual-ev -2,0,2,4 -o stack/
    """
    from uhdfuse.config import MergeConfig
    from uhdfuse.stack import write_stack

    with reported(debug), sigterm_interrupts():
        config = MergeConfig(
            virtual_ev=parse_ev(virtual_ev, "virtual_ev"), prefer=prefer, keep_metadata=metadata, max_pixels=max_pixels,
            force=force,
        )  # fmt: skip
        with err.status("reading", spinner="dots"):
            result = write_stack(capture, output, config, fmt)
    print_notes(result.warnings)
    if as_json:
        typer.echo(json.dumps(_spelled_json(result)))
    evs = ", ".join(f"{e:+g}" for e in result.virtual_ev)
    err.print(f"[green]wrote[/] {len(result.outputs)} virtual exposures (EV {evs}) of {result.capture.name} to {output}", soft_wrap=True)


@app.command()
def info(
    inputs: BracketArgument,
    ev: EvOption = None,
    reference: ReferenceOption = None,
    prefer: PreferOption = DEFAULTS.prefer,
    max_pixels: MaxPixelsOption = DEFAULTS.max_pixels,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Show what uhdfuse sees in a bracket: frames, camera, exposures, the chosen reference.

    Example: uhdfuse info ~/shoot/bracket_012/
    """
    from uhdfuse.config import MergeConfig
    from uhdfuse.pipeline import load_bracket
    from uhdfuse.shoot import camera_name

    with reported(debug):
        config = MergeConfig(ev=parse_ev(ev), reference=parse_reference(reference), prefer=prefer, max_pixels=max_pixels)
        bracket = load_bracket(inputs, config)
    print_notes(bracket.warnings)
    if as_json:
        typer.echo(json.dumps(_spelled_json(bracket)))
        return
    out = console(stderr=False)
    out.print(frames_table(bracket.to_json(), camera_name(bracket.frames[bracket.reference].camera)))
    out.print("★ reference frame (the output keeps its geometry and metadata)")


@app.command()
def example(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the example brackets into.")] = Path("example"),
    width: Annotated[int, typer.Option("--width", min=32)] = 960,
    height: Annotated[int, typer.Option("--height", min=32)] = 640,
    shake: Annotated[float, typer.Option("--shake", min=0.0, help="Hand-held shake, in pixels.")] = 0.0,
    moving: Annotated[int, typer.Option("--moving", min=0, help="Number of objects moving between frames.")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    force: Annotated[bool, typer.Option("--force", "-f", help="Write into an existing, non-empty folder.")] = False,
    debug: DebugOption = False,
) -> None:
    """Write a procedural example bracket (JPEG, 16-bit TIFF and DNG) to fuse.

    Example: uhdfuse example example/ && uhdfuse merge example/jpeg -o fused.tif
    """
    from uhdfuse.errors import UsageError
    from uhdfuse.synthetic import write_example_bracket

    with reported(debug):
        if out_dir.exists() and any(out_dir.iterdir()) and not force:
            raise UsageError("folder is not empty; use --force to write into it", out_dir)
        written = write_example_bracket(
            out_dir, width=width, height=height, shake_px=shake, moving_objects=moving, seed=seed
        )
    for fmt, paths in written.items():
        err.print(f"[green]{fmt}[/]: {len(paths)} frames in {paths[0].parent}")


app.command()(batch)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `uhdfuse ... --json | head` closes stdout early
        sys.exit(0)
