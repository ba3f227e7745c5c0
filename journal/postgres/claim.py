"""What a caller may do while holding the shared journal's claim on one identity: a transaction
holding that identity's advisory lock, so two workers with the same request see each other's
``creating`` row and make one create."""

from __future__ import annotations

import psycopg

from ...api.what import What
from ..identity import RequestIdentity
from ..model import JournalEntry, State
from ..owner import current_owner
from . import locks, rows
from .database import UNREACHABLE, Connection, Database
from .rows import COLUMNS, HOST, LEASE_S, NOW, REQUESTS_TABLE
from .turns import TURNS_TABLE

_SETTLE_UNSENT = f"""
WITH settled AS (
    UPDATE {REQUESTS_TABLE} SET state = %s, error = %s, credits = 0, updated_at = {NOW},
        lease_until = NULL
    WHERE id = %s AND state = %s
    RETURNING id
)
DELETE FROM {TURNS_TABLE} WHERE request_id IN (SELECT id FROM settled) AND send_at > {NOW}
"""
"""A ``waiting`` row whose worker's lease ran out is ``rejected`` and its unreached turn given
back, in one round trip; a row its worker moved on meanwhile is left alone."""


def begin(
    database: Database, doing: What, identity: RequestIdentity
) -> tuple[Connection, JournalEntry | None]:
    """The claim's transaction, with the identity's lock and its latest attempt. Under the
    database's lock."""
    for attempt in (1, 2):  # a connection the server dropped meanwhile gets one new try
        conn = database.connection(doing)
        try:
            conn.execute("BEGIN")
            locks.take_identity(conn, identity.key)
            return conn, rows.latest(conn, identity.key)
        except UNREACHABLE as exc:
            database.broken()
            if attempt == 2:
                raise database.unavailable(doing, exc) from None
        except psycopg.Error as exc:
            database.broken()
            raise database.unavailable(doing, exc) from None
    raise AssertionError("unreachable")


class PgClaim:
    """The claim's transaction on ``conn`` (see ``PgJournal.claim``)."""

    def __init__(
        self,
        database: Database,
        conn: Connection,
        identity: RequestIdentity,
        latest: JournalEntry | None,
    ) -> None:
        self._database = database
        self._conn = conn
        self.identity = identity
        self.latest = latest
        self.started: list[int] = []
        """Rows this claim leased: released again if the claim does not commit."""

    def start_create(self) -> JournalEntry:
        """The identity row (``creating``, leased to this worker) before the create is sent."""
        try:
            entry = rows.insert_attempt(self._conn, self.identity, State.CREATING)
        except psycopg.Error as exc:
            raise self._database.unavailable(What.DOING_RECORD_REQUEST, exc) from None
        return self._own(entry)

    def spent(self, since: float) -> int:
        """The fleet's ledger inside this claim's transaction, under the spend lock (taken after
        the identity lock), so the check and the create are one step for the whole fleet."""
        try:
            locks.take(self._conn, locks.SPEND)
            self._conn.execute(rows.DROP_DEAD_RESERVATIONS, (State.RESERVED,))
            return rows.spent(self._conn, since)
        except psycopg.Error as exc:
            raise self._database.unavailable(What.DOING_CHECK_LIMIT, exc) from None

    def take_reservation(self, reserved: JournalEntry) -> JournalEntry:
        """A run's reserved row becomes this create's ``creating`` row (already counted)."""
        owner = current_owner()
        try:
            row = self._conn.execute(
                f"UPDATE {REQUESTS_TABLE} SET state = %s, owner_host = %s, owner_pid = %s,"
                f" owner_marker = %s, created_at = {NOW}, updated_at = {NOW},"
                f" lease_until = {NOW} + %s WHERE id = %s AND state = %s RETURNING {COLUMNS}",
                (
                    State.CREATING, HOST, owner.pid, owner.marker, LEASE_S, reserved.id,
                    State.RESERVED,
                ),
            ).fetchone()  # fmt: skip
        except psycopg.Error as exc:
            raise self._database.unavailable(What.DOING_TAKE_RESERVED, exc) from None
        assert row is not None, "a reserved row vanished under its identity lock"
        return self._own(rows.entry(row))

    def _own(self, entry: JournalEntry) -> JournalEntry:
        self.started.append(entry.id)
        self._database.lease(entry.id)
        self.latest = entry
        return entry

    def settle_unsent(self, entry_id: int, error: str) -> None:
        """A ``waiting`` row whose worker is gone (its lease ran out) was never sent: settled,
        conditionally, so a worker whose turn came meanwhile keeps its row (and is waited for)."""
        try:
            self._conn.execute(_SETTLE_UNSENT, (State.REJECTED, error, entry_id, State.WAITING))
            self.latest = rows.latest(self._conn, self.identity.key)
        except psycopg.Error as exc:
            raise self._database.unavailable(What.DOING_SETTLE_UNSENT, exc) from None

    def mark_uncertain(self, entry_id: int, error: str) -> None:
        try:
            self._conn.execute(
                f"UPDATE {REQUESTS_TABLE} SET state = %s, error = %s, updated_at = {NOW},"
                " lease_until = NULL WHERE id = %s",
                (State.UNCERTAIN, error, entry_id),
            )
            self.latest = rows.latest(self._conn, self.identity.key)
        except psycopg.Error as exc:
            raise self._database.unavailable(What.DOING_RECORD_UNCERTAIN, exc) from None
