"""Grok Load Task: an existing task's images by id. Creates nothing, so it is always free."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..api import validation
from . import labels
from .node_cost import NodeCost
from .queue_checks import refuse_at_queue


class GrokImagineLoadTask:
    """Classic (V1) ComfyUI node: how a user recovers any paid result from its task id."""

    DISPLAY_NAME = labels.display_name("Grok Load Task")
    SEARCH_ALIASES = labels.search_aliases("load task", "task id", "recover", "resume")
    COST = NodeCost(0)
    CATEGORY = labels.CATEGORY
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
        f"task id. {labels.ACCOUNT} Free: it never creates a task. Images already kept on disk "
        "are used without any API call; otherwise they are fetched from API in One, waiting "
        "for the task if it is still running. Use it to recover any paid result, for example "
        "after a restart or from `grok-imagine tasks`."
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
        return refuse_at_queue(validation.validate_task_ids, task_id)

    async def load(self, task_id: str, unique_id: str | None = None) -> tuple[Any, str, str]:
        from . import execution, plans

        out = await execution.run_node(type(self).__name__, unique_id, partial(plans.load, task_id))
        return (out.images, out.task_ids, out.urls)
