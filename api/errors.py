"""One exception class per way a request can go wrong, each readable by the person who hit it.

``str(error)`` is always one line that says what happened and what to do about it, because the
nodes show it as-is in ComfyUI's error dialog and the CLI prints it after ``error:``.

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

__all__ = [
    "SETTINGS_ENTRY",
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
    "TaskFailedError",
    "TaskNotFoundError",
    "TaskTimeoutError",
    "TooLargeError",
    "UncertainCreateError",
    "exception_line",
    "redact",
    "remember_secret",
]

REDACTED = "<redacted key>"
SETTINGS_ENTRY = "Settings \u203a Grok Imagine \u203a API key"
"""Where ComfyUI users set the key (the pack's entry in ComfyUI's Settings dialog)."""
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


def exception_line(exc: BaseException) -> str:
    """Any exception as one line for a status text, a journal row or a log (its type name when
    it has no text)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def _clean(message: str) -> str:
    message = one_line(redact(message), limit=2000)
    # ComfyUI's frontend turns this sentence into a Comfy.org sign-in prompt: never emit it.
    return message.replace(_COMFY_SIGN_IN_TEXT, "The API in One key was not accepted")


class GrokError(Exception):
    """Base of every error the pack raises on purpose; ``str()`` is one user-facing line."""

    default_message: ClassVar[str] = "The Grok Imagine request failed."

    def __init__(self, message: str | None = None) -> None:
        self.message = _clean(message or self.default_message)
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class MissingKeyError(GrokError):
    """No API key in the environment or the key file (or the key file cannot be read)."""

    default_message = (
        "No API in One key is set: set the APIINONE_API_KEY environment variable or save the key "
        f"in ComfyUI ({SETTINGS_ENTRY})."
    )


class AuthError(GrokError):
    """The key was refused (401/403) or cannot be sent at all (stray characters)."""

    default_message = (
        "API in One did not accept the API key: check it in your API in One dashboard and set it "
        f"again (APIINONE_API_KEY or {SETTINGS_ENTRY})."
    )


class InsufficientCreditsError(GrokError):
    default_message = (
        "Your API in One account has too few credits for this request: top up in the API in One "
        "dashboard, then queue it again."
    )


class RateLimitedError(GrokError):
    """Too many requests; ``retry_after`` is the wait in seconds the server asked for, if any."""

    default_message = "API in One is rate limiting requests: wait a little and queue it again."

    def __init__(self, message: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidRequestError(GrokError):
    """Bad input: ``field`` names which one; ``from_server`` tells a 400/422 from a local check."""

    default_message = "The request is not valid: check the node's inputs."

    def __init__(
        self, message: str | None = None, field: str | None = None, *, from_server: bool = False
    ) -> None:
        super().__init__(message)
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

    def __init__(
        self, task_id: str | None, reason: str | None = None, message: str | None = None
    ) -> None:
        self.task_id = task_id
        self.reason = one_line(redact(reason), limit=500) if reason else None
        if message is None:
            what = f"Task {task_id}" if task_id else "The task"
            why = f": {self.reason}" if self.reason else " (the provider gave no reason)"
            message = (
                f"{what} failed{why}. Failed tasks are not charged; queue it again, or change "
                "the prompt if it keeps failing."
            )
        super().__init__(message)


class ModerationError(TaskFailedError):
    """Refused by the content policy: retrying the same request fails the same way."""

    def __init__(
        self, task_id: str | None, reason: str | None = None, message: str | None = None
    ) -> None:
        if message is None:
            what = f"Task {task_id}" if task_id else "The task"
            why = f" ({one_line(redact(reason), limit=500)})" if reason else ""
            message = (
                f"{what} was refused by the provider's content policy{why}. Failed tasks are "
                "not charged; rephrase the prompt, since the same prompt will be refused again."
            )
        super().__init__(task_id, reason, message)


class TaskTimeoutError(GrokError):
    """The wait ran out; the task itself keeps running server-side and can be picked up again."""

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
                    f"read: {self.last_error.rstrip('.')}. The task keeps running at API in One: "
                    "once that is fixed, queue the same node again to resume it without paying "
                    f"again, or use Grok Load Task with the id {task_id}."
                )
            elif task_id:
                message = (
                    f"Stopped waiting for task {task_id}{waited}; the task keeps running at API "
                    "in One. Queue the same node again to resume it without paying again, or use "
                    f"Grok Load Task with the id {task_id}."
                )
            else:
                message = (
                    f"Stopped waiting{waited} before a task id arrived; queue the same node "
                    "again to pick the request up without paying again."
                )
        super().__init__(message)


class CancelledError(GrokError):
    """The user cancelled the wait (ComfyUI's Cancel, Ctrl-C); the task itself is not cancelled."""

    def __init__(self, task_id: str | None, message: str | None = None) -> None:
        self.task_id = task_id
        if message is None:
            if task_id:
                message = (
                    f"Cancelled while waiting for task {task_id}; the task keeps running at API "
                    "in One. Queue the same node again to pick up its result without paying again."
                )
            else:
                message = "Cancelled before any task was created; nothing was charged."
        super().__init__(message)


class ServerError(GrokError):
    """The API answered with a server-side failure (5xx, 455 maintenance, 408); ``status`` is it."""

    default_message = "API in One had a server error: try again in a few minutes."
    RETRYABLE_STATUSES: ClassVar[frozenset[int]] = frozenset({408, 429, 455, 500, 502, 503, 504})

    def __init__(self, message: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """Would the same read succeed later? (501 generation failed / 505 disabled would not.)"""
        return self.status is None or self.status in self.RETRYABLE_STATUSES


class NetworkError(GrokError):
    """The request did not get an answer: DNS, refused, reset, TLS, proxy, timeout (local side)."""

    default_message = (
        "Could not reach API in One: this is a local network problem (DNS, firewall, proxy or "
        "TLS); check the connection and try again."
    )


class UncertainCreateError(NetworkError):
    """A create was sent but its answer was lost: the task may exist and may have been charged."""

    default_message = (
        "The create request was sent but its answer was lost, so the task may exist and may have "
        "been charged; it is not sent again automatically. Check your API in One dashboard."
    )


class BadResponseError(GrokError):
    """The API answered something this client cannot understand (not JSON, HTML, no task)."""

    default_message = (
        "API in One sent an answer this client cannot read: try again; if it persists, check "
        "APIINONE_BASE_URL and report it."
    )


class DownloadError(GrokError):
    default_message = "Downloading a result file failed: queue the node again to retry."


class NotAnImageError(DownloadError):
    default_message = "The result file is not an image (JPEG, PNG, WEBP or GIF)."


class TooLargeError(DownloadError):
    default_message = "The result file is larger than the download limit."


class ResultExpiredError(DownloadError):
    default_message = (
        "The result file is no longer available (result URLs expire after hours or days): "
        "create a new task."
    )
