"""The node's live status text and progress bar, drawn from the runner's typed events.

One line per task: its label, state word, elapsed seconds, task id, what it cost and the latest
note. Words come from ``journal.events`` (``state_word``, ``describe``), so the node and the CLI
say the same things; what a task *cost* is decided here from the event types, never from text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..api import errors
from ..api.task import TaskState
from ..journal import events
from . import comfy_hooks

if TYPE_CHECKING:
    from ..journal import RunHooks, TaskResult

_WAITING_CAP = 0.9
"""The bar's share for waiting; the rest fills as the task's files arrive."""
_STATE_FRACTIONS = {TaskState.QUEUED: 0.05, TaskState.RUNNING: 0.15}


@dataclass
class _TaskLine:
    label: str
    state: str = "starting"
    task_id: str | None = None
    note: str | None = None
    elapsed: float | None = None
    elapsed_at: float = 0.0
    cost: str | None = None
    fraction: float = 0.0
    finished: bool = False
    lasting_note: str | None = None
    """Images lost or not kept: shown until the end, where ``note`` would be cleared."""


@dataclass
class StatusBoard:
    """Live status of one node's tasks, drawn as the node's progress text and progress bar."""

    title: str
    hooks: comfy_hooks.NodeHooks
    labels: Sequence[str]
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._lines = [_TaskLine(label) for label in self.labels]
        self._warnings: list[str] = []
        self._refusal: str | None = None

    def run_hooks(self, index: int) -> RunHooks:
        """The journal runner's hooks for task ``index``."""
        from ..journal import RunHooks

        return RunHooks(
            on_event=lambda event: self.on_event(index, event),
            should_cancel=self.hooks.cancelled,
        )

    def on_event(self, index: int, event: events.RunEvent) -> None:
        with self._lock:
            _apply(self._lines[index], event)
        self.publish()

    def add_warning(self, text: str) -> None:
        """A line that stays under the tasks to the end (an image left out of the output)."""
        with self._lock:
            self._warnings.append(text)
        self.publish()

    def finished(self, index: int, result: TaskResult) -> None:
        with self._lock:
            line = self._lines[index]
            line.task_id = result.task_id
            line.finished, line.fraction = True, 1.0
            line.note = line.lasting_note  # a missing or unkept image is still said at the end
            count = len(result.images)
            line.state = f"done, {count} image{'s' if count != 1 else ''}"
            line.cost = events.outcome_word(result)
        self.publish()

    def failed(self, index: int, exc: BaseException) -> None:
        with self._lock:
            line = self._lines[index]
            line.finished, line.fraction = True, 1.0
            line.state = "failed"
            line.note = errors.exception_line(exc)
        self.publish()

    def refused(self, exc: BaseException) -> None:
        """The whole run was refused before any task started (the daily credit limit)."""
        with self._lock:
            self._refusal = errors.exception_line(exc)
            for line in self._lines:
                line.finished, line.fraction, line.state = True, 1.0, "not sent"
        self.publish()

    def render(self) -> str:
        now = time.monotonic()
        with self._lock:
            lines = [f"{self.title} · {now - self.started:.0f} s"]
            if self._refusal:
                lines.append(self._refusal)
            for line in self._lines:
                parts = [line.label] if line.label else []
                parts.append(line.state)
                if line.elapsed is not None and not line.finished:
                    parts.append(f"{line.elapsed + (now - line.elapsed_at):.0f} s")
                if line.task_id:
                    parts.append(f"task {line.task_id}")
                if line.cost:
                    parts.append(line.cost)
                if line.note:
                    parts.append(line.note)
                lines.append(" · ".join(parts))
            lines.extend(self._warnings)
        return "\n".join(lines)

    def publish(self) -> None:
        self.hooks.text(self.render())
        with self._lock:
            done = sum(line.fraction for line in self._lines)
        self.hooks.progress(done * 100)


def _apply(line: _TaskLine, event: events.RunEvent) -> None:
    """One event's effect on one task's line."""
    task_id = getattr(event, "task_id", None)
    if isinstance(task_id, str):
        line.task_id = task_id
    if isinstance(event, events.TaskUpdated):
        task = event.task
        line.task_id = task.id or line.task_id
        line.state, line.note = events.state_word(task.state), None
        line.elapsed, line.elapsed_at = event.elapsed_s, time.monotonic()
        progress = task.progress if task.progress is not None else 0.0
        base = _STATE_FRACTIONS.get(task.state, line.fraction)
        line.fraction = max(line.fraction, min(_WAITING_CAP, max(base, progress * _WAITING_CAP)))
    elif isinstance(event, events.TaskCreated):
        line.cost = f"{event.credits} credits" if event.credits else "free"
    elif isinstance(event, events.TaskResumed):
        line.cost = "paid earlier"
    elif isinstance(event, events.ResultReused):
        line.cost = "no charge"
    elif isinstance(event, events.Downloading):
        line.state, line.note = "downloading", None
    elif isinstance(event, events.FileKept):
        share = (1.0 - _WAITING_CAP) / max(1, event.total)
        line.fraction = min(1.0, max(line.fraction, _WAITING_CAP) + share)
    elif isinstance(event, (events.FilesLost, events.FilesNotKept)):
        text = events.describe(event)
        line.lasting_note = text if line.lasting_note is None else f"{line.lasting_note}; {text}"
        line.note = line.lasting_note
    else:
        line.note = events.describe(event)
