"""The commands that run tasks: generate, upscale, task (load by id) and resolve.

Each checks its input before anything is sent, runs its tasks (``tasks_run.run_all``), copies the
images to ``-o`` and ends with one line saying what was new, resumed or reused and what it cost.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from ..api import errors, validation
from ..api.env import BASE_URL_ENV, KEY_ENV
from ..api.models import TEXT_TO_IMAGE_CREDITS, UPSCALE_CREDITS
from ..journal import events
from .context import PROG, Context
from .exit_codes import EXIT_API, EXIT_OK
from .outputs import output_dir, report
from .tasks_run import SANDBOX_FOR_RERUNS, results, run_all

if TYPE_CHECKING:
    from ..journal import RunHooks, TaskResult

R = TypeVar("R")

DEFAULT_SEED = 0
"""The nodes' seed default too: the same command with the same inputs is the same request."""
SEED_MAX = 2**31 - 1


def _seed(ctx: Context) -> int:
    args = ctx.args
    if args.new:
        ctx.seed = random.SystemRandom().randint(1, SEED_MAX)
        ctx.progress.say(f"--new: seed {ctx.seed} (`{ctx.rerun()}` repeats this request)")
        return ctx.seed
    return args.seed if args.seed is not None else DEFAULT_SEED


def _summary(results: list[TaskResult], loaded: bool = False) -> str:
    """The last line of every run: what was new, resumed or reused, and what it cost."""
    if loaded:
        return f"Done: {len(results)} task(s) loaded by id (free)."
    return f"Done: {events.outcomes_summary(results)}."


def _opening(ctx: Context, tasks: int, seed: int) -> str:
    """The first line of ``generate``: what runs, and what running it again does."""
    what = f"Text-to-image x{tasks}, seed {seed}"
    price = f"{TEXT_TO_IMAGE_CREDITS} credits per new task"
    if ctx.on_sandbox:
        return (
            f"{what}: the in-process sandbox starts empty, so every run of this command makes "
            f"new tasks ({price}, in play credits); {SANDBOX_FOR_RERUNS}."
        )
    return (
        f"{what}: the same command again resumes or reuses these tasks; --new pays for new ones "
        f"({price})."
    )


def cmd_generate(ctx: Context) -> int:
    args = ctx.args
    prompt = validation.validate_prompt(args.prompt)
    aspect = validation.validate_aspect_ratio(args.aspect_ratio) if args.aspect_ratio else None
    out_dir = output_dir(args.output)
    with ctx.settings() as settings:
        runner = ctx.runner(settings)
        seed = _seed(ctx)
        ctx.progress.say(_opening(ctx, args.tasks, seed))
        requests = [
            runner.text_to_image_request(prompt, aspect, seed, i) for i in range(args.tasks)
        ]
        with runner.reserve(requests):  # over the daily limit: refused whole, none is sent
            outcomes = run_all(
                ctx,
                [f"t2i {i + 1}/{args.tasks}" for i in range(args.tasks)],
                lambda i, hooks: runner.text_to_image(
                    prompt,
                    aspect_ratio=aspect,
                    seed=seed,
                    index=i,
                    timeout=args.timeout,
                    hooks=hooks,
                ),
            )
        made = results(ctx, outcomes)
        for result in made:
            report(ctx.progress, result, "Text-to-image", out_dir)
        done = list(made)
        if args.upscale:
            ups = results(
                ctx,
                run_all(
                    ctx,
                    [f"upscale {i + 1}/{len(made)}" for i in range(len(made))],
                    lambda i, hooks: runner.upscale(
                        made[i].task_id, seed=seed, timeout=args.timeout, hooks=hooks
                    ),
                ),
            )
            for up in ups:
                report(ctx.progress, up, "Upscale", out_dir)
            done += ups
    ctx.progress.say(_summary(done))
    return EXIT_OK if len(outcomes) == len(made) else EXIT_API


def cmd_upscale(ctx: Context) -> int:
    args = ctx.args
    task_id, out_dir = _known_task(ctx)
    with ctx.settings() as settings:
        runner = ctx.runner(settings)
        seed = _seed(ctx)
        ctx.progress.say(
            f"Upscaling task {task_id}, seed {seed} ({UPSCALE_CREDITS} credits if a new task is "
            "needed; the same command again resumes or reuses it)."
        )
        result = _one_task(
            ctx,
            "upscale",
            lambda hooks: runner.upscale(task_id, seed=seed, timeout=args.timeout, hooks=hooks),
        )
        report(ctx.progress, result, "Upscale", out_dir)
    ctx.progress.say(_summary([result]))
    return EXIT_OK


def cmd_task(ctx: Context) -> int:
    task_id, out_dir = _known_task(ctx)
    with ctx.settings() as settings:
        runner = ctx.runner(settings)
        result = _one_task(
            ctx, "load", lambda hooks: runner.load(task_id, timeout=ctx.args.timeout, hooks=hooks)
        )
        report(ctx.progress, result, "Loaded", out_dir)
    ctx.progress.say(_summary([result], loaded=True))
    return EXIT_OK


def cmd_resolve(ctx: Context) -> int:
    """Settle an uncertain create: the task id found in the dashboard, or "not created"."""
    args = ctx.args
    task_id = None if args.not_created else validation.validate_task_id(args.task_id)
    out_dir = output_dir(args.output)
    with ctx.settings() as settings:
        runner = ctx.runner(settings)
        result = _one_task(
            ctx,
            "resolve",
            lambda hooks: runner.resolve(args.row, task_id, timeout=args.timeout, hooks=hooks),
        )
        if result is None:
            print(f"Row {args.row} marked as not created (0 credits).")
            return EXIT_OK
        report(ctx.progress, result, "Resolved", out_dir)
    ctx.progress.say(_summary([result], loaded=True))
    return EXIT_OK


def _known_task(ctx: Context) -> tuple[str, Path]:
    """The TASK_ID of ``upscale`` / ``task``, checked, and the output folder, before anything."""
    task_id = validation.validate_task_id(ctx.args.task_id)
    if ctx.on_sandbox:
        raise _empty_sandbox(ctx.args.command)
    return task_id, output_dir(ctx.args.output)


def _one_task(ctx: Context, label: str, work: Callable[[RunHooks], R]) -> R:
    """One task with the watch and the progress line; its error raised as the command's."""
    (outcome,) = run_all(ctx, [label], lambda i, hooks: work(hooks))
    if outcome is None or not isinstance(outcome, BaseException):
        return outcome
    raise outcome


def _empty_sandbox(command: str) -> errors.GrokError:
    return errors.InvalidRequestError(
        f"`{PROG} {command} --sandbox` cannot find any task: the in-process sandbox starts empty "
        f"for every command, so it knows no earlier task. Run `{PROG} generate PROMPT --sandbox "
        f"--upscale`, or start `{PROG} sandbox` once and point {BASE_URL_ENV} and {KEY_ENV} at it.",
        field="sandbox",
    )
