"""How fast creates may go: the account's limit, shared through the journal.

The provider allows about 20 new tasks per 10 s per account and refuses (429) the rest. Tasks,
nodes, processes or workers pacing themselves alone would together overrun it, so the journal
hands out turns (``JournalStore.create_turn``): the SQLite journal to every thread and process
of one machine, the PostgreSQL journal to a fleet. This module says what the rate is and what a
turn is (``next_turn``, the one rule); each store keeps the turns in its own table, under its
own lock, and asks this rule.

The rule: a create's turn is the earliest moment, from now on, at which no window of
``rate.window_s + PACING_MARGIN_S`` holds more than ``rate.creates`` turns, its own included:
first come, first served. A turn is taken once per attempt and only ever moves earlier (into a
turn given back, when the waiter asks again); turns older than two windows are forgotten; a
create refused before it was sent (Cancel, an error) gives its unreached turn back.

While its turn is to come, the create's row is ``waiting`` (nothing sent: a process that dies
then leaves nothing uncertain); the answer that its turn has come moves it back to ``creating``
in the same transaction (``row_state_at_turn``), so the row says a create may be on the wire
before one is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..api import errors
from ..api.env import CREATE_RATE_ENV
from ..api.messages import said
from ..api.what import What
from .model import State
from .store import SettledWhileWaitingError

DEFAULT_CREATES = 20
DEFAULT_WINDOW_S = 10.0
PACING_MARGIN_S = 1.0
"""Added to the pacing window: a create reaches the API a little after its turn begins."""
_OFF = ("off", "none", "0")
SAME_MOMENT_S = 1e-9
"""Turns a window apart are computed as ``t + window``: within this they are one moment, so a
float's rounding never pushes a turn a whole window later."""


@dataclass(frozen=True)
class CreateRate:
    """At most ``creates`` new tasks in any ``window_s`` seconds, across the whole fleet."""

    creates: int
    window_s: float

    def __str__(self) -> str:
        return f"{self.creates} per {self.window_s:g} s"

    @property
    def turn_window_s(self) -> float:
        """The window turns are spaced by: the account's, and the margin."""
        return self.window_s + PACING_MARGIN_S

    @property
    def turns_kept_s(self) -> float:
        """How long a turn is remembered: long enough to space every later one."""
        return 2 * self.turn_window_s


DEFAULT_RATE = CreateRate(DEFAULT_CREATES, DEFAULT_WINDOW_S)


def parse_rate(text: str) -> CreateRate | None:
    """``"20/10"`` (creates per seconds) -> CreateRate; ``"off"`` -> None (no pacing)."""
    value = text.strip().lower()
    if value in _OFF:
        return None
    creates, _, window = value.partition("/")
    try:
        rate = CreateRate(int(creates), float(window or DEFAULT_WINDOW_S))
    except ValueError:
        rate = None
    if rate is None or rate.creates < 1 or not rate.window_s > 0:
        raise errors.InvalidRequestError(
            said(What.CREATE_RATE_INVALID, value=repr(text.strip())), field=CREATE_RATE_ENV
        )
    return rate


def rate_from_env(environ: Mapping[str, str] | None = None) -> CreateRate | None:
    value = (os.environ if environ is None else environ).get(CREATE_RATE_ENV, "").strip()
    return parse_rate(value) if value else DEFAULT_RATE


def next_turn(
    rate: CreateRate, now: float, others: Sequence[float], held: float | None = None
) -> float:
    """When a create may be sent: the earliest moment from ``now`` at which no window of
    ``rate.turn_window_s`` holds more than ``rate.creates`` turns with this one among them.

    ``others`` are the other creates' turns (send times), ``held`` this create's own if it has
    one: a held turn only moves earlier, so asking again never loses a place in the queue.
    A block of ``rate.creates`` turns closer together than a window shuts out the span in which
    one more would make a window too full; the answer is ``now`` or the end of such a span.
    """
    window, count = rate.turn_window_s, rate.creates
    turns = sorted(others)
    shut = [
        (turns[i + count - 1] - window, turns[i] + window)
        for i in range(len(turns) - count + 1)
        if turns[i + count - 1] - turns[i] < window - SAME_MOMENT_S
    ]
    for moment in sorted({now, *(end for _, end in shut if end > now)}):
        if held is not None and moment >= held:
            break
        if not any(start + SAME_MOMENT_S < moment < end - SAME_MOMENT_S for start, end in shut):
            return moment
    assert held is not None, "the end of the last shut span is always free"
    return held


def row_state_at_turn(state: str | None, send_at: float, now: float) -> str:
    """The state a create's row takes with the answer to its turn: ``waiting`` while the turn
    is to come, ``creating`` once it has come. ``state`` is the row's as the turn's transaction
    read it (None: not this create's owner's any more); a row that is neither was settled by
    another process or worker while it waited, and is never sent (``SettledWhileWaitingError``).
    """
    if state not in State.OWNED_CREATE:
        raise SettledWhileWaitingError()
    return State.WAITING if send_at > now else State.CREATING
