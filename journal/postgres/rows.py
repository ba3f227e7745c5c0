"""The model's rows in PostgreSQL: table names, the select list (with the row's files, its
writer's lease and the database's clock, in one round trip), inserts, the row -> entry mapping
and the spend ledger's sums.

Every timestamp comes from the database's clock (``NOW``), and every row read carries that
clock's time (``JournalEntry.read_at``) for the ages the runner works out, so a fleet's hosts
need not agree on the time.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from ..identity import RequestIdentity
from ..model import (
    FAILURE_FIELDS,
    FILE_FIELDS,
    REQUESTS,
    JournalEntry,
    State,
    entry_from_row,
    failure_from_row,
    file_from_row,
    new_attempt,
    owner_columns,
)
from ..owner import current_owner

NOW = "extract(epoch FROM clock_timestamp())::float8"
"""The database's clock, in seconds since the epoch."""
LEASE_S = 10.0
"""How long a ``waiting`` or ``creating`` row stays owned without a renewal (a dead worker's
create is settled, as never sent or as ``uncertain``, this long after its last heartbeat)."""
LEASE_COLUMNS = ("owner_host", "lease_until")
"""Beside the model's: which host holds a row, and until when (by ``NOW``)."""
HOST = socket.gethostname()


def table(name: str) -> str:
    """The model's table ``name`` in the shared database (beside other applications' tables)."""
    return f"grok_imagine_{name}"


REQUESTS_TABLE = table(REQUESTS.name)


def _json_rows(name: str, alias: str, fields: Sequence[Any]) -> str:
    items = ", ".join(f"{alias}.{column.name}" for column in fields)
    return (
        f"(SELECT json_agg(json_build_array({items}) ORDER BY {alias}.idx) FROM {table(name)}"
        f" {alias} WHERE {alias}.task_id = {REQUESTS_TABLE}.task_id)"
    )


COLUMNS = ", ".join(
    (
        *REQUESTS.names,
        "owner_host",
        f"COALESCE(lease_until > {NOW}, FALSE)",
        # The kept files ride along in the same round trip.
        _json_rows("files", "f", FILE_FIELDS),
        _json_rows("file_failures", "x", FAILURE_FIELDS),
        NOW,  # the database's clock, for every age computed from this row
    )
)
"""The select list of an entry: the model's columns, then ``entry``'s extras."""
SELECT = f"SELECT {COLUMNS} FROM {REQUESTS_TABLE}"


@dataclass(frozen=True)
class FleetOwner:
    """The worker holding a ``waiting`` or ``creating`` row: alive while its lease (renewed by
    its heartbeat) has not run out, by the database's clock; pids mean nothing across hosts."""

    host: str
    pid: int
    marker: str
    lease_live: bool

    def is_current(self) -> bool:
        me = current_owner()
        return self.host == HOST and self.pid == me.pid and self.marker == me.marker

    def is_alive(self) -> bool:
        return self.is_current() or self.lease_live


def entry(row: Sequence[Any]) -> JournalEntry:
    """A row of ``SELECT``, as an entry."""
    values = dict(zip(REQUESTS.names, row[: len(REQUESTS.names)], strict=True))
    host, lease_live, files, failed, read_at = row[len(REQUESTS.names) :]
    pid = values["owner_pid"]
    owner = (
        FleetOwner(host or "", pid, values["owner_marker"] or "", bool(lease_live))
        if pid is not None
        else None
    )
    return entry_from_row(
        row,
        owner=owner,
        files=tuple(file_from_row(f) for f in files or ()),
        failed_files=tuple(failure_from_row(f) for f in failed or ()),
        read_at=read_at,
    )


def insert_parts(
    values: Mapping[str, Any], clock: Mapping[str, str] | None = None
) -> tuple[str, str, tuple[Any, ...]]:
    """(column list, value list, parameters) of one row from its columns by name; ``clock``
    columns take an SQL expression of the database's clock (``NOW``, or ``NOW + %s`` whose
    parameter the caller adds after these)."""
    clock = clock or {}
    names = ", ".join((*values, *clock))
    marks = ", ".join(("%s",) * len(values) + tuple(clock.values()))
    return names, marks, tuple(values.values())


def upsert(
    table_name: str, values: Mapping[str, Any], clock: Mapping[str, str], key: Sequence[str]
) -> tuple[str, tuple[Any, ...]]:
    """Insert the row, or replace every column but ``key`` of the row with the same key."""
    names, marks, params = insert_parts(values, clock)
    replaced = [name for name in (*values, *clock) if name not in key]
    return (
        f"INSERT INTO {table_name} ({names}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET"
        f" {', '.join(f'{name} = EXCLUDED.{name}' for name in replaced)}",
        params,
    )


def insert_attempt(
    conn: psycopg.Connection[Any], ident: RequestIdentity, state: str
) -> JournalEntry:
    """A new attempt at ``ident`` in ``state`` (``creating`` or ``reserved``), leased to us."""
    names, marks, params = insert_parts(
        {**new_attempt(ident, state), **owner_columns(current_owner()), "owner_host": HOST},
        {"created_at": NOW, "updated_at": NOW, "lease_until": f"{NOW} + %s"},
    )
    row = conn.execute(
        f"INSERT INTO {REQUESTS_TABLE} ({names}) VALUES ({marks}) RETURNING {COLUMNS}",
        (*params, LEASE_S),
    ).fetchone()
    assert row is not None
    return entry(row)


def latest(conn: psycopg.Connection[Any], identity_key: str) -> JournalEntry | None:
    row = conn.execute(
        f"{SELECT} WHERE identity = %s ORDER BY id DESC LIMIT 1", (identity_key,)
    ).fetchone()
    return None if row is None else entry(row)


SPENT = (
    f"SELECT COALESCE(SUM(credits), 0) FROM {REQUESTS_TABLE}"
    " WHERE created_at >= %s AND created_at < %s AND identity IS NOT NULL"
    " AND state <> ALL(%s)"
    f" AND NOT (state = %s AND COALESCE(lease_until, 0) <= {NOW})"
)
"""The ledger: a reservation counts while its worker's lease lives (no pid check across hosts)."""


def spent(conn: psycopg.Connection[Any], since: float, until: float | None = None) -> int:
    row = conn.execute(SPENT, spent_params(since, until)).fetchone()
    assert row is not None
    return int(row[0])


def spent_params(since: float, until: float | None) -> tuple[Any, ...]:
    end = float("inf") if until is None else until
    return (since, end, sorted(State.UNCHARGED), State.RESERVED)


DROP_DEAD_RESERVATIONS = (
    f"DELETE FROM {REQUESTS_TABLE} WHERE state = %s AND COALESCE(lease_until, 0) <= {NOW}"
)
"""Reservations whose worker stopped renewing them hold no money (its run is gone)."""
