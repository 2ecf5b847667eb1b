"""How to run a batch: :class:`BatchOptions`, checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from uhdfuse.batch.naming import DEFAULT_TEMPLATE, check_template
from uhdfuse.config import Executor, MergeConfig, OutputFormat, Singles, choice
from uhdfuse.errors import UsageError, param


@dataclass(frozen=True)
class BatchOptions:
    """How to run a batch (the merge settings are in ``config``).

    Strings are accepted for the enum fields (``format="png"``, ``executor="ray"``).
    Raises :class:`~uhdfuse.errors.UsageError` for settings no batch could honour:
    fewer than one worker, a name template with an unknown field, a ``config``
    whose bit depth ``format`` cannot hold, or an exposure anchor given besides
    ``consistent`` (which computes one).
    """

    output_dir: Path
    config: MergeConfig = MergeConfig()
    template: str = DEFAULT_TEMPLATE  # output names: see uhdfuse.batch.output_names
    format: OutputFormat = OutputFormat.TIFF
    workers: int = 1  # brackets fused at once (local processes)
    executor: Executor = Executor.LOCAL
    address: str | None = None  # Ray cluster address ("auto", "ray://host:10001"); None = start a local one
    resume: bool = True  # skip brackets the manifest shows up to date
    consistent: bool = False  # one exposure normalisation for every bracket (see exposure_anchor)
    singles: Singles = Singles.SKIP  # what becomes of a frame that belongs to no bracket
    report: Path | None = None  # default: <output_dir>/uhdfuse-report.json

    def __post_init__(self) -> None:
        object.__setattr__(self, "output_dir", Path(self.output_dir))
        object.__setattr__(self, "format", choice(OutputFormat, self.format, "format"))
        object.__setattr__(self, "executor", choice(Executor, self.executor, "executor"))
        object.__setattr__(self, "singles", choice(Singles, self.singles, "singles"))
        if self.report is not None:
            object.__setattr__(self, "report", Path(self.report))
        if self.workers < 1:
            raise UsageError(f"{param('workers')} must be at least 1, got {self.workers}")
        if self.consistent and self.config.exposure_anchor is not None:
            raise UsageError(
                f"{param('consistent', True)} computes the shoot's exposure anchor; drop {param('exposure_anchor')}"
            )
        check_template(self.template)
        self.config.bit_depth_for(self.format)

    @property
    def suffix(self) -> str:
        """The outputs' file suffix (".tif", ".png", ".jpg")."""
        return self.format.suffixes[0]
