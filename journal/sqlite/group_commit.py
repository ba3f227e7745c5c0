"""Kept files share synced commits: ``record_file``'s group commit.

A task keeps its files side by side, eight tasks at once keep 48, and each synced commit takes
milliseconds. Whoever holds the journal's lock next commits every row queued by then in one
transaction, so the callers share one sync instead of waiting for one each; each caller still
returns only once its own row is on disk (or raises what its commit raised).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from . import rows
from .database import Database


@dataclass
class _Queued:
    """One ``record_file`` call waiting for its commit, and how that commit ended."""

    row: tuple[Any, ...]
    done: bool = False
    error: BaseException | None = None


class GroupCommit:
    def __init__(self, database: Database) -> None:
        self._database = database
        self.queued: list[_Queued] = []
        """Kept files waiting for the next commit."""
        self._queue_lock = threading.Lock()

    def commit(self, row: tuple[Any, ...]) -> None:
        """Commit ``row`` (a ``rows.file_row``) with every other one queued meanwhile."""
        mine = _Queued(row)
        with self._queue_lock:
            self.queued.append(mine)
        with self._database.lock:
            if mine.done:  # a commit by another thread took it, and has ended
                if mine.error is not None:
                    raise mine.error
                return
            with self._queue_lock:
                batch, self.queued = self.queued, []
            try:
                self._database.write(lambda c: rows.insert_files(c, [q.row for q in batch]))
            except BaseException as exc:
                for other in batch:
                    other.error = exc
                raise
            finally:
                for other in batch:
                    other.done = True
