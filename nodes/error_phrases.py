"""An error as a phrase for the node's status: what happened, and what to do in ComfyUI.

The pack's errors are typed: each has an ``Advice`` kind and its facts, and some say what happened
from facts alone (the daily limit's refusal, a failed, refused or timed-out task). Those become
message keys (``error.*``, ``advice.*``) with their facts, translated in the browser; a provider's
reason stays a parameter, shown as it came. Any other error's "what happened" is the error's own
English text (``GrokError.what``), with the advice still translated. The English messages are
checked against ``api.advice`` and ``api.errors`` by ``tests/test_status_phrases.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..api import errors
from ..api.advice import Advice, AdviceFacts, Surface, advice_text
from ..api.env import DAILY_LIMIT_ENV, KEY_ENV
from ..journal.spend_limit import SpendLimitError
from .phrases import Part, Phrase, phrase

KEY_ENTRY = phrase("entry.key")
"""Where the key is set (api.advice.SETTINGS_ENTRY), in the UI language."""
LIMIT_ENTRY = phrase("entry.limit")
"""Where the daily limit is set (api.advice.DAILY_LIMIT_ENTRY), in the UI language."""


def error_phrase(exc: BaseException) -> Part:
    """One line for ``exc``: what happened and, for the pack's errors, what to do in ComfyUI."""
    if not isinstance(exc, errors.GrokError):
        return errors.redact(errors.exception_line(exc))
    advice = advice_phrase(exc)
    what = error_what(exc)
    return what if advice is None else phrase("error.withAdvice", what=what, advice=advice)


def error_what(exc: BaseException) -> Part:
    """What happened, without the advice (a note inside a longer line)."""
    if not isinstance(exc, errors.GrokError):
        return errors.redact(errors.what_happened(exc))
    made = _what_from_facts(exc)
    return made if made is not None else exc.what


# -- what happened, for the errors that say it from facts ------------------------------------------


def _subject(task_id: str | None) -> Phrase:
    return phrase("error.task", taskId=task_id) if task_id else phrase("error.theTask")


def _what_from_facts(exc: errors.GrokError) -> Phrase | None:
    """The phrase for ``exc``'s ``what`` when its facts alone made it (never for a custom text)."""
    if isinstance(exc, SpendLimitError):
        return phrase("error.spendLimit", spent=exc.spent, limit=exc.limit, need=exc.need)
    if type(exc) in (errors.TaskFailedError, errors.ModerationError):
        assert isinstance(exc, errors.TaskFailedError)
        if type(exc)(exc.task_id, exc.reason).what != exc.what:
            return None
        key = "error.moderation" if isinstance(exc, errors.ModerationError) else "error.taskFailed"
        if exc.reason:
            return phrase(key, task=_subject(exc.task_id), reason=exc.reason.rstrip("."))
        return phrase(f"{key}NoReason", task=_subject(exc.task_id))
    if type(exc) is errors.TaskTimeoutError:
        return _timeout(exc)
    return None


def _timeout(exc: errors.TaskTimeoutError) -> Phrase | None:
    made = errors.TaskTimeoutError(exc.task_id, exc.timeout, last_error=exc.last_error)
    if made.what != exc.what:
        return None
    waited: Part = "" if exc.timeout is None else phrase("error.after", seconds=f"{exc.timeout:g}")
    if exc.task_id and exc.last_error:
        return phrase(
            "error.timeoutUnread",
            taskId=exc.task_id,
            waited=waited,
            reason=exc.last_error.rstrip("."),
        )
    if exc.task_id:
        return phrase("error.timeout", taskId=exc.task_id, waited=waited)
    return phrase("error.timeoutNoTask", waited=waited)


# -- what to do, in ComfyUI ------------------------------------------------------------------------


def _facts(exc: errors.GrokError) -> AdviceFacts:
    return AdviceFacts(
        task_id=exc.task_id,
        source_task_id=exc.source_task_id,
        field=exc.field,
        journal_row=exc.journal_row,
        limit_source=exc.limit_source,
        limit_file=exc.limit_file,
    )


def _with_task(with_id: str, without: str) -> Callable[[AdviceFacts], Phrase]:
    def make(f: AdviceFacts) -> Phrase:
        return phrase(with_id, taskId=f.task_id) if f.task_id else phrase(without)

    return make


def _fix_input(f: AdviceFacts) -> Phrase:
    return phrase("advice.fixInput", field=f.field) if f.field else phrase("advice.checkInputs")


def _check_uncertain(f: AdviceFacts) -> Phrase:
    if f.source_task_id:
        return phrase("advice.checkUncertainUpscale", source=f.source_task_id)
    return phrase("advice.checkUncertain")


def _raise_limit(f: AdviceFacts) -> Phrase:
    if f.limit_source == "env":
        return phrase("advice.raiseLimitEnv", envVar=DAILY_LIMIT_ENV)
    return phrase("advice.raiseLimit", entry=LIMIT_ENTRY)


_ADVICE: dict[Advice, Callable[[AdviceFacts], Phrase]] = {
    Advice.SET_KEY: lambda f: phrase("advice.setKey", envVar=KEY_ENV, entry=KEY_ENTRY),
    Advice.CHECK_KEY: lambda f: phrase("advice.checkKey", envVar=KEY_ENV, entry=KEY_ENTRY),
    Advice.ADD_CREDITS: lambda f: phrase("advice.addCredits"),
    Advice.RATE_LIMITED: lambda f: phrase("advice.rateLimited"),
    Advice.RETRY: lambda f: phrase("advice.retry"),
    Advice.RETRY_LATER: lambda f: phrase("advice.retryLater"),
    Advice.RETRY_FAILED: lambda f: phrase("advice.retryFailed"),
    Advice.FIX_INPUT: _fix_input,
    Advice.RESUME: _with_task("advice.resumeTask", "advice.resume"),
    Advice.LOAD_LATER: _with_task("advice.loadLaterTask", "advice.loadLater"),
    Advice.CHECK_UNCERTAIN: _check_uncertain,
    Advice.NEW_TASK: lambda f: phrase("advice.newTask"),
    Advice.MOVE_STORAGE: lambda f: phrase("advice.moveStorage"),
    Advice.RAISE_LIMIT: _raise_limit,
    Advice.SAVE_LIMIT: lambda f: phrase("advice.saveLimit", entry=LIMIT_ENTRY),
}
"""Each advice kind as ComfyUI words it (``api.advice.advice_text`` for ``Surface.NODE``)."""


def advice_phrase(exc: errors.GrokError) -> Part | None:
    """What to do about ``exc`` in ComfyUI; None when its own text says it all."""
    if exc.advice is Advice.NONE:
        return None
    facts = _facts(exc)
    make = _ADVICE.get(exc.advice)
    if make is None:  # a kind this table does not know yet: the English words
        return advice_text(exc.advice, Surface.NODE, facts) or None
    return make(facts)
