"""The SQLite journal's file and its one connection: opened checked, migrated, salvaged when
damaged, and refused for paid work (never for free work) while it cannot be kept on disk.

At the edges it fails closed, never open: a journal that cannot be kept on disk (read-only, full,
written by a newer pack in a form this one cannot write) refuses paid creates with one line that
says what to do, and never falls back to memory for them; an older journal is migrated forward
by the explicit steps in ``schema.MIGRATIONS``; a damaged one is moved aside, never deleted, and
every row that can still be read is recovered into the fresh one (``salvage``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ...api.messages import said
from ...api.what import What
from .. import durability
from . import schema
from .errors import JOURNAL_ROLE, first_line, is_busy, is_corruption, is_full, storage_error

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0
RESERVE_SUFFIX = ".reserve"
RESERVE_BYTES = 512 * 1024

T = TypeVar("T")


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


class Database:
    """``Database(path)``: the journal file at ``path``, opened (or made); thread-safe through
    ``lock``, which every use of ``conn`` holds.

    A file that cannot be kept on disk still opens, for free work only: ``refusal`` says why, and
    ``check_durable()`` raises it. Kept results are still read where the file can be read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.refusal: durability.StorageUnavailableError | None = None
        self.salvaged: SalvageReport | None = None
        """Set when the file was found damaged at open (or mid-run) and salvaged."""
        self.conn = self._open()
        if self.refusal is not None:
            logger.warning("%s", self.refusal)

    @property
    def reserve_path(self) -> Path:
        """A small file of zeros beside the journal, given back to the disk when it is full so
        the one write that must not fail (a paid task's id) still fits."""
        return self.path.with_name(self.path.name + RESERVE_SUFFIX)

    # -- opening ----------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._open_checked_patiently()
        except schema.Unusable as problem:
            return self._salvage(str(problem))
        except schema.Newer as problem:
            self.refusal = durability.StorageUnavailableError(
                JOURNAL_ROLE, self.path, durability.NEWER_JOURNAL, str(problem)
            )
            return self._free_work_only()
        except (OSError, sqlite3.Error) as problem:
            self.refusal = storage_error(self.path, problem)
            return self._free_work_only()

    def _open_checked_patiently(self) -> sqlite3.Connection:
        # Switching to WAL answers "database is locked" at once, without the busy timeout, while
        # another process opens the same new file: wait that out like any other busy lock.
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return self._open_checked()
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def connect(self, uri: str | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(
            uri or str(self.path),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
            check_same_thread=False,  # shared by worker threads, serialized by self.lock
            uri=uri is not None,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        return conn

    def _open_checked(self) -> sqlite3.Connection:
        conn = self.connect()
        try:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise schema.Unusable(f"damaged ({first_line(verdict)})")
            # Before any write, so a foreign or newer file is left untouched; in one read
            # transaction, so a journal another process is creating right now reads whole.
            version = _read_version(conn)
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
            conn.execute("PRAGMA synchronous = FULL")  # a recorded task id survives power loss
            if version == 0:
                schema.create_if_new(conn)
            elif version < schema.SCHEMA_VERSION:
                schema.migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            if is_corruption(exc):
                raise schema.Unusable(first_line(str(exc))) from exc
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
                conn = self.connect(uri)
                if _read_version(conn) >= schema.SCHEMA_VERSION:
                    return conn
            except (schema.Unusable, schema.Newer, sqlite3.Error, OSError):
                pass
            if conn is not None:
                conn.close()
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        schema.run_steps(conn, 0)
        return conn

    # -- checking before paid work ----------------------------------------------------------------

    def check_durable(self) -> None:
        """Raise ``StorageUnavailableError`` unless a paid request can be recorded on disk now.

        Called before every create. The folder takes a real synced write and has room, the file
        is our writable journal, and the reserve that lets a paid task id fit on a full disk is
        in place. A journal refused at open is tried again here, so freeing the disk or fixing
        the folder takes effect without a restart.
        """
        with self.lock:
            self.retry_refused()
            if self.refusal is not None:
                raise self.refusal
            self.check_disk()

    def check_disk(self) -> None:
        with self.lock:
            durability.require_writable(self.path.parent, JOURNAL_ROLE)
            if self.path.exists() and not os.access(self.path, os.W_OK):
                raise durability.StorageUnavailableError(
                    JOURNAL_ROLE, self.path.parent, durability.READ_ONLY,
                    said(What.NOT_WRITABLE, name=self.path.name),
                )  # fmt: skip
            self._ensure_reserve()

    def retry_refused(self) -> None:
        """A journal refused for a passing reason (read-only, full) is opened again."""
        refusal = self.refusal
        if refusal is None or refusal.problem == durability.NEWER_JOURNAL:
            return
        try:
            durability.require_writable(self.path.parent, JOURNAL_ROLE)
        except durability.StorageUnavailableError as still:
            self.refusal = still
            return
        self.refusal = None
        conn = self._open()
        if self.refusal is None:
            self.conn.close()
            self.conn = conn
        else:
            conn.close()
            self.refusal = refusal if self.refusal.problem == refusal.problem else self.refusal

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
                durability.FULL if is_full(exc) else durability.READ_ONLY,
                exc.strerror or type(exc).__name__,
            ) from exc  # fmt: skip

    def release_reserve(self) -> bool:
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

    # -- damage -----------------------------------------------------------------------------------

    def _salvage(self, reason: str) -> sqlite3.Connection:
        """Keep the damaged file beside, recover every readable row into a fresh journal."""
        from . import salvage  # its readers (and the sqlite3 command line's) only when needed

        stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        aside = self.path.with_name(f"{self.path.name}.damaged-{stamp}")
        moved = True
        try:
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    side.replace(aside.with_name(aside.name + suffix))
        except FileNotFoundError:
            moved = False  # another process set it aside first; its fresh journal is ours too
        except OSError as exc:
            self.refusal = storage_error(self.path, exc)
            return self._free_work_only()
        try:
            conn = self._open_checked_patiently()
        except (schema.Unusable, schema.Newer, OSError, sqlite3.Error) as exc:
            self.refusal = storage_error(self.path, exc)
            return self._free_work_only()
        if moved:
            counts = salvage.salvage_into(conn, aside)
            self.salvaged = SalvageReport(reason, aside, counts.rows, counts.tasks, counts.files)
            logger.warning("%s", self.salvaged.line(self.path))
        return conn

    def recover(self, exc: sqlite3.DatabaseError) -> None:
        """Corruption found mid-run: salvage the file and carry on with the fresh one."""
        try:
            self.conn.close()
        except sqlite3.Error:
            pass
        self.conn = self._salvage(first_line(str(exc)))

    # -- using the connection ---------------------------------------------------------------------

    def execute(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(conn)`` under the lock; a damaged file found on the way is salvaged and the
        work done again on the fresh one."""
        with self.lock:
            try:
                return work(self.conn)
            except sqlite3.DatabaseError as exc:
                if not is_corruption(exc):
                    raise
                self.recover(exc)
                return work(self.conn)

    def write(self, work: Callable[[sqlite3.Connection], object]) -> None:
        """Bookkeeping of free work: on a journal refused for paid work (read-only, newer) a
        write that cannot be made is skipped, so Load Task and kept results still work."""
        with self.lock:
            if self.refusal is None:
                self.execute(work)
                return
            try:
                self.execute(work)
            except sqlite3.Error as exc:
                logger.debug("journal %s not updated (%s): %s", self.path, self.refusal, exc)

    def begin(self) -> sqlite3.Connection:
        """``BEGIN IMMEDIATE`` (the write lock, at once); a damaged file is salvaged first."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            if not is_corruption(exc):
                raise
            self.recover(exc)
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _read_version(conn: sqlite3.Connection) -> int:
    """The schema version, checked (``schema.check``) inside one read transaction."""
    conn.execute("BEGIN")
    try:
        return schema.check(conn)
    finally:
        conn.execute("COMMIT")
