"""The spend ledger's one rule, kept by both stores: what a run must set aside, and whether it fits.

Each store runs it inside its own lock (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's identity and
spend locks), so concurrent runs in any process, or on any worker, see each other's reservations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .identity import RequestIdentity
from .model import JournalEntry, Reservation, needs_create


def reserve(
    identities: Sequence[RequestIdentity],
    *,
    latest: Callable[[str], JournalEntry | None],
    spent: Callable[[], int],
    limit: int,
    insert: Callable[[RequestIdentity], JournalEntry],
) -> Reservation:
    """Set aside the credits of every request that will need a create, or none of them.

    A request whose latest attempt (``latest(key)``) is alive or done needs nothing. When
    ``spent() + need`` would exceed ``limit`` nothing is inserted and ``granted`` is False;
    otherwise ``insert`` writes one ``reserved`` row per request that needs a create.
    """
    needed: dict[str, RequestIdentity] = {}
    for ident in identities:
        if needs_create(latest(ident.key)):
            needed.setdefault(ident.key, ident)
    need = sum(ident.credits for ident in needed.values())
    already = spent()
    if need and already + need > limit:
        return Reservation(already, need, (), granted=False)
    return Reservation(already, need, tuple(insert(ident) for ident in needed.values()), True)
