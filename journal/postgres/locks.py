"""The advisory locks the shared journal takes: one key space for the pack, one lock per job.

Each is a transaction lock (``pg_advisory_xact_lock``), released when its transaction ends. The
order is fixed so that no two workers can deadlock: identity locks first (in key order), then the
spend lock; pacing and migration are taken alone.
"""

from __future__ import annotations

from typing import Any

import psycopg

LOCK_SPACE = 0x47524F4B  # "GROK": the first key of every advisory lock this pack takes
PACING = 1
MIGRATION = 2
SPEND = 3
"""Taken after any identity locks (never before one), so the fleet's ledger checks cannot
deadlock with its claims."""


def take(conn: psycopg.Connection[Any], lock: int) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, lock))


def take_identity(conn: psycopg.Connection[Any], identity_key: str) -> None:
    """The lock of one request: two workers with the same request take turns deciding."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_SPACE, identity_key))


def take_identities(conn: psycopg.Connection[Any], keys: list[str]) -> None:
    """The locks of a run's requests, in lock order."""
    for (lock,) in conn.execute(
        "SELECT DISTINCT hashtext(k) AS h FROM unnest(%s::text[]) AS k ORDER BY h", (keys,)
    ).fetchall():
        take(conn, lock)
