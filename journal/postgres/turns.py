"""The fleet's create turns in PostgreSQL (``pacing`` says what a turn is and when it begins).

Under the pacing lock, one transaction reads the turns by the database's clock, asks the rule,
and writes this attempt's turn (taken once, moved earlier when a turn before it was given back),
as the SQLite journal does for one machine (``sqlite.turns``). The same transaction keeps the
create's row ``waiting`` while its turn is to come and moves it back to ``creating`` when it has
come, only while the row is still this worker's and unsettled.
"""

from __future__ import annotations

from typing import Any

import psycopg

from ..model import CREATE_TURNS, State
from ..owner import current_owner
from ..pacing import CreateRate, next_turn, row_state_at_turn
from ..store import SettledWhileWaitingError
from . import locks
from .rows import HOST, LEASE_S, NOW, REQUESTS_TABLE, table

TURNS_TABLE = table(CREATE_TURNS.name)

_MINE = " AND ".join(
    f"{column} = %({key})s"
    for column, key in (("id", "id"), ("owner_host", "host"), ("owner_pid", "pid"),
                        ("owner_marker", "marker"))
)  # fmt: skip
"""The create's row, while it is still this worker's."""

_READ = f"""
SELECT {NOW},
    array(SELECT send_at FROM {TURNS_TABLE} WHERE request_id IS DISTINCT FROM %(id)s),
    (SELECT max(send_at) FROM {TURNS_TABLE} WHERE request_id = %(id)s),
    (SELECT state FROM {REQUESTS_TABLE} WHERE {_MINE})
"""

_TAKE = f"""
WITH req AS (
    UPDATE {REQUESTS_TABLE} SET created_at = %(send_at)s, state = %(state)s,
        lease_until = {NOW} + %(lease)s
    WHERE {_MINE} AND state IN ('{State.WAITING}', '{State.CREATING}')
    RETURNING id
),
pruned AS (
    DELETE FROM {TURNS_TABLE} WHERE send_at < %(now)s - %(kept)s
),
taken AS (
    INSERT INTO {TURNS_TABLE} (send_at, request_id)
    SELECT %(send_at)s, id FROM req WHERE %(new)s
),
moved AS (
    UPDATE {TURNS_TABLE} SET send_at = %(send_at)s
    WHERE request_id IN (SELECT id FROM req) AND NOT %(new)s
)
SELECT count(*) FROM req
"""
"""The row first (its lock before the turn's, as a worker settling it takes them), and the turn
only if the row was still this create's to send."""

GIVE_BACK = f"DELETE FROM {TURNS_TABLE} WHERE request_id = %s AND send_at > {NOW}"
"""A create refused before it was sent gives its turn back, if it has not begun."""


def take_turn(conn: psycopg.Connection[Any], request_id: int, rate: CreateRate) -> float:
    """Seconds until request ``request_id``'s turn (0.0: now), in one transaction. The create
    is sent at its turn, so that is when its row's "sent at" (``created_at``) starts."""
    owner = current_owner()
    mine = {"id": request_id, "host": HOST, "pid": owner.pid, "marker": owner.marker}
    conn.execute("BEGIN")
    try:
        locks.take(conn, locks.PACING)
        row = conn.execute(_READ, mine).fetchone()
        assert row is not None
        now, others, held, found = row
        send_at = next_turn(rate, now, others, held)
        state = row_state_at_turn(found, send_at, now)
        if send_at != held or state != found:
            params = {**mine, "now": now, "kept": rate.turns_kept_s, "send_at": send_at,
                      "new": held is None, "lease": LEASE_S, "state": state}  # fmt: skip
            taken = conn.execute(_TAKE, params).fetchone()
            if not taken or not taken[0]:  # settled since the read: not ours to send
                raise SettledWhileWaitingError()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return max(0.0, send_at - now)
