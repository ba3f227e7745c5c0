"""Grok Upscale: a finished text-to-image task's images at a higher resolution (12 credits)."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..api import validation
from ..api.models import UPSCALE_CREDITS as CREDITS
from . import labels
from .node_cost import NodeCost
from .queue_checks import refuse_at_queue


class GrokImagineUpscale:
    """Classic (V1) ComfyUI node; ``upscale`` is a coroutine so Grok nodes wait concurrently."""

    DISPLAY_NAME = labels.display_name("Grok Upscale")
    SEARCH_ALIASES = labels.search_aliases("upscale", "enlarge", "super resolution")
    COST = NodeCost(CREDITS, "task id", "task_id")
    CATEGORY = labels.CATEGORY
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("images", "task_id")
    OUTPUT_TOOLTIPS = (
        "The upscaled images, as one batch (of every task when several ids came in).",
        "The upscale task id(s), one per line; Grok Load Task gets the images again for free.",
    )
    DESCRIPTION = (
        "Upscales the images of a finished Grok Text-to-Image task through API in One. "
        f"{labels.ACCOUNT} Costs {CREDITS} credits (about $0.024) per task id. Wire the "
        "Text-to-Image node's task_id output into task_id (several ids, one per line, are "
        "upscaled each), or type an id. Queueing the same id again costs nothing: the paid "
        "images come back from the pack's journal. Cancel stops waiting but never throws a "
        "paid task away."
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
        return refuse_at_queue(validation.validate_task_ids, task_id)

    async def upscale(self, task_id: str, unique_id: str | None = None) -> tuple[Any, str]:
        from . import execution, plans

        out = await execution.run_node(
            type(self).__name__, unique_id, partial(plans.upscale, task_id)
        )
        return (out.images, out.task_ids)
