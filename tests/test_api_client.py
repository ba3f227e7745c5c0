"""GrokClient against the sandbox (a real HTTP server on 127.0.0.1): shapes, errors, retries, money.

Every test that could cost credits checks the sandbox's ledger, because that is the promise: a
create is sent once per deliberate request and never again behind the user's back.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
transport_mod = submodule("api.transport")
client_mod = submodule("api.client")
sandbox_mod = submodule("sandbox")

FAST_POLL = api.PollSchedule().scaled(0.05)  # first read after 75 ms, then every ~22 ms
PROMPT = "a lighthouse at dusk, oil painting"
WAIT_S = 30.0  # generous bound for waits on the sandbox's clock (never asserted as a duration)


def make_client(sb, key: str = TEST_KEY, poll=FAST_POLL, **settings):
    return api.GrokClient(api.Settings(api_key=key, base_url=sb.base_url, **settings), poll=poll)


@pytest.fixture
def client(sandbox):
    with make_client(sandbox) as c:
        yield c


def run_task(client, prompt: str = PROMPT, **kwargs):
    task_id = client.create_text_to_image(prompt, **kwargs)
    return task_id, client.wait(task_id, timeout=WAIT_S)


# -- the happy paths, in every shape ---------------------------------------------------------------


@pytest.mark.parametrize("shape", sandbox_mod.SHAPES)
def test_every_response_shape_end_to_end(sandbox, client, shape):
    sandbox.faults.response_shape = shape
    task_id, task = run_task(client)
    assert task.id == task_id and task.state is api.TaskState.SUCCEEDED
    expected = 1 if shape in submodule("sandbox.shapes").SINGLE_URL_SHAPES else 6
    assert len(task.result_urls) == expected
    blob = client.download(task.result_urls[-1])
    assert blob.image_format == "JPEG" and blob.data[:3] == b"\xff\xd8\xff"
    assert sandbox.ledger(TEST_KEY).creates == 1


def test_aspect_ratio_is_sent_only_when_chosen(sandbox, client):
    plain = client.create_text_to_image(PROMPT)
    wide = client.create_text_to_image(PROMPT, aspect_ratio="16:9")
    assert sandbox.task_info(plain).aspect_ratio is None
    assert sandbox.task_info(wide).aspect_ratio == "16:9"


def test_upscale_of_a_finished_task(sandbox_factory):
    sb = sandbox_factory(image_format="PNG")
    with make_client(sb) as client:
        source, _ = run_task(client)
        upscale_id = client.create_upscale(source)
        task = client.wait(upscale_id, timeout=WAIT_S)
        assert len(task.result_urls) == 1
        assert client.download(task.result_urls[0]).image_format == "PNG"
    ledger = sb.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (2, 17)


def test_progress_and_state_changes_reach_on_update(sandbox_factory):
    sb = sandbox_factory(generation_time=0.4)
    updates = []
    with make_client(sb) as client:
        task_id = client.create_text_to_image(PROMPT)
        client.wait(task_id, timeout=WAIT_S, on_update=lambda t, s: updates.append((t, s)))
    states = [t.state for t, _ in updates]
    assert states[-1] is api.TaskState.SUCCEEDED
    assert api.TaskState.RUNNING in states or api.TaskState.QUEUED in states
    assert len(updates) == len({(t.state, t.raw_status, t.progress) for t, _ in updates})
    assert all(s >= 0 for _, s in updates)


def test_settings_from_the_environment(sandbox_env):
    with api.GrokClient(poll=FAST_POLL) as client:
        assert client.settings.base_url == sandbox_env.base_url
        _, task = run_task(client)
    assert task.result_urls


def test_one_client_serves_several_threads(sandbox, client):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: run_task(client, f"{PROMPT} #{i}")[1], range(4)))
    assert all(r.state is api.TaskState.SUCCEEDED for r in results)
    assert sandbox.ledger(TEST_KEY).creates == 4


def test_client_repr_and_settings_repr_mask_the_key(sandbox, client):
    assert TEST_KEY not in repr(client) and TEST_KEY not in repr(client.settings)
    assert TEST_KEY[-4:] in repr(client)


# -- local input errors cost nothing ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.create_text_to_image("   "), "prompt"),
        (lambda c: c.create_text_to_image("x" * 5001), "prompt"),
        (lambda c: c.create_text_to_image("nul\x00byte"), "prompt"),
        (lambda c: c.create_text_to_image(PROMPT, aspect_ratio="4:3"), "aspect_ratio"),
        (lambda c: c.create_upscale("../../etc/passwd"), "task_id"),
        (lambda c: c.get_task("abc?x=1"), "task_id"),
        (lambda c: c.wait("a b"), "task_id"),
    ],
)
def test_bad_local_input_is_refused_before_any_request(sandbox, client, call, field):
    with pytest.raises(errors.InvalidRequestError) as caught:
        call(client)
    assert caught.value.field == field and not caught.value.from_server
    assert sandbox.create_requests == 0


# -- API refusals ----------------------------------------------------------------------------------


def test_wrong_key_is_an_auth_error_without_the_key_or_the_comfy_sign_in_text(sandbox):
    wrong = "sk-wrong-key-for-this-test-99"
    with make_client(sandbox, key=wrong) as client:
        with pytest.raises(errors.AuthError) as on_create:
            client.create_text_to_image(PROMPT)
        with pytest.raises(errors.AuthError) as on_read:
            client.get_task("sbx0000000000000000_grok")
    for caught in (on_create, on_read):
        message = str(caught.value)
        assert "401" in message and "APIINONE_API_KEY" in message
        assert wrong not in message and wrong not in repr(caught.value)
        assert "Please login first" not in message


def test_insufficient_credits(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 3})
    with make_client(sb) as client, pytest.raises(errors.InsufficientCreditsError) as caught:
        client.create_text_to_image(PROMPT)
    assert "402" in str(caught.value) and "top up" in str(caught.value).lower()
    assert sb.ledger(TEST_KEY).creates == 0


def test_rate_limited_create_is_retried_after_retry_after(sandbox, client):
    sandbox.faults.retry_after = 1
    sandbox.faults.create_errors = [429]
    task_id = client.create_text_to_image(PROMPT)
    assert task_id
    assert sandbox.create_requests == 2
    assert sandbox.ledger(TEST_KEY).creates == 1


def test_rate_limit_beyond_the_wait_budget_says_when_to_retry(sandbox_factory):
    sb = sandbox_factory(rate_limit=(1, 60.0))
    with make_client(sb) as client:
        client.create_text_to_image(PROMPT)
        with pytest.raises(errors.RateLimitedError) as caught:
            client.create_text_to_image(PROMPT + " again", rate_limit_wait=0.5)
    assert caught.value.retry_after is not None and caught.value.retry_after > 1
    assert "retry in" in str(caught.value)
    assert sb.create_requests == 2 and sb.ledger(TEST_KEY).creates == 1


@pytest.mark.parametrize("status", [500, 503, 455])
def test_server_error_on_create_is_not_resent(sandbox, client, status):
    sandbox.faults.create_errors = [status]
    with pytest.raises(errors.ServerError) as caught:
        client.create_text_to_image(PROMPT)
    assert caught.value.status == status
    assert sandbox.create_requests == 1
    assert sandbox.ledger(TEST_KEY).creates == 0


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_error_on_create_is_uncertain_not_resent(sandbox, client, status):
    """A gateway's 502/504 may hide a create the API took: never claim nothing was charged."""
    sandbox.faults.create_errors = [status]
    with pytest.raises(errors.UncertainCreateError) as caught:
        client.create_text_to_image(PROMPT)
    assert "may have been charged" in str(caught.value)
    assert sandbox.create_requests == 1


REFUSALS = [
    (400, errors.InvalidRequestError),
    (401, errors.AuthError),
    (402, errors.InsufficientCreditsError),
    (403, errors.AuthError),
    (433, errors.InsufficientCreditsError),
    (501, errors.TaskFailedError),
    (505, errors.ServerError),
]


@pytest.mark.parametrize(("status", "expected"), REFUSALS)
def test_every_refusal_of_a_create(sandbox, client, status, expected):
    sandbox.faults.create_errors = [status]
    with pytest.raises(expected) as caught:
        client.create_text_to_image(PROMPT)
    assert "\n" not in str(caught.value) and TEST_KEY not in str(caught.value)
    assert sandbox.create_requests == 1 and sandbox.ledger(TEST_KEY).creates == 0


@pytest.mark.parametrize(("status", "expected"), REFUSALS)
def test_every_refusal_of_a_status_read_ends_the_wait(sandbox, client, status, expected):
    task_id = client.create_text_to_image(PROMPT)
    sandbox.faults.status_errors = [status]
    with pytest.raises(expected):
        client.wait(task_id, timeout=WAIT_S)


def test_not_found_right_after_our_own_create_is_waited_out(sandbox, client):
    task_id = client.create_text_to_image(PROMPT)
    sandbox.faults.status_errors = [404, 404]  # a gateway that lists new tasks a moment late
    assert client.wait(task_id, timeout=WAIT_S).result_urls


def test_server_side_validation_names_the_field(sandbox, client):
    transport = client._transport
    with pytest.raises(errors.InvalidRequestError) as caught:
        transport.post_json(
            client_mod.CREATE_PATH,
            {"model": "grok-imagine/nope", "prompt": "x"},
            transport_mod.Call("create"),
        )
    assert caught.value.from_server and caught.value.field == "model"
    assert "400" in str(caught.value)


def test_upscale_of_an_unfinished_or_unknown_task(sandbox_factory):
    sb = sandbox_factory(generation_time=5.0)
    with make_client(sb) as client:
        running = client.create_text_to_image(PROMPT)
        with pytest.raises(errors.InvalidRequestError) as caught:
            client.create_upscale(running)
        assert caught.value.field == "task_id" and caught.value.from_server
        with pytest.raises(errors.TaskNotFoundError) as caught:
            client.create_upscale("sbx0000000000000000_grok")
        assert caught.value.task_id == "sbx0000000000000000_grok"
    assert sb.ledger(TEST_KEY).creates == 1


@pytest.mark.parametrize("shape", ["default", "upstream"])
def test_unknown_task_is_not_found_in_both_error_styles(sandbox, client, shape):
    sandbox.faults.response_shape = shape  # upstream: HTTP 200 {"code": 422, "recordInfo is null"}
    with pytest.raises(errors.TaskNotFoundError) as caught:
        client.get_task("sbx0000000000000000_grok")
    assert caught.value.task_id == "sbx0000000000000000_grok"
    with pytest.raises(errors.TaskNotFoundError):
        client.wait("sbx0000000000000000_grok", timeout=WAIT_S)  # not ours: no grace period


def test_another_keys_task_is_not_found(sandbox_factory):
    other = "sk-another-account-key-42"
    sb = sandbox_factory(keys={TEST_KEY: 100, other: 100})
    with make_client(sb) as mine, make_client(sb, key=other) as theirs:
        task_id = mine.create_text_to_image(PROMPT)
        with pytest.raises(errors.TaskNotFoundError) as caught:
            theirs.get_task(task_id)
    assert "key" in str(caught.value)


# -- failed tasks ----------------------------------------------------------------------------------


def test_moderation_failure_is_its_own_kind_and_refunded(sandbox, client):
    task_id = client.create_text_to_image("something forbidden")
    with pytest.raises(errors.ModerationError) as caught:
        client.wait(task_id, timeout=WAIT_S)
    assert caught.value.task_id == task_id
    assert "Content policy" in str(caught.value) and "not charged" in str(caught.value)
    assert sandbox.ledger(TEST_KEY).credits_charged == 0


@pytest.mark.parametrize(
    "shape",
    [
        "default",
        "upstream",
        "upstream_code_501",
        "fail_msg",
        "error_string",
        "msg_at_top",
        "status_synonyms",
    ],
)
def test_generation_failure_carries_the_providers_reason(sandbox, client, shape):
    sandbox.faults.failure_rate = 1.0
    sandbox.faults.response_shape = shape
    task_id = client.create_text_to_image(PROMPT)
    with pytest.raises(errors.TaskFailedError) as caught:
        client.wait(task_id, timeout=WAIT_S)
    assert not isinstance(caught.value, errors.ModerationError)
    assert caught.value.task_id == task_id
    assert "Generation failed" in (caught.value.reason or "")


# -- waiting: faults, timeout, cancel --------------------------------------------------------------


def test_status_read_faults_never_end_the_wait(sandbox):
    poll = dataclasses.replace(FAST_POLL, max_error_backoff=0.05)  # keep the test quick
    client = make_client(sandbox, poll=poll)
    sandbox.faults.status_errors = [503, 502, 500, 504, 429, 455, 408, 503, 503, 503]
    sandbox.faults.retry_after = 0
    sandbox.faults.malformed_json = 3
    sandbox.faults.html_error = 3
    sandbox.faults.error_in_body = 3
    with client:
        _, task = run_task(client)
    assert task.state is api.TaskState.SUCCEEDED
    assert sandbox.faults.status_errors == [] and sandbox.faults.html_error == 0
    assert sandbox.ledger(TEST_KEY).creates == 1


def test_single_status_reads_map_each_fault(sandbox, client):
    task_id = client.create_text_to_image(PROMPT)
    sandbox.faults.malformed_json = 1
    with pytest.raises(errors.BadResponseError):
        client.get_task(task_id)
    sandbox.faults.error_in_body = 1
    with pytest.raises(errors.ServerError) as caught:
        client.get_task(task_id)
    assert caught.value.retryable
    sandbox.faults.html_error = 5  # more than a lone read's 3 tries absorb
    with pytest.raises(errors.ServerError) as caught:
        client.get_task(task_id)
    assert caught.value.status == 502 and "HTML" in str(caught.value)
    sandbox.faults.html_error = 0
    sandbox.faults.status_errors = [503]  # absorbed by the lone read's retry (STATUS_READ)
    assert client.get_task(task_id).id == task_id


def test_timeout_names_the_task_and_the_task_can_be_resumed(sandbox, client):
    sandbox.faults.stuck = True
    task_id = client.create_text_to_image(PROMPT)
    with pytest.raises(errors.TaskTimeoutError) as caught:
        client.wait(task_id, timeout=0.3)
    assert caught.value.task_id == task_id and task_id in str(caught.value)
    assert "Load Task" in str(caught.value)


def test_cancel_stops_the_wait_and_carries_the_task_id(sandbox, client):
    sandbox.faults.stuck = True
    task_id = client.create_text_to_image(PROMPT)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(errors.CancelledError) as caught:
        client.wait(task_id, timeout=WAIT_S, should_cancel=cancel.is_set)
    assert caught.value.task_id == task_id


# -- never pay twice -------------------------------------------------------------------------------


def test_create_is_not_resent_after_a_read_timeout(sandbox):
    sandbox.faults.create_response_delay = 1.5
    with (
        make_client(sandbox, read_timeout=0.3) as client,
        pytest.raises(errors.UncertainCreateError) as caught,
    ):
        client.create_text_to_image(PROMPT)
    message = str(caught.value)
    assert "may have been charged" in message and "not sent again" in message
    assert TEST_KEY not in message
    deadline = time.monotonic() + WAIT_S
    while sandbox.ledger(TEST_KEY).creates < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.2)  # a re-send, if there were one, would have arrived by now
    assert sandbox.create_requests == 1
    assert sandbox.ledger(TEST_KEY).creates == 1


def test_refused_connection_on_create_is_a_network_error_and_nothing_was_sent():
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = api.Settings(api_key=TEST_KEY, base_url=f"http://127.0.0.1:{port}")
    with api.GrokClient(settings, poll=FAST_POLL) as client:
        with pytest.raises(errors.NetworkError) as on_create:
            client.create_text_to_image(PROMPT)
        with pytest.raises(errors.NetworkError) as on_read:
            client.get_task("sbx0000000000000000_grok")
    assert not isinstance(on_create.value, errors.UncertainCreateError)
    assert "refused" in str(on_create.value) and "nothing was charged" in str(on_create.value)
    assert "local" in str(on_read.value)
    assert on_create.value.__cause__ is None and on_create.value.__suppress_context__


# -- the key stays secret --------------------------------------------------------------------------


def test_the_key_never_appears_in_logs_or_errors(sandbox, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    seen: list[BaseException] = []

    def expect(exc_type, call):
        with pytest.raises(exc_type) as caught:
            call()
        seen.append(caught.value)

    with make_client(sandbox, read_timeout=0.3) as client:
        _, task = run_task(client)
        client.download(task.result_urls[0])
        sandbox.faults.status_errors = [503, 503, 503, 503]
        sandbox.faults.html_error = 1
        sandbox.faults.malformed_json = 1
        run_task(client)
        expect(errors.TaskNotFoundError, lambda: client.get_task("sbx0000000000000000_grok"))
        expect(errors.ModerationError, lambda: run_task(client, "forbidden fruit"))
        sandbox.faults.create_errors = [500]
        expect(errors.ServerError, lambda: client.create_text_to_image(PROMPT))
        sandbox.faults.create_response_delay = 1.0
        expect(errors.UncertainCreateError, lambda: client.create_text_to_image(PROMPT))
        sandbox.faults.create_response_delay = 0
        sandbox.faults.download = "not_image"
        expect(errors.NotAnImageError, lambda: client.download(task.result_urls[0]))
    assert caplog.records, "DEBUG logging produced nothing: the check would be vacuous"
    assert TEST_KEY not in caplog.text
    for exc in seen:
        assert TEST_KEY not in str(exc) and TEST_KEY not in repr(exc)


def test_authorization_is_never_sent_to_the_file_host(sandbox, client):
    _, task = run_task(client)
    for url in task.result_urls:
        client.download(url)
    assert len(sandbox.file_requests) == 6
    assert not any(r.had_authorization for r in sandbox.file_requests)
