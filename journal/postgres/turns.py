"""The fleet's create turns in PostgreSQL (``pacing`` says what a turn is): one round trip under
the pacing lock prunes old turns, takes this attempt's turn (once) and says when it begins."""

from __future__ import annotations

from typing import Any

import psycopg

from ..pacing import CreateRate
from . import locks
from .rows import LEASE_S, NOW, REQUESTS_TABLE, table

TURNS_TABLE = table("create_turns")

_TAKE_TURN = f"""
WITH clock AS (SELECT {NOW} AS now),
held AS (SELECT send_at FROM {TURNS_TABLE} WHERE request_id = %(id)s),
nth AS (
    SELECT send_at FROM {TURNS_TABLE} ORDER BY send_at DESC OFFSET %(skip)s LIMIT 1
),
slot AS (
    SELECT COALESCE(
        (SELECT max(send_at) FROM held), GREATEST(now, (SELECT send_at FROM nth) + %(window)s)
    ) AS send_at, now, NOT EXISTS (SELECT 1 FROM held) AS new FROM clock
),
pruned AS (
    DELETE FROM {TURNS_TABLE}
    WHERE send_at < (SELECT now FROM clock) - %(kept)s
),
taken AS (
    INSERT INTO {TURNS_TABLE} (send_at, request_id)
    SELECT send_at, %(id)s FROM slot WHERE new
),
sent_then AS (
    UPDATE {REQUESTS_TABLE} SET created_at = slot.send_at, lease_until = slot.now + %(lease)s
    FROM slot WHERE id = %(id)s AND slot.new
)
SELECT send_at, now FROM slot
"""

GIVE_BACK = f"DELETE FROM {TURNS_TABLE} WHERE request_id = %s AND send_at > {NOW}"
"""A create refused before it was sent gives its turn back, if it has not begun."""


def take_turn(conn: psycopg.Connection[Any], request_id: int, rate: CreateRate) -> float:
    """Seconds until request ``request_id``'s turn (0.0: now), in one transaction. The create
    is sent at its turn, so that is when its row's "sent at" (``created_at``) starts."""
    conn.execute("BEGIN")
    try:
        locks.take(conn, locks.PACING)
        row = conn.execute(
            _TAKE_TURN,
            {
                "id": request_id,
                "skip": rate.creates - 1,
                "window": rate.turn_window_s,
                "kept": rate.turns_kept_s,
                "lease": LEASE_S,
            },
        ).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert row is not None
    send_at, now = row
    return max(0.0, send_at - now)
