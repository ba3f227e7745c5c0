"""Accounts, credits and tasks: the sandbox's memory, behind one lock.

A task's state is a function of time: the store settles tasks (queued -> running -> completed or
failed) whenever anyone looks, so no timer threads exist and a failed task is refunded at the
moment it fails, before any reader can see it failed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import PRICES, TEXT_TO_IMAGE, UPSCALE
from .shapes import COMPLETED, FAILED, QUEUED, RUNNING
from .wire import ApiError

QUEUED_FRACTION = 0.2  # the first fifth of a task's generation time is spent queued

log = logging.getLogger("grok_imagine.sandbox")


def shown_key(key: str) -> str:
    """A key as the ledger shows it: the last four characters only."""
    return f"...{key[-4:]}" if len(key) > 4 else "..."


@dataclass(frozen=True)
class Ledger:
    """What one key was charged. ``credits_charged`` is net of refunds; ``refunds`` in credits."""

    creates: int
    credits_charged: int
    refunds: int
    balance: int
    rate_limited: int = 0
    """Creates refused with 429 because the key was over its rate limit (nothing charged)."""


@dataclass(frozen=True)
class TaskInfo:
    """A snapshot of one task, for tests. Times are ``time.monotonic()`` values."""

    task_id: str
    key: str = field(repr=False)
    model: str
    prompt: str
    aspect_ratio: str | None
    source_task_id: str | None
    state: str  # queued, running, completed, failed
    created_at: float
    done_at: float | None
    status_reads: int
    price: int
    image_count: int
    fail_reason: str | None
    fail_code: str | None
    refunded: bool
    progress: float  # 0..1 at the moment of the snapshot
    created_unix: float


@dataclass
class NewTask:
    """A validated create request plus the fate the server drew for it."""

    key: str
    model: str
    prompt: str
    aspect_ratio: str | None
    source_task_id: str | None
    generation_time: float
    image_count: int
    fails_with: str | None  # the failure reason, if the task is to fail
    fail_code: str | None
    stuck: bool


@dataclass
class _Task:
    spec: NewTask
    task_id: str
    price: int
    created_at: float
    created_unix: float
    state: str = QUEUED
    done_at: float | None = None
    status_reads: int = 0
    refunded: bool = False


@dataclass
class _Account:
    balance: int
    creates: int = 0
    charged: int = 0
    refunded: int = 0
    rate_limited: int = 0
    recent_creates: deque[float] = field(default_factory=deque)


class Store:
    def __init__(self, keys: dict[str, int], rate_limit: tuple[int, float] | None) -> None:
        self._lock = threading.Lock()
        self._accounts = {key: _Account(balance=credits) for key, credits in keys.items()}
        self._tasks: dict[str, _Task] = {}
        self._unsettled: set[str] = set()
        self._rate_limit = rate_limit

    # -- accounts ---------------------------------------------------------------------------------

    def knows_key(self, key: str) -> bool:
        return key in self._accounts

    def ledger(self, key: str) -> Ledger:
        with self._lock:
            self._settle(time.monotonic())
            account = self._accounts[key]
            return Ledger(
                creates=account.creates,
                credits_charged=account.charged - account.refunded,
                refunds=account.refunded,
                balance=account.balance,
                rate_limited=account.rate_limited,
            )

    def ledger_report(self, key: str | None = None) -> dict[str, Any]:
        """The JSON view served at ``GET /sandbox/ledger``: per key, its totals and its tasks.

        ``key`` limits it to one account; keys are shown by their last four characters.
        """
        with self._lock:
            self._settle(time.monotonic())
            accounts = []
            for account_key, account in self._accounts.items():
                if key is not None and account_key != key:
                    continue
                totals = Ledger(
                    creates=account.creates,
                    credits_charged=account.charged - account.refunded,
                    refunds=account.refunded,
                    balance=account.balance,
                    rate_limited=account.rate_limited,
                )
                tasks = [
                    {
                        "task_id": task.task_id,
                        "model": task.spec.model,
                        "state": task.state,
                        "credits": task.price,
                        "refunded": task.refunded,
                        "source_task_id": task.spec.source_task_id,
                        "created_unix": round(task.created_unix, 3),
                    }
                    for task in self._tasks.values()
                    if task.spec.key == account_key
                ]
                accounts.append({"key": shown_key(account_key), **asdict(totals), "tasks": tasks})
        return {"keys": accounts}

    # -- tasks ------------------------------------------------------------------------------------

    def create(self, spec: NewTask) -> str:
        """Check the rate limit, the upscale source and the balance; then charge and record."""
        now = time.monotonic()
        price = PRICES[spec.model]
        with self._lock:
            self._settle(now)
            account = self._accounts[spec.key]
            self._check_rate(account, now)
            if spec.model == UPSCALE:
                self._check_upscale_source(spec)
            if account.balance < price:
                raise ApiError(
                    402,
                    f"Insufficient credits: this request costs {price}, "
                    f"the balance is {account.balance}",
                )
            account.balance -= price
            account.charged += price
            account.creates += 1
            account.recent_creates.append(now)
            task = _Task(
                spec=spec,
                task_id=f"sbx{uuid.uuid4().hex[:16]}_grok",
                price=price,
                created_at=now,
                created_unix=time.time(),
            )
            self._tasks[task.task_id] = task
            self._unsettled.add(task.task_id)
            log.info(
                "ledger %s: create %s (%s) charged %d credits, balance %d (%d creates)",
                shown_key(spec.key),
                task.task_id,
                spec.model,
                price,
                account.balance,
                account.creates,
            )
            return task.task_id

    def _check_rate(self, account: _Account, now: float) -> None:
        if self._rate_limit is None:
            return
        max_creates, window = self._rate_limit
        recent = account.recent_creates
        while recent and recent[0] <= now - window:
            recent.popleft()
        if len(recent) >= max_creates:
            account.rate_limited += 1
            wait = recent[0] + window - now
            raise ApiError(
                429,
                f"Rate limit exceeded: at most {max_creates} new tasks per {window:g} s",
                retry_after=max(1, int(wait + 0.999)),
            )

    def _check_upscale_source(self, spec: NewTask) -> None:
        source = self._tasks.get(spec.source_task_id or "")
        if source is None or source.spec.key != spec.key:
            raise ApiError(404, f"Task not found: {spec.source_task_id}")
        if source.spec.model != TEXT_TO_IMAGE:
            raise ApiError(400, "Invalid task_id: only a text-to-image task can be upscaled")
        if source.state != COMPLETED:
            raise ApiError(
                400, f"Invalid task_id: the source task is {source.state}, not completed"
            )

    def read_status(self, task_id: str, key: str | None) -> TaskInfo:
        """The task as a status read sees it (counted); 404 for unknown or other keys' tasks."""
        with self._lock:
            self._settle(time.monotonic())
            task = self._tasks.get(task_id)
            if task is not None:
                task.status_reads += 1
            if task is None or key is None or task.spec.key != key:
                raise ApiError(404, f"Task not found: {task_id}")
            return self._snapshot(task)

    def count_read(self, task_id: str) -> None:
        """Count a status read that a fault answered before the task was looked up."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is not None:
                task.status_reads += 1

    def get(self, task_id: str) -> TaskInfo | None:
        with self._lock:
            self._settle(time.monotonic())
            task = self._tasks.get(task_id)
            return None if task is None else self._snapshot(task)

    def info(self, task_id: str) -> TaskInfo:
        """KeyError for an id the sandbox never issued."""
        with self._lock:
            self._settle(time.monotonic())
            return self._snapshot(self._tasks[task_id])

    def _snapshot(self, task: _Task) -> TaskInfo:
        failed = task.state == FAILED
        return TaskInfo(
            task_id=task.task_id,
            key=task.spec.key,
            model=task.spec.model,
            prompt=task.spec.prompt,
            aspect_ratio=task.spec.aspect_ratio,
            source_task_id=task.spec.source_task_id,
            state=task.state,
            created_at=task.created_at,
            done_at=task.done_at,
            status_reads=task.status_reads,
            price=task.price,
            image_count=task.spec.image_count,
            fail_reason=task.spec.fails_with if failed else None,
            fail_code=task.spec.fail_code if failed else None,
            refunded=task.refunded,
            progress=self._progress(task, time.monotonic()),
            created_unix=task.created_unix,
        )

    def task_ids(self) -> list[str]:
        with self._lock:
            return list(self._tasks)

    # -- time -------------------------------------------------------------------------------------

    def _settle(self, now: float) -> None:
        """Advance every unfinished task to where the clock says it is (lock held)."""
        for task_id in list(self._unsettled):
            task = self._tasks[task_id]
            elapsed = now - task.created_at
            duration = task.spec.generation_time
            if task.spec.stuck or elapsed < duration:
                task.state = QUEUED if elapsed < duration * QUEUED_FRACTION else RUNNING
                continue
            task.done_at = task.created_at + duration
            self._unsettled.discard(task_id)
            if task.spec.fails_with is None:
                task.state = COMPLETED
                continue
            task.state = FAILED
            task.refunded = True
            account = self._accounts[task.spec.key]
            account.balance += task.price
            account.refunded += task.price
            log.info(
                "ledger %s: refund %s (failed) %d credits, balance %d",
                shown_key(task.spec.key),
                task.task_id,
                task.price,
                account.balance,
            )

    @staticmethod
    def _progress(task: _Task, now: float) -> float:
        if task.state in (COMPLETED, FAILED):
            return 1.0 if task.state == COMPLETED else 0.0
        duration = task.spec.generation_time
        fraction = (now - task.created_at) / duration if duration > 0 else 1.0
        cap = 0.95
        return max(0.0, min(cap, fraction))
