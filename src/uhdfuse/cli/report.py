"""What the CLI shows: consoles, the one-line error report, tables, signals."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from uhdfuse.batch.jobs import STATUSES
from uhdfuse.batch.run import EXIT_INTERRUPTED
from uhdfuse.errors import UhdfuseError, spelled

from .options import FLAGS

# Rich cuts tables to 80 columns when it cannot ask a terminal: give a pipe the whole width.
PIPE_WIDTH = 10_000
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process killed by it


def console(stderr: bool) -> Console:
    """A console on stderr (progress, warnings, errors) or stdout (tables asked for)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


err = console(stderr=True)


def say(text: str) -> str:
    """A library message with its parameters spelled as this CLI's flags."""
    return spelled(text, FLAGS)


def print_notes(notes: Iterable[str], label: str = "warning") -> None:
    for note in notes:
        err.print(f"[yellow]{label}:[/] {escape(say(note))}", soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up runs (temporary files removed)."""

    exit_code = EXIT_TERMINATED


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
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
def reported(debug: bool) -> Iterator[None]:
    """Turn library errors into one line on stderr and the right exit code."""
    try:
        yield
    except UhdfuseError as e:
        if debug:
            raise
        err.print(f"[bold red]error:[/] {escape(e.spelled(FLAGS))}", soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt as e:
        if debug:
            raise
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        err.print(f"[bold red]{what}[/]: no output was written")
        raise typer.Exit(getattr(e, "exit_code", EXIT_INTERRUPTED)) from None


def _fmt(value: float | None, pattern: str) -> str:
    if value is None:
        return "–"
    if pattern == "time":
        return f"1/{round(1 / value)}" if 0 < value < 0.5 else f"{value:g}s"
    return format(value, pattern)


def frames_table(info: dict, camera: str) -> Table:
    """The ``info`` table, from :meth:`uhdfuse.types.Bracket.to_json`."""
    frames = info["frames"]
    table = Table(title=f"{len(frames)} frames · {camera or '?'} · EV from {info['ev_source']}")
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
    return table


def groups_table(groups: Sequence, names: dict[int, str]) -> Table:  # groups: uhdfuse.shoot.Group
    """The ``batch --dry-run`` table: each group, its output name and why it was grouped so."""
    table = Table(title=f"{sum(g.kind == 'bracket' for g in groups)} brackets, {len(groups)} groups")
    for col in ("#", "kind", "files", "n", "output", "why"):
        table.add_column(col, overflow="fold")
    for i, g in enumerate(groups):
        files = g.paths[0].name if len(g.paths) == 1 else f"{g.paths[0].name} … {g.paths[-1].name}"
        table.add_row(str(i + 1), g.kind, files, str(len(g.paths)), names.get(i, ""), say(g.reason))
    return table


def summary_table(summary) -> Table:  # noqa: ANN001 - uhdfuse.batch.BatchSummary
    """What a batch did, counted."""
    table = Table(title=f"batch: {len(summary.outcomes)} brackets in {summary.seconds:.1f} s")
    for col in ("fused", "up to date", "failed", "interrupted", "not fused (singles, leftovers, unreadable)"):
        table.add_column(col, justify="right")
    counts = [str(summary.count(s)) for s in STATUSES]
    table.add_row(*counts, str(len(summary.not_fused)))
    return table
