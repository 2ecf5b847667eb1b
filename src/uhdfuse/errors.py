"""The exceptions uhdfuse raises.

Every error a user can cause is a :class:`UhdfuseError`; its message is one line
that names the file (when there is one) and the reason. The CLI prints that line
and exits with :attr:`UhdfuseError.exit_code`; anything else is a bug and gets a
traceback.
"""

from __future__ import annotations

from pathlib import Path


class UhdfuseError(Exception):
    """Base of every error caused by input, settings or the environment."""

    exit_code = 1

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


class UnsupportedInput(UhdfuseError):
    """A file that is not an image uhdfuse can read (unknown format, corrupt, empty)."""


class InconsistentBracket(UhdfuseError):
    """Frames that cannot be fused together (sizes differ, one frame only, ...)."""


class AlignmentFailed(UhdfuseError):
    """A frame could not be registered to the reference."""


class OutputError(UhdfuseError):
    """The output cannot be written (exists without --force, folder not writable, disk full)."""


class ModelError(UhdfuseError):
    """Model weights missing, corrupt, or incompatible with the code."""


class UsageError(UhdfuseError):
    """Contradictory or invalid settings; the CLI exits with 2."""

    exit_code = 2
