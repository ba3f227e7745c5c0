"""The model's rows in SQLite: the select list, inserts, the row -> entry mapping, and the spend
ledger's sums. Each function takes the connection and runs under the caller's lock (and, where it
says so, in the caller's transaction)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from ...api import errors
from ..identity import RequestIdentity
from ..model import (
    FAILURE_FIELDS,
    FILE_FIELDS,
    FILE_KEY,
    FILES,
    REQUESTS,
    FailedFile,
    JournalEntry,
    JournalFile,
    State,
    entry_from_row,
    failure_from_row,
    file_from_row,
    new_attempt,
    owner_columns,
    stored_url,
)
from ..owner import ProcessOwner, current_owner

SELECT = f"SELECT {', '.join(REQUESTS.names)} FROM requests"
_FILES_OF = (
    f"SELECT {', '.join(c.name for c in FILE_FIELDS)} FROM files WHERE task_id = ? ORDER BY idx"
)
_FAILURES_OF = (
    f"SELECT {', '.join(c.name for c in FAILURE_FIELDS)} FROM file_failures WHERE task_id = ?"
    " ORDER BY idx"
)
_INSERT_FILES = (
    f"INSERT OR REPLACE INTO files ({', '.join(FILES.names)})"
    f" VALUES ({', '.join('?' * len(FILES.names))})"
)
_CLEAR_FAILURES = f"DELETE FROM file_failures WHERE {' AND '.join(f'{k} = ?' for k in FILE_KEY)}"


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` (the write lock, at once) ... ``COMMIT``; rolled back on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert(
    conn: sqlite3.Connection, table: str, values: Mapping[str, Any], verb: str = "INSERT"
) -> sqlite3.Cursor:
    """One row of ``table`` from its columns by name."""
    names = ", ".join(values)
    marks = ", ".join("?" * len(values))
    return conn.execute(f"{verb} INTO {table} ({names}) VALUES ({marks})", tuple(values.values()))


def entries(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> list[JournalEntry]:
    """The ``requests`` rows ``where`` picks (``WHERE ... ORDER BY ...``), as entries."""
    return [entry(conn, row) for row in conn.execute(f"{SELECT} {where}", params).fetchall()]


def one(conn: sqlite3.Connection, where: str, params: Sequence[Any]) -> JournalEntry | None:
    row = conn.execute(f"{SELECT} {where}", params).fetchone()
    return None if row is None else entry(conn, row)


def latest(conn: sqlite3.Connection, identity_key: str) -> JournalEntry | None:
    return one(conn, "WHERE identity = ? ORDER BY id DESC LIMIT 1", (identity_key,))


def entry(conn: sqlite3.Connection, row: Sequence[Any]) -> JournalEntry:
    """A ``requests`` row (``SELECT`` order) with its task's kept and failed files."""
    values = dict(zip(REQUESTS.names, row, strict=True))
    task_id, pid = values["task_id"], values["owner_pid"]
    files: tuple[JournalFile, ...] = ()
    failed: tuple[FailedFile, ...] = ()
    if task_id is not None:
        files = tuple(file_from_row(r) for r in conn.execute(_FILES_OF, (task_id,)))
        failed = tuple(failure_from_row(r) for r in conn.execute(_FAILURES_OF, (task_id,)))
    owner = ProcessOwner(pid, values["owner_marker"] or "") if pid is not None else None
    return entry_from_row(row, owner=owner, files=files, failed_files=failed)


def insert_attempt(conn: sqlite3.Connection, ident: RequestIdentity, state: str) -> JournalEntry:
    """A new attempt at ``ident`` in ``state`` (``creating`` or ``reserved``), owned by us."""
    now = time.time()
    cursor = insert(
        conn,
        "requests",
        {
            **new_attempt(ident, state),
            "created_at": now,
            "updated_at": now,
            **owner_columns(current_owner()),
        },
    )
    found = latest(conn, ident.key)
    assert found is not None and found.id == cursor.lastrowid
    return found


def file_row(
    task_id: str, index: int, path: str, sha256: str, size: int, url: str | None
) -> tuple[Any, ...]:
    """A kept file's ``files`` row, in column order, stamped now."""
    values = {
        "task_id": task_id, "idx": index, "path": path, "sha256": sha256, "size": size,
        "url": stored_url(url), "saved_at": time.time(),
    }  # fmt: skip
    return tuple(values[name] for name in FILES.names)


def insert_files(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Kept files (``file_row``s) in one synced transaction; each clears its recorded failure."""
    with immediate(conn):
        conn.executemany(_INSERT_FILES, rows)
        conn.executemany(_CLEAR_FAILURES, [row[: len(FILE_KEY)] for row in rows])


def insert_failure(
    conn: sqlite3.Connection, task_id: str, index: int, reason: str, url: str | None
) -> None:
    insert(
        conn,
        "file_failures",
        {
            "task_id": task_id, "idx": index, "reason": errors.redact(reason),
            "url": stored_url(url), "failed_at": time.time(),
        },
        verb="INSERT OR REPLACE",
    )  # fmt: skip


def spent(conn: sqlite3.Connection, since: float, until: float | None) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(credits), 0) FROM requests WHERE created_at >= ?"
        " AND created_at < ? AND identity IS NOT NULL AND state NOT IN"
        f" ({', '.join('?' * len(State.UNCHARGED))})",
        (since, float("inf") if until is None else until, *sorted(State.UNCHARGED)),
    ).fetchone()
    return int(row[0])


def drop_dead_reservations(conn: sqlite3.Connection) -> None:
    """Reservations of a process that died before sending hold no money: drop them."""
    for row_id, pid, marker in conn.execute(
        "SELECT id, owner_pid, owner_marker FROM requests WHERE state = ?", (State.RESERVED,)
    ).fetchall():
        owner = ProcessOwner(pid, marker or "") if pid is not None else None
        if owner is None or (not owner.is_current() and not owner.is_alive()):
            conn.execute("DELETE FROM requests WHERE id = ?", (row_id,))
