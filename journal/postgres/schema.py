"""The shared journal's schema: explicit, ordered migrations, and the rule for a fleet whose
workers run different packs.

The schema's version and the oldest version a pack may write and still share it live in
``grok_imagine_schema``; each worker says which version it writes in ``grok_imagine_workers``,
so an upgrade that older packs cannot follow names the workers that must be updated.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import psycopg

from ...api.messages import said
from ...api.what import What
from ..store import JournalVersionError
from . import locks
from .rows import HOST, NOW

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""The schema this pack writes (the highest migration below)."""
OLDEST_COMPATIBLE = 1
"""The oldest schema version a pack may have and still share a journal of ``SCHEMA_VERSION``:
raise it with a migration that older packs would misuse, and they will refuse to run."""
WORKERS_SEEN_S = 86400.0
"""Workers that opened the journal this recently are named when an upgrade leaves them behind."""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE grok_imagine_requests (
            id BIGSERIAL PRIMARY KEY,
            identity TEXT,
            model TEXT,
            prompt TEXT,
            aspect_ratio TEXT,
            seed BIGINT,
            batch_index INTEGER,
            source_task_id TEXT,
            task_id TEXT,
            state TEXT NOT NULL,
            credits INTEGER NOT NULL DEFAULT 0,
            result_urls TEXT NOT NULL DEFAULT '[]',
            error TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            task_created_at DOUBLE PRECISION,
            updated_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            owner_host TEXT,
            owner_pid INTEGER,
            owner_marker TEXT,
            lease_until DOUBLE PRECISION
        )""",
        "CREATE INDEX grok_imagine_requests_by_identity ON grok_imagine_requests (identity, id)",
        "CREATE INDEX grok_imagine_requests_by_task ON grok_imagine_requests (task_id, id)",
        """CREATE TABLE grok_imagine_files (
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            path TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size BIGINT NOT NULL,
            url TEXT,
            saved_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (task_id, idx)
        )""",
        """CREATE TABLE grok_imagine_create_turns (
            id BIGSERIAL PRIMARY KEY,
            send_at DOUBLE PRECISION NOT NULL,
            request_id BIGINT
        )""",
        "CREATE INDEX grok_imagine_create_turns_by_time ON grok_imagine_create_turns (send_at)",
        "CREATE INDEX grok_imagine_create_turns_by_request ON grok_imagine_create_turns"
        " (request_id)",
    ),
    2: (
        # Which workers (and which schema their pack writes) use the journal, so an upgrade
        # that older packs cannot follow names the workers that must be updated.
        """CREATE TABLE grok_imagine_workers (
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            schema_version INTEGER NOT NULL,
            seen_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (host, pid)
        )""",
    ),
    3: (
        # A result file that was fetched but is not a usable image, and why (as the SQLite
        # journal's schema 2): reused results say which image is missing instead of fetching it
        # again.
        """CREATE TABLE grok_imagine_file_failures (
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            reason TEXT NOT NULL,
            url TEXT,
            failed_at DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (task_id, idx)
        )""",
    ),
}
"""Version -> the statements that bring the schema from version - 1 to it. Never edit a
released entry; add the next version."""

_SCHEMA_TABLE = """CREATE TABLE IF NOT EXISTS grok_imagine_schema (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    version INTEGER NOT NULL,
    oldest_compatible INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
)"""


def prepare(conn: psycopg.Connection[Any], where: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (one worker at a time), or refuse a newer one that
    this pack cannot use; then say which schema this worker writes."""
    conn.execute("BEGIN")
    try:
        locks.take(conn, locks.MIGRATION)
        if not _table_exists(conn, "grok_imagine_schema"):
            conn.execute(_SCHEMA_TABLE)
        row = conn.execute("SELECT version, oldest_compatible FROM grok_imagine_schema").fetchone()
        version, oldest = (0, 0) if row is None else row
        if version > SCHEMA_VERSION and oldest > SCHEMA_VERSION:
            raise JournalVersionError(
                said(
                    What.SHARED_JOURNAL_NEWER,
                    where=where,
                    version=str(version),
                    oldest=str(oldest),
                    ours=SCHEMA_VERSION,
                ),
                where=where,
            )
        if version < SCHEMA_VERSION:
            _migrate(conn, where, version)
        _register_worker(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.UNKNOWN:
            try:
                conn.execute("ROLLBACK")
            except psycopg.Error:
                pass
        raise


def _migrate(conn: psycopg.Connection[Any], where: str, version: int) -> None:
    behind = _workers_left_behind(conn) if version else []
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for statement in MIGRATIONS[step]:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO grok_imagine_schema (only_row, version, oldest_compatible, updated_at)"
        f" VALUES (TRUE, %s, %s, {NOW}) ON CONFLICT (only_row) DO UPDATE SET"
        " version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,"
        " oldest_compatible = GREATEST(grok_imagine_schema.oldest_compatible,"
        " EXCLUDED.oldest_compatible)",
        (SCHEMA_VERSION, OLDEST_COMPATIBLE),
    )
    if not version:
        return
    if version >= OLDEST_COMPATIBLE:
        note = "Workers with older packs go on working."
    else:
        names = ", ".join(behind) or "none seen in the last 24 h"
        note = (
            f"Workers whose pack writes a schema older than {OLDEST_COMPATIBLE} now refuse it "
            f"until their Grok Imagine pack is updated: {names}."
        )
    logger.warning(
        "The shared task journal %s was upgraded from schema %d to %d. %s",
        where,
        version,
        SCHEMA_VERSION,
        note,
    )


def _workers_left_behind(conn: psycopg.Connection[Any]) -> list[str]:
    """Workers seen lately whose pack writes a schema the upgrade leaves behind."""
    if not _table_exists(conn, "grok_imagine_workers"):
        return []
    rows = conn.execute(
        "SELECT host, pid, schema_version FROM grok_imagine_workers"
        f" WHERE schema_version < %s AND seen_at > {NOW} - %s ORDER BY host, pid",
        (OLDEST_COMPATIBLE, WORKERS_SEEN_S),
    ).fetchall()
    return [f"{host} (pid {pid}, schema {schema})" for host, pid, schema in rows]


def _register_worker(conn: psycopg.Connection[Any]) -> None:
    if not _table_exists(conn, "grok_imagine_workers"):
        return  # a newer schema without it: nothing to say
    conn.execute(
        "INSERT INTO grok_imagine_workers (host, pid, schema_version, seen_at)"
        f" VALUES (%s, %s, %s, {NOW}) ON CONFLICT (host, pid) DO UPDATE SET"
        " schema_version = EXCLUDED.schema_version, seen_at = EXCLUDED.seen_at",
        (HOST, os.getpid(), SCHEMA_VERSION),
    )
    conn.execute(
        f"DELETE FROM grok_imagine_workers WHERE seen_at < {NOW} - %s", (7 * WORKERS_SEEN_S,)
    )


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])
