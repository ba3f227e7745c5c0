"""The journal: an SQLite record of every paid request, its task and its files.

Rows are written in the order money moves: the request's identity *before* the create is sent,
the task id the moment the API returns it, then every state change and every kept file. So after
any crash the journal tells which tasks exist and which were paid for.

One connection per ``Journal``, shared by the node worker threads under a lock (statements take
microseconds); other processes are kept apart by SQLite's own file locks (WAL mode, a busy
timeout). A journal file that cannot be read never blocks generation: it is renamed aside with
one warning and a fresh one is started. Nothing secret is ever stored here: no key, no headers.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .identity import RequestIdentity
from .owner import ProcessOwner, current_owner

if TYPE_CHECKING:
    from .store import RowOwner

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0

T = TypeVar("T")


class State:
    """Row states. The first three exist before (or instead of) a task id."""

    RESERVED = "reserved"  # credits set aside for a run's create; nothing sent yet
    CREATING = "creating"  # identity written, create request about to be / being sent
    UNCERTAIN = "uncertain"  # the create may have been taken (and charged), its answer was lost
    REJECTED = "rejected"  # the API refused the create: no task exists, nothing charged
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the task failed server-side (refunded) or is unknown to the API

    IN_FLIGHT = frozenset({QUEUED, RUNNING})
    FINISHED = frozenset({SUCCEEDED, FAILED})
    UNCHARGED = frozenset({REJECTED, FAILED})
    """Rows that cost nothing: the spend ledger skips them (their credits are zeroed too)."""


_SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    identity TEXT,
    model TEXT,
    prompt TEXT,
    aspect_ratio TEXT,
    seed INTEGER,
    batch_index INTEGER,
    source_task_id TEXT,
    task_id TEXT,
    state TEXT NOT NULL,
    credits INTEGER NOT NULL DEFAULT 0,
    result_urls TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    created_at REAL NOT NULL,
    task_created_at REAL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    owner_pid INTEGER,
    owner_marker TEXT
);
CREATE INDEX requests_by_identity ON requests (identity, id);
CREATE INDEX requests_by_task ON requests (task_id, id);
CREATE TABLE files (
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    url TEXT,
    saved_at REAL NOT NULL,
    PRIMARY KEY (task_id, idx)
);
"""

_EXPECTED_COLUMNS = {
    "requests": {
        "id", "identity", "model", "prompt", "aspect_ratio", "seed", "batch_index",
        "source_task_id", "task_id", "state", "credits", "result_urls", "error", "created_at",
        "task_created_at", "updated_at", "finished_at", "owner_pid", "owner_marker",
    },
    "files": {"task_id", "idx", "path", "sha256", "size", "url", "saved_at"},
}  # fmt: skip


@dataclass(frozen=True)
class JournalFile:
    index: int
    path: str
    sha256: str
    size: int
    url: str | None
    saved_at: float


@dataclass(frozen=True)
class JournalEntry:
    """One attempt at a request (a failed attempt and its re-create are two entries)."""

    id: int
    identity: str | None  # None for a task the journal only knows by id (Load Task)
    model: str | None
    prompt: str | None
    aspect_ratio: str | None
    seed: int | None
    index: int | None
    source_task_id: str | None
    task_id: str | None
    state: str
    credits: int
    result_urls: tuple[str, ...]
    error: str | None
    created_at: float
    task_created_at: float | None
    updated_at: float
    finished_at: float | None
    owner: RowOwner | None  # a ProcessOwner here; a leased fleet worker in pg.py
    files: tuple[JournalFile, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state in State.FINISHED


class _Unusable(Exception):
    """The journal file is not a journal we can use (not SQLite, damaged, foreign schema)."""


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return False  # locked, busy, disk full: a condition to wait out or report, not corruption
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Journal:
    """``Journal(path)``: open (or create) the journal at ``path``; thread-safe."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = self._open()

    # -- opening, checking, setting aside -------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._open_checked_patiently()
        except _Unusable as problem:
            return self._start_fresh(str(problem))
        except (OSError, sqlite3.Error) as problem:
            return self._in_memory(problem)

    def _open_checked_patiently(self) -> sqlite3.Connection:
        # Switching to WAL answers "database is locked" at once, without the busy timeout, while
        # another process opens the same new file: wait that out like any other busy lock.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return self._open_checked()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # shared by worker threads, serialized by self._lock
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _open_checked(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise _Unusable(f"damaged ({verdict})")
            # Before any write, so a foreign file is set aside untouched; in one read
            # transaction, so a journal another process is creating right now reads whole.
            conn.execute("BEGIN")
            try:
                _check_schema(conn)
            finally:
                conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")  # a recorded task id survives power loss
            _create_schema_if_new(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _is_corruption(exc):
                raise _Unusable(str(exc)) from exc
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _start_fresh(self, reason: str) -> sqlite3.Connection:
        aside = self.path.with_name(
            f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        )
        try:
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(aside.with_name(aside.name + suffix))
        except FileNotFoundError:
            pass  # another process set it aside first; its fresh journal is ours too
        except OSError as exc:
            return self._in_memory(exc)
        logger.warning(
            "The Grok Imagine task journal %s could not be read (%s). It was set aside as %s "
            "and a fresh journal started; generation goes on. Tasks recorded before are still "
            "in the set-aside file.",
            self.path,
            reason,
            aside.name,
        )
        try:
            return self._open_checked_patiently()
        except (_Unusable, OSError, sqlite3.Error) as exc:
            return self._in_memory(exc)

    def _in_memory(self, problem: object) -> sqlite3.Connection:
        logger.warning(
            "The Grok Imagine task journal %s cannot be opened (%s). Running with a journal "
            "in memory: results of this session are kept, but a restart forgets which tasks "
            "were paid for. Check that the folder is writable.",
            self.path,
            problem,
        )
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        _create_schema(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return conn

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Corruption found mid-run: set the file aside and carry on with a fresh one."""
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        self._conn = self._start_fresh(str(exc))

    def _execute(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return work(self._conn)
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                return work(self._conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    @property
    def where(self) -> str:
        """The resolved file path: requests are kept apart per journal file."""
        return str(self.path.resolve())

    def create_turn(self, entry: JournalEntry) -> float:
        """Always "go now": one machine's creates are paced by the API client's 429 handling."""
        return 0.0

    # -- the claim: decide "create, resume or reuse" atomically across threads and processes ------

    @contextmanager
    def claim(self, identity: RequestIdentity) -> Iterator[Claim]:
        """Hold the database write lock while the caller reads the latest attempt and decides.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock at once, so two processes asking for the
        same identity see each other's ``creating`` row instead of both sending a create.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                self._conn.execute("BEGIN IMMEDIATE")
            conn = self._conn
            try:
                yield Claim(conn, identity, _latest(conn, identity.key))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- the spend ledger: what was spent, and credits set aside for a run before it sends ------

    def spent(self, since: float, until: float | None = None) -> int:
        """Credits of the requests created in ``[since, until)``: charged, in flight, uncertain
        (it may have been charged: fail closed) and reserved; failed and refused ones cost 0."""
        return self._execute(lambda c: _spent(c, since, until))

    def reserve(
        self, identities: Sequence[RequestIdentity], *, limit: int, since: float
    ) -> Reservation:
        """Set aside the credits of every request that will need a create, or none of them.

        In one ``BEGIN IMMEDIATE`` transaction, so concurrent runs in any process see each
        other's reservations. A request that will be reused, resumed or shared (its latest
        attempt is alive or done) needs nothing. When ``spent + need`` would exceed ``limit``
        nothing is written and ``granted`` is False. Reserved rows (state ``reserved``) are
        taken over by whichever claim creates that request first; ``release`` drops the rest.
        """

        def work(c: sqlite3.Connection) -> Reservation:
            c.execute("BEGIN IMMEDIATE")
            try:
                _drop_dead_reservations(c)
                needed: dict[str, RequestIdentity] = {}
                for ident in identities:
                    latest = _latest(c, ident.key)
                    if latest is None or latest.state in State.UNCHARGED:
                        needed.setdefault(ident.key, ident)
                need = sum(ident.credits for ident in needed.values())
                spent = _spent(c, since, None)
                if need and spent + need > limit:
                    c.execute("ROLLBACK")
                    return Reservation(spent, need, (), granted=False)
                entries = tuple(_insert(c, ident, State.RESERVED) for ident in needed.values())
                c.execute("COMMIT")
                return Reservation(spent, need, entries, granted=True)
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise

        return self._execute(work)

    def release(self, entry_ids: Sequence[int]) -> None:
        """Drop reservations that no create took over (the run ended or gave up first)."""
        if not entry_ids:
            return
        marks = ",".join("?" * len(entry_ids))
        self._execute(
            lambda c: c.execute(
                f"DELETE FROM requests WHERE state = ? AND id IN ({marks})",
                (State.RESERVED, *entry_ids),
            )
        )

    # -- recording --------------------------------------------------------------------------------

    def record_task_id(self, entry: JournalEntry, task_id: str) -> None:
        """The create answered: from now on this attempt names a (charged) task.

        If the row is gone (the file was found damaged and set aside meanwhile), it is written
        again from ``entry``: a paid task id is the one thing the journal must not drop.
        """
        now = time.time()

        def work(c: sqlite3.Connection) -> None:
            updated = c.execute(
                "UPDATE requests SET task_id = ?, state = ?, task_created_at = ?, updated_at = ?"
                " WHERE id = ? AND identity IS ?",
                (task_id, State.QUEUED, now, now, entry.id, entry.identity),
            ).rowcount
            if updated == 0:
                owner = entry.owner
                c.execute(
                    "INSERT INTO requests (identity, model, prompt, aspect_ratio, seed,"
                    " batch_index, source_task_id, task_id, state, credits, created_at,"
                    " task_created_at, updated_at, owner_pid, owner_marker)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        entry.identity, entry.model, entry.prompt, entry.aspect_ratio,
                        entry.seed, entry.index, entry.source_task_id, task_id, State.QUEUED,
                        entry.credits, entry.created_at, now, now,
                        owner.pid if owner else None, owner.marker if owner else None,
                    ),
                )  # fmt: skip

        self._execute(work)

    def mark(self, entry_id: int, state: str, error: str | None = None) -> None:
        """Set the state of one attempt (``uncertain`` / ``rejected`` before a task id exists)."""
        now = time.time()
        refunded = state in (State.REJECTED, State.FAILED)
        self._execute(
            lambda c: c.execute(
                "UPDATE requests SET state = ?, error = COALESCE(?, error), updated_at = ?,"
                " credits = CASE WHEN ? THEN 0 ELSE credits END WHERE id = ?",
                (state, error, now, refunded, entry_id),
            )
        )

    def record_state(
        self,
        task_id: str,
        state: str,
        *,
        result_urls: Sequence[str] | None = None,
        error: str | None = None,
    ) -> None:
        """A state change of a task, on the latest row that names it."""
        now = time.time()
        urls = None if result_urls is None else json.dumps(list(result_urls))
        finished = now if state in State.FINISHED else None
        self._execute(
            lambda c: c.execute(
                "UPDATE requests SET state = ?, result_urls = COALESCE(?, result_urls),"
                " error = ?, updated_at = ?, finished_at = COALESCE(?, finished_at),"
                " credits = CASE WHEN ? THEN 0 ELSE credits END"
                " WHERE id = (SELECT max(id) FROM requests WHERE task_id = ?)",
                (state, urls, error, now, finished, state == State.FAILED, task_id),
            )
        )

    def record_loaded(self, task_id: str) -> JournalEntry:
        """A task known only by its id (Load Task) gets a row if it has none; 0 credits."""

        def work(c: sqlite3.Connection) -> None:
            if c.execute("SELECT 1 FROM requests WHERE task_id = ?", (task_id,)).fetchone():
                return
            now = time.time()
            c.execute(
                "INSERT INTO requests (task_id, state, credits, created_at, updated_at)"
                " VALUES (?, ?, 0, ?, ?)",
                (task_id, State.QUEUED, now, now),
            )

        self._execute(work)
        entry = self.get(task_id)
        assert entry is not None
        return entry

    def record_file(
        self, task_id: str, index: int, path: str | os.PathLike[str], sha256: str, size: int,
        url: str | None,
    ) -> None:  # fmt: skip
        now = time.time()
        self._execute(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO files (task_id, idx, path, sha256, size, url, saved_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task_id, index, str(path), sha256, size, url, now),
            )
        )

    # -- reading ----------------------------------------------------------------------------------

    def get(self, task_id: str) -> JournalEntry | None:
        """The latest row naming ``task_id``, with its files."""

        def work(c: sqlite3.Connection) -> JournalEntry | None:
            row = c.execute(
                f"SELECT {_COLUMNS} FROM requests WHERE task_id = ? ORDER BY id DESC LIMIT 1",
                (task_id,),
            ).fetchone()
            return None if row is None else _entry(c, row)

        return self._execute(work)

    def entry(self, entry_id: int) -> JournalEntry | None:
        """One attempt by its row id."""

        def work(c: sqlite3.Connection) -> JournalEntry | None:
            row = c.execute(f"SELECT {_COLUMNS} FROM requests WHERE id = ?", (entry_id,)).fetchone()
            return None if row is None else _entry(c, row)

        return self._execute(work)

    def latest(self, identity: RequestIdentity) -> JournalEntry | None:
        return self._execute(lambda c: _latest(c, identity.key))

    def history(self, identity: RequestIdentity) -> list[JournalEntry]:
        """Every attempt at one request, oldest first (failed ones stay on record)."""
        return self._execute(
            lambda c: [
                _entry(c, row)
                for row in c.execute(
                    f"SELECT {_COLUMNS} FROM requests WHERE identity = ? ORDER BY id",
                    (identity.key,),
                ).fetchall()
            ]
        )

    def recent(self, limit: int = 20) -> list[JournalEntry]:
        """The newest ``limit`` rows, newest first (the CLI's ``tasks`` view)."""
        return self.page(limit)

    def page(self, limit: int, offset: int = 0) -> list[JournalEntry]:
        """``limit`` rows after the newest ``offset``, newest first (the panel's pages);
        reservations (nothing sent yet) are not rows to show."""
        return self._execute(
            lambda c: [
                _entry(c, row)
                for row in c.execute(
                    f"SELECT {_COLUMNS} FROM requests WHERE state != ?"
                    " ORDER BY id DESC LIMIT ? OFFSET ?",
                    (State.RESERVED, int(limit), int(offset)),
                ).fetchall()
            ]
        )

    def uncertain(self) -> list[JournalEntry]:
        """Every row still ``uncertain`` (a create whose answer was lost), newest first."""
        return self._execute(
            lambda c: [
                _entry(c, row)
                for row in c.execute(
                    f"SELECT {_COLUMNS} FROM requests WHERE state = ? ORDER BY id DESC",
                    (State.UNCERTAIN,),
                ).fetchall()
            ]
        )

    def count(self) -> int:
        """How many rows ``recent`` pages through."""
        return self._execute(
            lambda c: c.execute(
                "SELECT count(*) FROM requests WHERE state != ?", (State.RESERVED,)
            ).fetchone()[0]
        )

    # -- resolving an uncertain create (the user looked in the provider's dashboard) ------------

    def resolve_uncertain(self, entry_id: int, task_id: str | None) -> JournalEntry | None:
        """An ``uncertain`` row gets the task id the user found (it was charged), or, with
        None, is marked as never created (0 credits; the same inputs create anew next time).
        Returns the updated row, or None when no uncertain row has that id."""
        now = time.time()

        def work(c: sqlite3.Connection) -> int:
            if task_id is None:
                return c.execute(
                    "UPDATE requests SET state = ?, credits = 0, updated_at = ?,"
                    " error = 'marked as not created by the user' WHERE id = ? AND state = ?",
                    (State.REJECTED, now, entry_id, State.UNCERTAIN),
                ).rowcount
            return c.execute(
                "UPDATE requests SET task_id = ?, state = ?, task_created_at = ?, updated_at = ?,"
                " error = NULL WHERE id = ? AND state = ?",
                (task_id, State.QUEUED, now, now, entry_id, State.UNCERTAIN),
            ).rowcount

        return self.entry(entry_id) if self._execute(work) else None


class Claim:
    """What a caller may do while holding the claim on one identity."""

    def __init__(
        self, conn: sqlite3.Connection, identity: RequestIdentity, latest: JournalEntry | None
    ) -> None:
        self._conn = conn
        self.identity = identity
        self.latest = latest

    def start_create(self) -> JournalEntry:
        """Write the identity row (state ``creating``) before the create request is sent."""
        entry = _insert(self._conn, self.identity, State.CREATING)
        self.latest = entry
        return entry

    def spent(self, since: float) -> int:
        """The ledger inside this claim's transaction (so check and create are one step)."""
        _drop_dead_reservations(self._conn)
        return _spent(self._conn, since, None)

    def take_reservation(self, reserved: JournalEntry) -> JournalEntry:
        """A run's reserved row becomes this create's ``creating`` row (already paid for in the
        ledger, so no limit check); whichever claim gets there first sends it."""
        owner = current_owner()
        now = time.time()
        self._conn.execute(
            "UPDATE requests SET state = ?, owner_pid = ?, owner_marker = ?, created_at = ?,"
            " updated_at = ? WHERE id = ? AND state = ?",
            (State.CREATING, owner.pid, owner.marker, now, now, reserved.id, State.RESERVED),
        )
        entry = _latest(self._conn, self.identity.key)
        assert entry is not None and entry.id == reserved.id
        self.latest = entry
        return entry

    def mark_uncertain(self, entry_id: int, error: str) -> None:
        self._conn.execute(
            "UPDATE requests SET state = ?, error = ?, updated_at = ? WHERE id = ?",
            (State.UNCERTAIN, error, time.time(), entry_id),
        )
        self.latest = _latest(self._conn, self.identity.key)


@dataclass(frozen=True)
class Reservation:
    """What ``Journal.reserve`` found and did."""

    spent: int
    """Credits already counted today before this reservation."""
    need: int
    """Credits of the requests that will need a create."""
    entries: tuple[JournalEntry, ...]
    """The ``reserved`` rows written (none when refused or nothing is needed)."""
    granted: bool


def _insert(conn: sqlite3.Connection, ident: RequestIdentity, state: str) -> JournalEntry:
    owner = current_owner()
    now = time.time()
    cursor = conn.execute(
        "INSERT INTO requests (identity, model, prompt, aspect_ratio, seed, batch_index,"
        " source_task_id, state, credits, created_at, updated_at, owner_pid, owner_marker)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            ident.key, ident.model, ident.prompt, ident.aspect_ratio, ident.seed,
            ident.index, ident.source_task_id, state, ident.credits, now, now,
            owner.pid, owner.marker,
        ),
    )  # fmt: skip
    entry = _latest(conn, ident.key)
    assert entry is not None and entry.id == cursor.lastrowid
    return entry


def _spent(conn: sqlite3.Connection, since: float, until: float | None) -> int:
    row = conn.execute(
        "SELECT COALESCE(SUM(credits), 0) FROM requests WHERE created_at >= ?"
        " AND created_at < ? AND identity IS NOT NULL AND state NOT IN (?, ?)",
        (since, float("inf") if until is None else until, State.REJECTED, State.FAILED),
    ).fetchone()
    return int(row[0])


def _drop_dead_reservations(conn: sqlite3.Connection) -> None:
    """Reservations of a process that died before sending hold no money: drop them."""
    for row_id, pid, marker in conn.execute(
        "SELECT id, owner_pid, owner_marker FROM requests WHERE state = ?", (State.RESERVED,)
    ).fetchall():
        owner = ProcessOwner(pid, marker or "") if pid is not None else None
        if owner is None or (not owner.is_current() and not owner.is_alive()):
            conn.execute("DELETE FROM requests WHERE id = ?", (row_id,))


_COLUMNS = (
    "id, identity, model, prompt, aspect_ratio, seed, batch_index, source_task_id, task_id,"
    " state, credits, result_urls, error, created_at, task_created_at, updated_at, finished_at,"
    " owner_pid, owner_marker"
)


def _check_schema(conn: sqlite3.Connection) -> None:
    """Raise ``_Unusable`` unless this is our journal (or an empty database to make one)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = _user_tables(conn)
    if version == 0:
        if tables:
            raise _Unusable("it holds tables that are not a Grok Imagine journal")
        return
    if version != SCHEMA_VERSION:
        raise _Unusable(f"schema version {version}, this pack reads version {SCHEMA_VERSION}")
    for table, wanted in _EXPECTED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if table not in tables or not wanted <= have:
            raise _Unusable(f"table {table!r} is missing or has other columns")


def _create_schema_if_new(conn: sqlite3.Connection) -> None:
    if conn.execute("PRAGMA user_version").fetchone()[0] != 0:
        return
    conn.execute("BEGIN IMMEDIATE")  # another process may be creating it right now
    try:
        if conn.execute("PRAGMA user_version").fetchone()[0] == 0 and not _user_tables(conn):
            _create_schema(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    _check_schema(conn)


def _create_schema(conn: sqlite3.Connection) -> None:
    # One statement at a time: executescript() would commit the caller's transaction first.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)


def _user_tables(conn: sqlite3.Connection) -> set[str]:
    return {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }


def _latest(conn: sqlite3.Connection, identity_key: str) -> JournalEntry | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM requests WHERE identity = ? ORDER BY id DESC LIMIT 1",
        (identity_key,),
    ).fetchone()
    return None if row is None else _entry(conn, row)


def _entry(conn: sqlite3.Connection, row: tuple) -> JournalEntry:
    (
        id_, identity, model, prompt, aspect_ratio, seed, index, source_task_id, task_id, state,
        credits, result_urls, error, created_at, task_created_at, updated_at, finished_at,
        owner_pid, owner_marker,
    ) = row  # fmt: skip
    files: tuple[JournalFile, ...] = ()
    if task_id is not None:
        files = tuple(
            JournalFile(*file_row)
            for file_row in conn.execute(
                "SELECT idx, path, sha256, size, url, saved_at FROM files WHERE task_id = ?"
                " ORDER BY idx",
                (task_id,),
            )
        )
    try:
        urls = tuple(str(u) for u in json.loads(result_urls or "[]"))
    except (ValueError, TypeError):
        urls = ()
    owner = ProcessOwner(owner_pid, owner_marker or "") if owner_pid is not None else None
    return JournalEntry(
        id=id_, identity=identity, model=model, prompt=prompt, aspect_ratio=aspect_ratio,
        seed=seed, index=index, source_task_id=source_task_id, task_id=task_id, state=state,
        credits=credits, result_urls=urls, error=error, created_at=created_at,
        task_created_at=task_created_at, updated_at=updated_at, finished_at=finished_at,
        owner=owner, files=files,
    )  # fmt: skip
