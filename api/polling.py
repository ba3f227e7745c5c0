"""How often to ask "is it done yet?", and the one loop that waits for a task.

Grok Imagine takes 3-10 s. A fixed 5 s interval would leave up to 5 s of dead wait; a fixed fast
interval would hammer the API for long tasks (upscale time is undocumented). The default schedule:

* first read 1.5 s after the create (nothing finishes sooner), the second at 3 s;
* then every 0.45 s until 12 s after the create, where nearly every task ends: completion is
  noticed about 0.22 s after it happens on average and never more than 0.45 s (plus latency);
  a 7-second task costs 11 status reads, about 1.6 per second;
* after 12 s the gap grows by x1.3 per read (with +-10 % jitter) up to 4 s, so a slow upscale
  costs a read every few seconds.

Reads that fail for a passing reason (connection errors, 408, 429, 5xx, 455 maintenance, a
malformed or HTML answer) are retried inside the wait with exponential backoff and jitter,
honouring ``Retry-After``: a burst of errors never ends the wait, only the overall timeout does.
Cancel is answered within 0.25 s, while sleeping and while a status read is still in flight.
``GROK_IMAGINE_POLL_SCALE`` (a float) multiplies every delay of the default schedule; it is meant
for the sandbox and tests (``0.05`` makes a wait twenty times quicker), not for the real API.

Importing this module is cheap (no ``requests``): the node declarations may reach it.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from . import errors
from .env import POLL_SCALE_ENV
from .messages import said
from .task import Task, TaskState
from .what import What

__all__ = [
    "POLL_SCALE_ENV",
    "PollSchedule",
    "failure_error",
    "is_transient",
    "wait_for_task",
]

logger = logging.getLogger("grok_imagine.api")

MAX_CANCEL_CHECK_S = 0.25
READ_OVERRUN_S = 5.0
"""How long a status read still in flight at the wait's deadline may run on (so a read that is
failing anyway can say why) before the wait gives up on it: a gateway dripping its answer a byte
at a time never trips the read timeout, and must not hold a node past its own timeout."""
EMPTY_SUCCESS_REREADS = 2
"""A task reported succeeded but with no result URLs is read this many more times before the
answer is called broken (a gateway may mark it done a moment before it lists the files)."""

_MODERATION_WORDS = (
    "content policy",
    "content_policy",
    "moderat",
    "safety",
    "nsfw",
    "inappropriate",
    "prohibited",
    "violat",
    "sensitive",
    "not allowed",
    "disallowed",
    "unsafe",
    "blocked",
)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class PollSchedule:
    """When to read a task's status; all times in seconds. ``scaled()`` shrinks it for tests."""

    first_read: float = 1.5
    """First status read, counted from the create."""
    second_read: float = 3.0
    """Second status read, counted from the create."""
    fast_interval: float = 0.45
    """Gap between reads from ``second_read`` until ``fast_until``."""
    fast_until: float = 12.0
    """End of the fast phase, counted from the create."""
    growth: float = 1.3
    """Each gap after the fast phase is this much longer than the one before..."""
    max_interval: float = 4.0
    """...up to this."""
    jitter: float = 0.1
    """+- fraction applied to slow-phase gaps and to error backoffs (not to the fast phase)."""
    error_backoff: float = 0.5
    """Wait after the first failed read; doubles for each further failure in a row."""
    max_error_backoff: float = 8.0
    cancel_check: float = 0.1
    """How often ``should_cancel`` is asked while sleeping (capped at 0.25 s)."""
    not_found_grace: float = 10.0
    """A task this client just created that reads as "not found" is retried for this long."""

    _TIME_FIELDS = (
        "first_read",
        "second_read",
        "fast_interval",
        "fast_until",
        "max_interval",
        "error_backoff",
        "max_error_backoff",
        "not_found_grace",
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"PollSchedule.{f.name} must be a finite number >= 0")
        if self.fast_interval <= 0 or self.max_interval <= 0 or self.cancel_check <= 0:
            raise ValueError("PollSchedule intervals must be more than 0")
        if self.growth < 1:
            raise ValueError("PollSchedule.growth must be >= 1")
        if self.jitter >= 1:
            raise ValueError("PollSchedule.jitter must be a fraction below 1")

    def scaled(self, factor: float) -> PollSchedule:
        """Every delay times ``factor`` (the ratios and the cancel check stay as they are)."""
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 0):
            raise ValueError("the poll scale factor must be a positive number")
        return replace(self, **{name: getattr(self, name) * factor for name in self._TIME_FIELDS})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PollSchedule:
        """The default schedule, scaled by ``GROK_IMAGINE_POLL_SCALE`` when it is set."""
        env = os.environ if environ is None else environ
        raw = env.get(POLL_SCALE_ENV, "").strip()
        if not raw:
            return cls()
        try:
            return cls().scaled(float(raw))
        except ValueError:
            logger.warning("ignoring %s=%r: not a positive number", POLL_SCALE_ENV, raw)
            return cls()

    def next_read(self, last_read: float | None, slow_reads: int = 0, jitter: float = 0.0) -> float:
        """When the next read is due, in seconds since the create.

        ``last_read`` is when the previous read started (None before the first), ``slow_reads``
        how many reads already happened after ``fast_until``, ``jitter`` a draw in [-1, 1].
        """
        if last_read is None:
            return self.first_read
        if last_read < self.second_read:
            return max(self.second_read, last_read + min(self.fast_interval, self.second_read))
        if last_read < self.fast_until:
            return last_read + self.fast_interval
        gap = min(self.max_interval, self.fast_interval * self.growth ** (slow_reads + 1))
        return last_read + gap * (1.0 + self.jitter * jitter)

    def read_times(self, horizon: float) -> list[float]:
        """The reads (since the create, no jitter) up to the first one at or after ``horizon``:
        a task that finishes at ``horizon`` costs ``len(read_times(horizon))`` reads."""
        times: list[float] = []
        slow = 0  # reads before the latest one that were already past the fast phase
        while not times or times[-1] < horizon:
            if len(times) >= 2 and times[-2] >= self.fast_until:
                slow += 1
            times.append(self.next_read(times[-1] if times else None, slow))
        return times

    def backoff(self, failures_in_row: int, jitter: float = 0.0) -> float:
        """Wait after ``failures_in_row`` failed reads (1, 2, ...): doubling, capped, jittered."""
        base = self.error_backoff * 2.0 ** max(0, min(failures_in_row - 1, 30))
        return min(self.max_error_backoff, base) * (1.0 + self.jitter * jitter)


def is_transient(exc: BaseException) -> bool:
    """Could the same status read succeed a moment later?"""
    if isinstance(exc, errors.UncertainCreateError):
        return False
    if isinstance(exc, (errors.NetworkError, errors.RateLimitedError, errors.BadResponseError)):
        return True
    return isinstance(exc, errors.ServerError) and exc.retryable


def failure_error(task: Task) -> errors.TaskFailedError:
    """The exception for a failed task: moderation gets its own kind (never worth retrying)."""
    reason = task.error
    words = " ".join(filter(None, [reason, task.raw_status, _fail_code(task)])).lower()
    if any(word in words for word in _MODERATION_WORDS):
        return errors.ModerationError(task.id, reason)
    return errors.TaskFailedError(task.id, reason)


def wait_for_task(
    read: Callable[[], Task],
    task_id: str,
    *,
    schedule: PollSchedule,
    timeout: float | None,
    on_update: Callable[[Task, float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    created_at: float | None = None,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    rng: random.Random | None = None,
) -> Task:
    """Read the task until it succeeds (returned, with its result URLs) or fails (raised).

    ``created_at`` is the ``clock()`` time of the create when this process made the task: reads
    then follow the schedule from that moment. Otherwise (a task resumed later) the first read
    happens at once and the fast phase follows. Raises ``TaskFailedError`` / ``ModerationError``,
    ``TaskTimeoutError`` (the task keeps running), ``CancelledError``, or a non-passing error
    of the read itself (bad key, task not found, ...). ``read`` is one request: this loop is the
    one layer that retries a failed status read.
    """
    start = clock()
    w = _Wait(
        task_id=task_id,
        schedule=schedule,
        timeout=timeout,
        created_at=created_at,
        start=start,
        origin=created_at if created_at is not None else start - schedule.second_read,
        deadline=start + (math.inf if timeout is None else max(0.0, timeout)),
        draw=(rng or random).uniform,
    )
    check_every = min(schedule.cancel_check, MAX_CANCEL_CHECK_S)
    due = w.origin + schedule.first_read if created_at is not None else start

    while True:
        final = due >= w.deadline
        _sleep_until(min(due, w.deadline), clock, sleep, check_every, should_cancel, task_id)
        read_at = clock()
        w.reads += 1
        try:
            task = _read_cancellably(
                read, should_cancel, check_every, task_id, w.deadline, clock, timeout
            )
        except errors.GrokError as exc:
            due = w.after_failed_read(exc, read_at, final)
            continue
        w.failures = 0
        if w.changed(task) and on_update is not None:
            on_update(task, clock() - (created_at if created_at is not None else start))
        if w.finished(task, final):
            return task
        if final:
            raise errors.TaskTimeoutError(task_id, timeout)
        due = w.next_read(read_at)


@dataclass
class _Wait:
    """What one wait for a task knows between its reads."""

    task_id: str
    schedule: PollSchedule
    timeout: float | None
    created_at: float | None
    start: float
    origin: float
    """The ``clock()`` time the schedule counts from (the create, or as if just past it)."""
    deadline: float
    draw: Callable[[float, float], float]
    reads: int = 0
    failures: int = 0
    """Failed reads in a row."""
    slow_reads: int = 0
    last_read: float | None = None
    """When the previous good read started, in seconds since ``origin``."""
    empty_successes: int = 0
    last_seen: tuple[object, ...] | None = None

    def after_failed_read(self, exc: errors.GrokError, read_at: float, final: bool) -> float:
        """When to read again; raises when the failure ends the wait."""
        schedule = self.schedule
        if isinstance(exc, errors.TaskNotFoundError):
            just_made = self.created_at is not None and read_at - self.origin <= (
                schedule.not_found_grace
            )
            if not just_made or final:
                raise exc
            self.failures += 1
            logger.debug(
                "task %s not visible yet (read %d); reading again", self.task_id, self.reads
            )
            return read_at + schedule.backoff(self.failures, self.draw(-1.0, 1.0))
        if not is_transient(exc):
            raise exc
        if final:
            raise errors.TaskTimeoutError(
                self.task_id, self.timeout, last_error=errors.happened(exc)
            ) from None
        self.failures += 1
        wait = schedule.backoff(self.failures, self.draw(-1.0, 1.0))
        retry_after = getattr(exc, "retry_after", None)
        if retry_after:
            wait = max(wait, float(retry_after))
        log = logger.warning if self.failures >= 3 else logger.info
        log(
            "task %s: status read failed (%s); retrying in %.1f s",
            self.task_id,
            type(exc).__name__,
            wait,
        )
        return max(read_at + wait, self._scheduled(read_at))

    def changed(self, task: Task) -> bool:
        """Is this read's state, status word or progress new? (Logged once when it is.)"""
        seen = (task.state, task.raw_status, task.progress)
        if seen == self.last_seen:
            return False
        self.last_seen = seen
        logger.debug(
            "task %s: %s (%s) after %d read(s)",
            self.task_id,
            task.state.value,
            task.raw_status,
            self.reads,
        )
        return True

    def finished(self, task: Task, final: bool) -> bool:
        """True when the task succeeded with its files; raises when it failed, or when it keeps
        reading as succeeded without any."""
        if task.state is TaskState.FAILED:
            raise failure_error(task)
        if task.state is not TaskState.SUCCEEDED:
            return False
        if task.result_urls:
            return True
        self.empty_successes += 1
        if self.empty_successes > EMPTY_SUCCESS_REREADS or final:
            error = errors.BadResponseError(
                said(What.SUCCEEDED_WITHOUT_FILES, task_id=self.task_id),
                advice=errors.Advice.LOAD_LATER,
            )
            error.task_id = self.task_id
            raise error
        return False

    def next_read(self, read_at: float) -> float:
        """When the read after a good one is due (``clock()`` time)."""
        since_create = read_at - self.origin
        if self.last_read is not None and self.last_read >= self.schedule.fast_until:
            self.slow_reads += 1
        self.last_read = since_create
        return self.origin + self.schedule.next_read(
            since_create, self.slow_reads, self.draw(-1.0, 1.0)
        )

    def _scheduled(self, read_at: float) -> float:
        return self.origin + self.schedule.next_read(
            read_at - self.origin, self.slow_reads, self.draw(-1.0, 1.0)
        )


def _read_cancellably(
    read: Callable[[], Task],
    should_cancel: Callable[[], bool] | None,
    check_every: float,
    task_id: str,
    deadline: float = math.inf,
    clock: Clock = time.monotonic,
    timeout: float | None = None,
) -> Task:
    """``read()``, with Cancel and the wait's deadline still answered while it runs.

    A status read can hang up to the read timeout, and a stalled gateway dripping its answer a
    byte at a time never trips that timeout at all; neither Cancel nor the node's timeout may
    wait for it. The read runs on a helper thread and the wait watches ``should_cancel`` and the
    deadline meanwhile; an abandoned read ends on its own timeouts.
    """
    if should_cancel is None and math.isinf(deadline):
        return read()
    outcome: list[Any] = []
    finished = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, read()))
        except BaseException as exc:  # handed to the waiting thread as is
            outcome.append((False, exc))
        finally:
            finished.set()

    threading.Thread(target=run, name=f"grok-status-read-{task_id}", daemon=True).start()
    while not finished.wait(check_every):
        if should_cancel is not None and should_cancel():
            raise errors.CancelledError(task_id)
        if clock() >= deadline + READ_OVERRUN_S:
            raise errors.TaskTimeoutError(
                task_id,
                timeout,
                last_error=said(What.READ_STILL_ARRIVING),
            )
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _sleep_until(
    until: float,
    clock: Clock,
    sleep: Sleep,
    check_every: float,
    should_cancel: Callable[[], bool] | None,
    task_id: str,
) -> None:
    """Sleep in short slices, asking ``should_cancel`` before each one and once at the end."""
    while True:
        if should_cancel is not None and should_cancel():
            raise errors.CancelledError(task_id)
        left = until - clock()
        if left <= 0:
            return
        sleep(min(check_every, left))


def _fail_code(task: Task) -> str | None:
    raw = task.raw
    if not isinstance(raw, dict):
        return None
    for container in (raw.get("data"), raw):
        if isinstance(container, dict):
            for key in ("failCode", "fail_code", "error_code", "errorCode", "code"):
                value = container.get(key)
                if isinstance(value, str) and value.strip():
                    return value
            error = container.get("error")
            if isinstance(error, dict) and isinstance(error.get("code"), str):
                return error["code"]
    return None
