"""Reading what can still be read from a damaged journal, so its paid tasks are not paid again.

SQLite's own ``.recover`` (the ``sqlite3`` command line, when it is installed and built with the
page reader it needs) walks every page it can parse, whatever the damage to the b-trees above
them, and writes the rows out as SQL; it is loaded into a scratch database in memory and read
back. Otherwise the tables are read with the Python module forwards and backwards (each direction
stops at the first damaged page, so between them they reach the rows on both sides of it), and
the two indexes are read too: they hold each row's identity and task id, which is what keeps a
paid task from being paid again even when the row itself is lost.

Reading works on a copy (a file cut short is padded back to the size its header declares, so
SQLite reads the pages that are left); the damaged file itself is never changed. Rows are copied
into the fresh journal only if they look like ours; a row it already holds is left alone.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..model import FILE_FAILURES, FILES, REQUESTS, State
from .rows import immediate, insert

logger = logging.getLogger(__name__)

RECOVER_TIMEOUT_S = 120.0

REQUEST_COLUMNS = REQUESTS.names
FILE_COLUMNS = FILES.names
FAILURE_COLUMNS = FILE_FAILURES.names
PARTIAL_ROW_REASON = (
    "recovered from a damaged journal: only the request's identity could be read, so whether its "
    "create was sent is not known"
)
_STATES = frozenset(
    {
        State.WAITING, State.CREATING, State.UNCERTAIN, State.REJECTED, State.QUEUED,
        State.RUNNING, State.SUCCEEDED, State.FAILED,
    }
)  # fmt: skip
"""Reservations are not copied: nothing was sent for them. A ``waiting`` row is, as its owner
may be alive and about to send it (a dead owner's is settled as never sent when re-queued)."""


@dataclass
class Recovered:
    requests: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    how: str = ""


@dataclass(frozen=True)
class Counts:
    rows: int
    tasks: int
    files: int


def salvage_into(conn: sqlite3.Connection, damaged: Path) -> Counts:
    """Every row that can be read from ``damaged`` (already set aside), copied into the fresh
    journal ``conn``; how many came back."""
    recovered = recover_rows(damaged)
    try:
        counts = insert_rows(conn, recovered)
    except sqlite3.Error as exc:
        logger.warning("could not copy rows recovered from %s: %s", damaged, exc)
        counts = Counts(0, 0, 0)
    return counts


def recover_rows(damaged: Path) -> Recovered:
    """Every row of ours that can be read from ``damaged`` (never raises for a bad file)."""
    copy = damaged.with_name(damaged.name + ".reading")
    try:
        _readable_copy(damaged, copy)
    except OSError as exc:
        logger.info("could not copy %s to read it: %s", damaged, exc)
        return Recovered(how="nothing could be read")
    try:
        recovered = _with_command_line(copy)
        if recovered is None:
            recovered = _with_python(copy)
    finally:
        for suffix in ("", "-wal", "-shm"):
            copy.with_name(copy.name + suffix).unlink(missing_ok=True)
    logger.info(
        "read %d request rows and %d file rows from %s (%s)",
        len(recovered.requests), len(recovered.files), damaged, recovered.how,
    )  # fmt: skip
    return recovered


def insert_rows(conn: sqlite3.Connection, recovered: Recovered) -> Counts:
    """Copy the recovered rows into the fresh journal ``conn``, in one transaction."""
    rows = tasks = files = 0
    with immediate(conn):
        for row in recovered.requests:
            if not _plausible_request(row):
                continue
            inserted = _insert(conn, "requests", REQUEST_COLUMNS, row)
            if not inserted and not _same_row_there(conn, row):
                # its id was taken meanwhile (another process started the fresh journal)
                fresh = {k: v for k, v in row.items() if k != "id"}
                inserted = _insert(conn, "requests", REQUEST_COLUMNS, fresh)
            if inserted:
                rows += 1
                tasks += row.get("task_id") is not None
        for row in recovered.files:
            if row.get("task_id") and row.get("path") and row.get("sha256"):
                files += _insert(conn, "files", FILE_COLUMNS, row)
        for row in recovered.failures:
            if row.get("task_id") and row.get("reason"):
                _insert(conn, "file_failures", FAILURE_COLUMNS, row)
    return Counts(rows, tasks, files)


def _insert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], row: dict) -> bool:
    try:
        cursor = insert(conn, table, {c: row[c] for c in columns if c in row}, "INSERT OR IGNORE")
    except sqlite3.IntegrityError:  # a NOT NULL column the damage emptied
        return False
    return cursor.rowcount > 0


def _same_row_there(conn: sqlite3.Connection, row: dict[str, Any]) -> bool:
    found = conn.execute(
        "SELECT 1 FROM requests WHERE id = ? AND identity IS ? AND task_id IS ?",
        (row.get("id"), row.get("identity"), row.get("task_id")),
    ).fetchone()
    return found is not None


def _plausible_request(row: dict[str, Any]) -> bool:
    return (
        row.get("state") in _STATES
        and isinstance(row.get("created_at"), (int, float))
        and isinstance(row.get("updated_at"), (int, float))
        and (row.get("id") is None or isinstance(row.get("id"), int))
    )


def _readable_copy(damaged: Path, copy: Path) -> None:
    data = damaged.read_bytes()
    if data[:16] == b"SQLite format 3\x00" and len(data) >= 100:
        page_size = int.from_bytes(data[16:18], "big") or 65536
        if page_size == 1:
            page_size = 65536
        declared = int.from_bytes(data[28:32], "big") * page_size
        if len(data) < declared <= max(len(data) * 64, 1 << 26):
            data += bytes(declared - len(data))  # the lost tail reads as empty pages
    copy.write_bytes(data)
    wal = damaged.with_name(damaged.name + "-wal")
    if wal.is_file():
        copy.with_name(copy.name + "-wal").write_bytes(wal.read_bytes())


# -- with SQLite's own recovery -------------------------------------------------------------------


def _with_command_line(damaged: Path) -> Recovered | None:
    cli = shutil.which("sqlite3")
    if cli is None:
        return None
    try:
        done = subprocess.run(
            [cli, str(damaged), ".recover"],
            capture_output=True,
            timeout=RECOVER_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.info("sqlite3 .recover could not run on %s: %s", damaged, exc)
        return None
    script = done.stdout.decode("utf-8", errors="replace")
    if "CREATE TABLE" not in script and "INSERT" not in script:
        return None
    scratch = sqlite3.connect(":memory:")
    try:
        _load_script(scratch, script)
        recovered = Recovered(how="sqlite3 .recover")
        recovered.requests = _read_table(scratch, "requests", REQUEST_COLUMNS)
        recovered.files = _read_table(scratch, "files", FILE_COLUMNS)
        recovered.failures = _read_table(scratch, "file_failures", FAILURE_COLUMNS)
        recovered.requests += _lost_and_found(scratch, recovered.requests)
        return recovered
    finally:
        scratch.close()


def _load_script(conn: sqlite3.Connection, script: str) -> None:
    """The recovery SQL, statement by statement: one that fails is skipped, not the rest."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if not sqlite3.complete_statement(statement):
            continue
        text = statement.strip()
        statement = ""
        if text.upper().startswith(("BEGIN", "COMMIT", "PRAGMA")):
            continue
        try:
            conn.execute(text)
        except sqlite3.Error:
            continue


def _lost_and_found(conn: sqlite3.Connection, found: list[dict[str, Any]]) -> list[dict]:
    """Rows ``.recover`` found on pages it could not place in a table: those shaped like ours."""
    try:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(lost_and_found)")]
        if not columns:
            return []
        rows = conn.execute("SELECT * FROM lost_and_found").fetchall()
    except sqlite3.Error:
        return []
    known = {row.get("id") for row in found}
    extra = []
    for values in rows:
        record = dict(zip(columns, values, strict=False))
        if record.get("nfield") != len(REQUEST_COLUMNS):
            continue
        cells = [record.get(f"c{i}") for i in range(len(REQUEST_COLUMNS))]
        row = dict(zip(REQUEST_COLUMNS, cells, strict=True))
        row["id"] = record.get("id")
        if row["id"] not in known:
            extra.append(row)
    return extra


# -- with the Python module ----------------------------------------------------------------------


def _with_python(damaged: Path) -> Recovered:
    recovered = Recovered(how="row-by-row read")
    try:
        conn = sqlite3.connect(f"{damaged.as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return recovered
    try:
        recovered.requests = _read_both_ways(conn, "requests", REQUEST_COLUMNS)
        recovered.files = _read_both_ways(conn, "files", FILE_COLUMNS)
        recovered.failures = _read_both_ways(conn, "file_failures", FAILURE_COLUMNS)
        recovered.requests += _from_indexes(conn, {row.get("id") for row in recovered.requests})
    finally:
        conn.close()
    return recovered


def _from_indexes(conn: sqlite3.Connection, known: set[Any]) -> list[dict[str, Any]]:
    """Rows lost from the table but still named by the indexes: (identity, task id) by row id.

    With a task id the row comes back ``queued`` (a re-queue resumes that task, free); without
    one, ``uncertain`` (a create may have been sent: the user decides, nothing is re-sent).
    """
    found: dict[int, dict[str, Any]] = {}
    for column, index in (("identity", "requests_by_identity"), ("task_id", "requests_by_task")):
        try:
            for value, row_id in conn.execute(
                f"SELECT {column}, id FROM requests INDEXED BY {index}"
            ):
                if isinstance(row_id, int) and row_id not in known:
                    found.setdefault(row_id, {})[column] = value
        except sqlite3.Error:
            continue
    now = time.time()
    rows = []
    for row_id, parts in sorted(found.items()):
        if not parts.get("identity") and not parts.get("task_id"):
            continue
        task_id = parts.get("task_id")
        rows.append(
            {
                "id": row_id, "identity": parts.get("identity"), "task_id": task_id,
                "state": "queued" if task_id else "uncertain", "credits": 0,
                "created_at": now, "updated_at": now,
                "error": None if task_id else PARTIAL_ROW_REASON,
            }
        )  # fmt: skip
    return rows


def _read_both_ways(conn: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> list[dict]:
    seen: dict[int, dict[str, Any]] = {}
    for order in ("ASC", "DESC"):
        try:
            cursor = conn.execute(
                f"SELECT rowid, {', '.join(columns)} FROM {table} ORDER BY rowid {order}"
            )
            for values in cursor:
                seen.setdefault(values[0], dict(zip(columns, values[1:], strict=True)))
        except sqlite3.Error:
            continue  # the damaged page: what was read before it is kept
    return [seen[rowid] for rowid in sorted(seen)]


def _read_table(conn: sqlite3.Connection, table: str, columns: tuple[str, ...]) -> list[dict]:
    try:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        present = [c for c in columns if c in have]
        if not present:
            return []
        return [
            dict(zip(present, values, strict=True))
            for values in conn.execute(f"SELECT {', '.join(present)} FROM {table}")
        ]
    except sqlite3.Error:
        return []
