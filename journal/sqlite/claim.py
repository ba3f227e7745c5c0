"""What a caller may do while holding the SQLite journal's claim on one identity: inside one
``BEGIN IMMEDIATE`` transaction, so the look at the latest attempt, the limit check and the row
that says "a create is on its way" are one step for every thread and process."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from dataclasses import replace

from ..identity import RequestIdentity
from ..model import JournalEntry, State
from ..owner import current_owner
from . import rows, turns


class SqliteClaim:
    """The claim's transaction on ``conn``. A journal refused for paid work gives a claim that
    only reads (``writable=False``) and whose ``check_durable`` raises the refusal."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        identity: RequestIdentity,
        latest: JournalEntry | None,
        check_durable: Callable[[], None] | None = None,
        *,
        writable: bool = True,
    ) -> None:
        self._conn = conn
        self.identity = identity
        self.latest = latest
        self._check_durable = check_durable
        self._writable = writable

    def start_create(self) -> JournalEntry:
        """Write the identity row (state ``creating``) before the create request is sent.

        Raises ``StorageUnavailableError`` first if the journal could not remember the task
        (read-only, full, a newer pack's journal): then no create may be sent at all.
        """
        if self._check_durable is not None:
            self._check_durable()
        entry = rows.insert_attempt(self._conn, self.identity, State.CREATING)
        self.latest = entry
        return entry

    def spent(self, since: float) -> int:
        """The ledger inside this claim's transaction (so check and create are one step)."""
        if self._writable:  # a refused journal's claim only reads
            rows.drop_dead_reservations(self._conn)
        return rows.spent(self._conn, since, None)

    def take_reservation(self, reserved: JournalEntry) -> JournalEntry:
        """A run's reserved row becomes this create's ``creating`` row (already paid for in the
        ledger, so no limit check); whichever claim gets there first sends it. Fails closed
        like ``start_create``."""
        if self._check_durable is not None:
            self._check_durable()
        owner = current_owner()
        now = time.time()
        self._conn.execute(
            "UPDATE requests SET state = ?, owner_pid = ?, owner_marker = ?, created_at = ?,"
            " updated_at = ? WHERE id = ? AND state = ?",
            (State.CREATING, owner.pid, owner.marker, now, now, reserved.id, State.RESERVED),
        )
        entry = rows.latest(self._conn, self.identity.key)
        assert entry is not None and entry.id == reserved.id
        self.latest = entry
        return entry

    def settle_unsent(self, entry_id: int, error: str) -> None:
        """A ``waiting`` row whose process is gone: never sent, so ``rejected`` (0 credits) and
        its unreached turn given back. A journal refused for paid work raises its refusal (the
        create that would follow could not be sent either)."""
        if not self._writable and self._check_durable is not None:
            self._check_durable()
        settled = self._conn.execute(
            "UPDATE requests SET state = ?, error = ?, credits = 0, updated_at = ?"
            " WHERE id = ? AND state = ?",
            (State.REJECTED, error, time.time(), entry_id, State.WAITING),
        ).rowcount
        if settled:
            turns.give_back(self._conn, entry_id)
        self.latest = rows.latest(self._conn, self.identity.key)

    def mark_uncertain(self, entry_id: int, error: str) -> None:
        try:
            self._conn.execute(
                "UPDATE requests SET state = ?, error = ?, updated_at = ? WHERE id = ?",
                (State.UNCERTAIN, error, time.time(), entry_id),
            )
        except sqlite3.Error:
            if self._writable:
                raise
            if self.latest is not None and self.latest.id == entry_id:  # a read-only journal
                self.latest = replace(self.latest, state=State.UNCERTAIN, error=error)
            return
        self.latest = rows.latest(self._conn, self.identity.key)
