"""The runner's waits outside ``client.wait``: for another thread with the same request, for
another process sending the same create, for a turn to create. Each stays cancellable
(``hooks.should_cancel``, looked at every ``CANCEL_CHECK_S``)."""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from ..api import errors
from ..api.messages import said
from ..api.what import What
from . import events
from .hooks import RunHooks, check_cancel, emit
from .identity import RequestIdentity
from .model import JournalEntry, State
from .store import JournalStore

CANCEL_CHECK_S = 0.1
"""How often waits that happen outside ``client.wait`` (for a lock, for another process) look at
``should_cancel``; the nodes promise Cancel within 1 s."""
CREATE_IN_FLIGHT_LIMIT_S = 300.0
"""A create request (connect + read timeouts) is long over by then, counted from its turn. One
still waiting out HTTP 429 after that (its task's timeout allows it) looks gone to another
process with the very same request, which reports it uncertain: a false alarm, never a second
create."""
TURN_RECHECK_S = 1.0
"""How often a create waiting for its turn asks again, so a turn given back moves it up."""
TURN_MOVED_S = 0.5
"""A turn that moved up by more than this is said again (``WaitingForTurn``)."""


class _IdentityLock:
    def __init__(self) -> None:
        self.lock = threading.Lock()


_locks: weakref.WeakValueDictionary[tuple[str, str], _IdentityLock] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


@contextmanager
def exclusive(journal: JournalStore, key: str, hooks: RunHooks) -> Iterator[None]:
    """One thread per identity per journal in this process; waiters stay cancellable."""
    with _locks_guard:
        slot_key = (journal.where, key)
        slot = _locks.get(slot_key)
        if slot is None:
            slot = _locks[slot_key] = _IdentityLock()
    announced = False
    while not slot.lock.acquire(timeout=CANCEL_CHECK_S):
        check_cancel(hooks, None)
        if not announced:
            emit(hooks, events.WaitingForThread())
            announced = True
    try:
        yield
    finally:
        slot.lock.release()


def wait_for_create_turn(
    journal: JournalStore, entry: JournalEntry, hooks: RunHooks, deadline: float
) -> None:
    """The journal paces the creates of all its users: wait for this one's turn, cancellable,
    asking again every ``TURN_RECHECK_S`` (a turn given back moves this one up, and it says so).
    A turn that would begin after ``deadline`` is refused at once (``RateLimitedError``).
    Meanwhile the row is ``waiting`` (nothing sent); it is ``creating`` again when this returns,
    or ``SettledWhileWaitingError`` says another process settled it (``create_turn``)."""
    wait = journal.create_turn(entry)
    shown = math.inf
    while wait > 0:
        begins = time.monotonic() + wait
        if begins > deadline:
            raise errors.RateLimitedError(
                said(What.TURN_AFTER_TIMEOUT, seconds=math.ceil(wait)), retry_after=wait
            )
        if begins < shown - TURN_MOVED_S:
            shown = begins
            emit(hooks, events.WaitingForTurn(wait))
        until = time.monotonic() + min(wait, TURN_RECHECK_S)
        while (left := until - time.monotonic()) > 0:
            check_cancel(hooks, None)
            time.sleep(min(CANCEL_CHECK_S, left))
        wait = journal.create_turn(entry)


def wait_for_other_process(
    journal: JournalStore,
    identity: RequestIdentity,
    entry: JournalEntry,
    hooks: RunHooks,
    deadline: float,
) -> None:
    """Another live process is sending this very create, or waiting for its turn to: wait
    until its row changes."""
    emit(hooks, events.WaitingForProcess(entry.owner.pid if entry.owner else None))
    while True:
        latest = journal.latest(identity)
        if latest is None or latest.id != entry.id or latest.state not in State.OWNED_CREATE:
            return
        if not creator_may_still_be_sending(latest):
            return  # it died: the next decision settles its row (never sent, or uncertain)
        check_cancel(hooks, None)
        if time.monotonic() > deadline:
            raise errors.TaskTimeoutError(None)
        time.sleep(CANCEL_CHECK_S)


def creator_may_still_be_sending(entry: JournalEntry) -> bool:
    """Is the ``waiting`` or ``creating`` row's create request possibly still to be sent, or on
    the wire, in another process?

    Its process must be alive and not us (our identity lock rules out our own threads), and the
    row young: no create request lives longer than ``CREATE_IN_FLIGHT_LIMIT_S`` after its turn
    (``created_at``; a waiting row's is still to come), which also covers a reused pid on
    systems where the owner's start time cannot be read.
    """
    owner = entry.owner
    if owner is None or owner.is_current() or not owner.is_alive():
        return False
    return entry.now() - entry.created_at < CREATE_IN_FLIGHT_LIMIT_S
