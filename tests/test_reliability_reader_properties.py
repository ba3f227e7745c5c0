"""Property tests of the tolerant reader (``api.task_reader.parse_task``), the matrix's last rows.

1. Totality: whatever a gateway sends as a task status (any JSON value, a known shape with any
   part replaced, deleted, wrapped or stringified, its JSON text cut anywhere), the reader gives a
   well-formed ``Task`` or raises the pack's ``BadResponseError`` (one line, nothing chained), and
   nothing else.
2. Round trip: every shape the sandbox knows (built by its own payload builders, no HTTP), for
   any task it could describe, reads back as the same normalized task: state, result URLs and
   error text, whatever the shape.

The api engineer's ``test_api_task_reader.py`` checks one fixed task per shape and arbitrary
JSON; these draw the tasks themselves, and mutate real shapes, so the reader's deep paths
(``resultJson`` strings, URL lists in ``images[].url``, error envelopes) meet damaged input.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from support import submodule
from support.api_names import public_api
from support.reliability import matrix_row

reader = submodule("api.task_reader")
errors = submodule("api.errors")
api = public_api()
shapes = submodule("sandbox.shapes")

AREA = "Tolerant reader (property tests)"
TaskState = api.TaskState
PHASE_STATES = {
    shapes.QUEUED: TaskState.QUEUED,
    shapes.RUNNING: TaskState.RUNNING,
    shapes.COMPLETED: TaskState.SUCCEEDED,
    shapes.FAILED: TaskState.FAILED,
}

# -- what a sandbox task can look like -------------------------------------------------------------

task_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}", fullmatch=True)
hosts = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,2}(:[0-9]{2,5})?", fullmatch=True)
paths = st.from_regex(r"(/[A-Za-z0-9_.~-]{1,16}){1,4}", fullmatch=True)
queries = st.none() | st.from_regex(r"\?[A-Za-z0-9_=&%.-]{1,40}", fullmatch=True)
urls = st.builds(
    lambda scheme, host, path, query: f"{scheme}://{host}{path}{query or ''}",
    st.sampled_from(["https", "http"]),
    hosts,
    paths,
    queries,
)
url_lists = st.lists(urls, min_size=1, max_size=8, unique=True)
reasons = st.builds(
    lambda head, tail: f"{head}: {tail}",
    st.sampled_from(["Generation failed", "Content policy violation", "Upstream error"]),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
)
fail_codes = st.none() | st.sampled_from(["generation_failed", "content_policy_violation", "500"])


@st.composite
def views(draw: Any, phase: str | None = None) -> Any:
    phase = phase or draw(st.sampled_from(shapes.PHASES))
    return shapes.TaskView(
        task_id=draw(task_ids),
        model=draw(st.sampled_from(["grok-imagine/text-to-image", "grok-imagine/upscale"])),
        phase=phase,
        progress=draw(st.floats(0.0, 0.95)),
        urls=tuple(draw(url_lists)) if phase == shapes.COMPLETED else (),
        error=draw(reasons) if phase == shapes.FAILED else None,
        fail_code=draw(fail_codes) if phase == shapes.FAILED else None,
        created_unix=draw(st.floats(0, 2e9)),
    )


def normalized(task: Any) -> tuple[Any, tuple[str, ...], str | None]:
    return task.state, task.result_urls, task.error


def expected(view: Any, shape: str) -> tuple[Any, tuple[str, ...], str | None]:
    urls = view.urls[:1] if shape in shapes.SINGLE_URL_SHAPES else view.urls
    error = errors.one_line(view.error, 500) if view.phase == shapes.FAILED else None
    return PHASE_STATES[view.phase], urls, error


@matrix_row(
    AREA, "every known response shape (21 shapes x 4 phases), for any task the sandbox could "
    "describe (ids, 1-8 URLs with queries, failure texts, progress)",
    "the same normalized task (state, result URLs in order, error text) from every shape, read "
    "from the decoded JSON, the JSON text or its bytes; the id read from the payload when none "
    "is given",
    "n/a (pure function)",
)  # fmt: skip
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.sampled_from(shapes.SHAPES), view=views(), given_id=st.booleans())
def test_every_known_shape_round_trips_to_the_same_task(shape, view, given_id):
    payload = shapes.status_payload(shape, view)
    text = json.dumps(payload)
    asked = view.task_id if given_id else None
    readings = [reader.parse_task(json.loads(text), asked), reader.parse_task(text, asked),
                reader.parse_task(text.encode(), asked)]  # fmt: skip
    for task in readings:
        assert normalized(task) == expected(view, shape), (shape, payload)
        assert task.id == view.task_id


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(view=views())
def test_all_shapes_agree_on_one_task(view):
    """The same task in every shape is one normalized task (single-URL shapes: the first URL)."""
    seen = {
        shape: normalized(reader.parse_task(shapes.status_payload(shape, view), view.task_id))
        for shape in shapes.SHAPES
    }
    full = {v for s, v in seen.items() if s not in shapes.SINGLE_URL_SHAPES}
    assert len(full) == 1, seen
    ((state, urls, error),) = full
    for shape in shapes.SINGLE_URL_SHAPES:
        assert seen[shape] == (state, urls[:1], error)


# -- totality --------------------------------------------------------------------------------------

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["completed", "FAILED", "IN_PROGRESS", "TELEPORTING", "", "null",
                       "https://cdn.test/a.jpg", "http://", "https:///x", "{", "[]", "{}",
                       '{"resultUrls": ["https://cdn.test/b.png"]}', '{"resultUrls": 7}',
                       "9" * 400, "1e999", "-0"])
)  # fmt: skip
known_keys = st.sampled_from([
    "data", "task", "status", "state", "output", "result", "results", "images", "url", "urls",
    "image_url", "resultJson", "resultUrls", "image_urls", "task_id", "taskId", "id", "code",
    "msg", "message", "error", "failMsg", "failCode", "progress", "percent", "files", "media",
])  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(known_keys | st.text(max_size=10), inner, max_size=7)
    ),
    max_leaves=80,
)


@st.composite
def mutated_shapes(draw: Any) -> Any:
    """A real status payload with a few of its parts replaced, removed, wrapped or stringified."""
    payload = shapes.status_payload(draw(st.sampled_from(shapes.SHAPES)), draw(views()))
    for _ in range(draw(st.integers(1, 4))):
        containers = list(_containers(payload))
        parent = draw(st.sampled_from(containers))
        if isinstance(parent, dict) and parent:
            key = draw(st.sampled_from(sorted(parent, key=str)))
        elif isinstance(parent, list) and parent:
            key = draw(st.integers(0, len(parent) - 1))
        else:
            continue
        how = draw(st.sampled_from(["replace", "delete", "wrap", "stringify", "null"]))
        if how == "replace":
            parent[key] = draw(json_values)
        elif how == "delete":
            del parent[key]
        elif how == "wrap":
            parent[key] = [parent[key]]
        elif how == "stringify":
            parent[key] = json.dumps(parent[key])
        else:
            parent[key] = None
    return payload


def _containers(node: Any) -> Any:
    if isinstance(node, (dict, list)):
        yield node
        for child in node.values() if isinstance(node, dict) else node:
            yield from _containers(child)


def assert_well_formed(task: Any) -> None:
    assert isinstance(task, api.Task)
    assert isinstance(task.id, str) and task.id
    assert isinstance(task.state, TaskState)
    assert isinstance(task.result_urls, tuple) and len(task.result_urls) <= 64
    assert len(set(task.result_urls)) == len(task.result_urls)
    for url in task.result_urls:
        assert url.lower().startswith(("http://", "https://"))
        assert not any(c.isspace() or ord(c) < 32 for c in url)
    if task.state is TaskState.FAILED:
        assert task.result_urls == ()
    assert task.error is None or (isinstance(task.error, str) and "\n" not in task.error)
    assert task.progress is None or 0.0 <= task.progress <= 1.0
    assert task.raw_status is None or isinstance(task.raw_status, str)


def read_or_refuse(payload: Any, task_id: str | None) -> None:
    try:
        task = reader.parse_task(payload, task_id)
    except errors.BadResponseError as exc:
        assert str(exc) and "\n" not in str(exc)
        assert exc.__cause__ is None  # no traceback of the reader's insides reaches the user
        return
    assert_well_formed(task)
    if task_id is not None:
        assert task.id == task_id


@matrix_row(
    AREA, "any JSON value, or a known shape with parts replaced / removed / wrapped / "
    "stringified / nulled, as decoded JSON, JSON text, bytes, or text cut anywhere",
    "a well-formed task (polling goes on), or the pack's own `BadResponseError` (one line, "
    "nothing chained), never any other exception",
    "n/a (pure function)",
)  # fmt: skip
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
@given(
    payload=json_values | mutated_shapes(),
    form=st.sampled_from(["value", "text", "bytes", "cut"]),
    cut=st.floats(0.0, 1.0),
    task_id=st.none() | task_ids,
)
def test_any_payload_is_a_task_or_a_bad_response_error(payload, form, cut, task_id):
    text = json.dumps(payload)
    sent: Any = {
        "value": payload,
        "text": text,
        "bytes": text.encode(),
        "cut": text[: int(len(text) * cut)],
    }[form]
    read_or_refuse(sent, task_id)
    found = reader.body_error(payload)  # the client's other look at every status body
    assert found is None or (isinstance(found[0], int) and isinstance(found[1], str))
    created = reader.read_created_task_id(payload)
    assert created is None or (isinstance(created, str) and created.strip() == created)


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=300), task_id=st.none() | task_ids)
def test_any_bytes_are_a_task_or_a_bad_response_error(raw, task_id):
    assume(raw.strip())
    read_or_refuse(raw, task_id)
