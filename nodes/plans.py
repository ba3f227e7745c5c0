"""What each node asks the runner for: its inputs checked and turned into one job per task.

The node classes stay declarations; ``execution.run_node`` runs whatever plan they name. A plan
raises ``errors.GrokError`` for a bad input, before anything is built or paid.
"""

from __future__ import annotations

from ..api import validation
from ..api.task import DEFAULT_TASK_TIMEOUT_S
from .execution import Job
from .phrases import phrase


def text_to_image(
    prompt: str, seed: int, aspect_ratio: str | None, parallel_tasks: int, timeout: float
) -> list[Job]:
    text = validation.validate_prompt(prompt)
    ratio = (
        None
        if not aspect_ratio or aspect_ratio == validation.PROVIDER_DEFAULT
        else validation.validate_aspect_ratio(aspect_ratio)
    )
    count = min(validation.MAX_PARALLEL_TASKS, max(1, int(parallel_tasks)))
    seed, timeout = int(seed), float(timeout)

    def job(index: int) -> Job:
        return Job(
            phrase("status.label.task", index=index + 1, count=count) if count > 1 else None,
            lambda runner, hooks: runner.text_to_image(
                text, aspect_ratio=ratio, seed=seed, index=index, timeout=timeout, hooks=hooks
            ),
            lambda runner: runner.text_to_image_request(text, ratio, seed, index),
        )

    return [job(index) for index in range(count)]


def upscale(task_ids: str) -> list[Job]:
    def job(source: str) -> Job:
        return Job(
            phrase("status.label.upscale", source=source),
            lambda runner, hooks: runner.upscale(
                source, timeout=DEFAULT_TASK_TIMEOUT_S, hooks=hooks
            ),
            lambda runner: runner.upscale_request(source),
        )

    return [job(source) for source in validation.validate_task_ids(task_ids)]


def load(task_ids: str) -> list[Job]:
    ids = validation.validate_task_ids(task_ids)

    def job(position: int, task_id: str) -> Job:
        return Job(
            phrase("status.label.task", index=position + 1, count=len(ids))
            if len(ids) > 1
            else None,
            lambda runner, hooks: runner.load(task_id, timeout=DEFAULT_TASK_TIMEOUT_S, hooks=hooks),
        )

    return [job(position, task_id) for position, task_id in enumerate(ids)]
