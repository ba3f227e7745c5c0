"""The journal: an SQLite record of every paid request, its task and its files.

Rows are written in the order money moves: the request's identity *before* the create is sent,
the task id the moment the API returns it, then every state change and every kept file. So after
any crash the journal tells which tasks exist and which were paid for.

One connection per ``Journal``, shared by the node worker threads under a lock (statements take
microseconds); other processes are kept apart by SQLite's own file locks (WAL mode, a busy
timeout). Nothing secret is ever stored here: no key, no headers.

At the edges it fails closed, never open: a journal that cannot be kept on disk (read-only, full,
written by a newer pack in a form this one cannot write) refuses paid creates with one line that
says what to do, and never falls back to memory for them; an older journal is migrated forward
by the explicit steps in ``MIGRATIONS``; a damaged one is moved aside, never deleted, and every
row that can still be read is recovered into the fresh one (``salvage``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..api import errors
from ..api.redaction import safe_url
from . import durability
from .identity import RequestIdentity
from .owner import ProcessOwner, current_owner

if TYPE_CHECKING:
    from .store import RowOwner

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2
"""1: requests, files. 2: file_failures (a result file that could not be kept, and why)."""
BUSY_TIMEOUT_S = 30.0
RESERVE_SUFFIX = ".reserve"
RESERVE_BYTES = 512 * 1024
JOURNAL_ROLE = "task journal"

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

    FINISHED = frozenset({SUCCEEDED, FAILED})
    UNCHARGED = frozenset({REJECTED, FAILED})
    """The refund rule, defined only here: rows in these states cost nothing; both journals zero
    their credits and their spend ledgers skip them."""


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
CREATE TABLE file_failures (
    task_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    reason TEXT NOT NULL,
    url TEXT,
    failed_at REAL NOT NULL,
    PRIMARY KEY (task_id, idx)
);
"""

MIGRATIONS: dict[int, tuple[str, ...]] = {
    # from version 1 to 2
    1: (
        "CREATE TABLE file_failures (task_id TEXT NOT NULL, idx INTEGER NOT NULL,"
        " reason TEXT NOT NULL, url TEXT, failed_at REAL NOT NULL, PRIMARY KEY (task_id, idx))",
    ),
}
"""``MIGRATIONS[v]``: the statements that take a version-``v`` journal to ``v + 1``, in one
transaction with the version bump. Add a step here with every ``SCHEMA_VERSION`` change, and an
older journal file under ``tests/data`` that the tests migrate."""

_EXPECTED_COLUMNS = {
    "requests": {
        "id", "identity", "model", "prompt", "aspect_ratio", "seed", "batch_index",
        "source_task_id", "task_id", "state", "credits", "result_urls", "error", "created_at",
        "task_created_at", "updated_at", "finished_at", "owner_pid", "owner_marker",
    },
    "files": {"task_id", "idx", "path", "sha256", "size", "url", "saved_at"},
    "file_failures": {"task_id", "idx", "reason", "url", "failed_at"},
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
class FailedFile:
    """A result file of a task that was fetched but could not be kept as good, and why."""

    index: int
    reason: str
    url: str | None
    failed_at: float


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
    failed_files: tuple[FailedFile, ...] = ()
    """Result files recorded as not keepable (undecodable, empty, ...), with the reason."""
    read_at: float | None = None
    """The clock that stamped the row, when it was read (a shared journal's: the database's);
    None: this machine's clock, which then is that clock."""

    @property
    def finished(self) -> bool:
        return self.state in State.FINISHED

    def now(self) -> float:
        """The time by the clock that stamped this row, so an age computed from it needs no
        agreement between a fleet's hosts and its database."""
        return time.time() if self.read_at is None else self.read_at


class _Unusable(Exception):
    """The journal file is not a journal we can use as is (not SQLite, damaged, foreign)."""


class _Newer(Exception):
    """A journal of a newer schema whose tables this version cannot write."""


@dataclass(frozen=True)
class SalvageReport:
    """What happened to a damaged journal: where it is kept and how much of it came back."""

    reason: str
    kept_as: Path
    """The damaged file, moved beside the fresh journal (with its -wal, if it had one)."""
    rows: int
    """Request rows recovered into the fresh journal."""
    tasks: int
    """Of those, rows that name a task id (each one a paid task that will not be paid again)."""
    files: int
    """Kept-file records recovered."""

    def line(self, journal_path: Path) -> str:
        return (
            f"The task journal {journal_path} was damaged ({self.reason}); {self.tasks} task(s) "
            f"were recovered from it into a fresh journal, and the damaged file is kept as "
            f"{self.kept_as}."
        )


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


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF == 13  # SQLITE_FULL
        return "disk is full" in str(exc).lower()
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


class Journal:
    """``Journal(path)``: open (or create) the journal at ``path``; thread-safe.

    A journal that cannot be kept on disk (read-only folder, disk full, a newer pack's schema
    this version cannot write) still opens, for free work only: ``check_durable()`` and every
    ``Claim.start_create()`` then raise ``StorageUnavailableError``, so no create is ever sent
    that the journal could not remember. Kept results are still read where the file can be read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._refusal: durability.StorageUnavailableError | None = None
        self.salvaged: SalvageReport | None = None
        """Set when the file was found damaged at open (or mid-run) and salvaged."""
        self._adopted = False
        self._file_rows: list[_FileRow] = []
        """Kept files waiting for the next commit (``record_file``'s group commit)."""
        self._file_rows_lock = threading.Lock()
        self._conn = self._open()
        if self._refusal is not None:
            logger.warning("%s", self._refusal)

    # -- opening, checking, salvaging -------------------------------------------------------------

    @property
    def reserve_path(self) -> Path:
        """A small file of zeros beside the journal, given back to the disk when it is full so
        the one write that must not fail (a paid task's id) still fits."""
        return self.path.with_name(self.path.name + RESERVE_SUFFIX)

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._open_checked_patiently()
        except _Unusable as problem:
            return self._salvage(str(problem))
        except _Newer as problem:
            self._refusal = durability.StorageUnavailableError(
                JOURNAL_ROLE, self.path, durability.NEWER_JOURNAL, str(problem)
            )
            return self._free_work_only()
        except (OSError, sqlite3.Error) as problem:
            self._refusal = _storage_error(self.path, problem)
            return self._free_work_only()

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

    def _connect(self, uri: str | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri or str(self.path),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # shared by worker threads, serialized by self._lock
            uri=uri is not None,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _open_checked(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise _Unusable(f"damaged ({_first_line(verdict)})")
            # Before any write, so a foreign or newer file is left untouched; in one read
            # transaction, so a journal another process is creating right now reads whole.
            conn.execute("BEGIN")
            try:
                version = _check_schema(conn)
            finally:
                conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")  # a recorded task id survives power loss
            if version == 0:
                _create_schema_if_new(conn)
            elif version < SCHEMA_VERSION:
                _migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _is_corruption(exc):
                raise _Unusable(_first_line(str(exc))) from exc
            raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _free_work_only(self) -> sqlite3.Connection:
        """The file read-only if it can be read (kept results stay free), else a scratch
        journal in memory that only free work (Load Task) ever writes to."""
        for uri in (f"{self.path.as_uri()}?mode=ro", f"{self.path.as_uri()}?immutable=1"):
            if not self.path.is_file():
                break
            conn = None
            try:
                conn = self._connect(uri)
                conn.execute("BEGIN")
                try:
                    version = _check_schema(conn)
                finally:
                    conn.execute("COMMIT")
                if version >= SCHEMA_VERSION:
                    return conn
            except (_Unusable, _Newer, sqlite3.Error, OSError):
                pass
            if conn is not None:
                conn.close()
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        _create_schema(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return conn

    def check_durable(self) -> None:
        """Raise ``StorageUnavailableError`` unless a paid request can be recorded on disk now.

        Called before every create (``Claim.start_create`` calls it too). The folder takes a
        real synced write and has room, the file is our writable journal, and the reserve that
        lets a paid task id fit on a full disk is in place. A journal refused at open is tried
        again here, so freeing the disk or fixing the folder takes effect without a restart.
        """
        with self._lock:
            self._retry_refused()
            if self._refusal is not None:
                raise self._refusal
            self._check_disk()

    def _check_disk(self) -> None:
        with self._lock:
            durability.require_writable(self.path.parent, JOURNAL_ROLE)
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise durability.StorageUnavailableError(
                    JOURNAL_ROLE, self.path.parent, durability.READ_ONLY,
                    f"{self.path.name} is not writable",
                )  # fmt: skip
            self._ensure_reserve()

    def _retry_refused(self) -> None:
        """A journal refused for a passing reason (read-only, full) is opened again."""
        refusal = self._refusal
        if refusal is None or refusal.problem == durability.NEWER_JOURNAL:
            return
        try:
            durability.require_writable(self.path.parent, JOURNAL_ROLE)
        except durability.StorageUnavailableError as still:
            self._refusal = still
            return
        self._refusal = None
        conn = self._open()
        if self._refusal is None:
            self._conn.close()
            self._conn = conn
        else:
            conn.close()
            self._refusal = refusal if self._refusal.problem == refusal.problem else self._refusal

    def _ensure_reserve(self) -> None:
        reserve = self.reserve_path
        try:
            if reserve.is_file() and reserve.stat().st_size >= RESERVE_BYTES:
                return
            with open(reserve, "wb") as handle:
                handle.write(bytes(RESERVE_BYTES))
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            reserve.unlink(missing_ok=True)
            raise durability.StorageUnavailableError(
                JOURNAL_ROLE, self.path.parent,
                durability.FULL if _is_full(exc) else durability.READ_ONLY,
                exc.strerror or type(exc).__name__,
            ) from exc  # fmt: skip

    def _release_reserve(self) -> bool:
        try:
            self.reserve_path.unlink()
        except OSError:
            return False
        logger.warning(
            "The disk holding the task journal %s is full: its reserve was used to record a "
            "paid task id. Free some space; new tasks are refused until then.",
            self.path,
        )
        return True

    def _salvage(self, reason: str) -> sqlite3.Connection:
        """Keep the damaged file beside, recover every readable row into a fresh journal."""
        from . import salvage

        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        try:
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(aside.with_name(aside.name + suffix))
        except FileNotFoundError:
            aside = None  # another process set it aside first; its fresh journal is ours too
        except OSError as exc:
            self._refusal = _storage_error(self.path, exc)
            return self._free_work_only()
        try:
            conn = self._open_checked_patiently()
        except (_Unusable, _Newer, OSError, sqlite3.Error) as exc:
            self._refusal = _storage_error(self.path, exc)
            return self._free_work_only()
        if aside is None:
            return conn
        recovered = salvage.recover_rows(aside)
        try:
            counts = salvage.insert_rows(conn, recovered)
        except sqlite3.Error as exc:
            logger.warning("could not copy rows recovered from %s: %s", aside, exc)
            counts = salvage.Counts(0, 0, 0)
        self.salvaged = SalvageReport(reason, aside, counts.rows, counts.tasks, counts.files)
        logger.warning("%s", self.salvaged.line(self.path))
        return conn

    def _recover(self, exc: sqlite3.DatabaseError) -> None:
        """Corruption found mid-run: salvage the file and carry on with the fresh one."""
        try:
            self._conn.close()
        except sqlite3.Error:
            pass
        self._conn = self._salvage(_first_line(str(exc)))

    def _execute(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return work(self._conn)
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                return work(self._conn)

    def _write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """Bookkeeping of free work: on a journal refused for paid work (read-only, newer) a
        write that cannot be made is skipped, so Load Task and kept results still work."""
        with self._lock:
            if self._refusal is None:
                self._execute(work)
                return
            try:
                self._execute(work)
            except sqlite3.Error as exc:
                logger.debug("journal %s not updated (%s): %s", self.path, self._refusal, exc)

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

    def create_folders(self) -> tuple[tuple[Path, str], ...]:
        return ((self.path.parent, JOURNAL_ROLE),)

    # -- the claim: decide "create, resume or reuse" atomically across threads and processes ------

    @contextmanager
    def claim(self, identity: RequestIdentity) -> Iterator[Claim]:
        """Hold the database write lock while the caller reads the latest attempt and decides.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock at once, so two processes asking for the
        same identity see each other's ``creating`` row instead of both sending a create. On a
        journal refused for paid work the claim only reads (kept results stay free) and its
        ``start_create`` raises the refusal.
        """
        with self._lock:
            self._retry_refused()
            refusal = self._refusal
            if refusal is not None:

                def refuse() -> None:
                    raise refusal

                latest = self._execute(lambda c: _latest(c, identity.key))
                yield Claim(self._conn, identity, latest, refuse, writable=False)
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise
                self._recover(exc)
                self._conn.execute("BEGIN IMMEDIATE")
            conn = self._conn
            try:
                yield Claim(conn, identity, _latest(conn, identity.key), self._check_disk)
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
        with self._lock:  # setting credits aside is paid work: refused where creates are
            self._retry_refused()
            refusal = self._refusal
        if refusal is not None:
            needs = [
                ident
                for ident in identities
                if (latest := self.latest(ident)) is None or latest.state in State.UNCHARGED
            ]
            if needs:
                raise refusal
            return Reservation(self.spent(since), 0, (), granted=True)  # all free: reuse

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
        again from ``entry``; if the disk is full, the reserve beside the journal is given back
        and the write tried again: a paid task id is the one thing the journal must not drop.
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

        try:
            self._execute(work)
        except sqlite3.Error as exc:
            if not (_is_full(exc) and self._release_reserve()):
                raise
            self._execute(work)

    def mark(self, entry_id: int, state: str, error: str | None = None) -> None:
        """Set the state of one attempt (``uncertain`` / ``rejected`` before a task id exists)."""
        now = time.time()
        refunded = state in State.UNCHARGED
        self._write(
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
        """A state change of a task, on the latest row that names it.

        URLs are stored as ``redaction.safe_url`` makes them: no userinfo, no echoed key.
        """
        now = time.time()
        urls = None if result_urls is None else json.dumps([safe_url(u) for u in result_urls])
        finished = now if state in State.FINISHED else None
        self._write(
            lambda c: c.execute(
                "UPDATE requests SET state = ?, result_urls = COALESCE(?, result_urls),"
                " error = ?, updated_at = ?, finished_at = COALESCE(?, finished_at),"
                " credits = CASE WHEN ? THEN 0 ELSE credits END"
                " WHERE id = (SELECT max(id) FROM requests WHERE task_id = ?)",
                (state, urls, error, now, finished, state in State.UNCHARGED, task_id),
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

        self._write(work)
        entry = self.get(task_id)
        if entry is None:  # a journal refused for paid work that could not take the row
            now = time.time()
            entry = JournalEntry(
                id=0, identity=None, model=None, prompt=None, aspect_ratio=None, seed=None,
                index=None, source_task_id=None, task_id=task_id, state=State.QUEUED, credits=0,
                result_urls=(), error=None, created_at=now, task_created_at=None,
                updated_at=now, finished_at=None, owner=None,
            )  # fmt: skip
        return entry

    def record_file(
        self, task_id: str, index: int, path: str | os.PathLike[str], sha256: str, size: int,
        url: str | None,
    ) -> None:  # fmt: skip
        """A kept file, committed (synced) before this returns; a good copy clears the file's
        recorded failure.

        Group commit: a task keeps its files side by side, eight tasks at once keep 48, and
        each synced commit takes milliseconds. Whoever holds the lock next commits every row
        queued by then in one transaction, so the callers share one sync instead of waiting
        for one each; each caller still returns only once its own row is on disk (or raises
        what its commit raised).
        """
        row = _FileRow((task_id, int(index), str(path), sha256, int(size), _safe(url), time.time()))
        with self._file_rows_lock:
            self._file_rows.append(row)
        with self._lock:
            if row.done:  # a commit by another thread took it, and has ended
                if row.error is not None:
                    raise row.error
                return
            with self._file_rows_lock:
                rows, self._file_rows = self._file_rows, []
            try:
                self._write(lambda c: _insert_files(c, [r.values for r in rows]))
            except BaseException as exc:
                for other in rows:
                    other.error = exc
                raise
            finally:
                for other in rows:
                    other.done = True

    def record_file_failure(self, task_id: str, index: int, reason: str, url: str | None) -> None:
        """Result file ``index`` of the task was fetched but is not a good image: not kept.

        A later good copy (``record_file``) clears it. The reason is shown to the user when the
        task's images are returned without this one.
        """
        now = time.time()
        self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO file_failures (task_id, idx, reason, url, failed_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (task_id, int(index), errors.redact(reason), _safe(url), now),
            )
        )

    def adopt_noted(self, notes: Callable[[], Iterable[Mapping[str, Any]]]) -> int:
        """After a salvage: rows for paid tasks the damaged file lost but ``notes()`` still names.

        ``notes`` yields the kept-files folder's ``.request.json`` records (``FileStore.
        noted_tasks``); it is only called when this journal was salvaged and not yet adopted, so
        an ordinary run never reads the folder. Each task id unknown here gets a ``queued`` row
        with its request's identity: a re-queue resumes it (free) instead of creating it again.
        Returns how many rows were added.
        """
        with self._lock:
            if self.salvaged is None or self._adopted:
                return 0
            self._adopted = True
            added = 0
            for note in notes():
                task_id = note.get("task_id")
                if not isinstance(task_id, str) or self.get(task_id) is not None:
                    continue
                try:
                    self._execute(lambda c, n=note: _insert_noted(c, n))
                except sqlite3.Error as exc:
                    logger.info("could not adopt noted task %s: %s", task_id, exc)
                    continue
                added += 1
        if added:
            logger.warning(
                "%d more task(s) the damaged journal had lost were found in their kept-files "
                "folders and recorded again; they will not be paid for again.",
                added,
            )
        return added

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
        entry = _insert(self._conn, self.identity, State.CREATING)
        self.latest = entry
        return entry

    def spent(self, since: float) -> int:
        """The ledger inside this claim's transaction (so check and create are one step)."""
        if self._writable:  # a refused journal's claim only reads
            _drop_dead_reservations(self._conn)
        return _spent(self._conn, since, None)

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
        entry = _latest(self._conn, self.identity.key)
        assert entry is not None and entry.id == reserved.id
        self.latest = entry
        return entry

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


@dataclass
class _FileRow:
    """One ``record_file`` call waiting for its commit, and how that commit ended."""

    values: tuple[str, int, str, str, int, str | None, float]
    done: bool = False
    error: BaseException | None = None


def _insert_files(conn: sqlite3.Connection, rows: Sequence[tuple]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT OR REPLACE INTO files (task_id, idx, path, sha256, size, url, saved_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "DELETE FROM file_failures WHERE task_id = ? AND idx = ?",
            [(row[0], row[1]) for row in rows],
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


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
        " AND created_at < ? AND identity IS NOT NULL AND state NOT IN"
        f" ({', '.join('?' * len(State.UNCHARGED))})",
        (since, float("inf") if until is None else until, *sorted(State.UNCHARGED)),
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


def _check_schema(conn: sqlite3.Connection) -> int:
    """The journal's schema version, if we can use it; else ``_Unusable`` / ``_Newer``.

    0 is an empty database (to make a journal in); below ``SCHEMA_VERSION`` it is migrated; above,
    it is used as is when every table and column we write is there and nothing it added needs a
    value we would not give, and refused (never moved aside, never changed) when not.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = _user_tables(conn)
    if version == 0:
        if tables:
            raise _Unusable("it holds tables that are not a Grok Imagine journal")
        return 0
    if version < 0 or (version not in MIGRATIONS and version < SCHEMA_VERSION):
        raise _Unusable(f"schema version {version} is not one this pack ever wrote")
    newer = version > SCHEMA_VERSION
    for table, wanted in _expected_columns(version).items():
        info = list(conn.execute(f"PRAGMA table_info({table})"))
        have = {row[1] for row in info}
        if table not in tables or not wanted <= have:
            if newer:
                raise _Newer(f"schema {version}, without the {table!r} table this version writes")
            raise _Unusable(f"table {table!r} is missing or has other columns")
        if newer:
            # (cid, name, type, notnull, default, pk): a column we would leave empty but may not
            required = [
                r[1] for r in info if r[3] and r[4] is None and not r[5] and r[1] not in wanted
            ]
            if required:
                raise _Newer(f"schema {version}, whose {table!r} rows need {required[0]!r}")
    return version


def _expected_columns(version: int) -> dict[str, set[str]]:
    """The tables and columns a journal of ``version`` has (``file_failures`` from 2 on)."""
    if version >= 2:
        return _EXPECTED_COLUMNS
    return {t: c for t, c in _EXPECTED_COLUMNS.items() if t != "file_failures"}


def _migrate(conn: sqlite3.Connection) -> None:
    """Take an older journal forward to ``SCHEMA_VERSION``, one explicit step at a time.

    Under ``BEGIN IMMEDIATE`` and re-reading the version, so two processes opening the same old
    file migrate it once; each step and its version bump commit together.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        while version < SCHEMA_VERSION:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            version += 1
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    logger.info("task journal migrated to schema version %d", SCHEMA_VERSION)


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
    failed: tuple[FailedFile, ...] = ()
    if task_id is not None:
        failed = tuple(
            FailedFile(*failure_row)
            for failure_row in conn.execute(
                "SELECT idx, reason, url, failed_at FROM file_failures WHERE task_id = ?"
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
        owner=owner, files=files, failed_files=failed,
    )  # fmt: skip


def _storage_error(path: Path, problem: object) -> durability.StorageUnavailableError:
    """Why the journal file cannot be kept on disk, as the typed error paid work is refused
    with."""
    if isinstance(problem, durability.StorageUnavailableError):
        return problem
    detail = _first_line(str(problem)) or type(problem).__name__
    if _is_full(problem):  # type: ignore[arg-type]
        kind = durability.FULL
    elif isinstance(problem, OSError) and problem.errno in (errno.ENOTDIR, errno.EEXIST):
        kind = durability.NOT_A_FOLDER
    elif isinstance(problem, (_Unusable, _Newer)):
        kind = durability.UNREADABLE
    else:
        kind = durability.READ_ONLY
    folder = path if kind == durability.UNREADABLE else path.parent
    return durability.StorageUnavailableError(JOURNAL_ROLE, folder, kind, detail)


def _insert_noted(conn: sqlite3.Connection, note: Mapping[str, Any]) -> None:
    def text(name: str) -> str | None:
        value = note.get(name)
        return value if isinstance(value, str) else None

    def number(name: str) -> int | None:
        value = note.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    created = note.get("created_at")
    created_at = float(created) if isinstance(created, (int, float)) else time.time()
    now = time.time()
    conn.execute(
        "INSERT INTO requests (identity, model, prompt, aspect_ratio, seed, batch_index,"
        " source_task_id, task_id, state, credits, created_at, task_created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            text("identity"), text("model"), text("prompt"), text("aspect_ratio"),
            number("seed"), number("index"), text("source_task_id"), note["task_id"],
            State.QUEUED, number("credits") or 0, created_at, created_at, now,
        ),
    )  # fmt: skip


def _safe(url: str | None) -> str | None:
    return None if url is None else safe_url(url)


def _first_line(text: str) -> str:
    return " ".join(str(text).split())[:200]
