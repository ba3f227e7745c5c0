"""The normalized task: whatever shape the API answered in, callers see this one object."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Task", "TaskState"]


DEFAULT_TASK_TIMEOUT_S = 600.0
"""How long the nodes, the runner and the CLI wait for a task unless told otherwise."""


class TaskState(str, enum.Enum):
    """Where a task is. ``UNKNOWN`` is a status word this client has not met: keep polling."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskState.SUCCEEDED, TaskState.FAILED)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Task:
    """One read of a task. ``raw`` is the payload as received (kept out of repr and equality)."""

    id: str
    state: TaskState
    result_urls: tuple[str, ...] = ()
    error: str | None = None
    progress: float | None = None
    """0..1 when the API reports it."""
    raw_status: str | None = None
    """The status word exactly as the API spelled it."""
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state.is_terminal
