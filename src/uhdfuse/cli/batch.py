"""``uhdfuse batch``: a whole shoot or memory card, unattended."""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from uhdfuse.batch import BatchOptions, fuses, output_names, plan, run_batch
from uhdfuse.config import Executor, Grouping, Singles
from uhdfuse.errors import UsageError, param
from uhdfuse.shoot import find_groups

from .options import FLAGS, DebugOption, FormatOption, JsonOption, fusion_options, merge_config
from .report import console, err, groups_table, print_notes, reported, say, sigterm_interrupts, summary_table

_BATCH = BatchOptions(output_dir=Path("."))  # the defaults of a batch's own settings
_FIND = inspect.signature(find_groups).parameters  # and of how it finds the brackets


def _batch_inputs(inputs: list[Path]) -> list[Path]:
    """The given paths, with "-" replaced by the paths read from stdin (one a line)."""
    paths: list[Path] = []
    for p in inputs:
        if str(p) == "-":
            paths.extend(Path(line.strip()) for line in sys.stdin if line.strip())
        else:
            paths.append(p)
    return list(dict.fromkeys(paths))


@fusion_options
def batch(
    inputs: Annotated[list[Path], typer.Argument(help="Folders or files of a shoot; '-' reads paths from stdin.")],
    output: Annotated[Optional[Path], typer.Option(FLAGS["output_dir"], "-o", help="Folder for the fused images.")] = None,
    gap: Annotated[float, typer.Option(FLAGS["gap"], min=0.0, help="Most seconds between two frames of one bracket.")] = _FIND["gap"].default,
    frames: Annotated[Optional[int], typer.Option(FLAGS["frames"], min=2, help="Sets of exactly N frames.")] = None,
    folders: Annotated[bool, typer.Option(FLAGS["folders"], help="Each folder (or subfolder) is one bracket.")] = False,
    name: Annotated[
        str, typer.Option(FLAGS["template"], help="Output name: {date} {time} {first} {last} {n} {index} {camera}.")
    ] = _BATCH.template,
    fmt: FormatOption = _BATCH.format,
    recursive: Annotated[
        bool,
        typer.Option(f"{FLAGS['recursive']}/{FLAGS['recursive=False']}", help="Look into subfolders (a card's DCIM/100CANON, ...)."),
    ] = _FIND["recursive"].default,
    workers: Annotated[int, typer.Option(FLAGS["workers"], "-j", min=1, help="Brackets fused at once (processes).")] = _BATCH.workers,
    executor: Annotated[Executor, typer.Option(FLAGS["executor"], help="Where the brackets run.")] = _BATCH.executor,
    address: Annotated[Optional[str], typer.Option(FLAGS["address"], help="Ray cluster address (e.g. auto).")] = _BATCH.address,
    resume: Annotated[
        bool, typer.Option(f"{FLAGS['resume']}/{FLAGS['resume=False']}", help="Skip brackets already fused with these settings.")
    ] = _BATCH.resume,
    consistent: Annotated[bool, typer.Option(FLAGS["consistent"], help="One exposure normalisation for the whole shoot.")] = _BATCH.consistent,
    singles: Annotated[
        Singles, typer.Option(FLAGS["singles"], help="Frames of no bracket: skip them, or fuse a RAW one as a virtual bracket.")
    ] = _BATCH.singles,
    report: Annotated[Optional[Path], typer.Option(FLAGS["report"], help="Report file (default OUTPUT/uhdfuse-report.json).")] = _BATCH.report,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Show the groups and why; fuse nothing.")] = False,
    as_json: JsonOption = False,
    debug: DebugOption = False,
    *,
    fusion: dict[str, Any],
) -> None:
    """Find the brackets of a whole shoot and fuse each; singles are reported, or fused as virtual brackets.

    Exit code 0 when every bracket succeeded, 3 when some failed, 1 when none did,
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM); rerun to resume.

    Example: uhdfuse batch ~/shoots/2026-11-20/ -o ~/fused/2026-11-20/
    """
    with reported(debug), sigterm_interrupts():
        if frames is not None and folders:
            raise UsageError(f"{param('frames')} and {param('folders', True)} are two ways to group; choose one")
        if output is None and not dry_run:
            raise UsageError(f"give an output folder with {param('output_dir')} (or --dry-run to only show the groups)")
        grouping = Grouping.FOLDERS if folders else Grouping.FRAMES if frames is not None else Grouping.AUTO
        shoot = find_groups(
            _batch_inputs(inputs), mode=grouping, gap=gap, frames=frames, recursive=recursive,
            prefer=fusion["prefer"], exclude=[output] if output is not None else [],
        )  # fmt: skip
        print_notes(shoot.notes, "note")
        options = BatchOptions(
            output_dir=output or Path("."), config=merge_config(fusion), template=name, format=fmt,
            workers=workers, executor=executor, address=address, resume=resume, consistent=consistent, report=report,
            singles=singles,
        )  # fmt: skip
        if dry_run:
            _show_plan(shoot.groups, options, planned=output is not None, as_json=as_json)
            return
        summary = _run_with_progress(shoot.groups, options, as_json)
    for o in summary.outcomes:
        if o.status == "failed":
            err.print(f"[bold red]failed[/] {escape(o.name)}: {escape(say(o.error))}", soft_wrap=True)
    err.print(summary_table(summary))
    if summary.report is not None:
        err.print(f"report: {summary.report}")
    if summary.interrupted:
        err.print("[bold red]interrupted[/]: finished brackets are kept; rerun the same command to resume")
    raise typer.Exit(summary.exit_code)


def _show_plan(groups: list, options: BatchOptions, *, planned: bool, as_json: bool) -> None:
    """The groups, the output each bracket would get, and whether it is already up to date."""
    brackets = [i for i, g in enumerate(groups) if fuses(g, options.singles)]
    names = dict(zip(brackets, output_names([groups[i] for i in brackets], options.template, options.format)))
    todo = {j.name for j in plan(groups, options).jobs} if planned else set(names.values())
    if not as_json:
        console(stderr=False).print(groups_table(groups, names))
        return
    for i, g in enumerate(groups):
        line = g.to_json(say) | {"output": names.get(i), "up_to_date": i in names and names[i] not in todo}
        typer.echo(json.dumps(line))


def _run_with_progress(groups: list, options: BatchOptions, as_json: bool):  # noqa: ANN202 - BatchSummary
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
    ) as progress:
        task = progress.add_task("brackets", total=None)

        def on_outcome(o, done: int, total: int) -> None:  # noqa: ANN001 - batch.Outcome
            progress.update(task, completed=done, total=total, description=f"{o.status} {o.name}")
            if as_json:
                typer.echo(json.dumps(o.to_json(say)))

        return run_batch(groups, options, on_outcome=on_outcome, spell=say)
