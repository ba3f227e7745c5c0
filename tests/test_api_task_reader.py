"""The tolerant reader: every shape from api-notes.md, and nothing but BadResponseError else."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import submodule

errors = submodule("api.errors")
reader = submodule("api.task_reader")
task_mod = submodule("api.task")
shapes = submodule("sandbox.shapes")

TaskState = task_mod.TaskState
URLS = ("https://cdn.example/a.jpg", "https://cdn.example/b.jpg")


# -- status words ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("IN_PROGRESS", TaskState.RUNNING),
        ("in_progress", TaskState.RUNNING),
        ("in progress", TaskState.RUNNING),
        ("processing", TaskState.RUNNING),
        ("generating", TaskState.RUNNING),
        ("pending", TaskState.QUEUED),
        ("queued", TaskState.QUEUED),
        ("IN_QUEUE", TaskState.QUEUED),
        ("waiting", TaskState.QUEUED),
        ("queuing", TaskState.QUEUED),
        ("completed", TaskState.SUCCEEDED),
        ("COMPLETED", TaskState.SUCCEEDED),
        ("success", TaskState.SUCCEEDED),
        ("succeeded", TaskState.SUCCEEDED),
        ("failed", TaskState.FAILED),
        ("FAILED", TaskState.FAILED),
        ("fail", TaskState.FAILED),
        ("error", TaskState.FAILED),
        ("cancelled", TaskState.FAILED),
        ("timeout", TaskState.FAILED),
        ("brand_new_word", TaskState.UNKNOWN),
    ],
)
def test_every_status_spelling(word, state):
    task = reader.parse_task({"data": {"status": word}}, "t1")
    assert task.state is state
    assert task.raw_status == word


def test_unknown_status_is_kept_and_not_an_error():
    task = reader.parse_task({"status": "warming_up", "error": "not yet"}, "t1")
    assert task.state is TaskState.UNKNOWN and task.raw_status == "warming_up"
    assert not task.done


# -- result locations -----------------------------------------------------------------------------


def _done(extra: dict, *, top: bool = False) -> dict:
    if top:
        return {"task_id": "t1", "status": "completed", **extra}
    return {
        "code": 200,
        "message": "success",
        "data": {"task_id": "t1", "status": "completed", **extra},
    }


@pytest.mark.parametrize(
    "payload",
    [
        _done({"output": {"image_urls": list(URLS)}}),
        _done({"output": {"resultUrls": list(URLS)}}),
        _done({"result": {"images": [{"url": URLS[0]}, {"url": URLS[1]}]}}),
        _done({"result": {"images": [{"url": list(URLS)}]}}),
        _done({"images": [{"url": u} for u in URLS]}, top=True),
        _done({"result": list(URLS)}),
        _done({"result": [{"type": "image", "url": u} for u in URLS]}),
        _done({"resultUrls": list(URLS)}),
        _done({"resultJson": json.dumps({"resultUrls": list(URLS)})}),
        {
            "code": 200,
            "msg": "success",
            "data": {
                "taskId": "t1",
                "state": "success",
                "resultJson": json.dumps({"resultUrls": list(URLS)}),
                "failCode": None,
                "failMsg": None,
            },
        },
        {"data": [{"url": URLS[0]}, {"url": URLS[1]}]},  # xAI-style synchronous answer
    ],
)
def test_every_result_location(payload):
    task = reader.parse_task(payload, "t1")
    assert task.state is TaskState.SUCCEEDED
    assert task.result_urls == URLS
    assert task.progress == 1.0
    assert task.raw is payload


def test_single_image_url_and_duplicates():
    task = reader.parse_task(_done({"image_url": URLS[0], "output": {"image_urls": [URLS[0]]}}))
    assert task.result_urls == (URLS[0],)
    assert task.id == "t1"


def test_non_http_strings_are_not_urls():
    payload = _done(
        {
            "output": {
                "image_urls": [
                    "file:///etc/passwd",
                    "javascript:x",
                    "",
                    7,
                    None,
                    "https://",
                    URLS[0],
                ]
            }
        }
    )
    assert reader.parse_task(payload).result_urls == (URLS[0],)


# -- failures and progress ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"data": {"status": "failed", "error": {"code": "x", "message": "boom"}}}, "boom"),
        ({"data": {"status": "failed", "error": "boom"}}, "boom"),
        ({"data": {"status": "failed", "error_msg": "boom"}}, "boom"),
        ({"data": {"status": "failed", "errorMessage": "boom"}}, "boom"),
        ({"data": {"state": "fail", "failMsg": "boom", "failCode": "501"}}, "boom"),
        ({"code": 200, "msg": "boom", "data": {"status": "failed"}}, "boom"),
        ({"data": {"state": "fail", "failMsg": "", "failCode": "E42"}}, "failure code E42"),
        ({"status": "error", "error": "boom"}, "boom"),
    ],
)
def test_every_error_text_location(payload, reason):
    task = reader.parse_task(payload, "t1")
    assert task.state is TaskState.FAILED
    assert task.error == reason
    assert task.result_urls == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (45, 0.45),
        (0.45, 0.45),
        (1, 0.01),
        (100, 1.0),
        ("45%", 0.45),
        (250, 1.0),
        (-3, 0.0),
        (float("nan"), None),
        (True, None),
        ("soon", None),
    ],
)
def test_progress_normalized_to_a_fraction(value, expected):
    task = reader.parse_task({"data": {"status": "running", "progress": value}}, "t1")
    assert task.progress == expected


def test_task_id_from_payload_or_argument():
    payload = {"data": {"taskId": "from-body", "status": "queued"}}
    assert reader.parse_task(payload).id == "from-body"
    assert reader.parse_task(payload, "asked").id == "asked"
    with pytest.raises(errors.BadResponseError):
        reader.parse_task({"data": {"status": "queued"}})


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "",
        "<html><title>502 Bad Gateway</title></html>",
        '{"data": {"task_id": "',
        [],
        42,
        {"code": 200, "message": "success", "data": None},
        {"data": {"nothing": "here"}},
        b"\xff\xfe",
    ],
)
def test_unreadable_payloads_are_bad_responses(payload):
    with pytest.raises(errors.BadResponseError):
        reader.parse_task(payload, "t1")


def test_json_text_and_bytes_are_read_too():
    text = json.dumps(_done({"resultUrls": list(URLS)}))
    assert reader.parse_task(text).result_urls == URLS
    assert reader.parse_task(text.encode()).result_urls == URLS


def test_body_error_codes():
    assert reader.body_error({"code": 422, "msg": "recordInfo is null", "data": None}) == (
        422,
        "recordInfo is null",
    )
    assert reader.body_error({"code": 401, "message": "nope"}) == (401, "nope")
    assert reader.body_error({"code": "429", "msg": "slow"}) == (429, "slow")
    assert reader.body_error(
        {"error": {"code": 400, "message": "Invalid parameters", "type": "invalid_request"}}
    ) == (400, "Invalid parameters")
    for fine in (
        {"code": 200, "data": {}},
        {"code": 0},
        {"status": "ok"},
        [],
        None,
        {"code": True},
        {"error": "just text"},
    ):
        assert reader.body_error(fine) is None


def test_created_task_id_spellings():
    for payload in (
        {"code": 200, "data": {"task_id": "a1", "status": "IN_PROGRESS"}},
        {"data": {"taskId": "a1"}},
        {"task_id": "a1"},
        {"id": "a1"},
        {"data": {"id": 12345}},
    ):
        assert reader.read_created_task_id(payload) in ("a1", "12345")
    assert reader.read_created_task_id({"data": {}}) is None
    assert reader.read_created_task_id({"data": {"task_id": True}}) is None


# -- every sandbox shape, every phase (pure: the sandbox's payload builders, no HTTP) ------------


@pytest.mark.parametrize("shape", shapes.SHAPES)
@pytest.mark.parametrize("phase", shapes.PHASES)
def test_every_sandbox_shape_in_every_phase(shape, phase):
    urls = URLS if phase == shapes.COMPLETED else ()
    view = shapes.TaskView(
        task_id="sbx1_grok",
        model="grok-imagine/text-to-image",
        phase=phase,
        progress=0.4,
        urls=urls,
        error="Content policy violation" if phase == shapes.FAILED else None,
        fail_code="content_policy_violation" if phase == shapes.FAILED else None,
    )
    payload = shapes.status_payload(shape, view)
    if reader.body_error(payload) is not None:  # upstream_code_501: failed task with code 501
        assert shape == "upstream_code_501" and phase == shapes.FAILED
    task = reader.parse_task(json.loads(json.dumps(payload)), "sbx1_grok")
    expected = {
        shapes.QUEUED: {TaskState.QUEUED},
        shapes.RUNNING: {TaskState.RUNNING},
        shapes.COMPLETED: {TaskState.SUCCEEDED},
        shapes.FAILED: {TaskState.FAILED},
    }[phase]
    assert task.state in expected, (shape, phase, payload)
    if phase == shapes.COMPLETED:
        want = URLS[:1] if shape in shapes.SINGLE_URL_SHAPES else URLS
        assert task.result_urls == want
    if phase == shapes.FAILED:
        assert task.error and "Content policy" in task.error


# -- totality -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "status",
            "completed",
            "failed",
            "https://x.test/a.jpg",
            "IN_PROGRESS",
            '{"resultUrls": ["https://x.test/b.png"]}',
            "[1, 2",
            "{}",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "status",
                    "state",
                    "output",
                    "result",
                    "images",
                    "url",
                    "resultJson",
                    "task_id",
                    "code",
                    "msg",
                    "error",
                    "progress",
                    "image_urls",
                    "failMsg",
                    "resultUrls",
                ]
            )
            | st.text(max_size=8),
            children,
            max_size=6,
        )
    ),
    max_leaves=60,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=json_values, task_id=st.none() | st.just("t1"))
def test_reader_is_total(payload, task_id):
    """Any JSON value: a Task, or BadResponseError, never any other exception."""
    try:
        task = reader.parse_task(payload, task_id)
    except errors.BadResponseError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(task.state, TaskState)
    assert all(u.startswith(("http://", "https://")) for u in task.result_urls)
    assert task.progress is None or 0.0 <= task.progress <= 1.0
    reader.body_error(payload)  # total as well


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_reader_is_total_on_raw_text(text):
    try:
        reader.parse_task(text, "t1")
    except errors.BadResponseError:
        pass


def test_deep_nesting_is_bounded():
    payload: object = {"status": "completed", "output": {}}
    node = payload["output"]  # type: ignore[index]
    for _ in range(5000):
        node["result"] = {}
        node = node["result"]
    node["url"] = URLS[0]
    try:
        task = reader.parse_task(payload, "t1")
    except errors.BadResponseError:
        return
    assert task.result_urls in ((), (URLS[0],))
