"""The tolerant reader: any task-status payload seen in the wild -> ``Task``.

The provider does not publish the body of ``GET /api/v1/tasks/{id}``, and gateways of the same
model answer in many shapes (``/work/shared/api-notes.md``): the status under ``data.status``,
``data.state`` or top-level ``status``, spelled a dozen ways; result URLs in ``output.image_urls``,
``result.images[].url`` (a string or a list), ``resultJson`` (a JSON *string*) and more; the error
text in ``error.message``, ``failMsg``, ``msg``... This module reads them all, and anything it
cannot understand becomes ``BadResponseError`` and nothing else (the property tests feed it
arbitrary JSON). A status word it has never met is ``TaskState.UNKNOWN`` with the word kept:
polling goes on instead of crashing on a new spelling.

Error *codes* in a 200 body (``{"code": 401, "msg": ...}``) are the transport's business; see
``body_error`` and ``client.GrokClient.get_task``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

from .errors import BadResponseError, one_line, redact
from .messages import Message, said
from .task import Task, TaskState
from .what import What

__all__ = ["body_error", "classify_status", "parse_task", "read_created_task_id"]

_STATUS_WORDS: dict[str, TaskState] = {}
for _state, _words in {
    TaskState.QUEUED: (
        "pending",
        "queued",
        "queue",
        "in_queue",
        "inqueue",
        "waiting",
        "wait",
        "queuing",
        "queueing",
        "submitted",
        "created",
        "new",
        "scheduled",
        "accepted",
        "not_started",
        "starting",
    ),
    TaskState.RUNNING: (
        "in_progress",
        "inprogress",
        "progress",
        "processing",
        "running",
        "generating",
        "started",
        "working",
        "active",
        "rendering",
    ),
    TaskState.SUCCEEDED: (
        "completed",
        "complete",
        "success",
        "succeeded",
        "succeed",
        "successful",
        "done",
        "finished",
        "finish",
        "ready",
    ),
    TaskState.FAILED: (
        "failed",
        "fail",
        "failure",
        "error",
        "errored",
        "cancelled",
        "canceled",
        "cancel",
        "timeout",
        "timed_out",
        "timedout",
        "expired",
        "rejected",
        "aborted",
    ),
}.items():
    for _word in _words:
        _STATUS_WORDS[_word] = _state

_STATUS_KEYS = ("status", "state", "task_status", "taskStatus", "status_text")
_ID_KEYS = ("task_id", "taskId", "taskID", "id", "request_id", "requestId")
_PROGRESS_KEYS = ("progress", "percent", "percentage", "progress_percent")
_ERROR_KEYS = (
    "failMsg",
    "fail_msg",
    "error_message",
    "errorMessage",
    "error_msg",
    "errorMsg",
    "error",
    "failure_reason",
    "failReason",
    "reason",
    "detail",
)
_FAIL_CODE_KEYS = ("failCode", "fail_code", "error_code", "errorCode")
# Where result URLs live: recursion follows only these keys (never arbitrary nesting).
_URL_KEYS = (
    "resultUrls",
    "result_urls",
    "image_urls",
    "imageUrls",
    "urls",
    "url",
    "image_url",
    "imageUrl",
    "images",
    "image",
    "output",
    "outputs",
    "result",
    "results",
    "resultJson",
    "result_json",
    "files",
    "media",
    "data",
)
_SUCCESS_MESSAGES = frozenset({"", "success", "ok", "succeeded", "completed", "null", "none"})
_MAX_DEPTH = 8
_MAX_URLS = 64
_MAX_JSON_STRING = 1_000_000


def parse_task(payload: Any, task_id: str | None = None) -> Task:
    """One status read as a ``Task``; ``BadResponseError`` if there is no task to read in it.

    ``task_id`` is the id that was asked for; it wins over an id in the payload (the caller's id
    is the one the user knows), and is required when the payload names none.
    """
    try:
        return _parse(payload, task_id)
    except BadResponseError:
        raise
    except (RecursionError, MemoryError):
        raise BadResponseError(said(What.STATUS_TOO_DEEP)) from None
    except Exception as exc:  # a shape nobody foresaw must not crash the wait with a TypeError
        raise BadResponseError(said(What.STATUS_UNREADABLE, type=type(exc).__name__)) from None


def classify_status(word: str) -> TaskState:
    """``"IN_PROGRESS"`` / ``"in progress"`` / ``"Succeeded"`` ... -> a ``TaskState``."""
    key = word.strip().lower().replace("-", "_").replace(" ", "_")
    return _STATUS_WORDS.get(key, TaskState.UNKNOWN)


def body_error(payload: Any) -> tuple[int, str] | None:
    """``(code, message)`` when a JSON body carries an error code (even with HTTP 200).

    Upstream answers ``{"code": 422, "msg": "recordInfo is null", "data": null}`` for an unknown
    task and ``{"code": 401, "msg": ...}`` for a bad key, both with HTTP 200. A ``code`` of 0 or
    2xx is success. The documented error envelope ``{"error": {"code": 400, ...}}`` counts too.
    """
    if not isinstance(payload, dict):
        return None
    code = _as_code(payload.get("code"))
    if code is not None and not (code == 0 or 200 <= code < 300):
        return code, _message_of(payload)
    error = payload.get("error")
    if isinstance(error, dict):
        code = _as_code(error.get("code") if "code" in error else error.get("status"))
        if code is not None and code >= 400:
            return code, _message_of(error)
    return None


def read_created_task_id(payload: Any) -> str | None:
    """The task id in a create answer (``data.task_id`` and its spellings), or None."""
    for container in _containers(payload):
        value = _first(container, _ID_KEYS)
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            text = str(value).strip()
            if text:
                return text
    return None


# -- the reading ---------------------------------------------------------------------------------


def _parse(payload: Any, task_id: str | None) -> Task:
    payload = _maybe_json(payload)
    if not isinstance(payload, dict):
        raise BadResponseError(said(What.STATUS_NOT_AN_OBJECT, answer=_kind(payload)))
    containers = list(_containers(payload))
    raw_status = None
    for container in containers:
        value = _first(container, _STATUS_KEYS)
        if isinstance(value, str) and value.strip():
            raw_status = value.strip()
            break
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            raw_status = str(value)
            break

    urls = _unique(url for container in containers for url in _urls_in(container, 0))
    error = _error_text(containers, payload)

    if raw_status is not None:
        state = classify_status(raw_status)
    elif urls:
        state = TaskState.SUCCEEDED  # a synchronous-style answer: results and no status word
    else:
        raise BadResponseError(said(What.STATUS_EMPTY))

    found_id = read_created_task_id(payload)
    the_id = task_id or found_id
    if not the_id:
        raise BadResponseError(said(What.STATUS_WITHOUT_ID))

    return Task(
        id=the_id,
        state=state,
        result_urls=tuple(urls) if state is not TaskState.FAILED else (),
        error=error if state in (TaskState.FAILED, TaskState.UNKNOWN) else None,
        progress=_progress(containers, state),
        raw_status=redact(raw_status) if raw_status is not None else None,
        raw=payload,
    )


def _containers(payload: Any) -> Iterator[dict[str, Any]]:
    """The task's own object first (``data``, ``data.task``, ``task``), then the envelope."""
    if not isinstance(payload, dict):
        return
    data = payload.get("data")
    if isinstance(data, dict):
        task = data.get("task")
        if isinstance(task, dict):
            yield task
        yield data
    task = payload.get("task")
    if isinstance(task, dict):
        yield task
    yield payload


def _first(container: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = container.get(key)
        if value is not None and value != "":
            return value
    return None


def _urls_in(node: Any, depth: int) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(node, str):
        text = node.strip()
        if text[:1] in ("{", "[") and len(text) <= _MAX_JSON_STRING:
            decoded = _maybe_json(text)  # resultJson: JSON inside a JSON string
            if decoded is not text:
                yield from _urls_in(decoded, depth + 1)
            return
        if _is_http_url(text):
            yield text
    elif isinstance(node, list):
        for item in node[:_MAX_URLS]:
            yield from _urls_in(item, depth + 1)
    elif isinstance(node, dict):
        for key in _URL_KEYS:
            if key in node:
                yield from _urls_in(node[key], depth + 1)


def _is_http_url(text: str) -> bool:
    lowered = text[:8].lower()
    if not (lowered.startswith("https://") or lowered.startswith("http://")):
        return False
    host_part = text.split("://", 1)[1]
    return (
        bool(host_part)
        and host_part[0] not in "/?#"
        and not any(c.isspace() or ord(c) < 32 for c in text)
    )


def _unique(urls: Iterator[str]) -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        seen.setdefault(url, None)
        if len(seen) >= _MAX_URLS:
            break
    return list(seen)


def _error_text(containers: list[dict[str, Any]], payload: dict[str, Any]) -> str | None:
    for container in containers:
        value = _first(container, _ERROR_KEYS)
        text = _text_of(value)
        if text:
            return text
    # The envelope's own message counts only when it is not the usual "success".
    for key in ("msg", "message"):
        text = _text_of(payload.get(key))
        if text and text.lower() not in _SUCCESS_MESSAGES:
            return text
    for container in containers:
        code = _first(container, _FAIL_CODE_KEYS)
        if isinstance(code, (str, int)) and not isinstance(code, bool) and str(code).strip():
            return f"failure code {one_line(str(code), 80)}"
    return None


def _text_of(value: Any) -> str | None:
    if isinstance(value, str):
        text = one_line(value, 500)
        return text if text.lower() not in ("null", "none") else None
    if isinstance(value, dict):
        for key in ("message", "msg", "detail", "error", "reason", "description"):
            found = _text_of(value.get(key))
            if found:
                return found
    return None


def _message_of(container: dict[str, Any]) -> str:
    for key in ("msg", "message", "error", "detail", "error_message"):
        text = _text_of(container.get(key))
        if text:
            return text
    return ""


def _progress(containers: list[dict[str, Any]], state: TaskState) -> float | None:
    if state is TaskState.SUCCEEDED:
        return 1.0
    for container in containers:
        value = _first(container, _PROGRESS_KEYS)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                number: float = float(value.strip().rstrip("%"))
            except ValueError:
                continue
            is_percent = True
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            # 0.45 is a fraction, 45 a percentage; an int (even 1) is a percentage.
            is_percent = isinstance(value, int) or number > 1.0
        else:
            continue
        if not math.isfinite(number):
            continue
        fraction = number / 100.0 if is_percent else number
        return min(1.0, max(0.0, fraction))
    return None


def _as_code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= 4:
        return int(value.strip())
    return None


def _maybe_json(value: Any) -> Any:
    """Decoded JSON when ``value`` is JSON text (bytes or str); else ``value`` itself."""
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return value
    if (
        isinstance(value, str)
        and value.strip()[:1] in ("{", "[")
        and len(value) <= _MAX_JSON_STRING
    ):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def _kind(value: Any) -> Message:
    if isinstance(value, str):
        return said(What.AN_HTML_PAGE if value.lstrip()[:1] == "<" else What.PLAIN_TEXT)
    if value is None:
        return said(What.AN_EMPTY_ANSWER)
    return said(What.A_JSON_VALUE, type=type(value).__name__)
