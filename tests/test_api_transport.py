"""Error mapping (api/http_errors.py): every API status / body code and every network failure kind,
by its class; Retry-After and origins (api/transport.py)."""

from __future__ import annotations

import socket
import ssl
import time
from email.utils import formatdate

import pytest
import requests
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY
from urllib3 import exceptions as u3

api = public_api()
errors = submodule("api.errors")
transport = submodule("api.transport")
http_errors = submodule("api.http_errors")

SETTINGS = api.Settings(api_key=TEST_KEY, base_url="http://127.0.0.1:9")
CREATE = http_errors.Call("create", model="grok-imagine/text-to-image")
UPSCALE = http_errors.Call("create", task_id="src1", model="grok-imagine/upscale")
STATUS = http_errors.Call("status", task_id="t1")
TIMEOUTS = (10.0, 30.0)


@pytest.mark.parametrize(
    ("status", "message", "call", "expected"),
    [
        (401, "Invalid API key", CREATE, errors.AuthError),
        (403, "Forbidden", STATUS, errors.AuthError),
        (402, "Insufficient credits", CREATE, errors.InsufficientCreditsError),
        (433, "sub-key limit exceeded", CREATE, errors.InsufficientCreditsError),
        (429, "slow down", STATUS, errors.RateLimitedError),
        (404, "Task not found: t1", STATUS, errors.TaskNotFoundError),
        (422, "recordInfo is null", STATUS, errors.TaskNotFoundError),
        (404, "Task not found: src1", UPSCALE, errors.TaskNotFoundError),
        (404, "No such endpoint: /x", CREATE, errors.ServerError),
        (400, "Invalid parameters: prompt is required", CREATE, errors.InvalidRequestError),
        (422, "aspect_ratio must be one of ...", CREATE, errors.InvalidRequestError),
        (413, "Request body too large", CREATE, errors.InvalidRequestError),
        (455, "Service unavailable: maintenance", STATUS, errors.ServerError),
        (500, "Internal error", STATUS, errors.ServerError),
        (502, "Bad gateway", CREATE, errors.UncertainCreateError),
        (504, "Gateway timeout", CREATE, errors.UncertainCreateError),
        (502, "Bad gateway", STATUS, errors.ServerError),
        (501, "Generation failed", STATUS, errors.TaskFailedError),
        (505, "Feature disabled", CREATE, errors.ServerError),
        (408, "Request timeout", STATUS, errors.ServerError),
        (418, "teapot", CREATE, errors.InvalidRequestError),
        (405, "Method not allowed", CREATE, errors.ServerError),
    ],
)
def test_every_status_maps_to_its_kind(status, message, call, expected):
    error = http_errors.map_api_error(status, message, call, SETTINGS, retry_after=3.0)
    assert type(error) is expected
    text = str(error)
    assert "\n" not in text and len(text) < 700
    assert "Please login first" not in text
    assert str(status) in text or expected is errors.TaskFailedError


def test_details_of_the_mapping():
    field = http_errors.map_api_error(422, "aspect_ratio must be one of", CREATE, SETTINGS)
    assert field.field == "aspect_ratio" and field.from_server
    assert http_errors.map_api_error(400, "bad prompt", CREATE, SETTINGS).field == "prompt"
    limited = http_errors.map_api_error(429, "", CREATE, SETTINGS, retry_after=12.2)
    assert limited.retry_after == 12.2 and "retry in 13 s" in str(limited)
    assert "Nothing was created" in str(limited)
    assert http_errors.map_api_error(455, "", STATUS, SETTINGS).retryable
    assert not http_errors.map_api_error(505, "", STATUS, SETTINGS).retryable
    failed = http_errors.map_api_error(501, "upstream model error", STATUS, SETTINGS)
    assert failed.task_id == "t1" and failed.reason == "upstream model error"
    not_found = http_errors.map_api_error(404, "", UPSCALE, SETTINGS)
    assert not_found.task_id == "src1" and "upscale" in str(not_found)
    auth = http_errors.map_api_error(401, "", CREATE, SETTINGS)
    assert "APIINONE_API_KEY" in str(auth) and "Grok Imagine \u203a API key" in str(auth)


def test_a_server_echoing_the_key_is_redacted():
    echoed = f"Invalid API key: {TEST_KEY}"
    for status in (400, 401, 500, 501):
        error = http_errors.map_api_error(status, echoed, CREATE, SETTINGS)
        assert TEST_KEY not in str(error) and TEST_KEY not in repr(error)


def _max_retry(reason: BaseException) -> u3.MaxRetryError:
    return u3.MaxRetryError(None, "/api/v1/images/generations", reason)


def _refused() -> BaseException:
    error = u3.NewConnectionError(None, "Failed to establish a new connection: refused")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return requests.ConnectionError(_max_retry(error))


def _dns() -> BaseException:
    error = u3.NameResolutionError("apiin.one", None, socket.gaierror(-2, "Name unknown"))
    return requests.ConnectionError(_max_retry(error))


def _reset() -> BaseException:
    return requests.ConnectionError(
        u3.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset by peer"))
    )


@pytest.mark.parametrize(
    ("make", "words", "sent"),
    [
        (_refused, "refused", False),
        (_dns, "DNS", False),
        (
            lambda: requests.exceptions.ConnectTimeout(_max_retry(u3.ConnectTimeoutError())),
            "no connection within 10 s",
            False,
        ),
        (
            lambda: requests.exceptions.SSLError(_max_retry(u3.SSLError(ssl.SSLError("bad cert")))),
            "TLS",
            False,
        ),
        (
            lambda: requests.exceptions.ProxyError(_max_retry(u3.ProxyError("no", OSError()))),
            "proxy",
            False,
        ),
        (
            lambda: requests.exceptions.ReadTimeout(u3.ReadTimeoutError(None, "/", "timed out")),
            "did not answer within 30 s",
            True,
        ),
        (_reset, "reset", True),
        (
            lambda: requests.exceptions.ChunkedEncodingError(u3.ProtocolError("cut")),
            "closed before the answer was complete",
            True,
        ),
    ],
)
def test_network_failures_say_what_and_whether_a_create_may_have_been_taken(make, words, sent):
    on_read = http_errors.network_error(make(), SETTINGS, STATUS, TIMEOUTS)
    assert type(on_read) is errors.NetworkError
    assert words in str(on_read)
    # a timeout is the server's silence, not a local fault; everything else is local
    timed_out = "did not answer" in words
    assert ("local" in str(on_read)) is not timed_out, str(on_read)
    on_create = http_errors.network_error(make(), SETTINGS, CREATE, TIMEOUTS)
    if sent:
        assert type(on_create) is errors.UncertainCreateError
        assert "may have been charged" in str(on_create) and words in str(on_create)
    else:
        assert type(on_create) is errors.NetworkError
        assert "nothing was charged" in str(on_create)
    assert TEST_KEY not in str(on_create) + str(on_read)


def test_retry_after_parsing():
    assert transport.parse_retry_after("7") == 7.0
    assert transport.parse_retry_after(" 1.5 ") == 1.5
    assert transport.parse_retry_after("-3") == 0.0
    assert transport.parse_retry_after(None) is None
    assert transport.parse_retry_after("soon") is None
    assert transport.parse_retry_after("nan") is None
    later = transport.parse_retry_after(formatdate(time.time() + 60, usegmt=True))
    assert later is not None and 50 <= later <= 61
    assert transport.parse_retry_after("999999999") == 24 * 3600.0


def test_origins():
    assert transport.origin_of("https://apiin.one/x") == transport.origin_of(
        "https://APIIN.ONE:443/y"
    )
    assert transport.origin_of("http://a.test") != transport.origin_of("https://a.test")
    assert transport.origin_of("http://a.test:8080/") != transport.origin_of("http://a.test/")
