"""The ``uhdfuse`` command: parses, reports, and leaves the work to the library.

What a command is asked for goes to stdout: the tables of ``info`` and ``batch
--dry-run``, or ``--json`` objects. Progress, warnings, errors and the human report of
``merge`` and ``batch`` go to stderr. Piped or redirected, tables keep their full
width and carry no colour. Exit codes: 0 success, 1 failure (bad input, failed
alignment, unwritable output, model), 2 usage error, 3 batch with some brackets
failed, 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM). Interrupted or
terminated, no partial output is left behind.

Modules: :mod:`.options` (every flag, defined once, and the parameter each sets),
:mod:`.report` (what is shown), :mod:`.app` (merge, info, example), :mod:`.batch`.
"""

from .app import app, main

__all__ = ["app", "main"]
