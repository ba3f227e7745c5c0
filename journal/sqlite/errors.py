"""What an error from SQLite or the disk means for the journal: damage to salvage, a lock to wait
out, a full disk; and the typed refusal paid work gets when the file cannot be kept on disk."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from .. import durability
from .schema import Newer, Unusable

JOURNAL_ROLE = "task journal"


def is_corruption(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return False  # locked, busy, disk full: a condition to wait out or report, not corruption
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == 13  # SQLITE_FULL
        return "disk is full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def storage_error(path: Path, problem: BaseException) -> durability.StorageUnavailableError:
    """Why the journal file cannot be kept on disk, as the typed error paid work is refused
    with."""
    if isinstance(problem, durability.StorageUnavailableError):
        return problem
    detail = first_line(str(problem)) or type(problem).__name__
    if is_full(problem):
        kind = durability.FULL
    elif isinstance(problem, OSError) and problem.errno in (errno.ENOTDIR, errno.EEXIST):
        kind = durability.NOT_A_FOLDER
    elif isinstance(problem, (Unusable, Newer)):
        kind = durability.UNREADABLE
    else:
        kind = durability.READ_ONLY
    folder = path if kind == durability.UNREADABLE else path.parent
    return durability.StorageUnavailableError(JOURNAL_ROLE, folder, kind, detail)


def first_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
