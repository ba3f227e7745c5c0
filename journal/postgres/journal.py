"""The shared journal: PostgreSQL, for fleets of workers on one API in One account.

Same rows (the model's), same order of writes and same guarantees as the SQLite journal, across
machines: a claim is a transaction holding the request's advisory lock (``claim``); a
``creating`` row is leased to its worker, and writes made after money moved never wait on the
database (``database``); creates are paced fleet-wide (``turns``); the schema moves by explicit
migrations that say which workers an upgrade leaves behind (``schema``).

The driver (psycopg 3) is imported with this package, which only ``open.open_journal`` imports.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from ...api import errors
from ...api.what import What
from .. import ledger
from ..identity import RequestIdentity
from ..model import (
    FILE_FAILURES,
    FILE_KEY,
    FILES,
    JournalEntry,
    Reservation,
    State,
    attempt_again,
    encode_urls,
    owner_columns,
    stored_url,
)
from ..owner import current_owner
from ..pacing import CreateRate
from ..store import SettledWhileWaitingError
from . import locks, rows, turns
from .claim import PgClaim, begin
from .database import Connection, Database
from .rows import HOST, NOW, REQUESTS_TABLE, SELECT, insert_parts, table, upsert


class PgJournal:
    """``PgJournal(url, rate)``: the journal in the PostgreSQL database at ``url``; thread-safe.

    Connects and brings the schema up to date at once, so a wrong URL or a database from a newer
    pack is reported before anything is paid for.
    """

    def __init__(self, url: str, rate: CreateRate | None = None) -> None:
        self.rate = rate
        self._db = Database(url)
        self.url = self._db.url

    @property
    def where(self) -> str:
        return self._db.where

    def __repr__(self) -> str:
        return f"PgJournal({self.url.display!r})"

    def __enter__(self) -> PgJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    # -- the claim ---------------------------------------------------------------------------------

    @contextmanager
    def claim(self, identity: RequestIdentity) -> Iterator[PgClaim]:
        """A transaction holding the advisory lock of ``identity`` (released at its end)."""
        doing = What.DOING_CHECK_PAID
        self._db.connect_first(doing)
        with self._db.lock:
            conn, latest = begin(self._db, doing, identity)
            claim = PgClaim(self._db, conn, identity, latest)
            try:
                yield claim
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    self._db.broken()
                self._drop_leases(claim.started)
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._db.broken()
                self._drop_leases(claim.started)
                raise self._db.unavailable(doing, exc) from None

    def _drop_leases(self, entry_ids: Iterable[int]) -> None:
        for entry_id in entry_ids:
            self._db.release(entry_id)

    # -- pacing ------------------------------------------------------------------------------------

    def create_folders(self) -> tuple[tuple[Path, str], ...]:
        """The database keeps the rows: no local folder to probe (the kept files' is)."""
        return ()

    def create_turn(self, entry: JournalEntry) -> float:
        """Take (once) the moment ``entry``'s create may go (``pacing``); seconds until then."""
        if self.rate is None:
            return 0.0
        try:
            with self._db.session(What.DOING_TAKE_TURN) as conn:
                return turns.take_turn(conn, entry.id, self.rate)
        except SettledWhileWaitingError:
            self._db.release(entry.id)  # another worker's to settle: no lease to renew
            raise

    # -- recording ---------------------------------------------------------------------------------

    def record_task_id(self, entry: JournalEntry, task_id: str) -> None:
        """The create answered; if the row is gone (a restored backup), it is written again."""
        self._db.release(entry.id)
        names, marks, params = insert_parts(
            {
                **attempt_again(entry, task_id),
                **owner_columns(current_owner()),
                "owner_host": HOST,
            },
            {"task_created_at": NOW, "updated_at": NOW},
        )
        self._db.write(
            "WITH updated AS ("
            f" UPDATE {REQUESTS_TABLE} SET task_id = %s, state = %s, task_created_at = {NOW},"
            f" updated_at = {NOW}, lease_until = NULL WHERE id = %s RETURNING id)"
            f" INSERT INTO {REQUESTS_TABLE} ({names}) SELECT {marks}"
            " WHERE NOT EXISTS (SELECT 1 FROM updated)",
            (task_id, State.QUEUED, entry.id, *params),
            task_id,
        )

    def mark(self, entry_id: int, state: str, error: str | None = None) -> None:
        self._db.release(entry_id)
        refunded = state in State.UNCHARGED
        self._db.write(
            f"UPDATE {REQUESTS_TABLE} SET state = %s, error = COALESCE(%s, error),"
            f" updated_at = {NOW}, lease_until = NULL,"
            " credits = CASE WHEN %s THEN 0 ELSE credits END WHERE id = %s",
            (state, error, refunded, entry_id),
        )
        if state == State.REJECTED:  # nothing was sent: give an unreached turn back
            self._db.write(turns.GIVE_BACK, (entry_id,))

    def record_state(
        self,
        task_id: str,
        state: str,
        *,
        result_urls: Sequence[str] | None = None,
        error: str | None = None,
    ) -> None:
        finished = state in State.FINISHED
        self._db.write(
            f"UPDATE {REQUESTS_TABLE} SET state = %s, result_urls = COALESCE(%s, result_urls),"
            f" error = %s, updated_at = {NOW},"
            f" finished_at = CASE WHEN %s THEN COALESCE(finished_at, {NOW}) ELSE finished_at END,"
            " credits = CASE WHEN %s THEN 0 ELSE credits END"
            f" WHERE id = (SELECT max(id) FROM {REQUESTS_TABLE} WHERE task_id = %s)",
            (state, encode_urls(result_urls), error, finished, state in State.UNCHARGED, task_id),
            task_id,
        )

    def record_loaded(self, task_id: str) -> JournalEntry:
        self._db.write(
            f"INSERT INTO {REQUESTS_TABLE} (task_id, state, credits, created_at, updated_at)"
            f" SELECT %s, %s, 0, {NOW}, {NOW} WHERE NOT EXISTS"
            f" (SELECT 1 FROM {REQUESTS_TABLE} WHERE task_id = %s)",
            (task_id, State.QUEUED, task_id),
            task_id,
        )
        entry = self.get(task_id)
        assert entry is not None
        return entry

    def record_file(
        self, task_id: str, index: int, path: str | os.PathLike[str], sha256: str, size: int,
        url: str | None,
    ) -> None:  # fmt: skip
        """The last worker to keep a file names its path; every worker checks its own copy by
        the shared sha256. A good copy clears the file's recorded failure (same round trip)."""
        sql, params = upsert(
            table(FILES.name),
            {
                "task_id": task_id, "idx": index, "path": str(path), "sha256": sha256,
                "size": size, "url": stored_url(url),
            },
            {"saved_at": NOW},
            FILE_KEY,
        )  # fmt: skip
        self._db.write(
            f"WITH cleared AS (DELETE FROM {table(FILE_FAILURES.name)}"
            f" WHERE task_id = %s AND idx = %s) {sql}",
            (task_id, index, *params),
            task_id,
        )

    def record_file_failure(self, task_id: str, index: int, reason: str, url: str | None) -> None:
        """Result file ``index`` was fetched but is not a good image: not kept, and why (shared,
        so every worker says which image is missing); a later good copy clears it."""
        sql, params = upsert(
            table(FILE_FAILURES.name),
            {
                "task_id": task_id, "idx": int(index), "reason": errors.redact(reason),
                "url": stored_url(url),
            },
            {"failed_at": NOW},
            FILE_KEY,
        )  # fmt: skip
        self._db.write(sql, params, task_id)

    def adopt_noted(self, notes: Callable[[], Iterable[Mapping[str, Any]]]) -> int:
        """A shared journal is never salvaged from a damaged file: nothing to adopt."""
        return 0

    # -- reading -----------------------------------------------------------------------------------

    def get(self, task_id: str) -> JournalEntry | None:
        return self._one(
            What.DOING_READ_TASK,
            "WHERE task_id = %s ORDER BY id DESC LIMIT 1",
            (task_id,),
        )

    def entry(self, entry_id: int) -> JournalEntry | None:
        return self._one(What.DOING_READ_TASK, "WHERE id = %s", (entry_id,))

    def latest(self, identity: RequestIdentity) -> JournalEntry | None:
        return self._one(
            What.DOING_READ_REQUEST,
            "WHERE identity = %s ORDER BY id DESC LIMIT 1",
            (identity.key,),
        )

    def recent(self, limit: int = 20) -> list[JournalEntry]:
        """The newest ``limit`` rows, newest first (the CLI's ``tasks`` view)."""
        return self.page(limit)

    def page(
        self, limit: int, offset: int = 0, *, with_rejected: bool = True
    ) -> list[JournalEntry]:
        """``limit`` rows after the newest ``offset``, newest first; reservations (nothing sent
        yet) are not rows to show, nor, without ``with_rejected``, refused attempts."""
        return self._many(
            What.DOING_LIST,
            "WHERE state <> ALL(%s) ORDER BY id DESC LIMIT %s OFFSET %s",
            (_hidden(with_rejected), int(limit), int(offset)),
        )

    def count(self, *, with_rejected: bool = True) -> int:
        found = self._db.read(
            What.DOING_COUNT,
            f"SELECT count(*) FROM {REQUESTS_TABLE} WHERE state <> ALL(%s)",
            (_hidden(with_rejected),),
        )
        return int(found[0][0])

    def uncertain(self) -> list[JournalEntry]:
        return self._many(
            What.DOING_LIST_UNCERTAIN, "WHERE state = %s ORDER BY id DESC", (State.UNCERTAIN,)
        )

    def _one(self, doing: What, where: str, params: tuple[Any, ...]) -> JournalEntry | None:
        found = self._many(doing, where, params)
        return found[0] if found else None

    def _many(self, doing: What, where: str, params: tuple[Any, ...]) -> list[JournalEntry]:
        return [rows.entry(row) for row in self._db.read(doing, f"{SELECT} {where}", params)]

    # -- the spend ledger: the whole fleet's spending, one lock for every check -------------------

    def spent(self, since: float, until: float | None = None) -> int:
        """Credits of the fleet's requests created in ``[since, until)`` (as on one machine):
        charged, in flight, uncertain and reserved by a live worker; failed and refused cost 0."""
        found = self._db.read(
            What.DOING_COUNT_SPENDING, rows.SPENT, rows.spent_params(since, until)
        )
        return int(found[0][0])

    def reserve(
        self, identities: Sequence[RequestIdentity], *, limit: int, since: float
    ) -> Reservation:
        """Set aside the credits of every request of a run that will need a create, or none
        (``ledger.reserve``).

        Under the identity locks of the run's requests (in lock order) and then the fleet's
        spend lock, so concurrent runs on any worker see each other's reservations. Reserved
        rows are leased like ``creating`` ones: a dead worker's reservation stops counting when
        its lease runs out.
        """
        keys = sorted({ident.key for ident in identities})
        with self._db.session(What.DOING_CHECK_LIMIT) as conn:
            conn.execute("BEGIN")
            try:
                reservation = _reserve(conn, identities, keys, limit, since)
                conn.execute("COMMIT" if reservation.granted else "ROLLBACK")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for entry in reservation.entries:
                self._db.lease(entry.id)
            return reservation

    def release(self, entry_ids: Sequence[int]) -> None:
        """Drop reservations no create took over (the run ended or gave up first)."""
        if not entry_ids:
            return
        self._drop_leases(entry_ids)
        self._db.write(
            f"DELETE FROM {REQUESTS_TABLE} WHERE state = %s AND id = ANY(%s)",
            (State.RESERVED, list(entry_ids)),
        )

    def resolve_uncertain(self, entry_id: int, task_id: str | None) -> JournalEntry | None:
        """An ``uncertain`` row gets the task id the user found (it was charged), or, with
        None, is marked as never created. None when no uncertain row has that id."""
        if task_id is None:
            sql = (
                f"UPDATE {REQUESTS_TABLE} SET state = %s, credits = 0, updated_at = {NOW},"
                " error = 'marked as not created by the user' WHERE id = %s AND state = %s"
                " RETURNING id"
            )
            params: tuple[Any, ...] = (State.REJECTED, entry_id, State.UNCERTAIN)
        else:
            sql = (
                f"UPDATE {REQUESTS_TABLE} SET task_id = %s, state = %s, task_created_at ="
                f" {NOW}, updated_at = {NOW}, error = NULL WHERE id = %s AND state = %s"
                " RETURNING id"
            )
            params = (task_id, State.QUEUED, entry_id, State.UNCERTAIN)
        changed = self._db.read(What.DOING_RESOLVE_UNCERTAIN, sql, params)
        return self.entry(entry_id) if changed else None


def _reserve(
    conn: Connection,
    identities: Sequence[RequestIdentity],
    keys: list[str],
    limit: int,
    since: float,
) -> Reservation:
    locks.take_identities(conn, keys)
    locks.take(conn, locks.SPEND)
    conn.execute(rows.DROP_DEAD_RESERVATIONS, (State.RESERVED,))
    return ledger.reserve(
        identities,
        latest=lambda key: rows.latest(conn, key),
        spent=lambda: rows.spent(conn, since),
        limit=limit,
        insert=lambda ident: rows.insert_attempt(conn, ident, State.RESERVED),
    )


def _hidden(with_rejected: bool) -> list[str]:
    """The states a listing leaves out: reservations always, refused attempts unless asked."""
    return [State.RESERVED] if with_rejected else [State.RESERVED, State.REJECTED]
