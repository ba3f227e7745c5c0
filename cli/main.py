"""``main``: parse, run the command, and end it with one true line and its exit code.

Every ending is handled here once: an error is one ``error:`` line worded for the command line;
Ctrl-C / SIGTERM print what was left running and the command that picks it up, then leave at
once; a closed output pipe (``| head``) ends quietly, as other Unix tools do.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable

from ..api import errors
from ..journal import durability
from .context import Context
from .exit_codes import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE, exit_code
from .logs import CliLogHandler, cli_logging
from .parser import parse
from .stop import Interrupted, hard_exit
from .tasks_run import error_line, interrupt_lines

_PROBLEM_WORDS = {
    durability.FULL: ("is on a full disk", "Free some space there, or point --home elsewhere."),
    durability.NEWER_JOURNAL: (
        "was written by a newer version of this pack",
        "Update the pack, or point --home elsewhere.",
    ),
    durability.UNREADABLE: ("cannot be opened", "Fix its permissions, or point --home elsewhere."),
    durability.NOT_A_FOLDER: ("cannot be made", "Remove what is in the way, or use --home."),
}
_CANNOT_WRITE = ("cannot be written", "Fix it, or point --home at another folder.")
_FILE_PROBLEMS = (durability.NEWER_JOURNAL, durability.UNREADABLE)
"""Problems whose ``folder`` is the journal file itself."""


def main(argv: list[str] | None = None, *, run: Callable[..., int] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ctx = Context(parse(argv), argv)
    logs = CliLogHandler()
    try:
        code = _dispatch(ctx, run, logs)
        _warn_storage(ctx, logs)
        sys.stdout.flush()  # here, so a closed pipe is caught below and not at exit
        return code
    except errors.GrokError as exc:
        if isinstance(exc, errors.CancelledError) and ctx.stop.is_set():
            for line in interrupt_lines(ctx):
                ctx.progress.say(line)
            return EXIT_INTERRUPTED
        if not isinstance(exc, durability.StorageUnavailableError):
            _warn_storage(ctx, logs)
        return _fail(f"error: {error_line(exc, ctx)}", exit_code(exc))
    except KeyboardInterrupt:
        return _fail("interrupted: nothing more was done.", EXIT_INTERRUPTED)
    except EOFError:
        return _fail("error: standard input ended before anything was read.", EXIT_USAGE)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other tools do; nothing more is
        # written to the closed pipe, not even at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE
    except Exception as exc:
        return _fail(f"error: {error_line(exc, ctx)}", EXIT_INTERNAL)
    finally:
        ctx.close_journals()


def _dispatch(ctx: Context, run: Callable[..., int] | None, logs: CliLogHandler) -> int:
    args = ctx.args
    if run is not None:
        return run(args)
    if args.command == "sandbox":
        return int(args.func(ctx))  # its own log lines: the ledger, as the server writes them
    with cli_logging(logs):
        if not ctx.repeatable:
            return int(args.func(ctx))
        with ctx.stop.installed():
            try:
                return int(args.func(ctx))
            except Interrupted:
                for line in interrupt_lines(ctx):
                    ctx.progress.say(line)
                ctx.close_journals(wait_s=0.2)
                hard_exit(EXIT_INTERRUPTED)


def _warn_storage(ctx: Context, logs: CliLogHandler) -> None:
    """The journal could not be kept on disk but the run did not need it: one warning line,
    saying what it means for the next run."""
    for refusal in logs.storage_refusals[:1]:
        what, fix = _PROBLEM_WORDS.get(refusal.problem, _CANNOT_WRITE)
        noun = "" if refusal.problem in _FILE_PROBLEMS else " folder"
        ctx.progress.say(
            f"warning: the {refusal.role}{noun} {refusal.folder} {what}: kept images still come "
            "back free, but a run that needs a new task is refused (nothing sent) until it can "
            f"be written. {fix}"
        )


def _fail(line: str, code: int) -> int:
    with contextlib.suppress(Exception):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return code
