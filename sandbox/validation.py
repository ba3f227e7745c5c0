"""The create request's checks, exactly as the seed page states them (400 on any failure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ASPECT_SIZES, MAX_PROMPT_CHARS, PRICES, TEXT_TO_IMAGE, UPSCALE
from .wire import ApiError


@dataclass(frozen=True)
class CreateRequest:
    model: str
    prompt: str
    aspect_ratio: str | None
    source_task_id: str | None


def parse_create(body: Any) -> CreateRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid parameters: the body must be a JSON object")
    model = body.get("model", TEXT_TO_IMAGE)
    if not isinstance(model, str) or model not in PRICES:
        raise ApiError(400, f"Unknown model {model!r}: use {TEXT_TO_IMAGE} or {UPSCALE}")

    prompt = body.get("prompt")
    if model == TEXT_TO_IMAGE and (not isinstance(prompt, str) or not prompt.strip()):
        raise ApiError(400, "Invalid parameters: prompt is required")
    if prompt is not None and not isinstance(prompt, str):
        raise ApiError(400, "Invalid parameters: prompt must be a string")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise ApiError(
            400,
            f"Invalid parameters: prompt is {len(prompt)} characters, at most {MAX_PROMPT_CHARS}",
        )

    aspect_ratio = body.get("aspect_ratio")
    if aspect_ratio is not None and (
        not isinstance(aspect_ratio, str) or aspect_ratio not in ASPECT_SIZES
    ):
        raise ApiError(
            400, f"Invalid aspect_ratio {aspect_ratio!r}: use one of {', '.join(ASPECT_SIZES)}"
        )

    source_task_id = body.get("task_id")
    if model == UPSCALE and (not isinstance(source_task_id, str) or not source_task_id.strip()):
        raise ApiError(400, "Invalid parameters: task_id is required for upscale")

    return CreateRequest(
        model=model,
        prompt=prompt or "",
        aspect_ratio=aspect_ratio if model == TEXT_TO_IMAGE else None,
        source_task_id=source_task_id if model == UPSCALE else None,
    )
