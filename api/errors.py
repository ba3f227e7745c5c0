"""One exception class per way a request can go wrong, each readable by the person who hit it.

``str(error)`` is always one line that says what happened and what to do about it. What
happened is the error's own text (``what``); what to do is an ``advice.Advice`` kind plus the facts
it needs, rendered for the surface the user is on (``line(Surface.CLI)`` names commands,
``line(Surface.NODE)``, which ``str()`` is, names node actions). See ``api/advice.py``.

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


def _clean(message: str) -> str:
    message = one_line(redact(message), limit=2000)
    # ComfyUI's frontend turns this sentence into a Comfy.org sign-in prompt: never emit it.
    return message.replace(_COMFY_SIGN_IN_TEXT, "The API in One key was not accepted")


class GrokError(Exception):
    """Base of every error the pack raises on purpose; ``str()`` is one user-facing line.

    ``what`` is what happened; ``advice`` (with ``task_id``, ``source_task_id``, ``field``) is
    what to do, worded per surface by ``line()``.
    """

    default_message: ClassVar[str] = "The Grok Imagine request failed."
    default_advice: ClassVar[Advice] = Advice.NONE
    task_id: str | None = None
    source_task_id: str | None = None
    field: str | None = None
    journal_row: int | None = None
    limit_source: str | None = None
    limit_file: str | None = None

    def __init__(self, message: str | None = None, *, advice: Advice | None = None) -> None:
        self.what = _clean(message or self.default_message)
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

    default_message = "No API in One key is set."
    default_advice = Advice.SET_KEY


class AuthError(GrokError):
    """The key was refused (401/403) or cannot be sent at all (stray characters)."""

    default_message = "API in One did not accept the API key."
    default_advice = Advice.CHECK_KEY


class InsufficientCreditsError(GrokError):
    default_message = "Your API in One account has too few credits for this request."
    default_advice = Advice.ADD_CREDITS


class RateLimitedError(GrokError):
    """Too many requests; ``retry_after`` is the wait in seconds the server asked for, if any."""

    default_message = "API in One is rate limiting requests: wait a little."
    default_advice = Advice.RATE_LIMITED

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRequestError(GrokError):
    """Bad input: ``field`` names which one; ``from_server`` tells a 400/422 from a local check.

    A local check's text names the fix itself; a server's refusal gets ``Advice.FIX_INPUT``."""

    default_message = "The request is not valid."

    def __init__(
        self, message: str | None = None, field: str | None = None, *, from_server: bool = False
    ) -> None:
        super().__init__(message, advice=Advice.FIX_INPUT if from_server else None)
        self.field = field
        self.from_server = from_server


class TaskNotFoundError(GrokError):
    default_message = (
        "The task was not found at API in One: check the task id and that the key is the one "
        "that created it."
    )

    def __init__(self, message: str | None = None, task_id: str | None = None) -> None:
        super().__init__(message)
        self.task_id = task_id


class TaskFailedError(GrokError):
    """The provider ended the task as failed; ``reason`` is its own text (may be empty)."""

    default_advice = Advice.RETRY_FAILED

    def __init__(
        self, task_id: str | None, reason: str | None = None, message: str | None = None
    ) -> None:
        self.task_id = task_id
        self.reason = one_line(redact(reason), limit=500) if reason else None
        if message is None:
            what = f"Task {task_id}" if task_id else "The task"
            why = (
                f": {self.reason.rstrip('.')}" if self.reason else " (the provider gave no reason)"
            )
            message = f"{what} failed{why}. Failed tasks are not charged."
        super().__init__(message)


class ModerationError(TaskFailedError):
    """Refused by the content policy: retrying the same request fails the same way."""

    default_advice = Advice.NONE

    def __init__(
        self, task_id: str | None, reason: str | None = None, message: str | None = None
    ) -> None:
        if message is None:
            what = f"Task {task_id}" if task_id else "The task"
            why = f" ({one_line(redact(reason), limit=500).rstrip('.')})" if reason else ""
            message = (
                f"{what} was refused by the provider's content policy{why}. Failed tasks are "
                "not charged; rephrase the prompt, since the same prompt will be refused again."
            )
        super().__init__(task_id, reason, message)


class TaskTimeoutError(GrokError):
    """The wait ran out; the task itself keeps running server-side and can be picked up again."""

    default_advice = Advice.RESUME

    def __init__(
        self,
        task_id: str | None,
        timeout: float | None = None,
        message: str | None = None,
        *,
        last_error: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.timeout = timeout
        self.last_error = one_line(redact(last_error), limit=400) if last_error else None
        if message is None:
            waited = f" after {timeout:g} s" if timeout is not None else ""
            if task_id and self.last_error:
                message = (
                    f"Stopped waiting for task {task_id}{waited} because its status could not be "
                    f"read: {self.last_error.rstrip('.')}. The task keeps running at API in One."
                )
            elif task_id:
                message = (
                    f"Stopped waiting for task {task_id}{waited}; the task keeps running at API "
                    "in One."
                )
            else:
                message = f"Stopped waiting{waited} before a task id arrived."
        super().__init__(message)


class CancelledError(GrokError):
    """The user cancelled the wait (ComfyUI's Cancel, Ctrl-C); the task itself is not cancelled."""

    def __init__(self, task_id: str | None, message: str | None = None) -> None:
        self.task_id = task_id
        if message is None:
            if task_id:
                message = (
                    f"Cancelled while waiting for task {task_id}; the task keeps running at API "
                    "in One."
                )
            else:
                message = "Cancelled before any task was created; nothing was charged."
        super().__init__(message, advice=Advice.RESUME if task_id else None)


class ServerError(GrokError):
    """The API answered with a server-side failure (5xx, 455 maintenance, 408); ``status`` is it."""

    default_message = "API in One had a server error."
    default_advice = Advice.RETRY_LATER
    RETRYABLE_STATUSES: ClassVar[frozenset[int]] = frozenset({408, 429, 455, 500, 502, 503, 504})

    def __init__(
        self, message: str | None = None, status: int | None = None, *, advice: Advice | None = None
    ) -> None:
        super().__init__(message, advice=advice)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Would the same read succeed later? (501 generation failed / 505 disabled would not.)"""
        return self.status is None or self.status in self.RETRYABLE_STATUSES


class NetworkError(GrokError):
    """The request did not get an answer: DNS, refused, reset, TLS, proxy, timeout (local side)."""

    default_message = (
        "Could not reach API in One: this is a local network problem (DNS, firewall, proxy or "
        "TLS); check the connection."
    )
    default_advice = Advice.RETRY


class UncertainCreateError(NetworkError):
    """A create was sent but its answer was lost: the task may exist and may have been charged.

    ``reason`` says in a few words how the answer was lost ("no answer within 30 s").
    """

    default_message = (
        "A create was sent but its answer was lost, so the task may exist and may have been "
        "charged; it is not sent again automatically."
    )
    default_advice = Advice.CHECK_UNCERTAIN

    def __init__(self, message: str | None = None, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = one_line(redact(reason), limit=200) if reason else None


class BadResponseError(GrokError):
    """The API answered something this client cannot understand (not JSON, HTML, no task)."""

    default_message = (
        "API in One sent an answer this client cannot read: try again; if it persists, check "
        "APIINONE_BASE_URL and report it."
    )


class DownloadError(GrokError):
    default_message = "Downloading a result file failed."
    default_advice = Advice.RETRY


class NotAnImageError(DownloadError):
    default_message = "The result file is not an image (JPEG, PNG, WEBP or GIF)."
    default_advice = Advice.NONE


class TooLargeError(DownloadError):
    default_message = "The result file is larger than the download limit."
    default_advice = Advice.NONE


class ResultExpiredError(DownloadError):
    """``status`` is the file host's answer (410, 403, 404) when there was one."""

    default_message = (
        "The result file is no longer available (result URLs expire after hours or days)."
    )
    default_advice = Advice.NEW_TASK

    def __init__(self, message: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
