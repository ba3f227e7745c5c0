"""The runner's typed events, task states and outcomes as phrases for the node's status.

The same facts ``journal.events.describe`` words for the CLI, as message keys (``status.*``) the
frontend translates; ``tests/test_status_phrases.py`` checks that the English messages say what
``describe`` says. An event this table does not know yet is shown with ``describe``'s English.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..api.task import TaskState
from ..journal import events
from .error_phrases import error_phrase, error_what
from .phrases import Part, Phrase, phrase

if TYPE_CHECKING:
    from ..journal import TaskResult

_STATES = {
    TaskState.QUEUED: "queued",
    TaskState.RUNNING: "running",
    TaskState.SUCCEEDED: "downloading",
    TaskState.FAILED: "failed",
    TaskState.UNKNOWN: "waiting",
}
"""A task's state as a ``status.state.*`` key (``events.state_word`` is its English)."""


def state(name: str, **params: Any) -> Phrase:
    """``status.state.<name>``: starting, queued, running, downloading, failed, waiting, notSent,
    done (with ``count``)."""
    return phrase(f"status.state.{name}", **params)


def task_state(value: TaskState) -> Phrase:
    return state(_STATES[value])


def _waiting_for_process(event: events.WaitingForProcess) -> Phrase:
    if event.pid is None:
        return phrase("status.note.waitingForAnotherProcess")
    return phrase("status.note.waitingForProcess", pid=event.pid)


def _files_lost(event: events.FilesLost) -> Phrase:
    return phrase(
        "status.note.filesLost",
        taskId=event.task_id,
        lost=event.lost,
        total=event.total,
        error=error_what(event.error),
        left=event.total - event.lost,
    )


def _files_not_kept(event: events.FilesNotKept) -> Phrase:
    return phrase(
        "status.note.filesNotKept",
        taskId=event.task_id,
        count=event.count,
        total=event.total,
        folder=str(event.folder),
        error=error_phrase(event.error),
    )


_NOTES: dict[type, Callable[[Any], Phrase]] = {
    events.RefetchingKeptFiles: lambda e: phrase("status.note.refetching", taskId=e.task_id),
    events.WaitingForThread: lambda e: phrase("status.note.waitingForThread"),
    events.WaitingForProcess: _waiting_for_process,
    events.WaitingForTurn: lambda e: phrase(
        "status.note.waitingForTurn", seconds=f"{e.wait_s:.1f}"
    ),
    events.WaitingOutRateLimit: lambda e: phrase(
        "status.note.waitingOutRateLimit", seconds=f"{e.wait_s:.1f}"
    ),
    events.WaitingForTask: lambda e: phrase(
        "status.note.waitingForTask", taskId=e.task_id, state=task_state(e.state)
    ),
    events.FilesLost: _files_lost,
    events.FilesNotKept: _files_not_kept,
}
"""The events a task's line shows as its note, by type."""


def note(event: events.RunEvent) -> Part:
    """The event as the note on its task's line (``describe``'s English for one not known)."""
    make = _NOTES.get(type(event))
    return make(event) if make is not None else events.describe(event)


def joined(first: Part, second: Part) -> Phrase:
    """Two notes that both stay on a line (``first; second``)."""
    return phrase("status.note.joined", first=first, second=second)


def created_cost(credits: int) -> Phrase:
    return phrase("status.cost.credits", credits=credits) if credits else phrase("status.cost.free")


PAID_EARLIER = phrase("status.cost.paidEarlier")
NO_CHARGE = phrase("status.cost.noCharge")

_OUTCOMES = {
    "new": "new",
    "resumed": "resumed",
    "reused": "reused",
    "fetched again": "fetchedAgain",
}
"""``events.outcome_kind`` -> the ``status.outcome.*`` key (``outcome_word`` is the English)."""


def outcome(result: TaskResult) -> Phrase:
    """How a finished task was had, and what it charged."""
    key = _OUTCOMES[events.outcome_kind(result)]
    return phrase(f"status.outcome.{key}", credits=result.credits)


def left_out(exc: BaseException) -> Phrase:
    """An image left out of the node's output, and why."""
    return phrase("status.leftOut", error=error_phrase(exc))
