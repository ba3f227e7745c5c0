"""What the runner needs from a journal, whichever database keeps it.

Two backends implement it: SQLite (``sqlite.Journal``, the default: one machine, nothing to set
up) and PostgreSQL (``postgres.PgJournal``: one journal shared by a fleet of workers). The runner
is typed against these Protocols only, so a backend is chosen in one place (``open.open_journal``,
whose return type makes the type checker hold both to ``LedgerStore``) and every guarantee the
runner makes (never pay twice, never lose a paid image) holds on both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..api import errors
from ..api.messages import Message, said
from ..api.what import What
from .identity import RequestIdentity
from .model import JournalEntry, Reservation


class Claim(Protocol):
    """What a caller may do while holding the claim on one identity (see ``Journal.claim``)."""

    identity: RequestIdentity
    latest: JournalEntry | None

    def start_create(self) -> JournalEntry:
        """Write the identity row (state ``creating``) before the create request is sent.

        Fails closed: raises a ``GrokError`` (``StorageUnavailableError`` for SQLite,
        ``JournalUnavailableError`` for a shared journal) if the journal could not remember the
        task, so no create is sent."""
        ...

    def mark_uncertain(self, entry_id: int, error: str) -> None: ...

    def settle_unsent(self, entry_id: int, error: str) -> None:
        """A ``waiting`` row whose owner is gone was never sent: ``rejected`` (0 credits), its
        unreached turn given back. Only while it is still ``waiting``; ``latest`` is then the
        row as it is now (settled, or moved on by its owner meanwhile)."""
        ...


class LedgerClaim(Claim, Protocol):
    """The claim of a ``SpendLedger`` store: the limit is checked inside the same transaction."""

    def spent(self, since: float) -> int: ...

    def take_reservation(self, reserved: JournalEntry) -> JournalEntry:
        """A run's ``reserved`` row becomes this create's ``creating`` row."""
        ...


class JournalStore(Protocol):
    """The journal interface the runner, the nodes and the CLI use."""

    @property
    def where(self) -> str:
        """A stable, password-free name of the store (a resolved file path, a database URL):
        requests are kept apart per store, and messages say which one they mean."""
        ...

    def claim(self, identity: RequestIdentity) -> AbstractContextManager[Claim]:
        """Exclusive across threads, processes and (for a shared store) machines."""
        ...

    def create_turn(self, entry: JournalEntry) -> float:
        """Ask to send ``entry``'s create now: 0.0 means go (the turn is taken), otherwise the
        seconds to wait before asking again. The store paces every user of the journal (one
        machine, or a fleet); without a rate it always says go and writes nothing.

        The row says which: ``waiting`` (nothing sent) while the turn is to come, ``creating``
        once it has come, moved back by a conditional write that is durable before this returns
        0.0, so a failed write sends nothing. ``SettledWhileWaitingError`` when the row is no
        longer this create's to send (another process or worker settled it meanwhile)."""
        ...

    def create_folders(self) -> tuple[tuple[Path, str], ...]:
        """(folder, role) this store must be able to write before a create: probed ahead of
        the claim (``durability.probed_ahead``). None for a database server."""
        ...

    def record_task_id(self, entry: JournalEntry, task_id: str) -> None: ...

    def mark(self, entry_id: int, state: str, error: str | None = None) -> None: ...

    def record_state(
        self,
        task_id: str,
        state: str,
        *,
        result_urls: Sequence[str] | None = None,
        error: str | None = None,
    ) -> None: ...

    def record_loaded(self, task_id: str) -> JournalEntry: ...

    def record_file(
        self, task_id: str, index: int, path: str | os.PathLike[str], sha256: str, size: int,
        url: str | None,
    ) -> None: ...  # fmt: skip

    def record_file_failure(self, task_id: str, index: int, reason: str, url: str | None) -> None:
        """Result file ``index`` was fetched but is not a usable image: not kept, and why.
        Shown with the task's other images; a later good copy (``record_file``) clears it."""
        ...

    def adopt_noted(self, notes: Callable[[], Iterable[Mapping[str, Any]]]) -> int:
        """After a damaged journal was salvaged: rows for the paid tasks ``notes()`` (the kept
        files' ``.request.json`` records) name and the journal lost. 0 when nothing to do."""
        ...

    def get(self, task_id: str) -> JournalEntry | None: ...

    def entry(self, entry_id: int) -> JournalEntry | None: ...

    def latest(self, identity: RequestIdentity) -> JournalEntry | None: ...

    def recent(self, limit: int = 20) -> list[JournalEntry]: ...

    def close(self) -> None: ...


@runtime_checkable
class SpendLedger(Protocol):
    """A journal that can count what was spent and set credits aside (the daily limit, the
    panel). Both stores the pack ships are; a store that is not cannot run under a daily limit (the
    runner refuses paid work then: fail closed) and is not listed in the panel."""

    def spent(self, since: float, until: float | None = None) -> int: ...

    def reserve(
        self, identities: Sequence[RequestIdentity], *, limit: int, since: float
    ) -> Reservation: ...

    def release(self, entry_ids: Sequence[int]) -> None: ...

    def page(
        self, limit: int, offset: int = 0, *, with_rejected: bool = True
    ) -> list[JournalEntry]:
        """Newest first; ``with_rejected=False`` leaves refused attempts out (no task was made,
        nothing charged or counted: after a few mistakes they would crowd the paid tasks out)."""
        ...

    def count(self, *, with_rejected: bool = True) -> int: ...

    def uncertain(self) -> list[JournalEntry]: ...

    def resolve_uncertain(self, entry_id: int, task_id: str | None) -> JournalEntry | None: ...


class LedgerStore(JournalStore, SpendLedger, Protocol):
    """A journal that keeps the spend ledger too, as both stores the pack ships do."""

    def claim(self, identity: RequestIdentity) -> AbstractContextManager[LedgerClaim]: ...


class JournalUnavailableError(errors.GrokError):
    """The journal cannot be reached or written, so nothing may be paid for: no create is sent.

    ``where`` names the store without any password (host, port, database).
    """

    default_what = said(What.JOURNAL_AWAY)

    def __init__(
        self,
        message: Message | str | None = None,
        where: str | None = None,
        *,
        advice: errors.Advice | None = None,
    ) -> None:
        super().__init__(message, advice=advice)
        self.where = where


class SettledWhileWaitingError(errors.GrokError):
    """While this create waited for its turn, another process or worker found its owner gone
    and settled the row (nothing was sent): it must never be sent now. The runner decides again
    (sharing the other's create, or making a new one)."""

    default_what = said(What.SETTLED_WHILE_WAITING)
    default_advice = errors.Advice.RETRY


class JournalVersionError(JournalUnavailableError):
    """The shared journal was upgraded by a newer pack than this one: update this pack."""


class JournalDriverMissingError(JournalUnavailableError):
    """A PostgreSQL journal is asked for, but psycopg (the optional extra) is not installed."""
