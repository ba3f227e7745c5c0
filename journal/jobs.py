"""Several jobs at once, each to its end: the one job runner the nodes and the CLI share.

A node's ``parallel_tasks`` and the CLI's ``--tasks`` both run a few paid tasks side by side.
What both rely on is here, once:

* at most ``workers`` jobs run at a time (the provider's task limit), on daemon threads, so a
  process that must leave now (the CLI after Ctrl-C, ``os._exit``) is never held by a job whose
  request is still on the wire;
* every job runs to its end even when another fails: each may already be paid for, and its
  result belongs in the journal and the output; a job's exception is its outcome, not the run's;
* outcomes come back in job order, whatever order the jobs ended in;
* a caller that watches for a stop (``stop``) hears it within ``watch_s``, gives the jobs
  ``grace_s`` to end on their own (a create just answered gets its task id recorded), then gets
  ``JobsStopped`` with what had ended: it never waits for a job stuck on the network.

Outcomes are values (a result or the exception the job raised); nothing here words anything.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..api.validation import MAX_PARALLEL_TASKS

__all__ = ["PENDING", "JobsStopped", "Pending", "run_jobs"]

T = TypeVar("T")

WATCH_S = 0.05
"""How often a watching caller looks at its stop flag (and ticks its display)."""
STOP_GRACE_S = 0.5
"""After a stop, how long the jobs may take to end on their own before the caller leaves."""


class Pending:
    """The outcome of a job that had not ended when the run was stopped."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING = Pending()


class JobsStopped(Exception, Generic[T]):
    """``stop()`` came true; ``outcomes`` holds each job's result, exception or ``PENDING``."""

    def __init__(self, outcomes: list[T | BaseException | Pending]) -> None:
        super().__init__("stopped")
        self.outcomes = outcomes


def run_jobs(
    count: int,
    work: Callable[[int], T],
    *,
    workers: int = MAX_PARALLEL_TASKS,
    stop: Callable[[], bool] | None = None,
    tick: Callable[[], None] | None = None,
    grace_s: float = STOP_GRACE_S,
    watch_s: float = WATCH_S,
    name: str = "grok-imagine-task",
) -> list[T | BaseException]:
    """``work(i)`` for ``i`` in ``range(count)``; each outcome (result or exception) in order.

    ``stop`` is looked at every ``watch_s`` by the calling thread, and ``tick`` called as often
    (a display's clock). Without either, one job runs inline on the calling thread.
    Raises ``JobsStopped`` once ``stop()`` is true, at most ``grace_s`` later.
    """
    if count == 0:
        return []
    if count == 1 and stop is None and tick is None:
        return [_outcome(work, 0)]
    batch = _Batch(count, work)
    for number in range(min(max(1, workers), count)):
        threading.Thread(target=batch.serve, name=f"{name}-{number}", daemon=True).start()
    while not batch.ended.wait(watch_s if stop or tick else None):
        if stop is not None and stop():
            batch.ended.wait(grace_s)
            raise JobsStopped(batch.snapshot())
        if tick is not None:
            tick()
    if stop is not None and stop():
        raise JobsStopped(batch.snapshot())
    return [outcome for outcome in batch.snapshot() if not isinstance(outcome, Pending)]


def _outcome(work: Callable[[int], T], index: int) -> T | BaseException:
    try:
        return work(index)
    except BaseException as exc:  # the job's outcome: the others run on regardless
        return exc


class _Batch(Generic[T]):
    """The jobs still to start, their outcomes, and the event set when the last one ends."""

    def __init__(self, count: int, work: Callable[[int], T]) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._next: Iterator[int] = iter(range(count))
        self._left = count
        self._outcomes: list[T | BaseException | Pending] = [PENDING] * count
        self.ended = threading.Event()

    def serve(self) -> None:
        """A worker: take the next job until none is left."""
        while True:
            with self._lock:
                index = next(self._next, None)
            if index is None:
                return
            outcome = _outcome(self._work, index)
            with self._lock:
                self._outcomes[index] = outcome
                self._left -= 1
                if self._left == 0:
                    self.ended.set()

    def snapshot(self) -> list[T | BaseException | Pending]:
        with self._lock:
            return list(self._outcomes)
