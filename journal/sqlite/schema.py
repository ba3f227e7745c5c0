"""The SQLite journal's schema: its versions, the explicit steps between them, and the check that
decides whether a file is ours to use, to migrate, to use as a newer pack left it, or not at all.

``MIGRATIONS[v]`` brings a journal from version ``v - 1`` to ``v`` (0 is an empty file), so a new
journal and an old one reach ``SCHEMA_VERSION`` by the same steps, and the columns a journal of
any older version has are read from those steps, never written out again.
"""

from __future__ import annotations

import functools
import logging
import sqlite3

from ..model import TABLES
from .rows import immediate

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""1: requests, files. 2: file_failures (a result file that could not be kept, and why).
3: create_turns (this machine's creates paced under the account's rate, ``pacing``)."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE requests (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            identity TEXT,
            model TEXT,
            prompt TEXT,
            aspect_ratio TEXT,
            seed INTEGER,
            batch_index INTEGER,
            source_task_id TEXT,
            task_id TEXT,
            state TEXT NOT NULL,
            credits INTEGER NOT NULL DEFAULT 0,
            result_urls TEXT NOT NULL DEFAULT '[]',
            error TEXT,
            created_at REAL NOT NULL,
            task_created_at REAL,
            updated_at REAL NOT NULL,
            finished_at REAL,
            owner_pid INTEGER,
            owner_marker TEXT
        )""",
        "CREATE INDEX requests_by_identity ON requests (identity, id)",
        "CREATE INDEX requests_by_task ON requests (task_id, id)",
        """CREATE TABLE files (
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            url TEXT,
            saved_at REAL NOT NULL,
            PRIMARY KEY (task_id, idx)
        )""",
    ),
    2: (
        """CREATE TABLE file_failures (
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            reason TEXT NOT NULL,
            url TEXT,
            failed_at REAL NOT NULL,
            PRIMARY KEY (task_id, idx)
        )""",
    ),
    3: (
        """CREATE TABLE create_turns (
            id INTEGER PRIMARY KEY,
            send_at REAL NOT NULL,
            request_id INTEGER
        )""",
        "CREATE INDEX create_turns_by_time ON create_turns (send_at)",
        "CREATE INDEX create_turns_by_request ON create_turns (request_id)",
    ),
}
"""Version -> the statements that bring a journal from version - 1 to it, in one transaction with
the version bump. Never edit a released step: add the next version with every change, and an
older journal file under ``tests/data`` that the tests migrate."""


class Unusable(Exception):
    """The journal file is not a journal we can use as is (not SQLite, damaged, foreign)."""


class Newer(Exception):
    """A journal of a newer schema whose tables this version cannot write."""


def check(conn: sqlite3.Connection) -> int:
    """The journal's schema version, if we can use it; else ``Unusable`` / ``Newer``.

    0 is an empty database (to make a journal in); below ``SCHEMA_VERSION`` it is migrated; above,
    it is used as is when every table and column we write is there and nothing it added needs a
    value we would not give, and refused (never moved aside, never changed) when not.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = user_tables(conn)
    if version == 0:
        if tables:
            raise Unusable("it holds tables that are not a Grok Imagine journal")
        return 0
    if version < 0 or (version < SCHEMA_VERSION and version not in MIGRATIONS):
        raise Unusable(f"schema version {version} is not one this pack ever wrote")
    newer = version > SCHEMA_VERSION
    for table, wanted in columns(version).items():
        info = list(conn.execute(f"PRAGMA table_info({table})"))
        have = {row[1] for row in info}
        if table not in tables or not wanted <= have:
            if newer:
                raise Newer(f"schema {version}, without the {table!r} table this version writes")
            raise Unusable(f"table {table!r} is missing or has other columns")
        if newer:
            # (cid, name, type, notnull, default, pk): a column we would leave empty but may not
            required = [
                r[1] for r in info if r[3] and r[4] is None and not r[5] and r[1] not in wanted
            ]
            if required:
                raise Newer(f"schema {version}, whose {table!r} rows need {required[0]!r}")
    return version


def columns(version: int) -> dict[str, frozenset[str]]:
    """The tables and columns a journal of ``version`` has: what this pack writes from
    ``SCHEMA_VERSION`` on (the model), what the migrations made below it."""
    if version >= SCHEMA_VERSION:
        return {table.name: frozenset(table.names) for table in TABLES}
    return _made_by_steps(version)


@functools.cache
def _made_by_steps(version: int) -> dict[str, frozenset[str]]:
    scratch = sqlite3.connect(":memory:")
    try:
        run_steps(scratch, 0, version)
        return {
            table: frozenset(row[1] for row in scratch.execute(f"PRAGMA table_info({table})"))
            for table in user_tables(scratch)
        }
    finally:
        scratch.close()


def run_steps(conn: sqlite3.Connection, version: int, target: int = SCHEMA_VERSION) -> None:
    """The migrations from ``version`` to ``target``, each followed by its version bump; one
    statement at a time (``executescript`` would commit the caller's transaction first)."""
    for step in range(version + 1, target + 1):
        for statement in MIGRATIONS[step]:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {step}")


def migrate(conn: sqlite3.Connection) -> None:
    """Take an older journal forward to ``SCHEMA_VERSION``, one explicit step at a time.

    Under ``BEGIN IMMEDIATE`` and re-reading the version, so two processes opening the same old
    file migrate it once; every step and its version bump commit together.
    """
    with immediate(conn):
        run_steps(conn, conn.execute("PRAGMA user_version").fetchone()[0])
    logger.info("task journal migrated to schema version %d", SCHEMA_VERSION)


def create_if_new(conn: sqlite3.Connection) -> None:
    """Make the journal's tables in an empty file (another process may be doing so right now)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] != 0:
        return
    with immediate(conn):
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0 and not user_tables(conn):
            run_steps(conn, 0)
    check(conn)


def user_tables(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
