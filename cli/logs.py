"""The pack's log warnings as the command line shows them: one line each, worded for the CLI.

Without this, Python prints a library's warnings bare, with tracebacks, and an error object in a
record in its ComfyUI words. Here a warning is one ``warning: ...`` line; an error object in a
record is worded with ``Surface.CLI``; a traceback becomes its last line; a warning logged for a
run event the progress display shows anyway (``events.LOGGED_EVENT``) is not said twice. The
journal's refusal to keep paid work on this disk (logged once when it opens) is not printed but
kept: the command reports it itself, as an error if it stops the run, else as one warning at the
end.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..api import errors
from ..journal import events
from ..journal.durability import StorageUnavailableError


class CliLogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.storage_refusals: list[StorageUnavailableError] = []

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, events.LOGGED_EVENT, None) is not None:
            return  # the progress display says the event itself
        args = record.args if isinstance(record.args, tuple) else ()
        refusals = [a for a in args if isinstance(a, StorageUnavailableError)]
        if refusals:
            self.storage_refusals.extend(refusals)
            return
        text = _message(record, args)
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {errors.exception_line(record.exc_info[1], errors.Surface.CLI)}"
        try:
            sys.stderr.write(f"{record.levelname.lower()}: {errors.redact(text)}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # stderr is gone: nothing more can be said


def _message(record: logging.LogRecord, args: tuple[object, ...]) -> str:
    """The record's text, an error object in it worded for the command line."""
    shown = tuple(
        a.line(errors.Surface.CLI) if isinstance(a, errors.GrokError) else a for a in args
    )
    try:
        return str(record.msg) % shown if shown else record.getMessage()
    except (TypeError, ValueError):
        return " ".join(str(part) for part in (record.msg, *shown))


@contextmanager
def cli_logging(handler: CliLogHandler) -> Iterator[CliLogHandler]:
    """``handler`` on the root logger for one command (tests run several in one process)."""
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
