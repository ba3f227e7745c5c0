"""One retry layer per kind of request (api/retries.py), counted where the requests arrive.

The sandbox records every file request and every status read, and its ledger every create; a
test's own ``requests`` adapter counts connection attempts that never reach it. Each kind of
request is tried exactly as many times as its policy says, and the message says that count; a
create is sent again only when it provably never left this machine or was refused with 429.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY
from support.reliability import RESET, FaultProxy
from urllib3 import exceptions as u3

api = public_api()
errors = submodule("api.errors")
retries = submodule("api.retries")
download_mod = submodule("api.download")
CREATE_PATH = submodule("api.client").CREATE_PATH

FAST_POLL = api.PollSchedule().scaled(0.05)
PROMPT = "a lighthouse at dusk, oil painting"
WAIT_S = 30.0  # a bound for waits on the sandbox's clock, never asserted as a duration


def make_client(sb, session=None, **settings):
    settings = api.Settings(api_key=TEST_KEY, base_url=sb.base_url, **settings)
    return api.GrokClient(settings, poll=FAST_POLL, session=session)


def finished_task(client) -> api.Task:
    return client.wait(client.create_text_to_image(PROMPT), timeout=WAIT_S)


# -- result files ----------------------------------------------------------------------------------

FILE_FAULTS = {
    "unavailable": (
        errors.DownloadError,
        "failed {n} time(s), last: the file host answered HTTP 503",
    ),
    "silent": (errors.DownloadError, "failed {n} time(s), last: the file host did not answer"),
    "truncate": (errors.DownloadError, "failed {n} time(s), last: the connection closed"),
    "empty": (errors.NotAnImageError, "was empty each of the {n} time(s) it was fetched"),
}


@pytest.mark.parametrize("fault", FILE_FAULTS)
def test_a_failing_file_host_is_asked_exactly_as_often_as_the_message_says(sandbox_factory, fault):
    sb = sandbox_factory(images_per_task=1)
    with make_client(sb, read_timeout=0.3) as client:
        (url,) = finished_task(client).result_urls
        sb.faults.download = fault
        asked_before = len(sb.file_requests)
        with pytest.raises(errors.DownloadError) as caught:
            client.download(url)
    kind, words = FILE_FAULTS[fault]
    tries = retries.RESULT_FILE.attempts
    assert tries == 3
    assert type(caught.value) is kind
    assert words.format(n=tries) in str(caught.value), str(caught.value)
    assert len(sb.file_requests) - asked_before == tries  # urllib3 multiplied 503s to 9 before
    assert sb.ledger(TEST_KEY).creates == 1


def test_a_file_host_back_after_one_503_serves_the_file_on_the_second_request(sandbox):
    with make_client(sandbox) as client:
        url = finished_task(client).result_urls[0]
    sandbox.faults.download = "unavailable"
    asked_before = len(sandbox.file_requests)
    waits: list[float] = []

    def host_is_back(seconds: float) -> None:
        waits.append(seconds)
        sandbox.faults.download = None

    with download_mod.make_download_session() as session:
        blob = download_mod.download(url, session, sleep=host_is_back)
    assert blob.image_format == "JPEG"
    assert len(sandbox.file_requests) - asked_before == 2
    assert len(waits) == 1 and 0.4 <= waits[0] <= 0.6  # RESULT_FILE's first wait, jittered


# -- status reads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 4, 6])
def test_a_wait_reads_once_per_try_through_503s(sandbox, caplog, k):
    """Inside a wait the poll loop is the only retry layer: each failed read is one request,
    seen (and logged, with Cancel heard in between) by the loop."""
    with make_client(sandbox) as client:
        task_id = finished_task(client).id
    reads_before = sandbox.task_info(task_id).status_reads
    sandbox.faults.status_errors = [503] * k
    caplog.set_level(logging.INFO, logger="grok_imagine.api")
    with make_client(sandbox) as client:  # a resumed wait: the first read happens at once
        task = client.wait(task_id, timeout=WAIT_S)
    assert task.result_urls and sandbox.faults.status_errors == []
    assert sandbox.task_info(task_id).status_reads - reads_before == k + 1
    failed = [r for r in caplog.records if "status read failed" in r.getMessage()]
    assert len(failed) == k  # before: urllib3 hid up to two of every three from the loop


@pytest.mark.parametrize(("k", "succeeds"), [(2, True), (5, False)])
def test_a_lone_status_read_is_tried_at_most_three_times(sandbox, k, succeeds):
    with make_client(sandbox) as client:
        task_id = finished_task(client).id
        reads_before = sandbox.task_info(task_id).status_reads
        sandbox.faults.status_errors = [503] * k
        if succeeds:
            assert client.get_task(task_id).id == task_id
        else:
            with pytest.raises(errors.ServerError) as caught:
                client.get_task(task_id)
            assert caught.value.status == 503 and "HTTP 503" in str(caught.value)
    tries = retries.STATUS_READ.attempts
    assert tries == 3
    assert sandbox.task_info(task_id).status_reads - reads_before == (k + 1 if succeeds else tries)


# -- creates ---------------------------------------------------------------------------------------


class NotConnecting(HTTPAdapter):
    """An adapter whose first ``failures`` sends fail as a connection that could not be opened
    (what urllib3 raises for a refused connection); it counts every send."""

    def __init__(self, failures: int) -> None:
        super().__init__(max_retries=0)
        self.failures = failures
        self.sends = 0

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sends += 1
        if self.sends <= self.failures:
            refused = u3.NewConnectionError(None, "Failed to establish a new connection: refused")
            raise requests.ConnectionError(u3.MaxRetryError(None, request.url, refused))
        return super().send(request, **kwargs)


def create_not_connecting(
    sandbox, failures: int, should_cancel=None
) -> tuple[NotConnecting, BaseException | None]:
    """A create through a ``NotConnecting`` adapter: the adapter, and the error (or None)."""
    session = requests.Session()
    adapter = NotConnecting(failures)
    session.mount("http://", adapter)
    with session, make_client(sandbox, session=session) as client:
        try:
            client.create_text_to_image(PROMPT, should_cancel=should_cancel)
        except errors.GrokError as exc:
            return adapter, exc
    return adapter, None


@pytest.mark.parametrize("failures", [1, 2])
def test_a_create_that_could_not_connect_is_sent_again_and_paid_once(sandbox, failures):
    adapter, error = create_not_connecting(sandbox, failures)
    assert error is None
    assert adapter.sends == failures + 1
    assert sandbox.create_requests == 1 and sandbox.ledger(TEST_KEY).creates == 1


def test_a_create_that_never_connects_is_tried_three_times_and_costs_nothing(sandbox):
    adapter, error = create_not_connecting(sandbox, 10)
    assert type(error) is errors.NetworkError  # not UncertainCreateError: nothing was sent
    assert "nothing was charged" in str(error)
    assert adapter.sends == retries.CREATE.attempts == 3
    assert sandbox.create_requests == 0 and sandbox.ledger(TEST_KEY).creates == 0


def test_cancel_while_a_create_waits_to_connect_again_sends_nothing_more(sandbox):
    asked: list[int] = []

    def cancel() -> bool:  # pressed as soon as the first try has failed
        asked.append(1)
        return True

    adapter, error = create_not_connecting(sandbox, 10, cancel)
    assert isinstance(error, errors.CancelledError) and "nothing was charged" in str(error)
    assert adapter.sends == 1 and len(asked) == 1 and sandbox.create_requests == 0


def test_a_create_reset_after_it_was_received_is_never_sent_again(sandbox):
    """The connection was opened and the request taken, then reset: it may have been created."""
    with FaultProxy(sandbox.base_url) as proxy:
        proxy.add("POST", CREATE_PATH, RESET)
        settings = api.Settings(api_key=TEST_KEY, base_url=proxy.base_url)
        with (
            api.GrokClient(settings, poll=FAST_POLL) as client,
            pytest.raises(errors.UncertainCreateError),
        ):
            client.create_text_to_image(PROMPT)
        assert [s.method for s in proxy.seen] == ["POST"]
    assert sandbox.create_requests == 0 and sandbox.ledger(TEST_KEY).creates == 0


# -- the policies ----------------------------------------------------------------------------------


def test_waits_double_up_to_a_cap_and_retry_after_is_a_floor():
    policy = retries.RetryPolicy(attempts=3, first_wait=0.5, max_wait=4.0, jitter=(0.8, 1.2))
    low, high = (lambda a, b: a), (lambda a, b: b)
    waits = [policy.wait(n, draw=low) for n in (1, 2, 3, 4, 5)]
    assert waits == pytest.approx([0.4, 0.8, 1.6, 3.2, 3.2])
    assert policy.wait(1, retry_after=3.0, draw=low) == 3.0  # never shortened by the jitter
    assert policy.wait(1, retry_after=3.0, draw=high) == pytest.approx(3.6)
    assert policy.wait(1, retry_after=0.0, draw=high) == pytest.approx(0.6)
    capped = retries.STATUS_READ
    assert capped.wait(1, retry_after=60.0, draw=low) == capped.max_retry_after == 1.0
    assert [policy.allows(n) for n in (1, 2, 3)] == [True, True, False]
    assert retries.RATE_LIMITED_CREATE.allows(1000)  # only its time budget ends it
    assert not retries.ONE_TRY.allows(1)


def test_a_create_is_sent_again_only_when_it_never_left_this_machine():
    cause = submodule("api.http_errors").Cause
    assert retries.CREATE.statuses == frozenset()
    assert retries.CREATE.causes == {
        cause.DNS,
        cause.REFUSED,
        cause.NOT_OPENED,
        cause.CONNECT_TIMEOUT,
    }
