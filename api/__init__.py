"""The wire: everything that talks to Grok Imagine through API in One.

Knows nothing of ComfyUI, torch or ``nodes/``. The light modules (``errors``, ``validation``,
``config``, ``task``) load with the package, because ComfyUI imports the node declarations (and so
this package) at start-up; the names that need ``requests`` (``GrokClient``, ``Downloaded``, ...)
load on first use through ``__getattr__``, keeping the pack's import cheap.

    from .api import GrokClient, load_settings, errors
    with GrokClient(load_settings()) as client:
        task = client.wait(client.create_text_to_image("a red fox in snow"))
        blob = client.download(task.result_urls[0])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import config, errors, validation
from .config import Settings, load_settings
from .task import Task, TaskState

if TYPE_CHECKING:
    from .client import GrokClient
    from .download import Downloaded
    from .polling import PollSchedule, wait_for_task
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
    "validation",
    "wait_for_task",
]

_LAZY = {
    "GrokClient": "client",
    "Downloaded": "download",
    "PollSchedule": "polling",
    "wait_for_task": "polling",
    "parse_task": "task_reader",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
