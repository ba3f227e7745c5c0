"""What the runner did, as typed events: the one protocol between the runner and its callers.

The nodes' status board and the CLI's progress lines are both drawn from these; nothing reads
the runner's words back. ``describe()`` is the one place an event becomes human text, and
``state_word()`` the one vocabulary for a task's state, so the node and the CLI tell one story.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..api import errors
from ..api.task import Task, TaskState
from .result import TaskResult

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class TaskCreated:
    """A create was answered with a task id: this run pays ``credits``."""

    task_id: str
    credits: int


@dataclass(frozen=True)
class TaskResumed:
    """An earlier, unfinished task of the same request is polled again: nothing new to pay."""

    task_id: str
    age_s: float


@dataclass(frozen=True)
class ResultReused:
    """The request finished earlier and its kept files are on disk: no API call at all."""

    task_id: str


@dataclass(frozen=True)
class RefetchingKeptFiles:
    """The task finished earlier but its kept files are gone: downloading them again (free)."""

    task_id: str


@dataclass(frozen=True)
class WaitingForThread:
    """The same request is running in another thread of this process; this one waits for it."""


@dataclass(frozen=True)
class WaitingForProcess:
    """Another live process is sending this very create; this one waits for its task id."""

    pid: int | None


@dataclass(frozen=True)
class WaitingForTurn:
    """The journal paces the creates of everything using it (one machine, or a fleet): this
    one's turn comes in ``wait_s`` seconds (nothing is sent, and Cancel still works, while it
    waits). Said again when the turn moves earlier."""

    wait_s: float


@dataclass(frozen=True)
class WaitingOutRateLimit:
    """The API refused the create with HTTP 429 (nothing was created): it is sent again in
    ``wait_s`` seconds, within the task's timeout (Cancel still works while it waits)."""

    wait_s: float


@dataclass(frozen=True)
class WaitingForTask:
    """Grok Load Task: the task exists but is not finished yet."""

    task_id: str
    state: TaskState


@dataclass(frozen=True)
class TaskUpdated:
    """A status read changed something (state, progress); ``elapsed_s`` since the task began."""

    task: Task
    elapsed_s: float


@dataclass(frozen=True)
class Downloading:
    """The task is done; ``count`` of its ``total`` result files are being fetched."""

    task_id: str
    count: int
    total: int


@dataclass(frozen=True)
class FileKept:
    """Result file ``index`` of ``total`` has arrived and is checked.

    ``path`` is its kept copy; ``data`` its bytes when they are in memory (a fresh download);
    ``decoded`` its pixels when the runner has just decoded it to check it (``journal.verify``),
    so a listener that wants them need not decode the file again. ``decoded`` is valid only
    while the event is being delivered: the runner closes it right after.
    """

    task_id: str
    index: int
    total: int
    path: Path | None
    data: bytes | None = field(default=None, repr=False)
    decoded: Image.Image | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class FilesLost:
    """``lost`` of the task's ``total`` result files cannot be had; the others are returned."""

    task_id: str
    lost: int
    total: int
    error: BaseException


@dataclass(frozen=True)
class FilesNotKept:
    """``count`` of the task's ``total`` images arrived but could not be written to ``folder``
    (disk full, read-only): they are returned from memory, not kept; the next run fetches them
    again (free)."""

    task_id: str
    count: int
    total: int
    folder: Path
    error: BaseException


RunEvent = (
    TaskCreated
    | TaskResumed
    | ResultReused
    | RefetchingKeptFiles
    | WaitingForThread
    | WaitingForProcess
    | WaitingForTurn
    | WaitingOutRateLimit
    | WaitingForTask
    | TaskUpdated
    | Downloading
    | FileKept
    | FilesLost
    | FilesNotKept
)


LOGGED_EVENT = "grok_imagine_event"
"""The log record attribute (``extra``) that carries the event a warning was logged for: a caller
that shows the events itself (the CLI) leaves those records out instead of saying it twice."""


_STATE_WORDS = {
    TaskState.QUEUED: "queued",
    TaskState.RUNNING: "running",
    TaskState.SUCCEEDED: "downloading",
    TaskState.FAILED: "failed",
    TaskState.UNKNOWN: "waiting",
}


def state_word(state: TaskState) -> str:
    """The one word a task's state is shown as (never the provider's raw status)."""
    return _STATE_WORDS[state]


def describe(event: RunEvent) -> str:
    """The event as one line of text, for a log, the CLI or a node's status note."""
    words = _WORDS.get(type(event))
    if words is None:
        raise TypeError(f"not a run event: {event!r}")
    return words(event)


def _waiting_for_process(event: WaitingForProcess) -> str:
    who = f"process {event.pid}" if event.pid is not None else "another process"
    return f"{who} is creating this same request; waiting for it"


def _task_updated(event: TaskUpdated) -> str:
    task = event.task
    shown = task.progress is not None and not task.done  # a failed task's 0% is no news
    progress = f" {task.progress:.0%}" if shown else ""
    return f"task {task.id}: {state_word(task.state)}{progress} ({event.elapsed_s:.0f} s)"


def _files_lost(event: FilesLost) -> str:
    return (
        f"task {event.task_id}: {event.lost} of {event.total} result files could not be "
        f"kept ({errors.what_happened(event.error)}); returning the other "
        f"{event.total - event.lost}"
    )


def _files_not_kept(event: FilesNotKept) -> str:
    return (
        f"task {event.task_id}: {event.count} of {event.total} images could not be written "
        f"to {event.folder} ({errors.exception_line(event.error)}); they are shown but NOT "
        "kept: free some space (or fix the folder) and run it again to keep them (free)"
    )


_WORDS: dict[type, Callable[[Any], str]] = {
    TaskCreated: lambda e: f"created task {e.task_id} ({e.credits} credits)",
    TaskResumed: lambda e: f"resuming task {e.task_id} (created {ago(e.age_s)})",
    ResultReused: lambda e: f"task {e.task_id}: kept images from the journal (no API call)",
    RefetchingKeptFiles: lambda e: (
        f"task {e.task_id}: kept images missing, downloading them again (free)"
    ),
    WaitingForThread: lambda e: (
        "the same request is already running in this process; waiting for it"
    ),
    WaitingForProcess: _waiting_for_process,
    WaitingForTurn: lambda e: (
        f"waiting {e.wait_s:.1f} s for a turn to create (creates are paced to the account's "
        "rate limit)"
    ),
    WaitingOutRateLimit: lambda e: (
        f"API in One is rate limiting new tasks (HTTP 429; nothing was created): sending the "
        f"create again in {e.wait_s:.1f} s"
    ),
    WaitingForTask: lambda e: f"task {e.task_id} is still {state_word(e.state)}; waiting for it",
    TaskUpdated: _task_updated,
    Downloading: lambda e: f"task {e.task_id}: downloading {e.count} of {e.total} files",
    FileKept: lambda e: f"task {e.task_id}: file {e.index + 1} of {e.total} kept",
    FilesLost: _files_lost,
    FilesNotKept: _files_not_kept,
}
"""Each event's line (``describe``): one entry per ``RunEvent``."""


def outcome_kind(result: TaskResult) -> str:
    """How a finished task was had: "new", "resumed", "reused" or "fetched again"."""
    if result.reused:
        return "reused"
    if result.resumed:
        return "resumed"
    return "new" if result.credits else "fetched again"


_OUTCOME_DETAIL = {
    "resumed": "paid earlier, no new charge",
    "reused": "free: kept images, no charge",
    "fetched again": "free",
}
_OUTCOME_SHORT = {"resumed": "no new charge", "reused": "free", "fetched again": "free"}


def outcome_word(result: TaskResult) -> str:
    """The words a finished task ends with on both surfaces: new (5 credits charged), resumed
    (paid earlier, no new charge), reused (free: kept images, no charge)."""
    kind = outcome_kind(result)
    detail = f"{result.credits} credits charged" if kind == "new" else _OUTCOME_DETAIL[kind]
    return f"{kind} ({detail})"


def outcomes_summary(results: Sequence[TaskResult]) -> str:
    """Several tasks' outcomes in one phrase: "2 new (10 credits charged), 1 reused (free)"."""
    counts: dict[str, list[TaskResult]] = {}
    for result in results:
        counts.setdefault(outcome_kind(result), []).append(result)
    parts = []
    for kind in ("new", "resumed", "reused", "fetched again"):
        group = counts.get(kind)
        if group:
            credits = sum(r.credits for r in group)
            detail = f"{credits} credits charged" if kind == "new" else _OUTCOME_SHORT[kind]
            parts.append(f"{len(group)} {kind} ({detail})")
    return ", ".join(parts) or "nothing to do"


def ago(seconds: float) -> str:
    """A short, rounded age ("12 s ago", "3 min ago", "2 days ago")."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} days ago"
