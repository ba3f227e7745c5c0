"""What the caller of a run wants to hear and may say while it runs: typed events out, Cancel in."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..api import errors
from . import events

logger = logging.getLogger(__name__)


@dataclass
class RunHooks:
    """What the caller wants to hear while a request runs (all optional)."""

    on_event: Callable[[events.RunEvent], None] | None = None
    """What the runner does, as typed events (``journal.events``): created, resumed, kept, ..."""
    should_cancel: Callable[[], bool] | None = None
    """Polled while waiting; True stops the wait with ``errors.CancelledError``."""


def emit(hooks: RunHooks, event: events.RunEvent) -> None:
    if not isinstance(event, (events.TaskUpdated, events.FileKept)):
        logger.info("%s", events.describe(event))
    if hooks.on_event is not None:
        hooks.on_event(event)


def check_cancel(hooks: RunHooks, task_id: str | None) -> None:
    if hooks.should_cancel is not None and hooks.should_cancel():
        raise errors.CancelledError(task_id)
