"""Never pay twice, never lose a paid image: the task journal, the kept files, the runner.

Names are loaded on first use, so importing the pack does not import ``sqlite3`` or the HTTP
client: ComfyUI's start-up stays fast even though the nodes module names this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import events
    from .db import Journal, JournalEntry, JournalFile, State
    from .files import FileStore
    from .identity import RequestIdentity
    from .paths import default_home, files_root, journal_path
    from .runner import RunHooks, TaskResult, TaskRunner, UncertainTaskError

_EXPORTS = {
    "Journal": "db",
    "JournalEntry": "db",
    "JournalFile": "db",
    "State": "db",
    "FileStore": "files",
    "RequestIdentity": "identity",
    "default_home": "paths",
    "files_root": "paths",
    "journal_path": "paths",
    "RunHooks": "runner",
    "TaskResult": "runner",
    "TaskRunner": "runner",
    "UncertainTaskError": "runner",
}

__all__ = [
    "FileStore",
    "Journal",
    "JournalEntry",
    "JournalFile",
    "RequestIdentity",
    "RunHooks",
    "State",
    "TaskResult",
    "TaskRunner",
    "UncertainTaskError",
    "default_home",
    "files_root",
    "journal_path",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
