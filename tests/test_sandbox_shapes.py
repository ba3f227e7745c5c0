"""Each response shape of api-notes.md puts status, URLs and error text where that note says."""

from __future__ import annotations

import json

import pytest
from support import submodule
from support.keys import TEST_KEY
from support.sandbox_http import create, status, wait_done, wait_until

sandbox_module = submodule("sandbox")


def _json_urls(text: str) -> list[str]:
    return json.loads(text)["resultUrls"] if text else []


# shape -> how a reader written from api-notes.md finds (status, urls, error text)
READERS = {
    "default": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        (p["data"].get("error") or {}).get("message"),
    ),
    "status_uppercase": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        (p["data"].get("error") or {}).get("message"),
    ),
    "status_lowercase": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        (p["data"].get("error") or {}).get("message"),
    ),
    "status_synonyms": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        (p["data"].get("error") or {}).get("message"),
    ),
    "output_image_urls": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        (p["data"].get("error") or {}).get("message"),
    ),
    "state_result_json": lambda p: (
        p["data"]["state"],
        _json_urls(p["data"]["resultJson"]),
        p["data"]["failMsg"] or None,
    ),
    "result_images_url": lambda p: (
        p["data"]["status"],
        [i["url"] for i in p["data"].get("result", {}).get("images", [])],
        (p["data"].get("error") or {}).get("message"),
    ),
    "result_images_url_list": lambda p: (
        p["data"]["status"],
        [u for i in p["data"].get("result", {}).get("images", []) for u in i["url"]],
        (p["data"].get("error") or {}).get("message"),
    ),
    "top_level_images": lambda p: (
        p["status"],
        [i["url"] for i in p.get("images", [])],
        p.get("error"),
    ),
    "result_strings": lambda p: (
        p["data"]["status"],
        p["data"].get("result", []),
        (p["data"].get("error") or {}).get("message"),
    ),
    "result_objects": lambda p: (
        p["data"]["status"],
        [r["url"] for r in p["data"].get("result", [])],
        (p["data"].get("error") or {}).get("message"),
    ),
    "data_result_urls": lambda p: (
        p["data"]["status"],
        p["data"].get("resultUrls", []),
        (p["data"].get("error") or {}).get("message"),
    ),
    "output_result_urls": lambda p: (
        p["data"]["status"],
        p["data"].get("output", {}).get("resultUrls", []),
        (p["data"].get("error") or {}).get("message"),
    ),
    "data_image_url": lambda p: (
        p["data"]["status"],
        [p["data"]["image_url"]] if "image_url" in p["data"] else [],
        (p["data"].get("error") or {}).get("message"),
    ),
    "upstream": lambda p: (
        p["data"]["state"],
        _json_urls(p["data"]["resultJson"]),
        p["data"]["failMsg"],
    ),
    "upstream_code_501": lambda p: (
        p["data"]["state"],
        _json_urls(p["data"]["resultJson"]),
        p["msg"] if p["code"] == 501 else None,
    ),
    "error_string": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        p["data"].get("error"),
    ),
    "error_msg": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        p["data"].get("error_msg"),
    ),
    "error_message_camel": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        p["data"].get("errorMessage"),
    ),
    "fail_msg": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        p["data"].get("failMsg"),
    ),
    "msg_at_top": lambda p: (
        p["data"]["status"],
        p["data"]["output"]["image_urls"],
        p["msg"] if p["data"]["status"] == "failed" else None,
    ),
}

# (running, completed, failed) spellings per shape
WORDS = {
    "status_uppercase": ("IN_PROGRESS", "COMPLETED", "FAILED"),
    "status_lowercase": ("in_progress", "completed", "failed"),
    "status_synonyms": ("processing", "succeeded", "error"),
    "state_result_json": ("generating", "success", "fail"),
    "upstream": ("generating", "success", "fail"),
    "upstream_code_501": ("generating", "success", "fail"),
    "top_level_images": ("processing", "succeeded", "error"),
}
DEFAULT_WORDS = ("IN_PROGRESS", "completed", "failed")


def test_every_shape_is_covered_here():
    assert set(READERS) == set(sandbox_module.SHAPES)
    assert sandbox_module.SHAPES[0] == "default"


def _read(sb, task_id: str, shape: str):
    sb.faults.response_shape = shape
    response = status(sb, task_id)
    assert response.status_code == 200
    return READERS[shape](response.json())


@pytest.fixture(scope="module")
def tasks():
    """One sandbox with a completed, a failed and a running task, shared by the shape tests."""
    sb = sandbox_module.Sandbox(
        sandbox_module.SandboxConfig(keys={TEST_KEY: 1000}, generation_time=0.05)
    )
    sb.start()
    try:
        done = create(sb, {"prompt": "a calm sea"}).json()["data"]["task_id"]
        failed = create(sb, {"prompt": "something forbidden"}).json()["data"]["task_id"]
        sb.faults.stuck = True
        running = create(sb, {"prompt": "an endless road"}).json()["data"]["task_id"]
        sb.faults.stuck = False
        urls = wait_done(sb, done)["output"]["image_urls"]
        reason = wait_done(sb, failed)["error"]["message"]
        wait_until(lambda: status(sb, running).json()["data"]["status"] == "IN_PROGRESS", "run")
        yield (
            sb,
            {"done": done, "failed": failed, "running": running, "urls": urls, "reason": reason},
        )
    finally:
        sb.stop()


@pytest.mark.parametrize("shape", sandbox_module.SHAPES)
def test_shape(tasks, shape):
    sb, t = tasks
    running_word, done_word, failed_word = WORDS.get(shape, DEFAULT_WORDS)

    state, urls, error = _read(sb, t["done"], shape)
    assert state == done_word and error is None
    expected = t["urls"][:1] if shape == "data_image_url" else t["urls"]
    assert urls == expected

    state, urls, error = _read(sb, t["failed"], shape)
    assert state == failed_word and urls == [] and error == t["reason"]

    state, urls, error = _read(sb, t["running"], shape)
    assert state == running_word and urls == [] and error is None


def test_upstream_shapes_answer_unknown_ids_in_the_body(tasks):
    sb, _ = tasks
    for shape in ("upstream", "upstream_code_501"):
        sb.faults.response_shape = shape
        response = status(sb, "nosuch_grok")
        assert response.status_code == 200
        assert response.json() == {"code": 422, "msg": "recordInfo is null", "data": None}
    sb.faults.response_shape = "default"
    assert status(sb, "nosuch_grok").status_code == 404


def test_upstream_shape_carries_upstream_fields(tasks):
    sb, t = tasks
    sb.faults.response_shape = "upstream"
    payload = status(sb, t["done"]).json()
    assert payload["code"] == 200 and payload["msg"] == "success"
    assert payload["data"]["taskId"] == t["done"]
    assert isinstance(payload["data"]["resultJson"], str)
    sb.faults.response_shape = "default"


def test_a_queued_task_in_the_upstream_shape_is_queuing(sandbox_factory):
    sb = sandbox_factory(generation_time=30.0)
    task_id = create(sb).json()["data"]["task_id"]
    sb.faults.response_shape = "upstream"
    data = status(sb, task_id).json()["data"]
    assert data["state"] == "queuing" and data["resultJson"] == "" and data["failMsg"] is None
