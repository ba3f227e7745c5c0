"""The shared journal's connection to its database, and what keeps paid work going when the
database is away: writes queued in order, a heartbeat that saves them and renews leases.

* a ``waiting`` or ``creating`` row carries a lease (owner host, pid, start marker,
  ``lease_until``) that the heartbeat thread renews while the create waits for its turn or is on
  its way: a worker on another host cannot be checked by pid, so when the lease runs out the row
  counts as abandoned, as a dead process's row does on one machine: a ``waiting`` one was never
  sent (``rejected``), a ``creating`` one becomes ``uncertain``;
* a write that cannot reach the database after the create was sent (task id, states, files) is
  kept in memory, in order, and written the moment the database answers again; a read or a claim
  (the step before any money moves) never proceeds without the database: fail closed;
* no connection is ever made while holding the lock the writes need: a silent database host
  (connect timeout) must not stall a paid task's polling. Writes only queue while the database
  is away; the heartbeat thread reconnects and saves them, reads connect before taking the lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from ...api import errors
from ...api.messages import said
from ...api.what import What
from ..model import State
from ..store import JournalUnavailableError
from ..url import DatabaseUrl
from . import schema
from .rows import LEASE_S, NOW, REQUESTS_TABLE

logger = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
"""How often leases are renewed and writes kept through an outage are retried."""
CONNECT_TIMEOUT_S = 5
STATEMENT_TIMEOUT_MS = 30_000

UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)
"""Errors that say "the database is not there right now" (as opposed to a refused statement)."""

Connection = psycopg.Connection[Any]


class Database:
    """``Database(url)``: connected, with the schema brought up to date, at once, so a wrong URL
    or a database from a newer pack is reported before anything is paid for; thread-safe through
    ``lock``."""

    def __init__(self, url: str) -> None:
        self.url = DatabaseUrl.parse(url)
        self.dsn = url
        self.lock = threading.RLock()
        self.conn: Connection | None = None
        self.pending: list[tuple[str, tuple[Any, ...], str | None]] = []
        """Writes waiting through an outage, in order: (statement, parameters, task id)."""
        self._leased: set[int] = set()
        self._warned_outage = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        """Set to make the heartbeat reconnect and save queued writes now, not at its next beat."""
        self._beat: threading.Thread | None = None
        self._beat_conn: Connection | None = None
        if self.url.password:
            errors.remember_secret(self.url.password)  # masked out of every message from now on
        with self.lock:
            self.connection(What.DOING_OPEN)

    @property
    def where(self) -> str:
        return self.url.display

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._beat is not None:
            self._beat.join(timeout=HEARTBEAT_S + CONNECT_TIMEOUT_S)
        if self.pending:
            self._reconnect_outside_the_lock()
        with self.lock:
            if self.pending:
                self._flush_quietly()
            if self.pending:
                tasks = sorted({task for _, _, task in self.pending if task})
                logger.warning(
                    "%d journal write(s) for %s could not be saved before closing (the database "
                    "stayed unreachable); tasks concerned: %s. Their images can be fetched free "
                    "with Grok Load Task or `grok-imagine task ID`.",
                    len(self.pending),
                    self.where,
                    ", ".join(tasks) or "none",
                )
            for conn in (self.conn, self._beat_conn):
                if conn is not None:
                    conn.close()
            self.conn = self._beat_conn = None

    # -- connecting, failing closed ---------------------------------------------------------------

    def _connect(self) -> Connection:
        return psycopg.connect(
            self.dsn,
            autocommit=True,  # transactions are explicit (BEGIN ... COMMIT), as in SQLite
            connect_timeout=CONNECT_TIMEOUT_S,
            application_name="grok-imagine",
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
        )

    def connection(self, doing: What) -> Connection:
        """The open connection (made and checked on first use or after a failure) with every
        write kept through an outage already saved; ``JournalUnavailableError`` otherwise.
        Under ``lock``."""
        if self.conn is None or self.conn.closed:
            try:
                conn = self._connect()
            except psycopg.Error as exc:
                raise self.unavailable(doing, exc) from None
            try:
                schema.prepare(conn, self.where)
            except BaseException as exc:
                conn.close()
                if isinstance(exc, psycopg.Error):
                    raise self.unavailable(doing, exc) from None
                raise
            self.conn = conn
        if self.pending:
            self._flush(self.conn, doing)
        return self.conn

    def broken(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg.Error:
                pass
        self.conn = None

    def unavailable(self, doing: What, exc: BaseException) -> JournalUnavailableError:
        reason = errors.redact(errors.exception_line(exc), (self.url.password or "",))
        away = isinstance(exc, UNREACHABLE)
        kind = What.SHARED_JOURNAL_AWAY if away else What.SHARED_JOURNAL_REFUSED
        return JournalUnavailableError(
            said(kind, where=self.url.message(), doing=said(doing), reason=reason.rstrip(".?")),
            where=self.where,
            advice=errors.Advice.RETRY,
        )

    def connect_first(self, doing: What) -> None:
        """Before taking the lock: connect if there is no open connection, so a slow or silent
        host keeps only this caller waiting, never the paid tasks' writes."""
        if self.conn is None or self.conn.closed:
            failure = self._reconnect_outside_the_lock()
            if failure is not None:
                raise self.unavailable(doing, failure) from None

    @contextmanager
    def session(self, doing: What) -> Iterator[Connection]:
        """The connection, under the lock, for work that must reach the database: a database
        error on the way drops the connection and becomes ``JournalUnavailableError``."""
        self.connect_first(doing)
        with self.lock:
            conn = self.connection(doing)
            try:
                yield conn
            except psycopg.Error as exc:
                self.broken()
                raise self.unavailable(doing, exc) from None

    def read(self, doing: What, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):  # a connection the server dropped meanwhile gets one new try
            self.connect_first(doing)
            with self.lock:
                conn = self.connection(doing)
                try:
                    return conn.execute(sql, params).fetchall()
                except UNREACHABLE as exc:
                    self.broken()
                    if attempt == 2:
                        raise self.unavailable(doing, exc) from None
                except psycopg.Error as exc:
                    raise self.unavailable(doing, exc) from None
        raise AssertionError("unreachable")

    # -- writes made after money moved ------------------------------------------------------------

    def write(self, sql: str, params: tuple[Any, ...], task_id: str | None = None) -> None:
        """A write made after money moved: never lost to an outage, never raising for one, and
        never waiting on the database: saved now on the open connection, or queued.

        Writes wait in order in memory while the database is away (or the connection was
        dropped) and are saved by the heartbeat thread once it has reconnected outside the lock,
        or by the next read that reaches the database, before that read does anything else.
        """
        with self.lock:
            self.pending.append((sql, params, task_id))
            if len(self.pending) > 1 or self.conn is None or self.conn.closed:
                self._wake.set()  # queued behind others, or no connection: the heartbeat's job
                self._start_heartbeat()
                return
            try:
                self._flush(self.conn, What.DOING_SAVE_PROGRESS)
            except JournalUnavailableError:
                self._wake.set()  # a dropped connection (a restart) is reconnected at once
                self._start_heartbeat()

    def _flush(self, conn: Connection, doing: What) -> None:
        while self.pending:
            sql, params, _ = self.pending[0]
            try:
                conn.execute(sql, params)
            except UNREACHABLE as exc:
                self.broken()
                raise self.unavailable(doing, exc) from None
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                # This statement will be refused every time: drop it, say so, keep the others.
                logger.warning(
                    "a journal write for %s was refused and dropped: %s", self.where, exc
                )
            except psycopg.Error as exc:  # read-only, no privilege: keep it for later
                raise self.unavailable(doing, exc) from None
            self.pending.pop(0)
        if self._warned_outage:
            self._warned_outage = False
            logger.warning("the shared task journal %s answers again; all writes saved", self.where)

    def _flush_quietly(self) -> None:
        """Save the queued writes on the open connection, if any; never connect (under the lock)."""
        if self.conn is None or self.conn.closed:
            return
        try:
            self._flush(self.conn, What.DOING_SAVE_PROGRESS)
        except JournalUnavailableError:
            pass

    # -- leases: a waiting or creating row stays owned while its worker lives ---------------------

    def lease(self, entry_id: int) -> None:
        """Keep row ``entry_id`` owned (its lease renewed) until ``release``."""
        with self.lock:
            self._leased.add(entry_id)
            self._start_heartbeat()

    def release(self, entry_id: int) -> None:
        with self.lock:
            self._leased.discard(entry_id)

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
            with self.lock:
                leased = list(self._leased)
                waiting = bool(self.pending) and (self.conn is None or self.conn.closed)
            if waiting:
                self._reconnect_outside_the_lock()
            with self.lock:
                if self.pending:
                    self._flush_quietly()
            if self.pending:
                self._warn_outage()
            if leased:
                self._renew(leased)

    def _warn_outage(self) -> None:
        with self.lock:
            if self._warned_outage or not self.pending:
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
            schema.prepare(conn, self.where)
        except (psycopg.Error, JournalUnavailableError) as exc:
            conn.close()
            return exc
        with self.lock:
            if self.conn is None or self.conn.closed:
                self.conn = conn
                return None
        conn.close()
        return None

    def _renew(self, leased: list[int]) -> None:
        """On a connection of its own: a slow claim on the main one must not starve a lease."""
        try:
            if self._beat_conn is None or self._beat_conn.closed:
                self._beat_conn = self._connect()
            self._beat_conn.execute(
                f"UPDATE {REQUESTS_TABLE} SET lease_until = {NOW} + %s"
                " WHERE id = ANY(%s) AND state = ANY(%s)",
                (LEASE_S, leased, sorted(State.OWNED_CREATE | {State.RESERVED})),
            )
        except psycopg.Error:
            if self._beat_conn is not None:
                self._beat_conn.close()
            self._beat_conn = None  # the lease may run out: others then see an uncertain create
