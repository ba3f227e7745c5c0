"""Running a command's tasks side by side, and what the user reads when they end or are stopped.

The tasks run on the shared job runner (``journal.jobs``); the main thread watches for Ctrl-C /
SIGTERM, ticks the progress display, and after a stop gives the tasks ``STOP_GRACE_S`` to end
before the command leaves regardless (``Interrupted``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from ..api import errors
from ..api.advice import Surface
from ..api.env import BASE_URL_ENV, KEY_ENV
from ..journal.jobs import STOP_GRACE_S, JobsStopped, run_jobs
from .context import PROG, Context
from .stop import Interrupted
from .tracks import Phase, TaskTrack

if TYPE_CHECKING:
    from ..journal import RunHooks, TaskResult

T = TypeVar("T")

SANDBOX_FOR_RERUNS = (
    f"start `{PROG} sandbox` and point {BASE_URL_ENV} and {KEY_ENV} at it to see a rerun resume "
    "or reuse its task"
)


def run_all(
    ctx: Context, labels: Sequence[str], work: Callable[[int, RunHooks], T]
) -> list[T | BaseException]:
    """``work(i, hooks)`` for every label, side by side; each outcome in order.

    Every task runs to its end even when another fails (each may be paid for already). On a stop
    the tasks get ``STOP_GRACE_S`` to end, then ``Interrupted`` is raised regardless.
    """
    progress = ctx.progress
    tracks = progress.begin(labels)

    def job(index: int) -> T:
        track = tracks[index]
        try:
            outcome = work(index, progress.hooks(track, ctx.stop.is_set))
        except BaseException:
            progress.failed(track, stopped=ctx.stop.is_set())
            raise
        images = getattr(outcome, "images", None)
        progress.finished(track, None if images is None else len(images))
        return outcome

    try:
        return run_jobs(
            len(labels), job, stop=ctx.stop.is_set, tick=progress.tick, grace_s=STOP_GRACE_S
        )
    except JobsStopped:
        raise Interrupted from None
    finally:
        progress.end_batch()


def results(ctx: Context, outcomes: Sequence[TaskResult | BaseException]) -> list[TaskResult]:
    """The successes; each failure as one line; the last failure raised when none succeeded."""
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    for failure in failures[: -1 if not done else None]:
        ctx.progress.say(f"error: {error_line(failure, ctx)}")
    if failures and not done:
        raise failures[-1]  # the last line, with its exit code
    return done


def error_line(exc: BaseException, ctx: Context) -> str:
    """``exc`` as the one line the CLI prints after ``error:``."""
    if isinstance(exc, errors.TaskTimeoutError) and ctx.on_sandbox:
        waited = f" after {exc.timeout:g} s" if exc.timeout is not None else ""
        task = f" for task {exc.task_id}" if exc.task_id else ""
        return (
            f"Stopped waiting{task}{waited}: the in-process sandbox ends with this command, and "
            f"the task with it. Run `{ctx.rerun(longer_wait=True)}` to try again with a longer "
            "wait (a new task: this sandbox starts empty)."
        )
    if isinstance(exc, errors.GrokError):
        longer = isinstance(exc, errors.TaskTimeoutError)
        rerun = ctx.rerun(longer_wait=longer) if ctx.repeatable else None
        return exc.line(Surface.CLI, rerun=rerun)
    text = errors.redact(errors.exception_line(exc))
    return f"unexpected {type(exc).__name__}: {text} (a bug: please report it)"


def interrupt_lines(ctx: Context) -> list[str]:
    """What Ctrl-C leaves behind: each task id created or in flight, and the command to resume."""
    tracks = ctx.progress.tracks
    if ctx.on_sandbox:
        lines = ["interrupted: stopped; the in-process sandbox and its tasks end with it."]
    else:
        lines = ["interrupted: stopped waiting (the tasks themselves are not cancelled)."]
    lines += [_task_line(ctx, track) for track in tracks if track.task_id]
    unanswered = [t for t in tracks if not t.task_id and t.phase is not Phase.DONE]
    if unanswered and ctx.args.command != "task" and not ctx.on_sandbox:
        lines.append(
            f"  {len(unanswered)} request(s) had no task id yet (a create may have been in "
            "flight; if so, the same command says so and sends nothing again)"
        )
    if ctx.on_sandbox:
        lines.append(f"Running the command again starts a new task; {SANDBOX_FOR_RERUNS}.")
    elif ctx.repeatable:
        lines.append(f"Run `{ctx.rerun()}` to pick the work up without paying again.")
    return lines


def _task_line(ctx: Context, track: TaskTrack) -> str:
    paid = (
        f", created by this run: {track.created_credits} credits"
        if track.created_credits is not None
        else ""
    )
    if track.phase is Phase.FAILED:
        return f"  [{track.label}] task {track.task_id} failed (failed tasks are not charged)"
    if track.phase is Phase.DONE:
        where = "is done and kept"
    elif track.phase is Phase.ERROR:
        where = "had ended with an error"
    elif ctx.on_sandbox:
        where = "ended with the sandbox"
    elif track.phase is Phase.DOWNLOADING:
        where = "is finished at API in One; its images were still being fetched"
    else:
        where = "keeps running at API in One"
    return f"  [{track.label}] task {track.task_id} {where}{paid}"
