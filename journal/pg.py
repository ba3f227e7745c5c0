"""The shared journal: PostgreSQL, for fleets of workers on one API in One account.

Same rows, same order of writes and same guarantees as the SQLite journal (``db.py``), across
machines:

* a claim is a transaction holding ``pg_advisory_xact_lock`` on the request's identity, so two
  workers with the same request see each other's ``creating`` row and make one create;
* a ``creating`` row carries a lease (owner host, pid, start marker, ``lease_until``) that a
  background thread renews while the create is on its way: a worker on another host cannot be
  checked by pid, so when the lease runs out the row counts as abandoned and becomes
  ``uncertain``, as a dead process's row does on one machine;
* creates are paced fleet-wide: each one reserves a send time in ``create_turns`` so that no
  window of ``rate.window_s`` holds more than ``rate.creates`` (plus a safety margin), first come
  first served, one round trip per create;
* a write that cannot reach the database after the create was sent (task id, states, files) is
  kept in memory, in order, and written the moment the database answers again; a claim (the step
  before any money moves) never proceeds without the database: fail closed;
* no connection is ever made while holding the lock the writes need: a silent database host
  (connect timeout) must not stall a paid task's polling. Writes only queue while the database
  is away; the heartbeat thread reconnects and saves them, reads connect before taking the lock.

Every timestamp comes from the database's clock, and every row read carries that clock's time
(``JournalEntry.read_at``) for the ages the runner works out, so a fleet's hosts need not agree
on the time.
All SQL of this backend lives in ``PgJournal`` and ``PgClaim``: one class to extend. The driver
(psycopg 3) is imported with this module, which only ``open.open_journal`` imports.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ..api import errors
from ..api.env import JOURNAL_URL_ENV
from ..api.redaction import safe_url
from .db import FailedFile, JournalEntry, JournalFile, Reservation, State
from .identity import RequestIdentity
from .owner import current_owner
from .pacing import CreateRate
from .store import JournalUnavailableError, JournalVersionError
from .url import DatabaseUrl

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""The schema this pack writes (the highest migration below)."""
OLDEST_COMPATIBLE = 1
"""The oldest schema version a pack may have and still share a journal of ``SCHEMA_VERSION``:
raise it with a migration that older packs would misuse, and they will refuse to run."""
WORKERS_SEEN_S = 86400.0
"""Workers that opened the journal this recently are named when an upgrade leaves them behind."""
LEASE_S = 10.0
"""How long a ``creating`` row stays owned without a renewal (a dead worker's create becomes
``uncertain`` this long after its last heartbeat)."""
HEARTBEAT_S = 2.0
"""How often leases are renewed and writes kept through an outage are retried."""
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000
PACING_MARGIN_S = 1.0
"""Added to the pacing window: a create reaches the API a little after its turn begins."""
LOCK_SPACE = 0x47524F4B  # "GROK": the first key of every advisory lock this pack takes
_PACING_LOCK = 1
_MIGRATION_LOCK = 2
_SPEND_LOCK = 3
"""Taken after any identity locks (never before one), so the fleet's ledger checks cannot
deadlock with its claims."""

_NOW = "extract(epoch FROM clock_timestamp())::float8"

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
        # A result file that was fetched but is not a usable image, and why (as db.py's
        # schema 2): reused results say which image is missing instead of fetching it again.
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

_COLUMNS = (
    "id, identity, model, prompt, aspect_ratio, seed, batch_index, source_task_id, task_id,"
    " state, credits, result_urls, error, created_at, task_created_at, updated_at, finished_at,"
    f" owner_host, owner_pid, owner_marker, COALESCE(lease_until > {_NOW}, FALSE),"
    # The kept files ride along in the same round trip.
    " (SELECT json_agg(json_build_array(f.idx, f.path, f.sha256, f.size, f.url, f.saved_at)"
    " ORDER BY f.idx) FROM grok_imagine_files f WHERE f.task_id = grok_imagine_requests.task_id),"
    " (SELECT json_agg(json_build_array(x.idx, x.reason, x.url, x.failed_at) ORDER BY x.idx)"
    " FROM grok_imagine_file_failures x WHERE x.task_id = grok_imagine_requests.task_id),"
    f" {_NOW}"  # the database's clock, for every age computed from this row
)

_TAKE_TURN = f"""
WITH clock AS (SELECT {_NOW} AS now),
held AS (SELECT send_at FROM grok_imagine_create_turns WHERE request_id = %(id)s),
nth AS (
    SELECT send_at FROM grok_imagine_create_turns ORDER BY send_at DESC OFFSET %(skip)s LIMIT 1
),
slot AS (
    SELECT COALESCE(
        (SELECT max(send_at) FROM held), GREATEST(now, (SELECT send_at FROM nth) + %(window)s)
    ) AS send_at, now, NOT EXISTS (SELECT 1 FROM held) AS new FROM clock
),
pruned AS (
    DELETE FROM grok_imagine_create_turns
    WHERE send_at < (SELECT now FROM clock) - 2 * %(window)s
),
taken AS (
    INSERT INTO grok_imagine_create_turns (send_at, request_id)
    SELECT send_at, %(id)s FROM slot WHERE new
),
sent_then AS (
    UPDATE grok_imagine_requests SET created_at = slot.send_at, lease_until = slot.now + %(lease)s
    FROM slot WHERE id = %(id)s AND slot.new
)
SELECT send_at, now FROM slot
"""
"""One round trip under the pacing lock: prune old turns, reserve this request's (once)."""

_UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)
"""Errors that say "the database is not there right now" (as opposed to a refused statement)."""


@dataclass(frozen=True)
class FleetOwner:
    """The worker holding a ``creating`` row: alive while its lease (renewed by its heartbeat)
    has not run out, by the database's clock; pids mean nothing across hosts."""

    host: str
    pid: int
    marker: str
    lease_live: bool

    def is_current(self) -> bool:
        me = current_owner()
        return self.host == _HOST and self.pid == me.pid and self.marker == me.marker

    def is_alive(self) -> bool:
        return self.is_current() or self.lease_live


_HOST = socket.gethostname()


class PgJournal:
    """``PgJournal(url, rate)``: the journal in the PostgreSQL database at ``url``; thread-safe.

    Connects and brings the schema up to date at once, so a wrong URL or a database from a newer
    pack is reported before anything is paid for.
    """

    def __init__(self, url: str, rate: CreateRate | None = None) -> None:
        self.url = DatabaseUrl.parse(url)
        self._dsn = url
        self.rate = rate
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pending: list[tuple[str, tuple[Any, ...], str | None]] = []
        """Writes waiting through an outage, in order: (statement, parameters, task id)."""
        self._leased: set[int] = set()
        self._warned_outage = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        """Set to make the heartbeat reconnect and save queued writes now, not at its next beat."""
        self._beat: threading.Thread | None = None
        self._beat_conn: psycopg.Connection[Any] | None = None
        if self.url.password:
            errors.remember_secret(self.url.password)  # masked out of every message from now on
        with self._lock:
            self._connection("open")

    @property
    def where(self) -> str:
        return self.url.display

    def __repr__(self) -> str:
        return f"PgJournal({self.url.display!r})"

    def __enter__(self) -> PgJournal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT_S + CONNECT_TIMEOUT_S)
        if self._pending:
            self._reconnect_outside_the_lock()
        with self._lock:
            if self._pending:
                self._flush_quietly()
            if self._pending:
                tasks = sorted({task for _, _, task in self._pending if task})
                logger.warning(
                    "%d journal write(s) for %s could not be saved before closing (the database "
                    "stayed unreachable); tasks concerned: %s. Their images can be fetched free "
                    "with Grok Load Task or `grok-imagine task ID`.",
                    len(self._pending),
                    self.where,
                    ", ".join(tasks) or "none",
                )
            for conn in (self._conn, self._beat_conn):
                if conn is not None:
                    conn.close()
            self._conn = self._beat_conn = None

    # -- connecting, the schema, failing closed ---------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(
            self._dsn,
            autocommit=True,  # transactions are explicit (BEGIN ... COMMIT), as in db.py
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="grok-imagine",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )
        return conn

    def _connection(self, doing: str) -> psycopg.Connection[Any]:
        """The open connection (made and checked on first use or after a failure) with every
        write kept through an outage already saved; ``JournalUnavailableError`` otherwise."""
        if self._conn is None or self._conn.closed:
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                raise self._unavailable(doing, exc) from None
            try:
                _prepare_schema(conn, self.where)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, psycopg.Error):
                    raise self._unavailable(doing, exc) from None
                raise
            self._conn = conn
        if self._pending:
            self._flush(self._conn, doing)
        return self._conn

    def _broken(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def _unavailable(self, doing: str, exc: BaseException) -> JournalUnavailableError:
        reason = errors.redact(errors.exception_line(exc), (self.url.password or "",))
        if isinstance(exc, _UNREACHABLE):
            what, fix = "cannot be reached", "Start the database (or correct"
        else:
            what, fix = "cannot be written", "Give its user write access (or correct"
        return JournalUnavailableError(
            f"The shared task journal ({self.url.describe()}) {what} while trying to {doing}: "
            f"{reason.rstrip('.?')}. No new task was created, so nothing was charged. {fix} "
            f"{JOURNAL_URL_ENV}; unset it to use this machine's own journal).",
            where=self.where,
            advice=errors.Advice.RETRY,
        )

    def _connect_first(self, doing: str) -> None:
        """Before taking the lock: connect if there is no open connection, so a slow or silent
        host keeps only this caller waiting, never the paid tasks' writes."""
        if self._conn is None or self._conn.closed:
            failure = self._reconnect_outside_the_lock()
            if failure is not None:
                raise self._unavailable(doing, failure) from None

    def _read(self, doing: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):  # a connection the server dropped meanwhile gets one new try
            self._connect_first(doing)
            with self._lock:
                conn = self._connection(doing)
                try:
                    return conn.execute(sql, params).fetchall()
                except _UNREACHABLE as exc:
                    self._broken()
                    if attempt == 2:
                        raise self._unavailable(doing, exc) from None
                except psycopg.Error as exc:
                    raise self._unavailable(doing, exc) from None
        raise AssertionError("unreachable")

    def _write(self, sql: str, params: tuple[Any, ...], task_id: str | None = None) -> None:
        """A write made after money moved: never lost to an outage, never raising for one, and
        never waiting on the database: saved now on the open connection, or queued.

        Writes wait in order in memory while the database is away (or the connection was
        dropped) and are saved by the heartbeat thread once it has reconnected outside the lock,
        or by the next read that reaches the database, before that read does anything else.
        """
        with self._lock:
            self._pending.append((sql, params, task_id))
            if len(self._pending) > 1 or self._conn is None or self._conn.closed:
                self._wake.set()  # queued behind others, or no connection: the heartbeat's job
                self._start_heartbeat()
                return
            try:
                self._flush(self._conn, "save a task's progress")
            except JournalUnavailableError:
                self._wake.set()  # a dropped connection (a restart) is reconnected at once
                self._start_heartbeat()

    def _flush(self, conn: psycopg.Connection[Any], doing: str) -> None:
        while self._pending:
            sql, params, _ = self._pending[0]
            try:
                conn.execute(sql, params)
            except _UNREACHABLE as exc:
                self._broken()
                raise self._unavailable(doing, exc) from None
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                # This statement will be refused every time: drop it, say so, keep the others.
                logger.warning(
                    "a journal write for %s was refused and dropped: %s", self.where, exc
                )
            except psycopg.Error as exc:  # read-only, no privilege: keep it for later
                raise self._unavailable(doing, exc) from None
            self._pending.pop(0)
        if self._warned_outage:
            self._warned_outage = False
            logger.warning("the shared task journal %s answers again; all writes saved", self.where)

    def _flush_quietly(self) -> None:
        """Save the queued writes on the open connection, if any; never connect (under the lock)."""
        if self._conn is None or self._conn.closed:
            return
        try:
            self._flush(self._conn, "save a task's progress")
        except JournalUnavailableError:
            pass

    # -- leases: a creating row stays owned while its worker lives --------------------------------

    def _start_heartbeat(self) -> None:
        if self._beat is None and not self._stop.is_set():
            self._beat = threading.Thread(
                target=self._heartbeat, name="grok-journal-heartbeat", daemon=True
            )
            self._beat.start()

    def _heartbeat(self) -> None:
        while True:
            self._wake.wait(HEARTBEAT_S)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                leased = list(self._leased)
                waiting = bool(self._pending) and (self._conn is None or self._conn.closed)
            if waiting:
                self._reconnect_outside_the_lock()
            with self._lock:
                if self._pending:
                    self._flush_quietly()
            if self._pending:
                self._warn_outage()
            if leased:
                self._renew(leased)

    def _warn_outage(self) -> None:
        with self._lock:
            if self._warned_outage or not self._pending:
                return
            self._warned_outage = True
        logger.warning(
            "The shared task journal (%s) cannot be reached; tasks already paid for go on and "
            "their journal writes wait in memory until it answers again. No new task is created "
            "until then.",
            self.url.describe(),
        )

    def _reconnect_outside_the_lock(self) -> BaseException | None:
        """Wait on a slow or dead host here, not under the lock the workers' writes need; the
        new connection is installed unless another thread got one first. The failure, if any."""
        try:
            conn = self._connect()
        except psycopg.Error as exc:
            return exc
        try:
            _prepare_schema(conn, self.where)
        except (psycopg.Error, JournalUnavailableError) as exc:
            conn.close()
            return exc
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = conn
                return None
        conn.close()
        return None

    def _renew(self, leased: list[int]) -> None:
        """On a connection of its own: a slow claim on the main one must not starve a lease."""
        try:
            if self._beat_conn is None or self._beat_conn.closed:
                self._beat_conn = self._connect()
            self._beat_conn.execute(
                f"UPDATE grok_imagine_requests SET lease_until = {_NOW} + %s"
                " WHERE id = ANY(%s) AND state IN (%s, %s)",
                (LEASE_S, leased, State.CREATING, State.RESERVED),
            )
        except psycopg.Error:
            if self._beat_conn is not None:
                self._beat_conn.close()
            self._beat_conn = None  # the lease may run out: others then see an uncertain create

    def _release(self, entry_id: int) -> None:
        with self._lock:
            self._leased.discard(entry_id)

    # -- the claim ---------------------------------------------------------------------------------

    @contextmanager
    def claim(self, identity: RequestIdentity) -> Iterator[PgClaim]:
        """A transaction holding the advisory lock of ``identity`` (released at its end)."""
        doing = "check whether this request was already paid for"
        self._connect_first(doing)
        with self._lock:
            conn, latest = self._begin_claim(doing, identity)
            claim = PgClaim(self, conn, identity, latest)
            try:
                yield claim
            except BaseException:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    self._broken()
                for entry_id in claim.started:
                    self._leased.discard(entry_id)
                raise
            try:
                conn.execute("COMMIT")
            except psycopg.Error as exc:
                self._broken()
                for entry_id in claim.started:
                    self._leased.discard(entry_id)
                raise self._unavailable(doing, exc) from None

    def _begin_claim(
        self, doing: str, identity: RequestIdentity
    ) -> tuple[psycopg.Connection[Any], JournalEntry | None]:
        for attempt in (1, 2):  # a connection the server dropped meanwhile gets one new try
            conn = self._connection(doing)
            try:
                conn.execute("BEGIN")
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_SPACE, identity.key)
                )
                return conn, _latest(conn, identity.key)
            except _UNREACHABLE as exc:
                self._broken()
                if attempt == 2:
                    raise self._unavailable(doing, exc) from None
            except psycopg.Error as exc:
                self._broken()
                raise self._unavailable(doing, exc) from None
        raise AssertionError("unreachable")

    # -- pacing ------------------------------------------------------------------------------------

    def create_folders(self) -> tuple[tuple[Path, str], ...]:
        """The database keeps the rows: no local folder to probe (the kept files' is)."""
        return ()

    def create_turn(self, entry: JournalEntry) -> float:
        """Reserve (once) the moment ``entry``'s create may go; seconds until then (0.0: now).

        The reservation is the earliest time at which the last ``rate.creates`` reservations,
        this one included, fit in one window: first come, first served, no polling herd. The
        create is sent at its turn, so that is when its row's "sent at" (``created_at``) starts.
        """
        if self.rate is None:
            return 0.0
        doing = "take a turn to create a task"
        self._connect_first(doing)
        with self._lock:
            conn = self._connection(doing)
            try:
                conn.execute("BEGIN")
                try:
                    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, _PACING_LOCK))
                    send_at, now = conn.execute(
                        _TAKE_TURN,
                        {
                            "id": entry.id,
                            "skip": self.rate.creates - 1,
                            "window": self.rate.window_s + PACING_MARGIN_S,
                            "lease": LEASE_S,
                        },
                    ).fetchone()
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except psycopg.Error as exc:
                self._broken()
                raise self._unavailable(doing, exc) from None
        return max(0.0, send_at - now)

    # -- recording ---------------------------------------------------------------------------------

    def record_task_id(self, entry: JournalEntry, task_id: str) -> None:
        """The create answered; if the row is gone (a restored backup), it is written again."""
        self._release(entry.id)
        owner = current_owner()
        self._write(
            "WITH updated AS ("
            f" UPDATE grok_imagine_requests SET task_id = %s, state = %s, task_created_at = {_NOW},"
            f" updated_at = {_NOW}, lease_until = NULL WHERE id = %s RETURNING id)"
            " INSERT INTO grok_imagine_requests (identity, model, prompt, aspect_ratio, seed,"
            " batch_index, source_task_id, task_id, state, credits, created_at, task_created_at,"
            " updated_at, owner_host, owner_pid, owner_marker)"
            f" SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, {_NOW}, {_NOW}, %s, %s, %s"
            " WHERE NOT EXISTS (SELECT 1 FROM updated)",
            (
                task_id, State.QUEUED, entry.id,
                entry.identity, entry.model, entry.prompt, entry.aspect_ratio, entry.seed,
                entry.index, entry.source_task_id, task_id, State.QUEUED, entry.credits,
                entry.created_at, _HOST, owner.pid, owner.marker,
            ),
            task_id,
        )  # fmt: skip

    def mark(self, entry_id: int, state: str, error: str | None = None) -> None:
        self._release(entry_id)
        refunded = state in State.UNCHARGED
        self._write(
            "UPDATE grok_imagine_requests SET state = %s, error = COALESCE(%s, error),"
            f" updated_at = {_NOW}, lease_until = NULL,"
            " credits = CASE WHEN %s THEN 0 ELSE credits END WHERE id = %s",
            (state, error, refunded, entry_id),
        )
        if state == State.REJECTED:  # nothing was sent: give an unreached turn back
            self._write(
                f"DELETE FROM grok_imagine_create_turns WHERE request_id = %s AND send_at > {_NOW}",
                (entry_id,),
            )

    def record_state(
        self,
        task_id: str,
        state: str,
        *,
        result_urls: Sequence[str] | None = None,
        error: str | None = None,
    ) -> None:
        urls = None if result_urls is None else json.dumps([safe_url(u) for u in result_urls])
        finished = state in State.FINISHED
        self._write(
            "UPDATE grok_imagine_requests SET state = %s, result_urls = COALESCE(%s, result_urls),"
            f" error = %s, updated_at = {_NOW},"
            f" finished_at = CASE WHEN %s THEN COALESCE(finished_at, {_NOW}) ELSE finished_at END,"
            " credits = CASE WHEN %s THEN 0 ELSE credits END"
            " WHERE id = (SELECT max(id) FROM grok_imagine_requests WHERE task_id = %s)",
            (state, urls, error, finished, state in State.UNCHARGED, task_id),
            task_id,
        )

    def record_loaded(self, task_id: str) -> JournalEntry:
        self._write(
            "INSERT INTO grok_imagine_requests (task_id, state, credits, created_at, updated_at)"
            f" SELECT %s, %s, 0, {_NOW}, {_NOW} WHERE NOT EXISTS"
            " (SELECT 1 FROM grok_imagine_requests WHERE task_id = %s)",
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
        self._write(
            "WITH cleared AS (DELETE FROM grok_imagine_file_failures"
            " WHERE task_id = %s AND idx = %s)"
            " INSERT INTO grok_imagine_files (task_id, idx, path, sha256, size, url, saved_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s, {_NOW}) ON CONFLICT (task_id, idx) DO UPDATE SET"
            " path = EXCLUDED.path, sha256 = EXCLUDED.sha256, size = EXCLUDED.size,"
            " url = EXCLUDED.url, saved_at = EXCLUDED.saved_at",
            (task_id, index, task_id, index, str(path), sha256, size, _safe(url)),
            task_id,
        )

    # -- reading -----------------------------------------------------------------------------------

    def record_file_failure(self, task_id: str, index: int, reason: str, url: str | None) -> None:
        """Result file ``index`` was fetched but is not a good image: not kept, and why (shared,
        so every worker says which image is missing); a later good copy clears it."""
        self._write(
            "INSERT INTO grok_imagine_file_failures (task_id, idx, reason, url, failed_at)"
            f" VALUES (%s, %s, %s, %s, {_NOW}) ON CONFLICT (task_id, idx) DO UPDATE SET"
            " reason = EXCLUDED.reason, url = EXCLUDED.url, failed_at = EXCLUDED.failed_at",
            (task_id, int(index), errors.redact(reason), _safe(url)),
            task_id,
        )

    def adopt_noted(self, notes: Callable[[], Iterable[Mapping[str, Any]]]) -> int:
        """A shared journal is never salvaged from a damaged file: nothing to adopt."""
        return 0

    def get(self, task_id: str) -> JournalEntry | None:
        return self._one(
            "read a task from the journal",
            f"SELECT {_COLUMNS} FROM grok_imagine_requests WHERE task_id = %s"
            " ORDER BY id DESC LIMIT 1",
            (task_id,),
        )

    def entry(self, entry_id: int) -> JournalEntry | None:
        return self._one(
            "read a task from the journal",
            f"SELECT {_COLUMNS} FROM grok_imagine_requests WHERE id = %s",
            (entry_id,),
        )

    def latest(self, identity: RequestIdentity) -> JournalEntry | None:
        return self._one(
            "read a request from the journal",
            f"SELECT {_COLUMNS} FROM grok_imagine_requests WHERE identity = %s"
            " ORDER BY id DESC LIMIT 1",
            (identity.key,),
        )

    def recent(self, limit: int = 20) -> list[JournalEntry]:
        """The newest ``limit`` rows, newest first (the CLI's ``tasks`` view)."""
        return self.page(limit)

    def page(self, limit: int, offset: int = 0) -> list[JournalEntry]:
        """``limit`` rows after the newest ``offset``, newest first; reservations (nothing sent
        yet) are not rows to show."""
        return self._many(
            "list the journal",
            f"SELECT {_COLUMNS} FROM grok_imagine_requests WHERE state != %s"
            " ORDER BY id DESC LIMIT %s OFFSET %s",
            (State.RESERVED, int(limit), int(offset)),
        )

    def count(self) -> int:
        rows = self._read(
            "count the journal",
            "SELECT count(*) FROM grok_imagine_requests WHERE state != %s",
            (State.RESERVED,),
        )
        return int(rows[0][0])

    def uncertain(self) -> list[JournalEntry]:
        return self._many(
            "list uncertain creates",
            f"SELECT {_COLUMNS} FROM grok_imagine_requests WHERE state = %s ORDER BY id DESC",
            (State.UNCERTAIN,),
        )

    # -- the spend ledger: the whole fleet's spending, one lock for every check -------------------

    def spent(self, since: float, until: float | None = None) -> int:
        """Credits of the fleet's requests created in ``[since, until)`` (see ``db.Journal``):
        charged, in flight, uncertain and reserved by a live worker; failed and refused cost 0."""
        rows = self._read("count today's spending", _SPENT, _spent_params(since, until))
        return int(rows[0][0])

    def reserve(
        self, identities: Sequence[RequestIdentity], *, limit: int, since: float
    ) -> Reservation:
        """Set aside the credits of every request of a run that will need a create, or none.

        Under the identity locks of the run's requests (in lock order) and then the fleet's
        spend lock, so concurrent runs on any worker see each other's reservations. Reserved
        rows are leased like ``creating`` ones: a dead worker's reservation stops counting when
        its lease runs out.
        """
        doing = "check the daily credit limit"
        keys = sorted({ident.key for ident in identities})
        self._connect_first(doing)
        with self._lock:
            conn = self._connection(doing)
            try:
                conn.execute("BEGIN")
                try:
                    reservation = self._reserve(conn, identities, keys, limit, since)
                    conn.execute("COMMIT" if reservation.granted else "ROLLBACK")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except psycopg.Error as exc:
                self._broken()
                raise self._unavailable(doing, exc) from None
            for entry in reservation.entries:
                self._leased.add(entry.id)
            if reservation.entries:
                self._start_heartbeat()
            return reservation

    def _reserve(
        self,
        conn: psycopg.Connection[Any],
        identities: Sequence[RequestIdentity],
        keys: list[str],
        limit: int,
        since: float,
    ) -> Reservation:
        for (lock,) in conn.execute(
            "SELECT DISTINCT hashtext(k) AS h FROM unnest(%s::text[]) AS k ORDER BY h", (keys,)
        ).fetchall():
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, lock))
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, _SPEND_LOCK))
        conn.execute(_DROP_DEAD_RESERVATIONS, (State.RESERVED,))
        needed: dict[str, RequestIdentity] = {}
        for ident in identities:
            latest = _latest(conn, ident.key)
            if latest is None or latest.state in State.UNCHARGED:
                needed.setdefault(ident.key, ident)
        need = sum(ident.credits for ident in needed.values())
        spent = int(conn.execute(_SPENT, _spent_params(since, None)).fetchone()[0])
        if need and spent + need > limit:
            return Reservation(spent, need, (), granted=False)
        entries = tuple(_insert(conn, ident, State.RESERVED) for ident in needed.values())
        return Reservation(spent, need, entries, granted=True)

    def release(self, entry_ids: Sequence[int]) -> None:
        """Drop reservations no create took over (the run ended or gave up first)."""
        if not entry_ids:
            return
        with self._lock:
            for entry_id in entry_ids:
                self._leased.discard(entry_id)
        self._write(
            "DELETE FROM grok_imagine_requests WHERE state = %s AND id = ANY(%s)",
            (State.RESERVED, list(entry_ids)),
        )

    def resolve_uncertain(self, entry_id: int, task_id: str | None) -> JournalEntry | None:
        """An ``uncertain`` row gets the task id the user found (it was charged), or, with
        None, is marked as never created. None when no uncertain row has that id."""
        if task_id is None:
            sql = (
                f"UPDATE grok_imagine_requests SET state = %s, credits = 0, updated_at = {_NOW},"
                " error = 'marked as not created by the user' WHERE id = %s AND state = %s"
                " RETURNING id"
            )
            params: tuple[Any, ...] = (State.REJECTED, entry_id, State.UNCERTAIN)
        else:
            sql = (
                f"UPDATE grok_imagine_requests SET task_id = %s, state = %s, task_created_at ="
                f" {_NOW}, updated_at = {_NOW}, error = NULL WHERE id = %s AND state = %s"
                " RETURNING id"
            )
            params = (task_id, State.QUEUED, entry_id, State.UNCERTAIN)
        changed = self._read("resolve an uncertain create", sql, params)
        return self.entry(entry_id) if changed else None

    def _one(self, doing: str, sql: str, params: tuple[Any, ...]) -> JournalEntry | None:
        found = self._many(doing, sql, params)
        return found[0] if found else None

    def _many(self, doing: str, sql: str, params: tuple[Any, ...]) -> list[JournalEntry]:
        return [_entry(row) for row in self._read(doing, sql, params)]


class PgClaim:
    """What a caller may do while holding the claim on one identity (inside its transaction)."""

    def __init__(
        self,
        journal: PgJournal,
        conn: psycopg.Connection[Any],
        identity: RequestIdentity,
        latest: JournalEntry | None,
    ) -> None:
        self._journal = journal
        self._conn = conn
        self.identity = identity
        self.latest = latest
        self.started: list[int] = []

    def start_create(self) -> JournalEntry:
        """The identity row (``creating``, leased to this worker) before the create is sent."""
        try:
            entry = _insert(self._conn, self.identity, State.CREATING)
        except psycopg.Error as exc:
            raise self._journal._unavailable("record the request before creating it", exc) from None
        return self._own(entry)

    def spent(self, since: float) -> int:
        """The fleet's ledger inside this claim's transaction, under the spend lock (taken after
        the identity lock), so the check and the create are one step for the whole fleet."""
        try:
            self._conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, _SPEND_LOCK))
            self._conn.execute(_DROP_DEAD_RESERVATIONS, (State.RESERVED,))
            return int(self._conn.execute(_SPENT, _spent_params(since, None)).fetchone()[0])
        except psycopg.Error as exc:
            raise self._journal._unavailable("check the daily credit limit", exc) from None

    def take_reservation(self, reserved: JournalEntry) -> JournalEntry:
        """A run's reserved row becomes this create's ``creating`` row (already counted)."""
        owner = current_owner()
        try:
            row = self._conn.execute(
                f"UPDATE grok_imagine_requests SET state = %s, owner_host = %s, owner_pid = %s,"
                f" owner_marker = %s, created_at = {_NOW}, updated_at = {_NOW},"
                f" lease_until = {_NOW} + %s WHERE id = %s AND state = %s RETURNING {_COLUMNS}",
                (
                    State.CREATING, _HOST, owner.pid, owner.marker, LEASE_S, reserved.id,
                    State.RESERVED,
                ),
            ).fetchone()  # fmt: skip
        except psycopg.Error as exc:
            raise self._journal._unavailable("take a reserved create", exc) from None
        assert row is not None, "a reserved row vanished under its identity lock"
        return self._own(_entry(row))

    def _own(self, entry: JournalEntry) -> JournalEntry:
        self.started.append(entry.id)
        self._journal._leased.add(entry.id)
        self._journal._start_heartbeat()
        self.latest = entry
        return entry

    def mark_uncertain(self, entry_id: int, error: str) -> None:
        try:
            self._conn.execute(
                f"UPDATE grok_imagine_requests SET state = %s, error = %s, updated_at = {_NOW},"
                " lease_until = NULL WHERE id = %s",
                (State.UNCERTAIN, error, entry_id),
            )
            self.latest = _latest(self._conn, self.identity.key)
        except psycopg.Error as exc:
            raise self._journal._unavailable("record an uncertain create", exc) from None


def _prepare_schema(conn: psycopg.Connection[Any], where: str) -> None:
    """Bring the schema to ``SCHEMA_VERSION`` (one worker at a time), or refuse a newer one that
    this pack cannot use; then say which schema this worker writes."""
    conn.execute("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_SPACE, _MIGRATION_LOCK))
        if not _table_exists(conn, "grok_imagine_schema"):
            conn.execute(_SCHEMA_TABLE)
        row = conn.execute("SELECT version, oldest_compatible FROM grok_imagine_schema").fetchone()
        version, oldest = (0, 0) if row is None else row
        if version > SCHEMA_VERSION and oldest > SCHEMA_VERSION:
            raise JournalVersionError(
                f"The shared task journal ({where}) was upgraded to schema version {version} "
                f"by a newer Grok Imagine pack, which needs every worker at schema {oldest} "
                f"or later; this pack writes version {SCHEMA_VERSION}. Update the Grok "
                "Imagine pack on this worker. No request was sent.",
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
        f" VALUES (TRUE, %s, %s, {_NOW}) ON CONFLICT (only_row) DO UPDATE SET"
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
        f" WHERE schema_version < %s AND seen_at > {_NOW} - %s ORDER BY host, pid",
        (OLDEST_COMPATIBLE, WORKERS_SEEN_S),
    ).fetchall()
    return [f"{host} (pid {pid}, schema {schema})" for host, pid, schema in rows]


def _register_worker(conn: psycopg.Connection[Any]) -> None:
    if not _table_exists(conn, "grok_imagine_workers"):
        return  # a newer schema without it: nothing to say
    conn.execute(
        "INSERT INTO grok_imagine_workers (host, pid, schema_version, seen_at)"
        f" VALUES (%s, %s, %s, {_NOW}) ON CONFLICT (host, pid) DO UPDATE SET"
        " schema_version = EXCLUDED.schema_version, seen_at = EXCLUDED.seen_at",
        (_HOST, os.getpid(), SCHEMA_VERSION),
    )
    conn.execute(
        f"DELETE FROM grok_imagine_workers WHERE seen_at < {_NOW} - %s", (7 * WORKERS_SEEN_S,)
    )


def _table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def _insert(conn: psycopg.Connection[Any], ident: RequestIdentity, state: str) -> JournalEntry:
    """A new attempt at ``ident`` in ``state`` (``creating`` or ``reserved``), leased to us."""
    owner = current_owner()
    row = conn.execute(
        "INSERT INTO grok_imagine_requests (identity, model, prompt, aspect_ratio, seed,"
        " batch_index, source_task_id, state, credits, created_at, updated_at,"
        " owner_host, owner_pid, owner_marker, lease_until)"
        f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, {_NOW}, {_NOW}, %s, %s, %s,"
        f" {_NOW} + %s) RETURNING {_COLUMNS}",
        (
            ident.key, ident.model, ident.prompt, ident.aspect_ratio, ident.seed,
            ident.index, ident.source_task_id, state, ident.credits,
            _HOST, owner.pid, owner.marker, LEASE_S,
        ),
    ).fetchone()  # fmt: skip
    return _entry(row)


_SPENT = (
    "SELECT COALESCE(SUM(credits), 0) FROM grok_imagine_requests"
    " WHERE created_at >= %s AND created_at < %s AND identity IS NOT NULL"
    " AND state <> ALL(%s)"
    f" AND NOT (state = %s AND COALESCE(lease_until, 0) <= {_NOW})"
)
"""The ledger: a reservation counts while its worker's lease lives (no pid check across hosts)."""


_DROP_DEAD_RESERVATIONS = (
    f"DELETE FROM grok_imagine_requests WHERE state = %s AND COALESCE(lease_until, 0) <= {_NOW}"
)
"""Reservations whose worker stopped renewing them hold no money (its run is gone)."""


def _safe(url: str | None) -> str | None:
    """URLs are stored as ``redaction.safe_url`` makes them: no userinfo, no echoed key."""
    return None if url is None else safe_url(url)


def _spent_params(since: float, until: float | None) -> tuple[Any, ...]:
    end = float("inf") if until is None else until
    return (since, end, sorted(State.UNCHARGED), State.RESERVED)


def _latest(conn: psycopg.Connection[Any], identity_key: str) -> JournalEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM grok_imagine_requests WHERE identity = %s"
        " ORDER BY id DESC LIMIT 1",
        (identity_key,),
    ).fetchone()
    return None if row is None else _entry(row)


def _entry(row: tuple[Any, ...]) -> JournalEntry:
    (
        id_, identity, model, prompt, aspect_ratio, seed, index, source_task_id, task_id, state,
        credits, result_urls, error, created_at, task_created_at, updated_at, finished_at,
        owner_host, owner_pid, owner_marker, lease_live, files, failed, read_at,
    ) = row  # fmt: skip
    try:
        urls = tuple(str(u) for u in json.loads(result_urls or "[]"))
    except (ValueError, TypeError):
        urls = ()
    owner = (
        FleetOwner(owner_host or "", owner_pid, owner_marker or "", bool(lease_live))
        if owner_pid is not None
        else None
    )
    return JournalEntry(
        id=id_, identity=identity, model=model, prompt=prompt, aspect_ratio=aspect_ratio,
        seed=seed, index=index, source_task_id=source_task_id, task_id=task_id, state=state,
        credits=credits, result_urls=urls, error=error, created_at=created_at,
        task_created_at=task_created_at, updated_at=updated_at, finished_at=finished_at,
        owner=owner,
        files=tuple(JournalFile(*f) for f in files or ()),
        failed_files=tuple(FailedFile(*f) for f in failed or ()),
        read_at=read_at,
    )  # fmt: skip
