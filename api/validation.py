"""Local checks on what the user typed, shared by the client, the nodes and the CLI.

Checking before sending turns a paid round trip into an instant, specific message, and keeps
anything that could change a URL path (``/``, ``..``, ``?``) out of task ids. Pure functions, no
I/O; imported when ComfyUI loads the pack, so nothing heavy here.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidRequestError

__all__ = [
    "ASPECT_RATIOS",
    "MAX_PARALLEL_TASKS",
    "MAX_PROMPT_CHARS",
    "MAX_TASK_IDS",
    "MAX_TASK_ID_CHARS",
    "PROVIDER_DEFAULT",
    "split_task_ids",
    "validate_aspect_ratio",
    "validate_prompt",
    "validate_task_id",
    "validate_task_ids",
]

ASPECT_RATIOS: tuple[str, ...] = ("1:1", "2:3", "3:2", "16:9", "9:16")
PROVIDER_DEFAULT = "provider default"
"""The node's aspect-ratio choice that sends none, so the provider picks its default."""
MAX_PROMPT_CHARS = 5000
MAX_TASK_ID_CHARS = 128
MAX_TASK_IDS = 64
"""Task ids one Upscale or Load Task node takes at once."""
MAX_PARALLEL_TASKS = 8
"""Tasks one Text-to-Image run starts at once (the node's ``parallel_tasks``, the CLI's --tasks)."""

# Line breaks and tabs are ordinary in a multi-line prompt box; every other control character
# (NUL, escape sequences, ...) is a paste accident that the API would reject or misread.
_PROMPT_WHITESPACE = frozenset("\n\r\t")
_TASK_ID_SEPARATORS = re.compile(r"[\s,;]+")
# Task ids are opaque tokens; anything beyond these could mean something in a URL or a path.
_TASK_ID_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def validate_prompt(prompt: object) -> str:
    """The prompt without surrounding whitespace, or ``InvalidRequestError(field="prompt")``."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(
            f"The prompt must be text, not {type(prompt).__name__}.", field="prompt"
        )
    text = prompt.strip()
    if not text:
        raise InvalidRequestError(
            "The prompt is empty: describe the image you want.", field="prompt"
        )
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidRequestError(
            f"The prompt is {len(text)} characters long; Grok Imagine accepts at most "
            f"{MAX_PROMPT_CHARS}. Shorten it by {len(text) - MAX_PROMPT_CHARS} characters.",
            field="prompt",
        )
    for position, char in enumerate(text):
        if char not in _PROMPT_WHITESPACE and _is_control(char):
            raise InvalidRequestError(
                f"The prompt contains an invisible control character ({_describe(char)}) at "
                f"position {position + 1}: retype or paste it again as plain text.",
                field="prompt",
            )
    return text


def validate_task_id(task_id: object) -> str:
    """The task id without surrounding whitespace, or ``InvalidRequestError(field="task_id")``.

    Task ids are short opaque tokens made by the API (``n31abc_grok``, 32 hex digits, ...). The
    check is strict so an id can never reach another path on the API host; the client still
    URL-quotes it when building the path.
    """
    if not isinstance(task_id, str):
        raise InvalidRequestError(
            f"The task id must be text, not {type(task_id).__name__}.", field="task_id"
        )
    text = task_id.strip()
    if not text:
        raise InvalidRequestError(
            "The task id is empty: paste the id of a Grok Imagine task (a node's task_id output "
            "or `grok-imagine tasks` lists them).",
            field="task_id",
        )
    if len(text) > MAX_TASK_ID_CHARS:
        raise InvalidRequestError(
            f"The task id is {len(text)} characters long; task ids are short tokens (at most "
            f"{MAX_TASK_ID_CHARS}). Paste only the id, not a URL or a whole log line.",
            field="task_id",
        )
    for char in text:
        problem = None
        if char.isspace():
            problem = "a space or line break"
        elif _is_control(char) or not char.isprintable():
            problem = f"an invisible control character ({_describe(char)})"
        elif not char.isascii():
            problem = f"the non-ASCII character {char!r}"
        elif char not in _TASK_ID_ALLOWED:
            problem = f"the character {char!r}"
        if problem:
            raise InvalidRequestError(
                f"The task id contains {problem}; a task id is a short token of letters, digits, "
                "'-', '_' and '.'. Paste only the id, not a URL or a path.",
                field="task_id",
            )
    if ".." in text or text.startswith("."):
        raise InvalidRequestError(
            "The task id contains '..' or starts with '.'; paste only the id, not a path.",
            field="task_id",
        )
    return text


def split_task_ids(text: str) -> list[str]:
    """Task ids from a widget or a wired output: one per line, or separated by commas; in order,
    without repeats."""
    seen: dict[str, None] = {}
    for part in _TASK_ID_SEPARATORS.split(text or ""):
        if part:
            seen.setdefault(part, None)
    return list(seen)


def validate_task_ids(text: str) -> list[str]:
    """``split_task_ids``, each checked; ``errors.InvalidRequestError`` for the first bad one."""
    ids = split_task_ids(text)
    if not ids:
        validate_task_id("")  # raises the standard "empty task id" message
    if len(ids) > MAX_TASK_IDS:
        raise InvalidRequestError(
            f"{len(ids)} task ids were given; one node takes at most {MAX_TASK_IDS}.",
            field="task_id",
        )
    return [validate_task_id(task_id) for task_id in ids]


def validate_aspect_ratio(aspect_ratio: object) -> str:
    """One of ``ASPECT_RATIOS`` or ``InvalidRequestError(field="aspect_ratio")``."""
    text = aspect_ratio.strip() if isinstance(aspect_ratio, str) else aspect_ratio
    if text not in ASPECT_RATIOS:
        raise InvalidRequestError(
            f"The aspect ratio {aspect_ratio!r} is not offered; pick one of "
            f"{', '.join(ASPECT_RATIOS)} (or none for the provider's default).",
            field="aspect_ratio",
        )
    assert isinstance(text, str)
    return text


def _is_control(char: str) -> bool:
    # Cc: C0/C1 controls incl. NUL; Cf: invisible format characters (bidi overrides, ZWJ...)
    # are allowed in prompts only where they carry meaning (emoji joiners), so only Cc here.
    return unicodedata.category(char) == "Cc"


def _describe(char: str) -> str:
    return f"U+{ord(char):04X}"
