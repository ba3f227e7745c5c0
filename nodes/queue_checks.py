"""``VALIDATE_INPUTS`` answers: a bad value is refused when the prompt is queued, before anything
is paid, and ComfyUI shows the returned line on the node it marks red."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..api import errors


def refuse_at_queue(check: Callable[[Any], object], value: Any) -> bool | str:
    """True when ``check(value)`` passes, else its one-line message. ``None`` means the input is
    wired from another node, so its value is only known (and checked) when the node runs."""
    if value is None:
        return True
    try:
        check(value)
    except errors.InvalidRequestError as exc:
        return str(exc)
    return True
