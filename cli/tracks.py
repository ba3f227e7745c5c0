"""What each task of a run has done so far, kept from the runner's typed events.

The progress display draws its lines from a ``TaskTrack``; the interrupt message reads it to say,
for each task, whether it keeps running at the API, had finished and was downloading, or is done.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace

from ..api.task import TaskState
from ..journal import events


class Phase(enum.Enum):
    """Where a task is, as far as this run knows."""

    STARTING = "starting"
    """No word from the runner yet: the journal is being read, or a create is on the wire."""
    WAITING = "waiting"
    """For a turn to create (or an HTTP 429 to pass), or for another run sending this very
    request."""
    AT_API = "at the API"
    """The task exists at the API and is not finished (created, resumed or read running)."""
    DOWNLOADING = "downloading"
    """The task is finished at the API; its files are being fetched."""
    DONE = "done"
    FAILED = "failed"
    """The task failed at the API (failed tasks are not charged)."""
    ERROR = "error"
    """The task's job ended with an error here (a timeout, a download that failed, ...)."""


_PHASE_OF_STATE = {TaskState.SUCCEEDED: Phase.DOWNLOADING, TaskState.FAILED: Phase.FAILED}


@dataclass
class TaskTrack:
    label: str
    started: float = field(default_factory=time.monotonic)
    """When this run began the task's job: the elapsed seconds tick from here."""
    task_id: str | None = None
    created_credits: int | None = None
    """Set when this run's create was answered (the task is paid for by this run)."""
    phase: Phase = Phase.STARTING
    state: str = "starting"
    """The word shown for the phase: a task state word, "created", "downloading 2 of 6"."""
    progress: float = 0.0
    """The highest percentage read so far: progress never goes backwards on screen."""
    ended_at: float | None = None
    kept: int = 0
    """Result files kept so far."""

    def elapsed(self, now: float | None = None) -> float:
        end = self.ended_at if self.ended_at is not None else (now or time.monotonic())
        return max(0.0, end - self.started)

    def apply(self, event: events.RunEvent) -> events.RunEvent:
        """Take ``event`` in; return it with its progress never below what was shown before."""
        task_id = getattr(event, "task_id", None)
        if isinstance(task_id, str):
            self.task_id = task_id
        if isinstance(event, events.TaskUpdated):
            return self._updated(event)
        if isinstance(event, events.TaskCreated):
            self.created_credits = event.credits
            self.phase, self.state = Phase.AT_API, "created"
        elif isinstance(event, events.TaskResumed):
            self.phase, self.state = Phase.AT_API, "resumed"
        elif isinstance(event, (events.ResultReused, events.RefetchingKeptFiles)):
            self.phase, self.state = Phase.DOWNLOADING, "kept images"
        elif isinstance(
            event, (events.WaitingForTurn, events.WaitingOutRateLimit, events.WaitingForThread)
        ):
            self.phase, self.state = Phase.WAITING, "waiting to create"
        elif isinstance(event, events.WaitingForProcess):
            self.phase, self.state = Phase.WAITING, "waiting for another run"
        elif isinstance(event, events.WaitingForTask):
            self.phase, self.state = Phase.AT_API, events.state_word(event.state)
        elif isinstance(event, events.Downloading):
            self.phase, self.kept = Phase.DOWNLOADING, event.total - event.count
            self.state = f"downloading, {self.kept} of {event.total} files kept"
        elif isinstance(event, events.FileKept):
            self.phase, self.kept = Phase.DOWNLOADING, self.kept + 1
            self.state = f"downloading, {self.kept} of {event.total} files kept"
        return event

    def _updated(self, event: events.TaskUpdated) -> events.TaskUpdated:
        task = event.task
        self.task_id = task.id or self.task_id
        if task.progress is not None:
            self.progress = max(self.progress, task.progress)
            event = replace(event, task=replace(task, progress=self.progress))
        self.phase = _PHASE_OF_STATE.get(task.state, Phase.AT_API)
        word = events.state_word(task.state)
        shown = task.progress is not None and not task.done
        self.state = f"{word} {self.progress:.0%}" if shown else word
        return event

    def end(self, phase: Phase, state: str) -> None:
        self.phase, self.state, self.ended_at = phase, state, time.monotonic()

    def live_line(self, now: float | None = None) -> str:
        """The task's one line on a terminal: state, elapsed seconds, task id."""
        parts = [self.state, f"{self.elapsed(now):.0f} s"]
        if self.task_id:
            parts.append(f"task {self.task_id}")
        return f"[{self.label}] " + " · ".join(parts)
