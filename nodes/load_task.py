"""Grok Load Task: an existing task's images by id. Creates nothing, so it is always free."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..api import errors
from . import comfy_hooks
from .queue_checks import refuse_at_queue

DEFAULT_TIMEOUT_S = 600.0


class GrokImagineLoadTask:
    """Classic (V1) ComfyUI node: how a user recovers any paid result from its task id."""

    DISPLAY_NAME = "Grok Load Task"
    CATEGORY = "Grok Imagine"
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "STRING", "STRING")
    RETURN_NAMES = ("images", "task_id", "urls")
    OUTPUT_TOOLTIPS = (
        "The task's images, as one batch (of every task when several ids came in).",
        "The task id(s), one per line; wire into Grok Upscale to upscale a loaded task.",
        "The task's result URLs, one per line (they expire; the images are kept on disk).",
    )
    DESCRIPTION = (
        "Loads the images of an existing Grok Imagine task (text-to-image or upscale) by its "
        "task id. Free: it never creates a task. Images already kept on disk are used without "
        "any API call; otherwise they are fetched from API in One, waiting for the task if it "
        "is still running. Use it to recover any paid result, for example after a restart or "
        "from `grok-imagine tasks`."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "task_id": (
                    "STRING",
                    {
                        "multiline": False,
                        "default": "",
                        "tooltip": "Id of the task to load (a Grok node's task_id output, or "
                        "one listed by `grok-imagine tasks`). Several ids, one per line or "
                        "comma-separated, load together.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, task_id: Any = None) -> bool | str:
        """Refuse a malformed id at queue time (None: wired input, checked when it runs)."""
        from . import run_task

        return refuse_at_queue(run_task.validate_task_ids, task_id)

    async def load(self, task_id: str, unique_id: str | None = None) -> tuple[Any, str, str]:
        from . import run_task

        hooks = comfy_hooks.NodeHooks(unique_id)
        try:
            task_ids = run_task.validate_task_ids(task_id)
        except errors.GrokError as exc:
            raise run_task.as_node_error(exc, hooks) from exc
        hooks.total = 100 * len(task_ids)
        labels = [f"task {i + 1}/{len(task_ids)}" for i in range(len(task_ids))]
        board = run_task.StatusBoard(
            self.DISPLAY_NAME, hooks, labels if len(labels) > 1 else [""], credits_each=0
        )

        def work() -> Any:
            runner = run_task.make_runner()
            jobs = [partial(_load, runner, one) for one in task_ids]
            return run_task.collect(run_task.run_parallel(jobs, board), hooks)

        out = await run_task.run_blocking(work, hooks, board)
        return (out.images, out.task_ids, out.urls)


def _load(runner: Any, task_id: str, hooks: Any) -> Any:
    return runner.load(task_id, timeout=DEFAULT_TIMEOUT_S, hooks=hooks)
