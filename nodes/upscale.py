"""Grok Upscale: a finished text-to-image task's images at a higher resolution (12 credits)."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..api import errors
from ..journal.identity import CREDITS_PER_TASK, UPSCALE_MODEL
from . import comfy_hooks
from .queue_checks import refuse_at_queue

CREDITS = CREDITS_PER_TASK[UPSCALE_MODEL]
DEFAULT_TIMEOUT_S = 600.0


class GrokImagineUpscale:
    """Classic (V1) ComfyUI node; ``upscale`` is a coroutine so Grok nodes wait concurrently."""

    DISPLAY_NAME = "Grok Upscale"
    CATEGORY = "Grok Imagine"
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "task_id")
    OUTPUT_TOOLTIPS = (
        "The upscaled images, as one batch (of every task when several ids came in).",
        "The upscale task id(s), one per line; Grok Load Task gets the images again for free.",
    )
    DESCRIPTION = (
        "Upscales the images of a finished Grok Text-to-Image task through API in One. Costs "
        f"{CREDITS} credits (about $0.024) per task id. Wire the Text-to-Image node's task_id "
        "output into task_id (several ids, one per line, are upscaled each), or type an id. "
        "Queueing the same id again costs nothing: the paid images come back from the pack's "
        "journal. Cancel stops waiting but never throws a paid task away."
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
                        "tooltip": "Id of the Grok Text-to-Image task to upscale. Wire the "
                        "Text-to-Image node's task_id output here; several ids (one per line "
                        f"or comma-separated) are each upscaled, {CREDITS} credits each.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, task_id: Any = None) -> bool | str:
        """Refuse a malformed id at queue time, before anything is paid (None: wired input)."""
        from . import run_task

        return refuse_at_queue(run_task.validate_task_ids, task_id)

    async def upscale(self, task_id: str, unique_id: str | None = None) -> tuple[Any, str]:
        from . import run_task

        hooks = comfy_hooks.NodeHooks(unique_id)
        try:
            sources = run_task.validate_task_ids(task_id)
        except errors.GrokError as exc:
            raise run_task.as_node_error(exc, hooks) from exc
        hooks.total = 100 * len(sources)
        labels = [f"upscale of {source}" for source in sources]
        board = run_task.StatusBoard(self.DISPLAY_NAME, hooks, labels, credits_each=CREDITS)

        def work() -> Any:
            runner = run_task.make_runner()
            jobs = [partial(_upscale, runner, source) for source in sources]
            return run_task.collect(run_task.run_parallel(jobs, board), hooks)

        out = await run_task.run_blocking(work, hooks, board)
        return (out.images, out.task_ids)


def _upscale(runner: Any, source_task_id: str, hooks: Any) -> Any:
    return runner.upscale(source_task_id, timeout=DEFAULT_TIMEOUT_S, hooks=hooks)
