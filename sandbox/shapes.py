"""Status payloads in every shape the wild has shown (``/work/shared/api-notes.md``).

The provider does not publish the body of ``GET /api/v1/tasks/{id}``; gateways of the same model
answer in many shapes. Each builder here renders one task snapshot in one of them, so the client's
tolerant reader can be tested against all. ``default`` is what the sandbox answers unless told
otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
PHASES = (QUEUED, RUNNING, COMPLETED, FAILED)


@dataclass(frozen=True)
class TaskView:
    """What any shape needs to know about a task at the moment of the read."""

    task_id: str
    model: str
    phase: str  # one of PHASES
    progress: float  # 0..1
    urls: tuple[str, ...]  # empty until completed
    error: str | None  # the failure reason when failed
    fail_code: str | None = None  # a short machine code when failed
    created_unix: float = 0.0
    status_echo: str | None = None  # text a careless server appends to an in-progress status


Payload = dict[str, Any]
Builder = Callable[[TaskView], Payload]


# Status spellings per phase.
def _words(queued: str, running: str, completed: str, failed: str) -> dict[str, str]:
    return {QUEUED: queued, RUNNING: running, COMPLETED: completed, FAILED: failed}


_DEFAULT_WORDS = _words("pending", "IN_PROGRESS", "completed", "failed")
_UPPER_WORDS = _words("IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED")
_LOWER_WORDS = _words("queued", "in_progress", "completed", "failed")
_SYNONYM_WORDS = _words("waiting", "processing", "succeeded", "error")
_UPSTREAM_WORDS = _words("waiting", "generating", "success", "fail")


def _envelope(data: Payload) -> Payload:
    return {"code": 200, "message": "success", "data": data}


def _status_data(view: TaskView, words: dict[str, str], progress: bool = True) -> Payload:
    status = words[view.phase]
    if view.status_echo and view.phase in (QUEUED, RUNNING):
        status = f"{status} {view.status_echo}"
    data: Payload = {"task_id": view.task_id, "status": status}
    if progress:
        data["progress"] = round(view.progress * 100)
    return data


def _with_error(data: Payload, view: TaskView) -> Payload:
    """The default error placement: ``error.message``, like the provider's error envelope."""
    if view.phase == FAILED:
        data["error"] = {"code": view.fail_code, "message": view.error}
    return data


def _output_image_urls(words: dict[str, str], progress: bool = True) -> Builder:
    def build(view: TaskView) -> Payload:
        data = _status_data(view, words, progress)
        data["output"] = {"image_urls": list(view.urls)}
        return _envelope(_with_error(data, view))

    return build


def _result_json(view: TaskView) -> str:
    return json.dumps({"resultUrls": list(view.urls)}) if view.phase == COMPLETED else ""


def _state_result_json(view: TaskView) -> Payload:
    failed = view.phase == FAILED
    return _envelope(
        {
            "task_id": view.task_id,
            "state": _UPSTREAM_WORDS[view.phase],
            "resultJson": _result_json(view),
            "failCode": view.fail_code if failed else "",
            "failMsg": view.error if failed else "",
        }
    )


def _upstream(view: TaskView) -> Payload:
    failed = view.phase == FAILED
    created_ms = int(view.created_unix * 1000)
    return {
        "code": 200,
        "msg": "success",
        "data": {
            "taskId": view.task_id,
            "model": view.model,
            "state": "queuing" if view.phase == QUEUED else _UPSTREAM_WORDS[view.phase],
            "param": json.dumps({"model": view.model}),
            "resultJson": _result_json(view),
            "failCode": view.fail_code if failed else None,
            "failMsg": view.error if failed else None,
            "createTime": created_ms,
            "completeTime": None,
            "progress": round(view.progress * 100),
        },
    }


def _upstream_code_501(view: TaskView) -> Payload:
    """Upstream answering a failed task with its 501 ("generation failed") in the body."""
    payload = _upstream(view)
    if view.phase == FAILED:
        payload["code"] = 501
        payload["msg"] = view.error
    return payload


def _urls_under_data(place: Callable[[Payload, TaskView], None]) -> Builder:
    """``data.status`` (default words) plus the URLs wherever ``place`` puts them."""

    def build(view: TaskView) -> Payload:
        data = _status_data(view, _DEFAULT_WORDS)
        if view.phase == COMPLETED:
            place(data, view)
        return _envelope(_with_error(data, view))

    return build


def _top_level_images(view: TaskView) -> Payload:
    payload: Payload = {"task_id": view.task_id, "status": _SYNONYM_WORDS[view.phase]}
    if view.phase == COMPLETED:
        payload["images"] = [{"url": url} for url in view.urls]
    if view.phase == FAILED:
        payload["error"] = view.error
    return payload


def _error_text_at(field_name: str) -> Builder:
    """Default shape, but a failure's text sits in ``data.<field_name>`` as a plain string."""

    def build(view: TaskView) -> Payload:
        data = _status_data(view, _DEFAULT_WORDS)
        data["output"] = {"image_urls": list(view.urls)}
        if view.phase == FAILED:
            data[field_name] = view.error
        return _envelope(data)

    return build


def _msg_at_top(view: TaskView) -> Payload:
    """A failure's text in the top-level ``msg`` (the envelope still says code 200)."""
    data = _status_data(view, _DEFAULT_WORDS)
    data["output"] = {"image_urls": list(view.urls)}
    return {"code": 200, "msg": view.error if view.phase == FAILED else "success", "data": data}


def _set(key: str, value: Callable[[TaskView], Any]) -> Callable[[Payload, TaskView], None]:
    def place(data: Payload, view: TaskView) -> None:
        data[key] = value(view)

    return place


BUILDERS: dict[str, Builder] = {
    "default": _output_image_urls(_DEFAULT_WORDS),
    "status_uppercase": _output_image_urls(_UPPER_WORDS),
    "status_lowercase": _output_image_urls(_LOWER_WORDS),
    "status_synonyms": _output_image_urls(_SYNONYM_WORDS),
    "output_image_urls": _output_image_urls(_DEFAULT_WORDS, progress=False),
    "state_result_json": _state_result_json,
    "result_images_url": _urls_under_data(
        _set("result", lambda v: {"images": [{"url": url} for url in v.urls]})
    ),
    "result_images_url_list": _urls_under_data(
        _set("result", lambda v: {"images": [{"url": list(v.urls)}]})
    ),
    "top_level_images": _top_level_images,
    "result_strings": _urls_under_data(_set("result", lambda v: list(v.urls))),
    "result_objects": _urls_under_data(
        _set("result", lambda v: [{"type": "image", "url": url} for url in v.urls])
    ),
    "data_result_urls": _urls_under_data(_set("resultUrls", lambda v: list(v.urls))),
    "output_result_urls": _urls_under_data(_set("output", lambda v: {"resultUrls": list(v.urls)})),
    "data_image_url": _urls_under_data(_set("image_url", lambda v: v.urls[0])),
    "upstream": _upstream,
    "upstream_code_501": _upstream_code_501,
    "error_string": _error_text_at("error"),
    "error_msg": _error_text_at("error_msg"),
    "error_message_camel": _error_text_at("errorMessage"),
    "fail_msg": _error_text_at("failMsg"),
    "msg_at_top": _msg_at_top,
}
SHAPES: tuple[str, ...] = tuple(BUILDERS)

# Shapes that put the URLs somewhere a reader could miss: every one lists all images except
# ``data_image_url``, which (like the gateway it copies) names only the first.
SINGLE_URL_SHAPES = frozenset({"data_image_url"})


ECHO_USERINFO = "cdn-user:cdn-password"


def echo_key(view: TaskView, key: str) -> TaskView:
    """The view a server that echoes the caller's key would answer: the key in every result
    URL's query and after the in-progress status; the first URL also carries userinfo."""
    urls = tuple(
        (url.replace("://", f"://{ECHO_USERINFO}@", 1) if index == 0 else url) + f"?token={key}"
        for index, url in enumerate(view.urls)
    )
    return replace(view, urls=urls, status_echo=f"(key {key})")


def status_payload(shape: str, view: TaskView) -> Payload:
    return BUILDERS[shape](view)


def not_found_payload(shape: str, task_id: str) -> tuple[int, Payload] | None:
    """Upstream answers an unknown id with HTTP 200 and code 422; others use the error envelope."""
    if shape in ("upstream", "upstream_code_501"):
        return 200, {"code": 422, "msg": "recordInfo is null", "data": None}
    return None
