"""The fleet's create turns in PostgreSQL (``pacing`` says what a turn is and when it begins).

Under the pacing lock, one transaction reads the turns by the database's clock, asks the rule,
and writes this attempt's turn (taken once, moved earlier when a turn before it was given back),
as the SQLite journal does for one machine (``sqlite.turns``).
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..model import CREATE_TURNS
from ..pacing import CreateRate, next_turn
from . import locks
from .rows import LEASE_S, NOW, REQUESTS_TABLE, table

TURNS_TABLE = table(CREATE_TURNS.name)

_READ = f"""
SELECT {NOW},
    array(SELECT send_at FROM {TURNS_TABLE} WHERE request_id IS DISTINCT FROM %(id)s),
    (SELECT max(send_at) FROM {TURNS_TABLE} WHERE request_id = %(id)s)
"""

_TAKE = f"""
WITH pruned AS (
    DELETE FROM {TURNS_TABLE} WHERE send_at < %(now)s - %(kept)s
),
taken AS (
    INSERT INTO {TURNS_TABLE} (send_at, request_id)
    SELECT %(send_at)s, %(id)s WHERE %(new)s
),
moved AS (
    UPDATE {TURNS_TABLE} SET send_at = %(send_at)s WHERE request_id = %(id)s AND NOT %(new)s
)
UPDATE {REQUESTS_TABLE} SET created_at = %(send_at)s, lease_until = {NOW} + %(lease)s
WHERE id = %(id)s
"""

GIVE_BACK = f"DELETE FROM {TURNS_TABLE} WHERE request_id = %s AND send_at > {NOW}"
"""A create refused before it was sent gives its turn back, if it has not begun."""


def take_turn(conn: psycopg.Connection[Any], request_id: int, rate: CreateRate) -> float:
    """Seconds until request ``request_id``'s turn (0.0: now), in one transaction. The create
    is sent at its turn, so that is when its row's "sent at" (``created_at``) starts."""
    conn.execute("BEGIN")
    try:
        locks.take(conn, locks.PACING)
        row = conn.execute(_READ, {"id": request_id}).fetchone()
        assert row is not None
        now, others, held = row
        send_at = next_turn(rate, now, others, held)
        if send_at != held:
            conn.execute(
                _TAKE,
                {
                    "id": request_id,
                    "now": now,
                    "kept": rate.turns_kept_s,
                    "send_at": send_at,
                    "new": held is None,
                    "lease": LEASE_S,
                },
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(0.0, send_at - now)
