"""The models this pack sells and what a task of each costs: one price list for every layer."""

from __future__ import annotations

TEXT_TO_IMAGE_MODEL = "grok-imagine/text-to-image"
UPSCALE_MODEL = "grok-imagine/upscale"

CREDITS_PER_TASK: dict[str, int] = {TEXT_TO_IMAGE_MODEL: 5, UPSCALE_MODEL: 12}
"""The provider's price list; what the journal records as charged for a created task."""

TEXT_TO_IMAGE_CREDITS = CREDITS_PER_TASK[TEXT_TO_IMAGE_MODEL]
UPSCALE_CREDITS = CREDITS_PER_TASK[UPSCALE_MODEL]
