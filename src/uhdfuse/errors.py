"""The exceptions uhdfuse raises, and the messages that name settings.

Every error a user can cause is a :class:`UhdfuseError`; its message is one line
that names the file (when there is one) and the reason. The CLI prints that line
and exits with :attr:`UhdfuseError.exit_code`; anything else is a bug and gets a
traceback.

A message that tells the user which setting to change names it with :func:`param`.
The library spells it as the Python keyword (``force=True``); the CLI, which knows
its flags, spells the same message with :meth:`Message.spelled` (``--force``). So
the library never speaks in flags and the CLI never rewrites the library's prose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

# A parameter inside a message: ASCII record/unit separators around a JSON
# [name, value] pair. They cannot occur in a file name or in prose, so a message that
# quotes user text ("{date}_{n}") is never misread.
_START, _END = "\x1e", "\x1f"
_PARAM = re.compile(f"{_START}([^{_END}]*){_END}")
_NO_VALUE = None


def param(name: str, value: bool | int | float | str | None = _NO_VALUE) -> str:
    """A setting named inside a message; ``name`` is the parameter (``"cache_bits"``,
    ``"align.model"``), ``value`` what to set it to (None: the setting itself).

    >>> Message(f"use {param('force', True)} to overwrite")
    'use force=True to overwrite'
    >>> Message(f"use {param('force', True)} to overwrite").spelled({"force": "--force"})
    'use --force to overwrite'
    """
    return f"{_START}{json.dumps([name, value])}{_END}"


def _spell(template: str, flags: Mapping[str, str] | None) -> str:
    def one(match: re.Match) -> str:
        name, value = json.loads(match.group(1))
        if flags is None:
            if value is _NO_VALUE:
                return name
            return f"{name}={value!r}" if isinstance(value, str) else f"{name}={value}"
        whole = flags.get(f"{name}={value}")  # e.g. "recursive=False": "--no-recursive"
        if whole is not None:
            return whole
        flag = flags.get(name, name)
        if value is _NO_VALUE or value is True:
            return flag
        return f"{flag} {value}"

    return _PARAM.sub(one, template)


class Message(str):
    """A message as Python users read it (parameters as keywords), which remembers how
    to name its parameters otherwise (:meth:`spelled`). Plain strings pass through."""

    template: str

    def __new__(cls, text: str) -> Message:
        template = getattr(text, "template", str(text))
        self = super().__new__(cls, _spell(template, None))
        self.template = template
        return self

    def __reduce__(self):  # noqa: ANN204 - pickled across batch worker processes
        return (_message_from_template, (self.template,))

    def spelled(self, flags: Mapping[str, str]) -> str:
        """The message with each parameter spelled by ``flags``: name -> flag, or
        "name=value" -> the flag that sets that value (``"recursive=False": "--no-recursive"``)."""
        return _spell(self.template, flags)


def _message_from_template(template: str) -> Message:
    return Message(template)


def joined(parts: Iterable[str], separator: str = "; ") -> Message:
    """Messages joined into one that still names its parameters (``+`` would not)."""
    return Message(separator.join(getattr(p, "template", str(p)) for p in parts))


def spelled(text: str, flags: Mapping[str, str]) -> str:
    """``text`` with its parameters spelled by ``flags`` (a plain string as it is)."""
    return text.spelled(flags) if isinstance(text, Message) else str(text)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type's name.

    Third-party errors (libraw, exiv2, safetensors) can run to many lines or be a
    tuple; a one-line report keeps only what names the cause.
    """
    text, args = str(exc), getattr(exc, "args", ())
    if len(args) > 1 and text == str(args):  # exiv2 raises with (code, message) tuples
        text = next((a for a in reversed(args) if isinstance(a, str) and a.strip()), text)
    lines = text.strip().splitlines()
    if lines:
        return lines[0].strip()
    return type(exc).__name__


class UhdfuseError(Exception):
    """Base of every error caused by input, settings or the environment."""

    exit_code = 1

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.reason = Message(reason)
        self.path = Path(path) if path is not None else None
        super().__init__(str(self.message))

    @property
    def message(self) -> Message:
        """The one-line message (the path, then the reason), parameters kept."""
        reason = self.reason.template
        return Message(f"{self.path}: {reason}" if self.path is not None else reason)

    def spelled(self, flags: Mapping[str, str]) -> str:
        """The one-line message with its parameters spelled by ``flags`` (the CLI's)."""
        return self.message.spelled(flags)

    def __reduce__(self):  # noqa: ANN204 - keeps path and reason across processes
        return (_rebuild_error, (type(self), self.reason.template, self.path))


def _rebuild_error(cls: type[UhdfuseError], template: str, path: Path | None) -> UhdfuseError:
    return cls(template, path)


class UnsupportedInput(UhdfuseError):
    """A file that is not an image uhdfuse can read (unknown format, corrupt, empty)."""


class InconsistentBracket(UhdfuseError):
    """Frames that cannot be fused together (sizes differ, one frame only, ...)."""


class AlignmentFailed(UhdfuseError):
    """A frame could not be registered to the reference."""


class OutputError(UhdfuseError):
    """The output cannot be written (it exists and overwriting was not asked for, the
    folder is not writable, the disk is full)."""


class ModelError(UhdfuseError):
    """Model weights missing, corrupt, or incompatible with the code."""


class UsageError(UhdfuseError):
    """Contradictory or invalid settings; the CLI exits with 2."""

    exit_code = 2
