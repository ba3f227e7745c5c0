"""What every Grok node does around its paid work: one place, so the three nodes stay declarations.

* builds the journal-backed ``TaskRunner`` on ComfyUI's folders (``comfy_paths``) with a client
  made only when an API call is needed, so a missing key costs nothing until then;
* runs the blocking work on a worker thread (``asyncio.to_thread``), so independent Grok nodes
  in one graph wait concurrently, and several tasks of one node in a small thread pool;
* shows live status text (state, elapsed seconds, task id, credits) and a progress bar;
* hears Cancel every 0.1 s and stops the node at once, leaving the task running server-side:
  the journal picks it up again on the next queue, so Cancel never throws away a paid result;
* turns every failure into one readable line for ComfyUI's error dialog.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..api import errors
from . import comfy_hooks, comfy_paths

if TYPE_CHECKING:
    import torch

    from ..api.task import Task
    from ..journal import RunHooks, TaskResult, TaskRunner

logger = logging.getLogger(__name__)

T = TypeVar("T")

CANCEL_CHECK_S = 0.1
"""How often the node looks at Cancel while its worker thread waits; the promise is 1 s."""
STATUS_REFRESH_S = 1.0
"""How often the status text is redrawn while nothing changes (the elapsed seconds tick)."""
MAX_PARALLEL = 8

_TASK_ID_SEPARATORS = re.compile(r"[\s,;]+")
_TASK_ID_IN_TEXT = re.compile(r"\btask ([A-Za-z0-9._-]+)")
_STATE_WORDS = {"succeeded": "downloading", "unknown": "waiting"}


# -- the runner ------------------------------------------------------------------------------------

_journals: dict[Path, Any] = {}
_journals_lock = threading.Lock()


def make_runner() -> TaskRunner:
    """A ``TaskRunner`` on this ComfyUI's journal and output folders (resolved per call)."""
    from ..api import GrokClient, config, load_settings
    from ..journal import FileStore, TaskRunner

    key_file = comfy_paths.key_file_path()

    def client_factory() -> GrokClient:
        return GrokClient(load_settings(key_file=key_file))

    return TaskRunner(
        client_factory,
        _journal(comfy_paths.journal_file_path()),
        FileStore(comfy_paths.files_dir()),
        api_base=config.base_url_from_env(),
    )


def _journal(path: Path) -> Any:
    """One open journal per file for the process (opening checks the file; once is enough)."""
    from ..journal import Journal

    with _journals_lock:
        journal = _journals.get(path)
        if journal is None:
            journal = _journals[path] = Journal(path)
        return journal


def close_journals() -> None:
    """Close every journal this process opened (tests; a later run opens them again)."""
    with _journals_lock:
        journals = list(_journals.values())
        _journals.clear()
    for journal in journals:
        journal.close()


# -- what the user sees while it runs --------------------------------------------------------------


@dataclass
class _TaskLine:
    label: str
    state: str = "starting"
    task_id: str | None = None
    note: str | None = None
    elapsed: float | None = None
    elapsed_at: float = 0.0
    cost: str | None = None
    fraction: float = 0.0
    finished: bool = False


@dataclass
class StatusBoard:
    """Live status of one node's tasks, drawn as the node's progress text and progress bar."""

    title: str
    hooks: comfy_hooks.NodeHooks
    labels: Sequence[str]
    credits_each: int = 0
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._lines = [_TaskLine(label) for label in self.labels]

    def run_hooks(self, index: int) -> RunHooks:
        """The journal runner's hooks for task ``index``."""
        from ..journal import RunHooks

        return RunHooks(
            on_update=lambda task, elapsed: self.on_update(index, task, elapsed),
            should_cancel=self.hooks.cancelled,
            on_status=lambda text: self.on_status(index, text),
        )

    def on_update(self, index: int, task: Task, elapsed: float) -> None:
        with self._lock:
            line = self._lines[index]
            line.task_id = task.id or line.task_id
            line.state, line.note = _STATE_WORDS.get(task.state.value, task.state.value), None
            line.elapsed, line.elapsed_at = elapsed, time.monotonic()
            progress = task.progress if task.progress is not None else 0.0
            base = {"queued": 0.05, "running": 0.15}.get(line.state, line.fraction)
            line.fraction = max(line.fraction, min(0.9, max(base, progress * 0.9)))
        self.publish()

    def on_status(self, index: int, text: str) -> None:
        """The runner's own words: created / resuming / kept; they also say what it costs."""
        with self._lock:
            line = self._lines[index]
            found = _TASK_ID_IN_TEXT.search(text)
            if found and line.task_id is None:
                line.task_id = found.group(1)
            if text.startswith("created task"):
                line.cost = f"{self.credits_each} credits" if self.credits_each else "free"
            elif text.startswith("resuming task"):
                line.cost = "paid earlier"
            elif "no API call" in text:
                line.cost = "no charge"
            else:
                line.note = text
        self.publish()

    def finished(self, index: int, result: TaskResult) -> None:
        with self._lock:
            line = self._lines[index]
            line.task_id = result.task_id
            line.finished, line.fraction, line.note = True, 1.0, None
            count = len(result.files)
            line.state = f"done, {count} image{'s' if count != 1 else ''}"
            if result.reused:
                line.cost = "kept from the journal, no charge"
            elif result.resumed:
                line.cost = "paid earlier"
            elif line.cost is None:
                line.cost = f"{self.credits_each} credits" if self.credits_each else "free"
        self.publish()

    def failed(self, index: int, exc: BaseException) -> None:
        with self._lock:
            line = self._lines[index]
            line.finished, line.fraction = True, 1.0
            line.state = "failed"
            line.note = errors.exception_line(exc)
        self.publish()

    def render(self) -> str:
        now = time.monotonic()
        with self._lock:
            lines = [f"{self.title} · {now - self.started:.0f} s"]
            for line in self._lines:
                parts = [line.label] if line.label else []
                parts.append(line.state)
                if line.elapsed is not None and not line.finished:
                    parts.append(f"{line.elapsed + (now - line.elapsed_at):.0f} s")
                if line.task_id:
                    parts.append(f"task {line.task_id}")
                if line.cost:
                    parts.append(line.cost)
                if line.note:
                    parts.append(line.note)
                lines.append(" · ".join(parts))
        return "\n".join(lines)

    def publish(self) -> None:
        self.hooks.text(self.render())
        with self._lock:
            done = sum(line.fraction for line in self._lines)
        self.hooks.progress(done * 100)


# -- running the work ------------------------------------------------------------------------------


async def run_blocking(
    work: Callable[[], T], hooks: comfy_hooks.NodeHooks, board: StatusBoard | None = None
) -> T:
    """``work()`` on a worker thread; Cancel and errors turned into what ComfyUI expects.

    The node returns as soon as Cancel is seen, even if a request of the worker is still on the
    wire: the worker stops at its next check, and its task (if any) is in the journal.
    """
    future = asyncio.ensure_future(asyncio.to_thread(work))
    last_refresh = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({future}, timeout=CANCEL_CHECK_S)
            if done:
                break
            if hooks.cancelled():
                future.add_done_callback(_log_late_failure)
                raise comfy_hooks.interrupt_exception()
            if board is not None and time.monotonic() - last_refresh >= STATUS_REFRESH_S:
                last_refresh = time.monotonic()
                board.publish()
    except asyncio.CancelledError:  # ComfyUI's event loop gave up on the node
        hooks.cancel()
        raise
    try:
        return future.result()
    except BaseException as exc:
        raise as_node_error(exc, hooks) from exc


def as_node_error(exc: BaseException, hooks: comfy_hooks.NodeHooks) -> BaseException:
    """What the node raises for ``exc``: ComfyUI's interrupt, or one readable line."""
    if comfy_hooks.is_interrupt(exc):
        return exc
    if isinstance(exc, errors.CancelledError) or hooks.cancelled():
        return comfy_hooks.interrupt_exception()
    if isinstance(exc, errors.GrokError):
        # A plain RuntimeError: ComfyUI's dialog shows the exception's type name, and ours
        # would carry the pack's folder path (ComfyUI names the module after it).
        return RuntimeError(errors.exception_line(exc))
    if isinstance(exc, Exception):
        # Not ours, so not pre-redacted: mask any remembered key before it reaches the dialog.
        text = errors.redact(errors.exception_line(exc))
        return RuntimeError(f"Grok Imagine: unexpected {type(exc).__name__}: {text}")
    return exc


def run_parallel(
    jobs: Sequence[Callable[[RunHooks], TaskResult]], board: StatusBoard
) -> list[TaskResult | BaseException]:
    """Run each job (one task each) with its own hooks, at most ``MAX_PARALLEL`` at a time.

    Every job runs to its end even when another fails: each one may already have been paid for,
    and its result belongs in the journal and the output.
    """

    def run(index: int) -> TaskResult | BaseException:
        try:
            result = jobs[index](board.run_hooks(index))
        except Exception as exc:
            board.failed(index, exc)
            return exc
        board.finished(index, result)
        return result

    board.publish()
    if len(jobs) == 1:
        return [run(0)]
    with ThreadPoolExecutor(
        min(MAX_PARALLEL, len(jobs)), thread_name_prefix="grok-imagine-task"
    ) as pool:
        return list(pool.map(run, range(len(jobs))))


@dataclass(frozen=True)
class NodeOutput:
    images: torch.Tensor
    task_ids: str
    urls: str


def collect(
    outcomes: Sequence[TaskResult | BaseException], hooks: comfy_hooks.NodeHooks
) -> NodeOutput:
    """The images, ids and URLs of every task that succeeded; the first error if none did."""
    from .image_tensors import images_to_tensor

    results = [o for o in outcomes if not isinstance(o, BaseException)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if hooks.cancelled() or any(isinstance(f, errors.CancelledError) for f in failures):
        raise errors.CancelledError(None, "Cancelled; every task keeps running at API in One.")
    if not results:
        raise failures[0]
    for failure in failures:
        logger.warning(
            "Grok Imagine: one task of the node failed: %s", errors.exception_line(failure)
        )
    files = [path for result in results for path in result.files]
    if not files:
        raise errors.BadResponseError("The task finished without any image.")
    return NodeOutput(
        images=images_to_tensor(files),
        task_ids="\n".join(result.task_id for result in results),
        urls="\n".join(url for result in results for url in result.urls),
    )


# -- small shared helpers --------------------------------------------------------------------------


def split_task_ids(text: str) -> list[str]:
    """Task ids from a widget or a wired output: one per line, or separated by commas; in order,
    without repeats."""
    seen: dict[str, None] = {}
    for part in _TASK_ID_SEPARATORS.split(text or ""):
        if part:
            seen.setdefault(part, None)
    return list(seen)


def validate_task_ids(text: str) -> list[str]:
    """``split_task_ids``, each checked; ``errors.InvalidRequestError`` for the first bad one."""
    from ..api import validation

    ids = split_task_ids(text)
    if not ids:
        validation.validate_task_id("")  # raises the standard "empty task id" message
    if len(ids) > 64:
        raise errors.InvalidRequestError(
            f"{len(ids)} task ids were given; one node takes at most 64.", field="task_id"
        )
    return [validation.validate_task_id(task_id) for task_id in ids]


def _log_late_failure(future: asyncio.Future[Any]) -> None:
    """A worker left behind by Cancel ended; anything but the expected cancel is worth a line."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None and not isinstance(exc, errors.CancelledError):
        logger.info(
            "Grok Imagine: a cancelled node's worker ended with: %s", errors.exception_line(exc)
        )
