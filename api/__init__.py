"""The wire: everything that talks to Grok Imagine through API in One.

Knows nothing of ComfyUI, torch or ``nodes/``. ComfyUI imports the node declarations (and so
this package) at start-up, and they need only ``errors`` and ``validation``: those two load with
the package, everything else (``GrokClient``, ``Settings``, ``Task``, ...) on first use through
``__getattr__``, keeping the pack's import cheap. None of them imports ``requests`` at module
level either; the HTTP stack loads when a client first sends something.

    from .api import GrokClient, load_settings, errors
    with GrokClient(load_settings()) as client:
        task = client.wait(client.create_text_to_image("a red fox in snow"))
        blob = client.download(task.result_urls[0])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import errors, validation

if TYPE_CHECKING:
    from . import config, task
    from .client import GrokClient
    from .config import Settings, load_settings
    from .download import Downloaded
    from .polling import PollSchedule, wait_for_task
    from .task import Task, TaskState
    from .task_reader import parse_task

__all__ = [
    "Downloaded",
    "GrokClient",
    "PollSchedule",
    "Settings",
    "Task",
    "TaskState",
    "config",
    "errors",
    "load_settings",
    "parse_task",
    "task",
    "validation",
    "wait_for_task",
]

_LAZY = {
    "GrokClient": "client",
    "Settings": "config",
    "load_settings": "config",
    "Task": "task",
    "TaskState": "task",
    "Downloaded": "download",
    "PollSchedule": "polling",
    "wait_for_task": "polling",
    "parse_task": "task_reader",
}
_SUBMODULES = frozenset(
    {"client", "config", "download", "polling", "task", "task_reader", "transport"}
)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
