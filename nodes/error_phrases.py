"""An error as a phrase for the node's status: what happened, and what to do in ComfyUI.

The pack's errors are typed: what happened is a ``Message`` (a ``What`` kind and its facts), what
to do an ``Advice`` kind and its facts. Both become message keys with their facts, worded in the
browser: a kind's key is its name (``What.BAD_KEY`` -> ``what.badKey``), an advice's key is looked
up by the case ``api.advice`` chose. A provider's words, a path or a number stay parameters, shown
as they came. Only an error given as plain text (not the pack's words) is shown as its text.

The English of every key here is generated from ``api.what`` and ``api.advice``
(``tests/locale_catalog.py``), so the node's English is the error's own line, word for word.
"""

from __future__ import annotations

import re

from ..api import errors
from ..api.advice import Advice, AdviceFacts, Surface, advice_case, advice_cases, advice_values
from ..api.messages import CONSTANTS, PLACEHOLDER, Message
from ..api.what import What
from .phrases import Param, Part, Phrase, phrase

KEY_ENTRY = phrase("entry.key")
"""Where the key is set (api.advice.SETTINGS_ENTRY), in the UI language."""
LIMIT_ENTRY = phrase("entry.limit")
"""Where the daily limit is set (api.advice.DAILY_LIMIT_ENTRY), in the UI language."""
ENTRIES = {"settings_entry": KEY_ENTRY, "daily_limit_entry": LIMIT_ENTRY}
"""The advice's words that name a place in ComfyUI: sent as phrases, so they are translated."""

ADVICE_KEYS: dict[tuple[Advice, str], str] = {
    (Advice.SET_KEY, ""): "advice.setKey",
    (Advice.CHECK_KEY, ""): "advice.checkKey",
    (Advice.ADD_CREDITS, ""): "advice.addCredits",
    (Advice.RATE_LIMITED, ""): "advice.rateLimited",
    (Advice.RETRY, ""): "advice.retry",
    (Advice.RETRY_LATER, ""): "advice.retryLater",
    (Advice.RETRY_FAILED, ""): "advice.retryFailed",
    (Advice.FIX_INPUT, "field"): "advice.fixInput",
    (Advice.FIX_INPUT, ""): "advice.checkInputs",
    (Advice.RESUME, "task_id"): "advice.resumeTask",
    (Advice.RESUME, ""): "advice.resume",
    (Advice.LOAD_LATER, "task_id"): "advice.loadLaterTask",
    (Advice.LOAD_LATER, ""): "advice.loadLater",
    (Advice.CHECK_UNCERTAIN, "source_task_id"): "advice.checkUncertainUpscale",
    (Advice.CHECK_UNCERTAIN, ""): "advice.checkUncertain",
    (Advice.NEW_TASK, ""): "advice.newTask",
    (Advice.MOVE_STORAGE, ""): "advice.moveStorage",
    (Advice.RAISE_LIMIT, "limit_from_env"): "advice.raiseLimitEnv",
    (Advice.RAISE_LIMIT, ""): "advice.raiseLimit",
    (Advice.SAVE_LIMIT, ""): "advice.saveLimit",
}
"""Each case of each advice (``api.advice.advice_cases``, the node's words) and its message."""


def error_phrase(exc: BaseException) -> Part:
    """One line for ``exc``: what happened and, for the pack's errors, what to do in ComfyUI."""
    if not isinstance(exc, errors.GrokError):
        return errors.redact(errors.exception_line(exc))
    advice = advice_phrase(exc)
    what = error_what(exc)
    return what if advice is None else phrase("error.withAdvice", what=what, advice=advice)


def error_what(exc: BaseException) -> Part:
    """What happened, without the advice (a note inside a longer line)."""
    told = errors.happened(exc)
    return what_phrase(told) if isinstance(told, Message) else errors.redact(told)


def what_key(kind: What) -> str:
    """``What.KEY_REFUSED`` -> ``"what.keyRefused"``."""
    first, *rest = kind.name.lower().split("_")
    return "what." + first + "".join(word.capitalize() for word in rest)


def what_phrase(message: Message) -> Phrase:
    params: dict[str, Param] = {
        name: what_phrase(value) if isinstance(value, Message) else _shown(value)
        for name, value in message.facts.items()
    }
    return Phrase(what_key(message.kind), params, clause=message.clause)


def _shown(value: str | int) -> str | int:
    """A fact as one line (a status line never breaks inside a provider's words)."""
    return re.sub(r"\s+", " ", value) if isinstance(value, str) else value


def _facts(exc: errors.GrokError) -> AdviceFacts:
    return AdviceFacts(
        task_id=exc.task_id,
        source_task_id=exc.source_task_id,
        field=exc.field,
        journal_row=exc.journal_row,
        limit_source=exc.limit_source,
        limit_file=exc.limit_file,
    )


def advice_phrase(exc: errors.GrokError) -> Part | None:
    """What to do about ``exc`` in ComfyUI; None when its own text says it all."""
    if exc.advice is Advice.NONE:
        return None
    facts = _facts(exc)
    case = advice_case(exc.advice, Surface.NODE, facts)
    template = dict(advice_cases(exc.advice, Surface.NODE))[case]
    values = advice_values(facts)
    params: dict[str, Param] = {
        name: ENTRIES[name] if name in ENTRIES else _param(values[name])
        for name in PLACEHOLDER.findall(template)
        if name not in CONSTANTS
    }
    return Phrase(ADVICE_KEYS[(exc.advice, case)], params)


def _param(value: object) -> Param:
    return value if isinstance(value, (str, int)) else str(value)
