"""Grok Text-to-Image: a prompt in, the provider's image set out (5 credits per task)."""

from __future__ import annotations

from functools import partial
from typing import Any

from ..api import validation
from ..api.models import TEXT_TO_IMAGE_CREDITS as CREDITS
from ..api.task import DEFAULT_TASK_TIMEOUT_S
from . import labels
from .node_cost import NodeCost
from .queue_checks import refuse_at_queue

ASPECT_RATIO_CHOICES = [validation.PROVIDER_DEFAULT, *validation.ASPECT_RATIOS]
SEED_MAX = 0xFFFFFFFFFFFFFFFF
DEFAULT_TIMEOUT_S = int(DEFAULT_TASK_TIMEOUT_S)


class GrokImagineTextToImage:
    """Classic (V1) ComfyUI node; ``generate`` is a coroutine so Grok nodes wait concurrently."""

    DISPLAY_NAME = labels.display_name("Grok Text-to-Image")
    SEARCH_ALIASES = labels.search_aliases("text to image", "txt2img", "t2i", "generate image")
    COST = NodeCost(CREDITS, "task", "parallel_tasks")
    CATEGORY = labels.CATEGORY
    FUNCTION = "generate"
    RETURN_TYPES = ("IMAGE", "STRING", "STRING")
    RETURN_NAMES = ("images", "task_id", "urls")
    OUTPUT_TOOLTIPS = (
        "Every image the task(s) returned, as one batch (usually 6 per task). Images of "
        "another size are fitted to the first one's size (centre crop, then resize).",
        "The task id, one per line when several tasks ran. Wire it into Grok Upscale, or paste "
        "it into Grok Load Task to get the images again for free.",
        "The result URLs, one per line. They expire after a day or more; the images are also "
        "kept on disk under ComfyUI's output folder, grok_imagine/<task id>/.",
    )
    DESCRIPTION = (
        "Generates images from a text prompt with xAI's Grok Imagine through API in One. "
        f"{labels.ACCOUNT} Costs {CREDITS} credits (about $0.01) per task; each task returns "
        "the provider's image set (usually 6 images). Queueing the same inputs again costs "
        "nothing: the paid images come back from the pack's journal. Change the seed to pay "
        "for new ones. Cancel stops waiting but never throws a paid task away: queue again to "
        "pick it up. If some of several parallel tasks fail, the node returns the others' "
        "images and its status text says which failed. Needs an API in One key (Settings > "
        "Grok Imagine > API key, or APIINONE_API_KEY)."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "prompt": (
                    "STRING",
                    {
                        "multiline": True,
                        "default": "",
                        "tooltip": "What the image should show; at most "
                        f"{validation.MAX_PROMPT_CHARS} characters.",
                    },
                ),
                "seed": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": SEED_MAX,
                        "control_after_generate": True,
                        "tooltip": "Grok Imagine takes no seed: this is the re-run switch. The "
                        "same seed with the same inputs returns the images already paid for; "
                        "a new seed pays for a new task.",
                    },
                ),
            },
            "optional": {
                "aspect_ratio": (
                    ASPECT_RATIO_CHOICES,
                    {
                        "default": validation.PROVIDER_DEFAULT,
                        "tooltip": "Shape of the images. 'provider default' sends none and "
                        "lets Grok choose.",
                    },
                ),
                "parallel_tasks": (
                    "INT",
                    {
                        "default": 1,
                        "min": 1,
                        "max": validation.MAX_PARALLEL_TASKS,
                        "tooltip": f"How many tasks to run at once, each costing {CREDITS} "
                        "credits and returning its own image set.",
                    },
                ),
                "timeout": (
                    "INT",
                    {
                        "default": DEFAULT_TIMEOUT_S,
                        "min": 10,
                        "max": 3600,
                        "step": 10,
                        "tooltip": "Seconds to wait for the images. When it runs out, the "
                        "task keeps running at API in One; queue again to pick it up.",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def VALIDATE_INPUTS(cls, prompt: Any = None) -> bool | str:
        """Refuse a bad prompt at queue time, before anything is paid (None: wired input)."""
        return refuse_at_queue(validation.validate_prompt, prompt)

    async def generate(
        self,
        prompt: str,
        seed: int,
        aspect_ratio: str = validation.PROVIDER_DEFAULT,
        parallel_tasks: int = 1,
        timeout: int = DEFAULT_TIMEOUT_S,
        unique_id: str | None = None,
    ) -> tuple[Any, str, str]:
        from . import execution, plans

        plan = partial(plans.text_to_image, prompt, seed, aspect_ratio, parallel_tasks, timeout)
        out = await execution.run_node(type(self).__name__, unique_id, plan)
        return (out.images, out.task_ids, out.urls)
