"""Local checks on what the user typed, shared by the client, the nodes and the CLI.

Checking before sending turns a paid round trip into an instant, specific message, and keeps
anything that could change a URL path (``/``, ``..``, ``?``) out of task ids. Pure functions, no
I/O; imported when ComfyUI loads the pack, so nothing heavy here.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidRequestError
from .messages import Message, said
from .what import What

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
            said(What.PROMPT_NOT_TEXT, type=type(prompt).__name__), field="prompt"
        )
    text = prompt.strip()
    if not text:
        raise InvalidRequestError(said(What.PROMPT_EMPTY), field="prompt")
    if len(text) > MAX_PROMPT_CHARS:
        over = len(text) - MAX_PROMPT_CHARS
        raise InvalidRequestError(
            said(What.PROMPT_TOO_LONG, length=len(text), most=MAX_PROMPT_CHARS, over=over),
            field="prompt",
        )
    for position, char in enumerate(text):
        if char not in _PROMPT_WHITESPACE and _is_control(char):
            raise InvalidRequestError(
                said(What.PROMPT_CONTROL, code=_describe(char), position=position + 1),
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
            said(What.TASK_ID_NOT_TEXT, type=type(task_id).__name__), field="task_id"
        )
    text = task_id.strip()
    if not text:
        raise InvalidRequestError(said(What.TASK_ID_EMPTY), field="task_id")
    if len(text) > MAX_TASK_ID_CHARS:
        raise InvalidRequestError(
            said(What.TASK_ID_TOO_LONG, length=len(text), most=MAX_TASK_ID_CHARS),
            field="task_id",
        )
    for char in text:
        problem = _id_problem(char)
        if problem:
            raise InvalidRequestError(said(What.TASK_ID_CONTAINS, problem=problem), field="task_id")
    if ".." in text or text.startswith("."):
        raise InvalidRequestError(said(What.TASK_ID_DOTS), field="task_id")
    return text


def _id_problem(char: str) -> Message | None:
    """What is wrong with ``char`` in a task id, or None."""
    if char.isspace():
        return said(What.A_SPACE)
    if _is_control(char) or not char.isprintable():
        return said(What.CONTROL_CHARACTER, code=_describe(char))
    if not char.isascii():
        return said(What.NON_ASCII_CHARACTER, char=repr(char))
    if char not in _TASK_ID_ALLOWED:
        return said(What.CHARACTER, char=repr(char))
    return None


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
            said(What.TOO_MANY_TASK_IDS, count=len(ids), most=MAX_TASK_IDS), field="task_id"
        )
    return [validate_task_id(task_id) for task_id in ids]


def validate_aspect_ratio(aspect_ratio: object) -> str:
    """One of ``ASPECT_RATIOS`` or ``InvalidRequestError(field="aspect_ratio")``."""
    text = aspect_ratio.strip() if isinstance(aspect_ratio, str) else aspect_ratio
    if text not in ASPECT_RATIOS:
        raise InvalidRequestError(
            said(What.ASPECT_RATIO, value=repr(aspect_ratio), choices=", ".join(ASPECT_RATIOS)),
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
