"""The command line's exit codes: one per kind of ending, a table read by ``--help`` and the
README, and the one mapping from what went wrong to its code."""

from __future__ import annotations

from ..api import errors
from ..journal.durability import StorageUnavailableError
from ..journal.open import JournalUrlError
from ..journal.spend_limit import SpendLimitConfigError, SpendLimitError
from ..journal.store import JournalUnavailableError

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_API = 3
EXIT_TIMEOUT = 4
EXIT_REFUSED = 5
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141
"""What a shell reports for a program ended by a closed pipe (128 + SIGPIPE), said quietly."""

EXIT_CODES = (
    (EXIT_OK, "done"),
    (EXIT_INTERNAL, "unexpected error (a bug: please report it)"),
    (EXIT_USAGE, "bad usage or input: nothing was sent"),
    (EXIT_API, "API, network or download error"),
    (EXIT_TIMEOUT, "timed out (the task keeps running; the same command resumes it)"),
    (
        EXIT_REFUSED,
        "refused here, nothing sent: the daily credit limit (or its setting), journal storage",
    ),
    (EXIT_INTERRUPTED, "interrupted by Ctrl-C or SIGTERM (the same command resumes)"),
    (EXIT_PIPE, "the output pipe was closed (e.g. `| head`); nothing is said"),
)

_BY_KIND: tuple[tuple[type[BaseException], int], ...] = (
    # First match wins: a subclass before its base.
    (errors.TaskTimeoutError, EXIT_TIMEOUT),
    (errors.CancelledError, EXIT_INTERRUPTED),
    (JournalUrlError, EXIT_USAGE),
    (SpendLimitError, EXIT_REFUSED),
    (SpendLimitConfigError, EXIT_REFUSED),
    (StorageUnavailableError, EXIT_REFUSED),
    (JournalUnavailableError, EXIT_REFUSED),
    (errors.MissingKeyError, EXIT_USAGE),
    (errors.GrokError, EXIT_API),
)


def exit_code(exc: BaseException) -> int:
    """The code a command ends with when ``exc`` ends it."""
    if isinstance(exc, errors.InvalidRequestError):
        return EXIT_API if exc.from_server else EXIT_USAGE
    for kind, code in _BY_KIND:
        if isinstance(exc, kind):
            return code
    return EXIT_INTERNAL
