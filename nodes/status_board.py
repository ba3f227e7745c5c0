"""The node's live status and progress bar, drawn from the runner's typed events.

One line per task: its label, state, elapsed seconds, task id, what it cost and the latest note,
under a header with the node's running time, a refusal of the whole run if there was one, and
warnings that stay to the end. The board sends this to the frontend as a structure of message
keys and facts (``nodes.phrases``), which ``web/js/grok_imagine_status.js`` words in the UI
language and keeps on the node after the run. What a task *cost* is decided here from the event
types, never from text; the CLI words the same events with ``journal.events.describe``.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..api.task import TaskState
from ..journal import events
from . import comfy_hooks, event_phrases
from .error_phrases import error_phrase
from .phrases import Part, part_json

if TYPE_CHECKING:
    from ..journal import RunHooks, TaskResult

_WAITING_CAP = 0.9
"""The bar's share for waiting; the rest fills as the task's files arrive."""
_STATE_FRACTIONS = {TaskState.QUEUED: 0.05, TaskState.RUNNING: 0.15}


@dataclass
class _TaskLine:
    label: Part | None
    state: Part = field(default_factory=lambda: event_phrases.state("starting"))
    task_id: str | None = None
    note: Part | None = None
    elapsed: float | None = None
    elapsed_at: float = 0.0
    cost: Part | None = None
    fraction: float = 0.0
    finished: bool = False
    lasting_note: Part | None = None
    """Images lost or not kept: shown until the end, where ``note`` would be cleared."""

    def to_json(self, now: float) -> dict[str, Any]:
        seconds = None
        if self.elapsed is not None and not self.finished:
            seconds = round(self.elapsed + (now - self.elapsed_at))
        return {
            "label": part_json(self.label),
            "state": part_json(self.state),
            "seconds": seconds,
            "taskId": self.task_id,
            "cost": part_json(self.cost),
            "note": part_json(self.note),
            "finished": self.finished,
        }


@dataclass
class StatusBoard:
    """Live status of one node's tasks, sent as the node's status and drawn as its progress bar."""

    node_type: str
    """The node's class name (``NODE_CLASS_MAPPINGS``): the frontend names the node by it."""
    hooks: comfy_hooks.NodeHooks
    labels: Sequence[Part | None]
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._lines = [_TaskLine(label) for label in self.labels]
        self._warnings: list[Part] = []
        self._refusal: Part | None = None
        self._run = uuid.uuid4().hex

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

    def add_warning(self, exc: BaseException) -> None:
        """An image left out of the output, said under the tasks to the end."""
        with self._lock:
            self._warnings.append(event_phrases.left_out(exc))
        self.publish()

    def finished(self, index: int, result: TaskResult) -> None:
        with self._lock:
            line = self._lines[index]
            line.task_id = result.task_id
            line.finished, line.fraction = True, 1.0
            line.note = line.lasting_note  # a missing or unkept image is still said at the end
            line.state = event_phrases.state("done", count=len(result.images))
            line.cost = event_phrases.outcome(result)
        self.publish()

    def failed(self, index: int, exc: BaseException) -> None:
        with self._lock:
            line = self._lines[index]
            line.finished, line.fraction = True, 1.0
            line.state = event_phrases.state("failed")
            line.note = error_phrase(exc)
        self.publish()

    def refused(self, exc: BaseException) -> None:
        """The whole run was refused before any task started (the daily credit limit)."""
        with self._lock:
            self._refusal = error_phrase(exc)
            for line in self._lines:
                line.finished, line.fraction = True, 1.0
                line.state = event_phrases.state("notSent")
        self.publish()

    def status(self) -> dict[str, Any]:
        """The node's status now: what ``web/js/grok_imagine_status.js`` shows."""
        now = time.monotonic()
        with self._lock:
            return {
                "nodeType": self.node_type,
                "run": self._run,
                "seconds": round(now - self.started),
                "refusal": part_json(self._refusal),
                "tasks": [line.to_json(now) for line in self._lines],
                "warnings": [part_json(warning) for warning in self._warnings],
            }

    def publish(self) -> None:
        self.hooks.status(self.status())
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
        line.state, line.note = event_phrases.task_state(task.state), None
        line.elapsed, line.elapsed_at = event.elapsed_s, time.monotonic()
        progress = task.progress if task.progress is not None else 0.0
        base = _STATE_FRACTIONS.get(task.state, line.fraction)
        line.fraction = max(line.fraction, min(_WAITING_CAP, max(base, progress * _WAITING_CAP)))
    elif isinstance(event, events.TaskCreated):
        line.cost = event_phrases.created_cost(event.credits)
    elif isinstance(event, events.TaskResumed):
        line.cost = event_phrases.PAID_EARLIER
    elif isinstance(event, events.ResultReused):
        line.cost = event_phrases.NO_CHARGE
    elif isinstance(event, events.Downloading):
        line.state, line.note = event_phrases.state("downloading"), None
    elif isinstance(event, events.FileKept):
        share = (1.0 - _WAITING_CAP) / max(1, event.total)
        line.fraction = min(1.0, max(line.fraction, _WAITING_CAP) + share)
    elif isinstance(event, (events.FilesLost, events.FilesNotKept)):
        text = event_phrases.note(event)
        kept = line.lasting_note
        line.lasting_note = text if kept is None else event_phrases.joined(kept, text)
        line.note = line.lasting_note
    else:
        line.note = event_phrases.note(event)
