"""The journal in SQLite (the default): every paid request, its task and its files, on one machine.

Rows are written in the order money moves: the request's identity *before* the create is sent,
the task id the moment the API returns it, then every state change and every kept file. So after
any crash the journal tells which tasks exist and which were paid for.

One connection per ``Journal``, shared by the node worker threads under a lock (statements take
microseconds); other processes are kept apart by SQLite's own file locks (WAL mode, a busy
timeout). Nothing secret is ever stored here: no key, no headers. Keeping the file usable (and
refusing paid work when it cannot be) is ``database.Database``'s job; the rows are the model's.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import ledger
from ..identity import RequestIdentity
from ..model import (
    JournalEntry,
    Reservation,
    State,
    attempt_again,
    encode_urls,
    needs_create,
    noted_attempt,
    owner_columns,
    unrecorded_task,
)
from ..pacing import CreateRate
from . import rows, turns
from .claim import SqliteClaim
from .database import Database, SalvageReport
from .errors import JOURNAL_ROLE, is_full
from .group_commit import GroupCommit

logger = logging.getLogger(__name__)


class Journal:
    """``Journal(path, rate)``: open (or create) the journal at ``path``; thread-safe. With a
    ``rate`` (``pacing``), every thread and process using the file takes its creates' turns here.

    A journal that cannot be kept on disk (read-only folder, disk full, a newer pack's schema
    this version cannot write) still opens, for free work only: ``check_durable()`` and every
    claim's ``start_create()`` then raise ``StorageUnavailableError``, so no create is ever sent
    that the journal could not remember. Kept results are still read where the file can be read.
    """

    def __init__(self, path: str | os.PathLike[str], rate: CreateRate | None = None) -> None:
        self.path = Path(path)
        self.rate = rate
        """The account's create rate every user of this file shares (None: creates go at once)."""
        self._db = Database(self.path)
        self._file_rows = GroupCommit(self._db)
        self._adopted = False

    @property
    def salvaged(self) -> SalvageReport | None:
        """Set when the file was found damaged at open (or mid-run) and salvaged."""
        return self._db.salvaged

    @property
    def reserve_path(self) -> Path:
        return self._db.reserve_path

    def check_durable(self) -> None:
        """Raise ``StorageUnavailableError`` unless a paid request can be recorded on disk now."""
        self._db.check_durable()

    def close(self) -> None:
        self._db.close()

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
        """Take (once) the moment ``entry``'s create may go (``pacing``); seconds until then.
        Every thread and process using this file shares the turns."""
        rate = self.rate
        if rate is None:
            return 0.0
        return self._db.execute(lambda c: turns.take_turn(c, entry.id, rate))

    def create_folders(self) -> tuple[tuple[Path, str], ...]:
        return ((self.path.parent, JOURNAL_ROLE),)

    # -- the claim: decide "create, resume or reuse" atomically across threads and processes ------

    @contextmanager
    def claim(self, identity: RequestIdentity) -> Iterator[SqliteClaim]:
        """Hold the database write lock while the caller reads the latest attempt and decides.

        ``BEGIN IMMEDIATE`` takes SQLite's write lock at once, so two processes asking for the
        same identity see each other's ``creating`` row instead of both sending a create. On a
        journal refused for paid work the claim only reads (kept results stay free) and its
        ``start_create`` raises the refusal.
        """
        with self._db.lock:
            self._db.retry_refused()
            refusal = self._db.refusal
            if refusal is not None:

                def refuse() -> None:
                    raise refusal

                latest = self._db.execute(lambda c: rows.latest(c, identity.key))
                yield SqliteClaim(self._db.conn, identity, latest, refuse, writable=False)
                return
            conn = self._db.begin()
            try:
                yield SqliteClaim(
                    conn, identity, rows.latest(conn, identity.key), self._db.check_disk
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- the spend ledger: what was spent, and credits set aside for a run before it sends ------

    def spent(self, since: float, until: float | None = None) -> int:
        """Credits of the requests created in ``[since, until)``: charged, in flight, uncertain
        (it may have been charged: fail closed) and reserved; failed and refused ones cost 0."""
        return self._db.execute(lambda c: rows.spent(c, since, until))

    def reserve(
        self, identities: Sequence[RequestIdentity], *, limit: int, since: float
    ) -> Reservation:
        """Set aside the credits of every request that will need a create, or none of them
        (``ledger.reserve``), in one ``BEGIN IMMEDIATE`` transaction. Reserved rows (state
        ``reserved``) are taken over by whichever claim creates that request first; ``release``
        drops the rest.
        """
        with self._db.lock:  # setting credits aside is paid work: refused where creates are
            self._db.retry_refused()
            refusal = self._db.refusal
        if refusal is not None:
            if any(needs_create(self.latest(ident)) for ident in identities):
                raise refusal
            return Reservation(self.spent(since), 0, (), granted=True)  # all free: reuse

        def work(c: sqlite3.Connection) -> Reservation:
            c.execute("BEGIN IMMEDIATE")
            try:
                rows.drop_dead_reservations(c)
                reservation = ledger.reserve(
                    identities,
                    latest=lambda key: rows.latest(c, key),
                    spent=lambda: rows.spent(c, since, None),
                    limit=limit,
                    insert=lambda ident: rows.insert_attempt(c, ident, State.RESERVED),
                )
                c.execute("COMMIT" if reservation.granted else "ROLLBACK")
                return reservation
            except BaseException:
                if c.in_transaction:
                    c.execute("ROLLBACK")
                raise

        return self._db.execute(work)

    def release(self, entry_ids: Sequence[int]) -> None:
        """Drop reservations that no create took over (the run ended or gave up first)."""
        if not entry_ids:
            return
        marks = ",".join("?" * len(entry_ids))
        self._db.execute(
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
                again = attempt_again(entry, task_id)
                rows.insert(
                    c,
                    "requests",
                    {
                        **again,
                        "task_created_at": now,
                        "updated_at": now,
                        **owner_columns(entry.owner),
                    },
                )

        try:
            self._db.execute(work)
        except sqlite3.Error as exc:
            if not (is_full(exc) and self._db.release_reserve()):
                raise
            self._db.execute(work)

    def mark(self, entry_id: int, state: str, error: str | None = None) -> None:
        """Set the state of one attempt (``uncertain`` / ``rejected`` before a task id exists)."""
        now = time.time()
        refunded = state in State.UNCHARGED

        def work(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE requests SET state = ?, error = COALESCE(?, error), updated_at = ?,"
                " credits = CASE WHEN ? THEN 0 ELSE credits END WHERE id = ?",
                (state, error, now, refunded, entry_id),
            )
            if state == State.REJECTED:  # nothing was sent: give an unreached turn back
                turns.give_back(c, entry_id)

        self._db.write(work)

    def record_state(
        self,
        task_id: str,
        state: str,
        *,
        result_urls: Sequence[str] | None = None,
        error: str | None = None,
    ) -> None:
        """A state change of a task, on the latest row that names it (URLs stored safe)."""
        now = time.time()
        urls = encode_urls(result_urls)
        finished = now if state in State.FINISHED else None
        self._db.write(
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
            rows.insert(
                c,
                "requests",
                {
                    "task_id": task_id, "state": State.QUEUED, "credits": 0, "created_at": now,
                    "updated_at": now,
                },
            )  # fmt: skip

        self._db.write(work)
        entry = self.get(task_id)
        if entry is None:  # a journal refused for paid work that could not take the row
            entry = unrecorded_task(task_id)
        return entry

    def record_file(
        self, task_id: str, index: int, path: str | os.PathLike[str], sha256: str, size: int,
        url: str | None,
    ) -> None:  # fmt: skip
        """A kept file, committed (synced) before this returns, with the files other threads
        keep meanwhile (``group_commit``); a good copy clears the file's recorded failure."""
        row = rows.file_row(task_id, int(index), str(path), sha256, int(size), url)
        self._file_rows.commit(row)

    def record_file_failure(self, task_id: str, index: int, reason: str, url: str | None) -> None:
        """Result file ``index`` of the task was fetched but is not a good image: not kept.

        A later good copy (``record_file``) clears it. The reason is shown to the user when the
        task's images are returned without this one.
        """
        self._db.write(lambda c: rows.insert_failure(c, task_id, int(index), reason, url))

    def adopt_noted(self, notes: Callable[[], Iterable[Mapping[str, Any]]]) -> int:
        """After a salvage: rows for paid tasks the damaged file lost but ``notes()`` still names.

        ``notes`` yields the kept-files folder's ``.request.json`` records (``FileStore.
        noted_tasks``); it is only called when this journal was salvaged and not yet adopted, so
        an ordinary run never reads the folder. Each task id unknown here gets a ``queued`` row
        with its request's identity: a re-queue resumes it (free) instead of creating it again.
        Returns how many rows were added.
        """
        with self._db.lock:
            if self.salvaged is None or self._adopted:
                return 0
            self._adopted = True
            added = sum(self._adopt(note) for note in notes())
        if added:
            logger.warning(
                "%d more task(s) the damaged journal had lost were found in their kept-files "
                "folders and recorded again; they will not be paid for again.",
                added,
            )
        return added

    def _adopt(self, note: Mapping[str, Any]) -> bool:
        task_id = note.get("task_id")
        if not isinstance(task_id, str) or self.get(task_id) is not None:
            return False
        values = {**noted_attempt(note), "updated_at": time.time()}
        try:
            self._db.execute(lambda c: rows.insert(c, "requests", values))
        except sqlite3.Error as exc:
            logger.info("could not adopt noted task %s: %s", task_id, exc)
            return False
        return True

    # -- reading ----------------------------------------------------------------------------------

    def get(self, task_id: str) -> JournalEntry | None:
        """The latest row naming ``task_id``, with its files."""
        return self._db.execute(
            lambda c: rows.one(c, "WHERE task_id = ? ORDER BY id DESC LIMIT 1", (task_id,))
        )

    def entry(self, entry_id: int) -> JournalEntry | None:
        """One attempt by its row id."""
        return self._db.execute(lambda c: rows.one(c, "WHERE id = ?", (entry_id,)))

    def latest(self, identity: RequestIdentity) -> JournalEntry | None:
        return self._db.execute(lambda c: rows.latest(c, identity.key))

    def recent(self, limit: int = 20) -> list[JournalEntry]:
        """The newest ``limit`` rows, newest first (the CLI's ``tasks`` view)."""
        return self.page(limit)

    def page(
        self, limit: int, offset: int = 0, *, with_rejected: bool = True
    ) -> list[JournalEntry]:
        """``limit`` rows after the newest ``offset``, newest first (the panel's pages);
        reservations (nothing sent yet) are not rows to show, nor, without ``with_rejected``,
        refused attempts (no task, nothing charged)."""
        hidden = _hidden(with_rejected)
        return self._db.execute(
            lambda c: rows.entries(
                c,
                f"WHERE state NOT IN ({', '.join('?' * len(hidden))})"
                " ORDER BY id DESC LIMIT ? OFFSET ?",
                (*hidden, int(limit), int(offset)),
            )
        )

    def uncertain(self) -> list[JournalEntry]:
        """Every row still ``uncertain`` (a create whose answer was lost), newest first."""
        return self._db.execute(
            lambda c: rows.entries(c, "WHERE state = ? ORDER BY id DESC", (State.UNCERTAIN,))
        )

    def count(self, *, with_rejected: bool = True) -> int:
        """How many rows ``page`` pages through."""
        hidden = _hidden(with_rejected)
        return self._db.execute(
            lambda c: c.execute(
                f"SELECT count(*) FROM requests WHERE state NOT IN "
                f"({', '.join('?' * len(hidden))})",
                hidden,
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

        return self.entry(entry_id) if self._db.execute(work) else None


def _hidden(with_rejected: bool) -> tuple[str, ...]:
    """The states a listing leaves out: reservations always, refused attempts unless asked."""
    return (State.RESERVED,) if with_rejected else (State.RESERVED, State.REJECTED)
