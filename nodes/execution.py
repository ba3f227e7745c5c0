"""What every Grok node does around its paid work: one place, so the three nodes stay declarations.

``run_node`` is the one entry point: a node hands it its type, its node id and a plan (the
input checks plus one job per task), and gets back the IMAGE batch, task ids and URLs. It

* builds the journal-backed ``TaskRunner`` on ComfyUI's folders (``comfy_paths``) with a client
  made only when an API call is needed, so a missing key costs nothing until then;
* runs the blocking work on a worker thread (``asyncio.to_thread``), so independent Grok nodes
  in one graph wait concurrently, and several tasks of one node in a small thread pool;
* shows a live status (state, elapsed seconds, task id, credits) and a progress bar;
* hears Cancel every 0.1 s and stops the node at once, leaving the task running server-side:
  the journal picks it up again on the next queue, so Cancel never throws away a paid result;
* turns every failure into one readable line for ComfyUI's error dialog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..api import errors
from ..api.messages import said
from ..api.what import What
from ..journal import events
from ..journal.jobs import run_jobs
from . import comfy_hooks, comfy_paths
from .phrases import Part
from .result_images import ResultImages
from .status_board import StatusBoard

if TYPE_CHECKING:
    import torch

    from ..journal import JournalStore, RequestIdentity, RunHooks, TaskResult, TaskRunner

logger = logging.getLogger(__name__)

T = TypeVar("T")

CANCEL_CHECK_S = 0.1
"""How often the node looks at Cancel while its worker thread waits; the promise is 1 s."""
STATUS_REFRESH_S = 1.0
"""How often the status text is redrawn while nothing changes (the elapsed seconds tick)."""


@dataclass(frozen=True)
class Job:
    """One task of a node: its label on the status board, and the runner call that does it."""

    label: Part | None
    """The task's name on its status line (None for a node's only task)."""
    run: Callable[[TaskRunner, RunHooks], TaskResult]
    request: Callable[[TaskRunner], RequestIdentity] | None = None
    """The paid request the job may create (None: free work), so the run's credits can be set
    aside, or the run refused whole, before any job starts."""


@dataclass(frozen=True)
class NodeOutput:
    images: torch.Tensor
    task_ids: str
    urls: str


async def run_node(
    node_type: str, node_id: str | None, plan: Callable[[], Sequence[Job]]
) -> NodeOutput:
    """Check the inputs (``plan`` raises ``errors.GrokError`` on bad ones), then run every job on
    a worker thread with live status, Cancel and one-line errors; see the module doc."""
    hooks = comfy_hooks.NodeHooks(node_id)
    try:
        jobs = list(plan())
    except errors.GrokError as exc:
        raise as_node_error(exc, hooks) from exc
    hooks.total = 100 * len(jobs)
    board = StatusBoard(node_type, hooks, [job.label for job in jobs])

    def work() -> NodeOutput:
        runner = make_runner()
        requests = [job.request(runner) for job in jobs if job.request is not None]
        with contextlib.ExitStack() as budget:
            try:  # over the daily limit: the run is refused here, whole, before anything is sent
                budget.enter_context(runner.reserve(requests))
            except errors.GrokError as exc:
                board.refused(exc)
                raise
            images = ResultImages(len(jobs), hooks.cancelled)
            return collect(run_parallel(runner, jobs, board, images), hooks, images, board)

    return await run_blocking(work, hooks, board)


# -- the runner ------------------------------------------------------------------------------------

_journals: dict[str | Path, JournalStore] = {}
_journals_lock = threading.Lock()


def make_runner() -> TaskRunner:
    """A ``TaskRunner`` on this ComfyUI's journal and output folders (resolved per call)."""
    from ..api import config
    from ..api.client import GrokClient
    from ..api.config import load_settings
    from ..journal import FileStore, TaskRunner
    from ..journal.spend_limit import read_daily_limit

    key_file = comfy_paths.key_file_path()
    settings_file = comfy_paths.settings_file_path()

    def client_factory() -> GrokClient:
        return GrokClient(load_settings(key_file=key_file))

    return TaskRunner(
        client_factory,
        _journal(comfy_paths.journal_target()),
        FileStore(comfy_paths.files_dir()),
        api_base=config.base_url_from_env(),
        daily_limit=lambda: read_daily_limit(settings_file),
    )


def _journal(target: str | Path) -> JournalStore:
    """One open journal per file or database URL for the process (opening checks it; once is
    enough). A database that cannot be used raises here, before anything is paid for, and is
    tried again on the next run."""
    from ..journal import open_journal

    with _journals_lock:
        journal = _journals.get(target)
        if journal is None:
            journal = _journals[target] = open_journal(target)
        return journal


def close_journals() -> None:
    """Close every journal this process opened (tests; a later run opens them again)."""
    with _journals_lock:
        journals = list(_journals.values())
        _journals.clear()
    for journal in journals:
        journal.close()


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
        return RuntimeError(errors.exception_line(exc, errors.Surface.NODE))
    if isinstance(exc, Exception):
        # Not ours, so not pre-redacted: mask any remembered key before it reaches the dialog.
        text = errors.redact(errors.exception_line(exc))
        return RuntimeError(f"Grok Imagine: unexpected {type(exc).__name__}: {text}")
    return exc


def run_parallel(
    runner: TaskRunner,
    jobs: Sequence[Job],
    board: StatusBoard,
    images: ResultImages | None = None,
) -> list[TaskResult | BaseException]:
    """Run each job (one task each) with its own hooks, on the shared job runner
    (``journal.jobs``: at most ``MAX_PARALLEL_TASKS`` at a time, each to its end even when
    another fails, outcomes in job order; one job inline). Cancel is the caller's: the jobs'
    waits stop on it, and ``run_blocking`` returns as soon as it sees it. With ``images``, each
    result file is decoded into the batch as it is kept, while the other jobs still run.
    """

    def run(index: int) -> TaskResult | BaseException:
        try:
            result = jobs[index].run(runner, _hooks(board, images, index))
            if images is not None:
                images.task_done(index, result)
        except Exception as exc:
            board.failed(index, exc)
            return exc
        board.finished(index, result)
        return result

    board.publish()
    return run_jobs(len(jobs), run)


def _hooks(board: StatusBoard, images: ResultImages | None, index: int) -> RunHooks:
    """The board's hooks for task ``index``, with every event also shown to ``images``."""
    hooks = board.run_hooks(index)
    show = hooks.on_event
    if images is None or show is None:
        return hooks

    def on_event(event: events.RunEvent) -> None:
        show(event)
        images.on_event(index, event)

    return dataclasses.replace(hooks, on_event=on_event)


def collect(
    outcomes: Sequence[TaskResult | BaseException],
    hooks: comfy_hooks.NodeHooks,
    images: ResultImages | None = None,
    board: StatusBoard | None = None,
) -> NodeOutput:
    """The images, ids and URLs of every task that succeeded; the first error if none did.

    The images come from ``images`` (decoded as they arrived) or, without it, from the kept
    files now. An image that cannot be decoded is left out, and the board says which and why.
    """
    results = [o for o in outcomes if not isinstance(o, BaseException)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if hooks.cancelled() or any(isinstance(f, errors.CancelledError) for f in failures):
        raise errors.CancelledError(None, said(What.CANCELLED_ALL))
    if not results:
        raise failures[0]
    for failure in failures:
        logger.warning(
            "Grok Imagine: one task of the node failed: %s", errors.exception_line(failure)
        )
    if images is None:
        images = ResultImages(len(outcomes))
        for index, outcome in enumerate(outcomes):
            if not isinstance(outcome, BaseException):
                images.task_done(index, outcome)
    succeeded = [(i, o) for i, o in enumerate(outcomes) if not isinstance(o, BaseException)]
    batch, skipped = images.finish(succeeded)
    for _, exc in skipped:
        logger.warning("Grok Imagine: left out of the output: %s", errors.exception_line(exc))
        if board is not None:
            board.add_warning(exc)
    return NodeOutput(
        images=batch,
        task_ids="\n".join(result.task_id for result in results),
        urls="\n".join(url for result in results for url in result.urls),
    )


def _log_late_failure(future: asyncio.Future[Any]) -> None:
    """A worker left behind by Cancel ended; anything but the expected cancel is worth a line."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None and not isinstance(exc, errors.CancelledError):
        logger.info(
            "Grok Imagine: a cancelled node's worker ended with: %s", errors.exception_line(exc)
        )
