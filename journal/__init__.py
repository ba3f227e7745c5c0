"""Never pay twice, never lose a paid image: the task journal, the kept files, the runner.

Not imported when ComfyUI loads the pack (only when a node first runs), so plain imports.
"""

from __future__ import annotations

from . import events
from .files import FileStore
from .identity import RequestIdentity
from .model import JournalEntry, JournalFile, State
from .open import open_journal
from .paths import default_home, files_root, journal_path
from .runner import RunHooks, TaskResult, TaskRunner, UncertainTaskError
from .sqlite import Journal
from .store import JournalStore, JournalUnavailableError

__all__ = [
    "FileStore",
    "Journal",
    "JournalEntry",
    "JournalFile",
    "JournalStore",
    "JournalUnavailableError",
    "RequestIdentity",
    "RunHooks",
    "State",
    "TaskResult",
    "TaskRunner",
    "UncertainTaskError",
    "default_home",
    "events",
    "files_root",
    "journal_path",
    "open_journal",
]
