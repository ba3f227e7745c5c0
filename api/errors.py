"""One exception class per way a request can go wrong, each readable by the person who hit it.

``str(error)`` is always one line that says what happened and what to do about it. What
happened is a ``messages.Message`` (``happened``: a ``What`` kind and its facts, worded in
English as ``what``, in the UI's language by the node); what to do is an ``advice.Advice`` kind
plus the facts it needs, rendered for the surface the user is on (``line(Surface.CLI)`` names
commands, ``line(Surface.NODE)``, which ``str()`` is, names node actions). See ``api/advice.py``
and ``api/what.py``.

Two guarantees hold for every message, whoever builds it:

* the API key never appears: every key the pack has loaded is remembered here (in memory only)
  and masked out of each message as the exception is made;
* the exact sentence ComfyUI's frontend treats as a Comfy.org sign-in request is never produced,
  so an invalid API in One key cannot open a sign-in dialog for an unrelated account.

This module is imported when ComfyUI loads the pack: it must stay free of heavy imports.
"""

from __future__ import annotations

import threading
from typing import ClassVar

from .advice import SETTINGS_ENTRY, Advice, AdviceFacts, Surface, advice_text
from .messages import Fact, Message, english, said
from .what import What

__all__ = [
    "SETTINGS_ENTRY",
    "Advice",
    "AuthError",
    "BadResponseError",
    "CancelledError",
    "DownloadError",
    "GrokError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "MissingKeyError",
    "ModerationError",
    "NetworkError",
    "NotAnImageError",
    "RateLimitedError",
    "ResultExpiredError",
    "ServerError",
    "Surface",
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskTimeoutError",
    "TooLargeError",
    "UncertainCreateError",
    "exception_line",
    "happened",
    "redact",
    "remember_secret",
    "what_happened",
]

REDACTED = "<redacted key>"
MIN_SECRET_CHARS = 8  # shorter strings are too likely to be ordinary words to mask safely
_COMFY_SIGN_IN_TEXT = "Please login first to use this node"

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def remember_secret(secret: str) -> None:
    """Mask ``secret`` out of every exception message made from now on (process memory only)."""
    secret = secret.strip()
    if len(secret) >= MIN_SECRET_CHARS:
        with _secrets_lock:
            _secrets.add(secret)


def redact(text: str, extra_secrets: tuple[str, ...] = ()) -> str:
    """``text`` with every remembered key (and ``extra_secrets``) replaced by a marker."""
    with _secrets_lock:
        secrets = [*_secrets, *(s for s in extra_secrets if len(s) >= MIN_SECRET_CHARS)]
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def one_line(text: str, limit: int = 600) -> str:
    """Whitespace collapsed, newlines gone, long texts cut (server error pages can be huge)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def exception_line(exc: BaseException, surface: Surface = Surface.NODE) -> str:
    """Any exception as one line for a status text, a journal row or a log (its type name when
    it has no text); our own errors with their advice worded for ``surface``."""
    text = exc.line(surface) if isinstance(exc, GrokError) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def what_happened(exc: BaseException) -> str:
    """What happened, without the advice (for a note inside a longer line on any surface)."""
    return exc.what if isinstance(exc, GrokError) else exception_line(exc)


def happened(exc: BaseException) -> Message | str:
    """What happened as a message when the pack worded it, else as text (``what_happened``)."""
    if isinstance(exc, GrokError) and exc.happened is not None:
        return exc.happened
    return what_happened(exc)


def _unsigned(text: str) -> str:
    # ComfyUI's frontend turns this sentence into a Comfy.org sign-in prompt: never emit it.
    return text.replace(_COMFY_SIGN_IN_TEXT, "The API in One key was not accepted")


def _clean(message: str) -> str:
    return _unsigned(one_line(redact(message), limit=2000))


def _clean_fact(text: str) -> str:
    return _unsigned(redact(text))


def _subject(task_id: str | None) -> Message:
    return said(What.TASK, task_id=task_id) if task_id else said(What.THE_TASK)


class GrokError(Exception):
    """Base of every error the pack raises on purpose; ``str()`` is one user-facing line.

    ``happened`` is what happened as a message (None for a text given as it is), ``what`` its
    English; ``advice`` (with ``task_id``, ``source_task_id``, ``field``) is what to do, worded
    per surface by ``line()``.
    """

    default_what: ClassVar[Message] = said(What.REQUEST_FAILED)
    default_advice: ClassVar[Advice] = Advice.NONE
    task_id: str | None = None
    source_task_id: str | None = None
    field: str | None = None
    journal_row: int | None = None
    limit_source: str | None = None
    limit_file: str | None = None

    def __init__(
        self, message: Message | str | None = None, *, advice: Advice | None = None
    ) -> None:
        told = message or self.default_what
        self.happened = told.with_texts(_clean_fact) if isinstance(told, Message) else None
        self.what = _clean(english(told))
        self.advice = advice if advice is not None else self.default_advice
        super().__init__(self.what)

    def line(self, surface: Surface = Surface.NODE, rerun: str | None = None) -> str:
        """What happened and what to do, for ``surface``; ``rerun`` is the exact command that
        repeats this request (the CLI passes it so the advice can name it)."""
        facts = AdviceFacts(
            self.task_id,
            self.source_task_id,
            self.field,
            rerun,
            self.journal_row,
            self.limit_source,
            self.limit_file,
        )
        text = advice_text(self.advice, surface, facts)
        return _clean(f"{self.what} {text}") if text else self.what

    @property
    def message(self) -> str:
        return self.line(Surface.NODE)

    def __str__(self) -> str:
        return self.line(Surface.NODE)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.what!r})"


class MissingKeyError(GrokError):
    """No API key in the environment or the key file (or the key file cannot be read)."""

    default_what = said(What.NO_KEY)
    default_advice = Advice.SET_KEY


class AuthError(GrokError):
    """The key was refused (401/403) or cannot be sent at all (stray characters)."""

    default_what = said(What.KEY_NOT_ACCEPTED)
    default_advice = Advice.CHECK_KEY


class InsufficientCreditsError(GrokError):
    default_what = said(What.TOO_FEW_CREDITS)
    default_advice = Advice.ADD_CREDITS


class RateLimitedError(GrokError):
    """Too many requests; ``retry_after`` is the wait in seconds the server asked for, if any."""

    default_what = said(What.RATE_LIMITED)
    default_advice = Advice.RATE_LIMITED

    def __init__(
        self, message: Message | str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRequestError(GrokError):
    """Bad input: ``field`` names which one; ``from_server`` tells a 400/422 from a local check.

    A local check's text names the fix itself; a server's refusal gets ``Advice.FIX_INPUT``."""

    default_what = said(What.INVALID_REQUEST)

    def __init__(
        self,
        message: Message | str | None = None,
        field: str | None = None,
        *,
        from_server: bool = False,
    ) -> None:
        super().__init__(message, advice=Advice.FIX_INPUT if from_server else None)
        self.field = field
        self.from_server = from_server


class TaskNotFoundError(GrokError):
    default_what = said(What.TASK_NOT_FOUND)

    def __init__(self, message: Message | str | None = None, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskFailedError(GrokError):
    """The provider ended the task as failed; ``reason`` is its own text (may be empty)."""

    default_advice = Advice.RETRY_FAILED

    def __init__(
        self,
        task_id: str | None,
        reason: str | None = None,
        message: Message | str | None = None,
    ) -> None:
        self.task_id = task_id
        self.reason = one_line(redact(reason), limit=500) if reason else None
        if message is None:
            task = _subject(task_id)
            message = (
                said(What.TASK_FAILED, task=task, reason=self.reason.rstrip("."))
                if self.reason
                else said(What.TASK_FAILED_NO_REASON, task=task)
            )
        super().__init__(message)


class ModerationError(TaskFailedError):
    """Refused by the content policy: retrying the same request fails the same way."""

    default_advice = Advice.NONE

    def __init__(
        self,
        task_id: str | None,
        reason: str | None = None,
        message: Message | str | None = None,
    ) -> None:
        if message is None:
            task = _subject(task_id)
            message = (
                said(What.MODERATION, task=task, reason=one_line(redact(reason), 500).rstrip("."))
                if reason
                else said(What.MODERATION_NO_REASON, task=task)
            )
        super().__init__(task_id, reason, message)


class TaskTimeoutError(GrokError):
    """The wait ran out; the task itself keeps running server-side and can be picked up again."""

    default_advice = Advice.RESUME

    def __init__(
        self,
        task_id: str | None,
        timeout: float | None = None,
        message: Message | str | None = None,
        *,
        last_error: Message | str | None = None,
    ) -> None:
        self.task_id = task_id
        self.timeout = timeout
        last = english(last_error) if last_error else None
        self.last_error = one_line(redact(last), limit=400) if last else None
        if message is None:
            message = self._said(last_error)
        super().__init__(message)

    def _said(self, last_error: Message | str | None) -> Message:
        waited: Fact = (
            "" if self.timeout is None else said(What.WAITED, seconds=f"{self.timeout:g}")
        )
        if not self.task_id:
            return said(What.TIMEOUT_NO_TASK, waited=waited)
        if not self.last_error:
            return said(What.TIMEOUT, task_id=self.task_id, waited=waited)
        # The reason read as a message when nothing of it was cut off, else as the text kept.
        whole = isinstance(last_error, Message) and self.last_error == one_line(
            redact(english(last_error)), limit=10**9
        )
        reason = last_error.as_clause() if whole else self.last_error.rstrip(".")  # type: ignore[union-attr]
        return said(What.TIMEOUT_UNREAD, task_id=self.task_id, waited=waited, reason=reason)


class CancelledError(GrokError):
    """The user cancelled the wait (ComfyUI's Cancel, Ctrl-C); the task itself is not cancelled."""

    def __init__(self, task_id: str | None, message: Message | str | None = None) -> None:
        self.task_id = task_id
        if message is None:
            message = (
                said(What.CANCELLED, task_id=task_id)
                if task_id
                else said(What.CANCELLED_BEFORE_CREATE)
            )
        super().__init__(message, advice=Advice.RESUME if task_id else None)


class ServerError(GrokError):
    """The API answered with a server-side failure (5xx, 455 maintenance, 408); ``status`` is it."""

    default_what = said(What.SERVER_ERROR)
    default_advice = Advice.RETRY_LATER
    RETRYABLE_STATUSES: ClassVar[frozenset[int]] = frozenset({408, 429, 455, 500, 502, 503, 504})

    def __init__(
        self,
        message: Message | str | None = None,
        status: int | None = None,
        *,
        advice: Advice | None = None,
    ) -> None:
        super().__init__(message, advice=advice)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Would the same read succeed later? (501 generation failed / 505 disabled would not.)"""
        return self.status is None or self.status in self.RETRYABLE_STATUSES


class NetworkError(GrokError):
    """The request did not get an answer: DNS, refused, reset, TLS, proxy, timeout (local side)."""

    default_what = said(What.NO_NETWORK)
    default_advice = Advice.RETRY


class UncertainCreateError(NetworkError):
    """A create was sent but its answer was lost: the task may exist and may have been charged.

    ``reason`` says in a few words how the answer was lost ("no answer within 30 s").
    """

    default_what = said(What.UNCERTAIN_CREATE)
    default_advice = Advice.CHECK_UNCERTAIN

    def __init__(self, message: Message | str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = one_line(redact(reason), limit=200) if reason else None


class BadResponseError(GrokError):
    """The API answered something this client cannot understand (not JSON, HTML, no task)."""

    default_what = said(What.BAD_RESPONSE)


class DownloadError(GrokError):
    default_what = said(What.DOWNLOAD_FAILED)
    default_advice = Advice.RETRY


class NotAnImageError(DownloadError):
    default_what = said(What.NOT_AN_IMAGE)
    default_advice = Advice.NONE


class TooLargeError(DownloadError):
    default_what = said(What.TOO_LARGE)
    default_advice = Advice.NONE


class ResultExpiredError(DownloadError):
    """``status`` is the file host's answer (410, 403, 404) when there was one."""

    default_what = said(What.RESULT_EXPIRED)
    default_advice = Advice.NEW_TASK

    def __init__(self, message: Message | str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
