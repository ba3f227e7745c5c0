"""The journal's records and their columns, defined once, below both stores.

Each store (``sqlite/``, ``postgres/``) keeps the same four tables in its own dialect: one
``requests`` row per attempt at a request, one ``files`` row per kept result file, one
``file_failures`` row per result file that could not be kept, and one ``create_turns`` row per
create's turn to be sent (``pacing``; short-lived, never salvaged). The records here are what
the rest of the pack reads; the columns say what each record's fields are called in those
tables, and every select list, insert, row mapping and the salvage reader is built from them.

A new field is its record's attribute, its column here, and one migration per store; nothing
else. A new column goes last in its table (SQLite's ``ADD COLUMN`` appends, and salvage reads
rows it cannot place by position); the tests hold each store's migrations to these columns.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..api.redaction import safe_url
from .identity import RequestIdentity


class State:
    """Row states. The first four exist before (or instead of) a task id."""

    RESERVED = "reserved"  # credits set aside for a run's create; nothing sent yet
    WAITING = "waiting"  # identity written, waiting for its turn to create (pacing): nothing sent
    CREATING = "creating"  # identity written, create request about to be / being sent
    UNCERTAIN = "uncertain"  # the create may have been taken (and charged), its answer was lost
    REJECTED = "rejected"  # the API refused the create: no task exists, nothing charged
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the task failed server-side (refunded) or is unknown to the API

    FINISHED = frozenset({SUCCEEDED, FAILED})
    OWNED_CREATE = frozenset({WAITING, CREATING})
    """A create its owner (the row's process or leased worker) is still to send or sending: no
    task id yet. While the owner lives, others wait for it; once it is gone, a ``waiting`` row
    was never sent (settled as ``rejected``) and a ``creating`` one may have been
    (``uncertain``)."""
    UNCHARGED = frozenset({REJECTED, FAILED})
    """The refund rule, defined only here: rows in these states cost nothing; both journals zero
    their credits and their spend ledgers skip them."""


class RowOwner(Protocol):
    """Who wrote a ``waiting`` or ``creating`` row (its ``owner_pid`` and ``owner_marker``
    columns), and whether its create may still be sent or on the wire."""

    @property
    def pid(self) -> int: ...

    @property
    def marker(self) -> str: ...

    def is_current(self) -> bool: ...

    def is_alive(self) -> bool:
        """True unless it is known to have ended (unknowable counts as alive)."""
        ...


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
    owner: RowOwner | None  # a process on this machine (SQLite), a leased fleet worker (PostgreSQL)
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


@dataclass(frozen=True)
class Reservation:
    """What a store's ``reserve`` found and did."""

    spent: int
    """Credits already counted today before this reservation."""
    need: int
    """Credits of the requests that will need a create."""
    entries: tuple[JournalEntry, ...]
    """The ``reserved`` rows written (none when refused or nothing is needed)."""
    granted: bool


def needs_create(latest: JournalEntry | None) -> bool:
    """A request needs a (paid) create when it has no attempt yet or its last one cost nothing."""
    return latest is None or latest.state in State.UNCHARGED


# -- the columns ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    """Its name in the table."""
    kind: type = str
    """What a value read back from outside the database (a ``.request.json`` note) must be."""
    attr: str = ""
    """The record's attribute, where it is named otherwise (``batch_index`` is ``index``)."""
    request: bool = False
    """One of the request's inputs: ``RequestIdentity`` and ``JournalEntry`` both carry it."""
    owner: bool = False
    """Says who wrote the row: read into ``JournalEntry.owner`` by the store, not a field."""

    @property
    def field(self) -> str:
        return self.attr or self.name


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


REQUESTS = Table(
    "requests",
    (
        Column("id", int),
        Column("identity"),
        Column("model", request=True),
        Column("prompt", request=True),
        Column("aspect_ratio", request=True),
        Column("seed", int, request=True),
        Column("batch_index", int, "index", request=True),
        Column("source_task_id", request=True),
        Column("task_id"),
        Column("state"),
        Column("credits", int),
        Column("result_urls"),
        Column("error"),
        Column("created_at", float),
        Column("task_created_at", float),
        Column("updated_at", float),
        Column("finished_at", float),
        Column("owner_pid", int, owner=True),
        Column("owner_marker", owner=True),
    ),
)
FILES = Table(
    "files",
    (
        Column("task_id"),
        Column("idx", int, "index"),
        Column("path"),
        Column("sha256"),
        Column("size", int),
        Column("url"),
        Column("saved_at", float),
    ),
)
FILE_FAILURES = Table(
    "file_failures",
    (
        Column("task_id"),
        Column("idx", int, "index"),
        Column("reason"),
        Column("url"),
        Column("failed_at", float),
    ),
)
CREATE_TURNS = Table(
    "create_turns",
    (
        Column("id", int),
        Column("send_at", float),
        Column("request_id", int),
    ),
)
"""When each create may be sent (``pacing``): one row per attempt (``requests.id``)."""
TABLES = (REQUESTS, FILES, FILE_FAILURES, CREATE_TURNS)

INPUTS = tuple(column for column in REQUESTS.columns if column.request)
"""The request's inputs, in table order."""
FILE_FIELDS = FILES.columns[1:]
"""A kept file's columns after its task id: ``JournalFile``'s fields."""
FAILURE_FIELDS = FILE_FAILURES.columns[1:]
"""A failed file's columns after its task id: ``FailedFile``'s fields."""
FILE_KEY = ("task_id", "idx")
"""The key of ``files`` and ``file_failures``: one row per result file of a task."""


# -- rows <-> records -----------------------------------------------------------------------------


def entry_from_row(
    row: Sequence[Any],
    *,
    owner: RowOwner | None,
    files: tuple[JournalFile, ...] = (),
    failed_files: tuple[FailedFile, ...] = (),
    read_at: float | None = None,
) -> JournalEntry:
    """A ``requests`` row (its columns in ``REQUESTS`` order, then whatever the store adds) as an
    entry; ``owner`` is made by the store from the owner columns and what else it keeps."""
    columns = REQUESTS.columns
    fields = {
        column.field: value
        for column, value in zip(columns, row[: len(columns)], strict=True)
        if not column.owner
    }
    fields["result_urls"] = decode_urls(fields["result_urls"])
    return JournalEntry(
        **fields, owner=owner, files=files, failed_files=failed_files, read_at=read_at
    )


def unrecorded_task(task_id: str) -> JournalEntry:
    """The entry of a task known only by its id whose row the journal could not take (one
    refused for paid work): every request field empty, nothing charged."""
    now = time.time()
    fields: dict[str, Any] = {c.field: None for c in REQUESTS.columns if not c.owner}
    fields.update(
        id=0, task_id=task_id, state=State.QUEUED, credits=0, result_urls=(), created_at=now,
        updated_at=now,
    )  # fmt: skip
    return JournalEntry(**fields, owner=None)


def file_from_row(row: Sequence[Any]) -> JournalFile:
    """A ``files`` row without its task id (``FILE_FIELDS`` order)."""
    return JournalFile(**{c.field: v for c, v in zip(FILE_FIELDS, row, strict=True)})


def failure_from_row(row: Sequence[Any]) -> FailedFile:
    """A ``file_failures`` row without its task id (``FAILURE_FIELDS`` order)."""
    return FailedFile(**{c.field: v for c, v in zip(FAILURE_FIELDS, row, strict=True)})


def new_attempt(identity: RequestIdentity, state: str) -> dict[str, Any]:
    """The columns of a new attempt at ``identity`` (the store adds its clock and its owner)."""
    return {
        "identity": identity.key,
        **{column.name: getattr(identity, column.field) for column in INPUTS},
        "state": state,
        "credits": identity.credits,
    }


def attempt_again(entry: JournalEntry, task_id: str) -> dict[str, Any]:
    """``entry``'s row, written again with its task id: the row was lost meanwhile (a damaged
    file set aside, a restored backup) and a paid task id must not be (the store adds its clock
    and owner)."""
    return {
        "identity": entry.identity,
        **{column.name: getattr(entry, column.field) for column in INPUTS},
        "task_id": task_id,
        "state": State.QUEUED,
        "credits": entry.credits,
        "created_at": entry.created_at,
    }


def owner_columns(owner: RowOwner | None) -> dict[str, Any]:
    return {
        "owner_pid": owner.pid if owner else None,
        "owner_marker": owner.marker if owner else None,
    }


def request_note(entry: JournalEntry) -> dict[str, object]:
    """What ``.request.json`` in the task's folder says about the request (nothing secret)."""
    return {
        "identity": entry.identity,
        **{column.field: getattr(entry, column.field) for column in INPUTS},
        "credits": entry.credits,
        "created_at": entry.created_at,
    }


def noted_attempt(note: Mapping[str, Any]) -> dict[str, Any]:
    """A ``request_note`` read back as the row of a paid task (``queued``: a re-queue resumes it);
    a value of the wrong kind is left empty. The store adds ``updated_at``."""
    created = note.get("created_at")
    created_at = float(created) if isinstance(created, (int, float)) else time.time()
    return {
        "identity": _noted(note, "identity", str),
        **{column.name: _noted(note, column.field, column.kind) for column in INPUTS},
        "task_id": note["task_id"],
        "state": State.QUEUED,
        "credits": _noted(note, "credits", int) or 0,
        "created_at": created_at,
        "task_created_at": created_at,
    }


def _noted(note: Mapping[str, Any], name: str, kind: type) -> Any:
    value = note.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        return None
    return value


def stored_url(url: str | None) -> str | None:
    """URLs are stored as ``redaction.safe_url`` makes them: no userinfo, no echoed key."""
    return None if url is None else safe_url(url)


def encode_urls(urls: Sequence[str] | None) -> str | None:
    """The ``result_urls`` column: a JSON list of stored URLs (None: leave the column as it is)."""
    return None if urls is None else json.dumps([safe_url(url) for url in urls])


def decode_urls(text: str | None) -> tuple[str, ...]:
    try:
        return tuple(str(url) for url in json.loads(text or "[]"))
    except (ValueError, TypeError):
        return ()
