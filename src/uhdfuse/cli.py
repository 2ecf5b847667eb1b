"""The ``uhdfuse`` command: parses, reports, and leaves the work to the library.

What a command is asked for goes to stdout: the tables of ``info`` and ``batch
--dry-run``, or ``--json`` objects. Progress, warnings, errors and the human report of
``merge`` and ``batch`` go to stderr. Piped or redirected, tables keep their full
width and carry no colour. Exit codes: 0 success, 1 failure (bad input, failed alignment, unwritable
output, model), 2 usage error, 3 batch with some brackets failed, 130 interrupted
(SIGINT, Ctrl-C), 143 terminated (SIGTERM). Interrupted or terminated, no partial
output is left behind.
"""

from __future__ import annotations

import json
import signal
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import ALIGN_MODELS, ENGINES, PREFERENCES, RESPONSES, AlignConfig, MergeConfig
from .errors import UhdfuseError, UsageError
from .io.read import DEFAULT_MAX_PIXELS

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Fuse exposure brackets (RAW or JPEG) into one 16-bit image that keeps the camera's metadata.",
)
# Rich cuts tables to 80 columns when it cannot ask a terminal: give a pipe the whole width.
_PIPE_WIDTH = 10_000


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else _PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


err = _console(stderr=True)


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (temporary files removed)."""

    exit_code = 143  # 128 + SIGTERM, as a shell reports a process killed by it


@contextmanager
def _sigterm_interrupts():
    """Turn the first SIGTERM into :class:`Terminated` in the main thread.

    Later ones are ignored, so that clean-up is not itself interrupted (SIGKILL still works).
    """

    def on_term(signum, frame):  # noqa: ANN001
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (uhdfuse embedded in another app): leave it be
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
    except KeyboardInterrupt as e:
        if debug:
            raise
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        err.print(f"[bold red]{what}[/]: no output was written")
        raise typer.Exit(getattr(e, "exit_code", 130)) from None


def _warn_to_stderr() -> None:
    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        err.print(f"[yellow]warning:[/] {message}", soft_wrap=True)

    warnings.showwarning = show


@app.command()
def merge(
    inputs: list[Path] = typer.Argument(..., help="A folder holding one bracket, or the bracket's files."),
    output: Path = typer.Option(..., "--output", "-o", help="Output file: .tif, .png (16-bit by default) or .jpg."),
    engine: str = typer.Option("ipl", "--engine", "-e", help=f"Fusion engine: {' | '.join(ENGINES)}."),
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
    bit_depth: Optional[int] = typer.Option(
        None, "--bit-depth", "-b", help="8 or 16 bits per channel. Default: 16 for TIFF/PNG, 8 for JPEG."
    ),
    quality: int = typer.Option(95, "--quality", "-q", min=1, max=100, help="JPEG quality (full-resolution chroma from 90)."),
    prefer: str = typer.Option("raw", "--prefer", help="Of RAW+JPEG pairs, fuse the raw (default) or the jpeg files."),
    device: str = typer.Option("auto", "--device", help="IPL engine device: auto | cpu | cuda | mps."),
    chunk: Optional[int] = typer.Option(None, "--chunk", min=1, help="IPL slice height in tokens."),
    cache_bits: int = typer.Option(8, "--cache-bits", help="IPL attention-cache precision: 16, 8 or 4."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output."),
    no_metadata: bool = typer.Option(False, "--no-metadata", help="Do not carry EXIF/XMP/ICC over."),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse inputs whose header claims more pixels (decompression bombs)."
    ),
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
    _choice(prefer, PREFERENCES, "--prefer")
    if cache_bits not in (16, 8, 4):
        raise typer.BadParameter(f"{cache_bits} is not 16, 8 or 4", param_hint="--cache-bits")
    if bit_depth is not None and bit_depth not in (8, 16, 32):
        raise typer.BadParameter(f"{bit_depth} is not 8, 16 or 32", param_hint="--bit-depth")
    config = MergeConfig(
        engine=engine,  # type: ignore[arg-type]
        hdr=hdr,
        bit_depth=bit_depth,
        quality=quality,
        prefer=prefer,  # type: ignore[arg-type]
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
    with _reported(debug), _sigterm_interrupts():
        with err.status("reading", spinner="dots") as status:
            result = run_merge(
                inputs, output, config, on_stage=lambda name: status.update(f"{name}…"), max_pixels=max_pixels
            )
    for note in result.warnings:
        err.print(f"[yellow]warning:[/] {note}", soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
    evs = ", ".join(f"{e:+.2f}" for e in result.ev)
    err.print(
        f"[green]wrote[/] {result.output} ({result.size[0]}x{result.size[1]}, {result.engine}, "
        f"EV {evs} from {result.ev_source}, reference {result.inputs[result.reference].name}, "
        f"align {result.align_model}) in {result.seconds:.1f} s: {result.timings_line()}",
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
    prefer: str = typer.Option("raw", "--prefer", help="Of RAW+JPEG pairs, use the raw (default) or the jpeg files."),
    max_pixels: int = typer.Option(
        DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse inputs whose header claims more pixels (decompression bombs)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Show what uhdfuse sees in a bracket: frames, camera, exposures, the chosen reference.

    Example: uhdfuse info ~/shoot/bracket_012/
    """
    from .pipeline import load_bracket

    _choice(prefer, PREFERENCES, "--prefer")
    _warn_to_stderr()
    with _reported(debug):
        config = MergeConfig(ev=_parse_ev(ev), reference=_parse_reference(reference), prefer=prefer)  # type: ignore[arg-type]
        bracket = load_bracket(inputs, config, max_pixels=max_pixels)
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
    from .bracket import camera_name

    table = Table(title=f"{len(frames)} frames · {camera_name(cam) or '?'} · EV from {bracket.ev_source}")
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
    out = _console(stderr=False)
    out.print(table)
    out.print("★ reference frame (the output keeps its geometry and metadata)")


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


# --------------------------------------------------------------------------- batch


def _batch_inputs(inputs: list[Path]) -> list[Path]:
    """The given paths, with "-" replaced by the paths read from stdin (one a line)."""
    paths: list[Path] = []
    for p in inputs:
        if str(p) == "-":
            paths.extend(Path(line.strip()) for line in sys.stdin if line.strip())
        else:
            paths.append(p)
    return list(dict.fromkeys(paths))


def _groups_table(groups, names: dict[int, str]) -> Table:  # noqa: ANN001 - bracket.Group
    table = Table(title=f"{sum(g.kind == 'bracket' for g in groups)} brackets, {len(groups)} groups")
    for col in ("#", "kind", "files", "n", "output", "why"):
        table.add_column(col, overflow="fold")
    for i, g in enumerate(groups):
        files = g.paths[0].name if len(g.paths) == 1 else f"{g.paths[0].name} … {g.paths[-1].name}"
        table.add_row(str(i + 1), g.kind, files, str(len(g.paths)), names.get(i, ""), g.reason)
    return table


@app.command()
def batch(
    inputs: list[Path] = typer.Argument(..., help="Folders or files of a shoot; '-' reads paths from stdin."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for the fused images."),
    gap: float = typer.Option(3.0, "--gap", min=0.0, help="Most seconds between two frames of one bracket."),
    frames: Optional[int] = typer.Option(None, "--frames", min=2, help="Sets of exactly N frames."),
    folders: bool = typer.Option(False, "--folders", help="Each folder (or subfolder) is one bracket."),
    name: str = typer.Option(
        "{date}_{first}_{n}", "--name", help="Output name: {date} {time} {first} {last} {n} {index} {camera}."
    ),
    fmt: str = typer.Option("tif", "--format", help="Output format: tif | png | jpg."),
    quality: int = typer.Option(95, "--quality", "-q", min=1, max=100, help="JPEG quality (full-resolution chroma from 90)."),
    recursive: bool = typer.Option(True, "--recursive/--no-recursive", help="Look into subfolders (a card's DCIM/100CANON, ...)."),
    prefer: str = typer.Option("raw", "--prefer", help="Of RAW+JPEG pairs, fuse the raw (default) or the jpeg files."),
    engine: str = typer.Option("ipl", "--engine", "-e", help=f"Fusion engine: {' | '.join(ENGINES)}."),
    align: str = typer.Option("auto", "--align", help=f"Motion model: {' | '.join(ALIGN_MODELS)}."),
    hdr: bool = typer.Option(False, "--hdr", help="Write linear radiance maps (32-bit float TIFF)."),
    bit_depth: Optional[int] = typer.Option(
        None, "--bit-depth", "-b", help="8 or 16 bits per channel. Default: 16 for TIFF/PNG, 8 for JPEG."
    ),
    device: str = typer.Option("auto", "--device", help="IPL engine device: auto | cpu | cuda | mps."),
    consistent: bool = typer.Option(False, "--consistent", help="One exposure normalisation for the whole shoot."),
    workers: int = typer.Option(1, "--workers", "-j", min=1, help="Brackets fused at once (processes)."),
    executor: str = typer.Option("local", "--executor", help="local | ray."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (e.g. auto)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Skip brackets already fused with these settings."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite outputs this batch did not write."),
    report: Optional[Path] = typer.Option(None, "--report", help="Report file (default OUTPUT/uhdfuse-report.json)."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Show the groups and why; fuse nothing."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per bracket on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Find the brackets of a whole shoot and fuse each; singles are reported, not fused.

    Exit code 0 when every bracket succeeded, 3 when some failed, 1 when none did,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM); rerun to resume.

    Example: uhdfuse batch ~/shoots/2026-11-20/ -o ~/fused/2026-11-20/
    """
    from .batch import BatchOptions, output_names, plan, run_batch
    from .bracket import find_groups
    from .pipeline import output_bit_depth

    _choice(fmt, ("tif", "tiff", "png", "jpg", "jpeg"), "--format")
    _choice(prefer, PREFERENCES, "--prefer")
    _choice(engine, ENGINES, "--engine")
    _choice(align, ALIGN_MODELS, "--align")
    _choice(executor, ("local", "ray"), "--executor")
    _choice(device, ("auto", "cpu", "cuda", "mps"), "--device")
    _warn_to_stderr()
    with _reported(debug), _sigterm_interrupts():
        if frames is not None and folders:
            raise UsageError("--frames and --folders are two ways to group; choose one")
        if output is None and not dry_run:
            raise UsageError("give an output folder with -o (or --dry-run to only show the groups)")
        mode = "folders" if folders else "frames" if frames is not None else "auto"
        shoot = find_groups(
            _batch_inputs(inputs), mode=mode, gap=gap, frames=frames,  # type: ignore[arg-type]
            recursive=recursive, prefer=prefer,  # type: ignore[arg-type]
            exclude=[output] if output is not None else [],
        )  # fmt: skip
        for note in shoot.notes:
            err.print(f"[yellow]note:[/] {note}", soft_wrap=True)
        groups = shoot.groups
        config = MergeConfig(
            engine=engine,  # type: ignore[arg-type]
            hdr=hdr,
            bit_depth=bit_depth,
            quality=quality,
            prefer=prefer,  # type: ignore[arg-type]
            align=AlignConfig(model=align),  # type: ignore[arg-type]
            device=device,  # type: ignore[arg-type]
            force=force,
        )
        output_bit_depth("." + fmt, config)  # the format and depth, checked once for all brackets
        options = BatchOptions(
            output_dir=output or Path("."), config=config, template=name, suffix="." + fmt,
            workers=workers, executor=executor, address=address,  # type: ignore[arg-type]
            resume=resume, consistent=consistent, report=report,
        )  # fmt: skip
        if dry_run:
            brackets = [i for i, g in enumerate(groups) if g.kind == "bracket"]
            names = dict(zip(brackets, output_names([groups[i] for i in brackets], name, "." + fmt)))
            todo = {j.name for j in plan(groups, options).jobs} if output is not None else set(names.values())
            if as_json:
                for i, g in enumerate(groups):
                    line = g.to_json() | {"output": names.get(i), "up_to_date": i in names and names[i] not in todo}
                    typer.echo(json.dumps(line))
            else:
                _console(stderr=False).print(_groups_table(groups, names))
            return
        summary = _run_batch_with_progress(groups, options, as_json, run_batch)
    for o in summary.outcomes:
        if o.status == "failed":
            err.print(f"[bold red]failed[/] {o.name}: {o.error}", soft_wrap=True)
    err.print(_summary_table(summary))
    if summary.report is not None:
        err.print(f"report: {summary.report}")
    if summary.interrupted:
        err.print("[bold red]interrupted[/]: finished brackets are kept; rerun the same command to resume")
    raise typer.Exit(summary.exit_code)


def _run_batch_with_progress(groups, options, as_json: bool, run_batch):  # noqa: ANN001, ANN202
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
    ) as progress:
        task = progress.add_task("brackets", total=None)

        def on_outcome(o, done: int, total: int) -> None:  # noqa: ANN001 - batch.Outcome
            progress.update(task, completed=done, total=total, description=f"{o.status} {o.name}")
            if as_json:
                typer.echo(json.dumps(o.to_json()))

        return run_batch(groups, options, on_outcome=on_outcome)


def _summary_table(summary) -> Table:  # noqa: ANN001 - batch.BatchSummary
    table = Table(title=f"batch: {len(summary.outcomes)} brackets in {summary.seconds:.1f} s")
    for col in ("fused", "up to date", "failed", "interrupted", "not fused (singles, leftovers, unreadable)"):
        table.add_column(col, justify="right")
    counts = [str(summary.count(s)) for s in ("ok", "skipped", "failed", "interrupted")]
    table.add_row(*counts, str(len(summary.not_fused)))
    return table


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:  # `uhdfuse ... --json | head` closes stdout early
        sys.exit(0)


if __name__ == "__main__":
    main()
