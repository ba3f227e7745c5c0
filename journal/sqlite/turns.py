"""This machine's create turns in SQLite (``pacing`` says what a turn is and when it begins).

Taken under the journal file's write lock (``BEGIN IMMEDIATE``), so every thread and process
using the journal file shares one queue, as a fleet does through PostgreSQL (``postgres.turns``).
"""

from __future__ import annotations

import sqlite3
import time

from ..model import State
from ..owner import current_owner
from ..pacing import CreateRate, next_turn, row_state_at_turn
from .rows import immediate

_TURNS = "SELECT request_id, send_at FROM create_turns"
_PRUNE = "DELETE FROM create_turns WHERE send_at < ?"
_GIVE_BACK = "DELETE FROM create_turns WHERE request_id = ? AND send_at > ?"
_TAKE = "INSERT INTO create_turns (send_at, request_id) VALUES (?, ?)"
_MOVE = "UPDATE create_turns SET send_at = ? WHERE request_id = ?"
_STATE = "SELECT state FROM requests WHERE id = ? AND owner_pid = ? AND owner_marker = ?"
_ROW = (
    "UPDATE requests SET created_at = ?, state = ? WHERE id = ?"
    f" AND state IN ('{State.WAITING}', '{State.CREATING}')"
)


def take_turn(conn: sqlite3.Connection, request_id: int, rate: CreateRate) -> float:
    """Seconds until request ``request_id``'s turn (0.0: now), taken once and moved earlier when
    a turn before it was given back. The create is sent at its turn, so that is when its row's
    "sent at" (``created_at``) starts: its owner is still sending it until well after then.
    The row is ``waiting`` until then, and ``creating`` in the transaction that says go."""
    owner = current_owner()
    with immediate(conn):
        now = time.time()
        found = conn.execute(_STATE, (request_id, owner.pid, owner.marker)).fetchone()
        conn.execute(_PRUNE, (now - rate.turns_kept_s,))
        held: float | None = None
        others = []
        for holder, send_at in conn.execute(_TURNS).fetchall():
            if holder == request_id:
                held = send_at if held is None else max(held, send_at)
            else:
                others.append(send_at)
        send_at = next_turn(rate, now, others, held)
        state = row_state_at_turn(found[0] if found else None, send_at, now)
        if held is None:
            conn.execute(_TAKE, (send_at, request_id))
        elif send_at < held:
            conn.execute(_MOVE, (send_at, request_id))
        if send_at != held or state != found[0]:
            conn.execute(_ROW, (send_at, state, request_id))
    return max(0.0, send_at - now)


def give_back(conn: sqlite3.Connection, request_id: int) -> None:
    """A create refused before it was sent gives its turn back, if the turn has not begun."""
    conn.execute(_GIVE_BACK, (request_id, time.time()))
