"""The fault matrix, API side: every way the API (or the way to it) fails, as the user meets it.

Each row runs the journal-backed ``TaskRunner`` (what the nodes call) against the sandbox, flips
one fault, and asserts three things: the exact creates and credits the sandbox charged, what the
journal and the kept-files folder hold afterwards, and the one line the user reads (what happened
and what to do). Faults the sandbox cannot make (resets, refusal mid-run, rewritten answers) come
from ``FaultProxy``, a real forwarder on 127.0.0.1.
"""

from __future__ import annotations

import asyncio

import pytest
from support import pack, submodule
from support.api_names import public_api
from support.reliability import (
    DRIP,
    FORWARD_THEN_RESET,
    FORWARD_THEN_RESPOND,
    KEY,
    PROMPT,
    RESET,
    REWRITE,
    SILENT,
    FaultProxy,
    bounded,
    closed_port,
    make_rig,
    matrix_row,
    no_key_leaks,  # noqa: F401 - autouse: DEBUG logs on, no key in any record or file
    point_nodes_at,
    pointer_row,
    raised,
    wait_until,
)

api = public_api()
errors = submodule("api.errors")
journal_mod = submodule("journal")
execution = submodule("nodes.execution")
events = submodule("journal.events")
T2I = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]

AREA = "API faults"
STATUS_PATH = "/api/v1/tasks/"
CREATE_PATH = "/api/v1/images/generations"


@pytest.fixture
def proxied(sandbox, tmp_path):
    """A rig whose API calls pass through a ``FaultProxy`` in front of the sandbox."""
    with FaultProxy(sandbox.base_url) as proxy:
        yield make_rig(tmp_path, sandbox, base_url=proxy.base_url), proxy


# -- creates that are refused or rate limited ------------------------------------------------------


@matrix_row(
    AREA, "429 storm on create that ends within the task's timeout",
    "nothing: the create is re-sent after each `Retry-After` and the images arrive",
    "the task's images; one journal row `succeeded`; 1 create, 5 credits",
)  # fmt: skip
def test_429_storm_on_create_that_ends_in_time_is_transparent(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.retry_after = 1
    sandbox.faults.create_errors = [429, 429]
    result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 6 and rig.kept() == sorted(result.files)
    assert sandbox.create_requests == 3  # two refused (nothing created), the third taken
    assert rig.ledger() == (1, 5)
    assert [e.state for e in rig.history()] == ["succeeded"]


@matrix_row(
    AREA, "429 storm on create outlasting the task's timeout (`Retry-After: 2`, timeout 3 s)",
    "`RateLimitedError`: \"rate limiting new tasks (HTTP 429 ...); retry in 2 s. Nothing was "
    "created or charged.\"",
    "journal row `rejected`, 0 credits; queueing again later creates the task normally",
)  # fmt: skip
def test_429_storm_on_create_beyond_the_timeout_says_when_to_retry(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.retry_after = 2
    sandbox.faults.create_errors = [429] * 20
    caught = rig.expect(
        errors.RateLimitedError, lambda: rig.runner.text_to_image(PROMPT, timeout=3.0)
    )
    message = str(caught)
    assert "retry in 2 s" in message and "Nothing was created or charged" in message
    assert caught.retry_after == 2
    # Retry-After honoured: one re-send 2 s later, then the next would pass the 3 s timeout
    # (without it, the 0.5/1/2 s backoff would have sent 3 requests in that time).
    assert sandbox.create_requests == 2
    assert rig.ledger() == (0, 0) and rig.kept() == []
    assert [(e.state, e.credits) for e in rig.history()] == [("rejected", 0)]

    sandbox.faults.create_errors = []  # the storm is over: the same request just works
    result = rig.runner.text_to_image(PROMPT)
    assert result.files and rig.ledger() == (1, 5)
    assert [e.state for e in rig.history()] == ["rejected", "succeeded"]


@matrix_row(
    AREA, "429 storm on create answered with `Retry-After: 0` (timeout 1 s)",
    "`RateLimitedError` after a few re-sends spaced by a growing backoff (Retry-After is a "
    "floor, never a licence for a tight loop of creates)",
    "journal row `rejected`, 0 credits",
)  # fmt: skip
def test_429_storm_with_retry_after_zero_is_not_a_create_flood(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.retry_after = 0
    sandbox.faults.create_errors = [429] * 100_000
    caught = rig.expect(
        errors.RateLimitedError, lambda: rig.runner.text_to_image(PROMPT, timeout=1.0)
    )
    sent = sandbox.create_requests
    sandbox.faults.create_errors = []
    assert "Nothing was created or charged" in str(caught)
    assert rig.ledger() == (0, 0)
    assert [(e.state, e.credits) for e in rig.history()] == [("rejected", 0)]
    # A 0.5 s first backoff doubling each time fits 2 sends in 1 s; allow for jitter and load.
    assert sent <= 4, f"{sent} create requests in a 1 s timeout"


def _gateway_page(status):
    def answer(method, path):
        title = f"{status} {'Bad Gateway' if status == 502 else 'Gateway Time-out'}"
        page = f"<html><head><title>{title}</title></head><body>{title}</body></html>"
        return status, [("Content-Type", "text/html")], page.encode()

    return answer


@matrix_row(
    AREA, "HTML 502 / 504 page from a gateway answering a create the API did take (the gateway "
    "lost the upstream's answer)",
    "`UncertainTaskError` (\"... may have been charged ... not sent again automatically\")",
    "journal row `uncertain`; queueing again sends nothing (1 create, 5 credits)",
)  # fmt: skip
@pytest.mark.parametrize("status", [502, 504])
def test_gateway_error_after_the_api_took_the_create_is_uncertain(proxied, status):
    rig, proxy = proxied
    proxy.add("POST", CREATE_PATH, FORWARD_THEN_RESPOND, transform=_gateway_page(status))
    first = bounded(lambda: raised(lambda: rig.runner.text_to_image(PROMPT)))
    assert KEY not in str(first) and rig.ledger() == (1, 5)  # the API did take and charge it
    again = bounded(lambda: raised(lambda: rig.runner.text_to_image(PROMPT)))
    assert KEY not in str(again)
    # Never pay twice: one create for one deliberate request, however the gateway answered.
    assert rig.ledger() == (1, 5), "queueing again paid for a second task"
    assert isinstance(first, errors.UncertainCreateError), repr(first)
    assert "nothing was charged" not in str(first)


pointer_row(
    AREA,
    "HTTP 500 / 503 / 455 answering a create (the API itself refused it; a gateway's 502 / 504 "
    "is the uncertain row above)",
    '`ServerError` naming the status: "... (nothing was created, so nothing was charged): try '
    'again in a few minutes"; the create is not re-sent',
    "no task; 0 creates",
    "test_api_client.py::test_server_error_on_create_is_not_resent",
)


# -- status reads that fail for a while ------------------------------------------------------------

STATUS_BURSTS = {
    "429/5xx/455 burst": dict(status_errors=[429, 500, 502, 503, 504, 455, 503, 429, 502, 500]),
    "malformed JSON": dict(malformed_json=4),
    "HTML 502 page": dict(html_error=6),
    "HTTP 200 with an error code in the body": dict(error_in_body=4),
}


@matrix_row(
    AREA, "status reads failing in a burst: 429 / 5xx / 455, malformed JSON, an HTML 502 page, "
    "HTTP 200 with `{\"code\": 500}` in the body",
    "nothing: the reads are retried with backoff (honouring `Retry-After`) and the images arrive",
    "the task's images; journal row `succeeded`; 1 create, 5 credits",
)  # fmt: skip
@pytest.mark.parametrize("burst", STATUS_BURSTS, ids=list(STATUS_BURSTS))
def test_status_read_bursts_recover_transparently(sandbox, tmp_path, burst):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.retry_after = 0
    for name, value in STATUS_BURSTS[burst].items():
        setattr(sandbox.faults, name, value)
    result = rig.runner.text_to_image(PROMPT)
    faults = sandbox.faults
    assert (faults.status_errors, faults.malformed_json, faults.html_error,
            faults.error_in_body) == ([], 0, 0, 0)  # every injected fault was met  # fmt: skip
    assert len(result.files) == 6 and rig.kept() == sorted(result.files)
    assert rig.ledger() == (1, 5)
    assert [e.state for e in rig.history()] == ["succeeded"]


def _unknown_status(payload):
    data = payload.get("data") or {}
    if data.get("status") not in ("completed", "failed"):
        data["status"] = "TELEPORTING"  # a word no gateway has used yet
        data.pop("progress", None)
    return payload


@matrix_row(
    AREA, "status strings the client has never seen (`TELEPORTING`) before the task completes",
    "nothing: an unknown word is `TaskState.UNKNOWN`, the wait goes on and the images arrive",
    "the task's images; 1 create, 5 credits",
)  # fmt: skip
def test_unknown_status_strings_keep_the_wait_going(sandbox_factory, tmp_path):
    sb = sandbox_factory(generation_time=(0.4, 0.4))
    with FaultProxy(sb.base_url) as proxy:
        rig = make_rig(tmp_path, sb, base_url=proxy.base_url)
        proxy.add("GET", STATUS_PATH, REWRITE, times=None, transform=_unknown_status)
        states = []
        hooks = journal_mod.RunHooks(
            on_event=lambda e: isinstance(e, events.TaskUpdated) and states.append(e.task.state)
        )
        result = rig.runner.text_to_image(PROMPT, hooks=hooks)
    assert api.TaskState.UNKNOWN in states and states[-1] is api.TaskState.SUCCEEDED
    assert len(result.files) == 6 and rig.ledger() == (1, 5)


def _no_urls(payload):
    data = payload.get("data") or {}
    if isinstance(data.get("output"), dict):
        data["output"]["image_urls"] = []
    return payload


@matrix_row(
    AREA, "task reported succeeded with zero result URLs",
    "`BadResponseError`: \"Task <id> is reported succeeded but API in One listed no result files: "
    "try Grok Load Task with this id later\"",
    "journal row keeps the task id (not finished), no files; queueing again resumes that task "
    "(no new create) and fetches the images once they are listed; 1 create, 5 credits",
)  # fmt: skip
def test_result_with_zero_urls_is_a_clear_error_and_resumes(proxied):
    rig, proxy = proxied
    proxy.add("GET", STATUS_PATH, REWRITE, times=None, transform=_no_urls)
    caught = rig.expect(errors.BadResponseError, lambda: rig.runner.text_to_image(PROMPT))
    (entry,) = rig.history()
    assert entry.task_id and entry.task_id in str(caught) and "Load Task" in str(caught)
    assert entry.state in ("queued", "running") and rig.kept() == []
    assert rig.ledger() == (1, 5)

    proxy.clear()  # the gateway lists the files now
    result = rig.runner.text_to_image(PROMPT)
    assert result.resumed and result.task_id == entry.task_id and len(result.files) == 6
    assert rig.ledger() == (1, 5)


# -- the network between the user and the API ------------------------------------------------------


@matrix_row(
    AREA, "connection refused on create (nothing listens on the port)",
    "`NetworkError`: \"Could not reach API in One ... (the connection was refused); nothing was "
    "sent, so nothing was charged. This is a local network problem ...\"",
    "journal row `rejected`, 0 credits; nothing on disk",
)  # fmt: skip
def test_connection_refused_on_create_is_local_and_costs_nothing(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox, base_url=f"http://127.0.0.1:{closed_port()}")
    caught = rig.expect(errors.NetworkError, lambda: rig.runner.text_to_image(PROMPT))
    assert not isinstance(caught, errors.UncertainCreateError)
    message = str(caught)
    assert "refused" in message and "local network problem" in message
    assert "nothing was charged" in message
    assert [(e.state, e.credits) for e in rig.history()] == [("rejected", 0)]
    assert rig.kept() == [] and sandbox.create_requests == 0 and rig.ledger() == (0, 0)


@matrix_row(
    AREA, "DNS failure on create (the API host is `*.invalid`, resolved locally, no traffic)",
    "`NetworkError`: \"... (DNS lookup failed: the API's host name could not be resolved); "
    "nothing was sent, so nothing was charged. This is a local network problem ...\"",
    "journal row `rejected`, 0 credits; nothing on disk",
)  # fmt: skip
def test_dns_failure_on_create_is_local_and_costs_nothing(sandbox, tmp_path, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)  # resolution must be ours, not a proxy's
    rig = make_rig(tmp_path, sandbox, base_url="http://grok-imagine-sandbox.invalid:8080")
    caught = rig.expect(errors.NetworkError, lambda: rig.runner.text_to_image(PROMPT))
    assert not isinstance(caught, errors.UncertainCreateError)
    message = str(caught)
    assert "DNS" in message and "local network problem" in message
    assert "nothing was charged" in message
    assert [(e.state, e.credits) for e in rig.history()] == [("rejected", 0)]
    assert rig.kept() == [] and rig.ledger() == (0, 0)


@matrix_row(
    AREA, "connection reset (RST) on status reads, several in a row",
    "nothing: the reads are retried and the images arrive",
    "the task's images; 1 create, 5 credits",
)  # fmt: skip
def test_connection_reset_on_status_reads_recovers_transparently(proxied):
    rig, proxy = proxied
    proxy.add("GET", STATUS_PATH, RESET, times=4)
    proxy.add("GET", STATUS_PATH, FORWARD_THEN_RESET, times=2)
    result = rig.runner.text_to_image(PROMPT)
    spoiled = [s for s in proxy.seen if s.action != "pass"]
    assert len(spoiled) == 6  # every reset happened
    assert len(result.files) == 6 and rig.ledger() == (1, 5)


@matrix_row(
    AREA, "connection reset in the middle of the create's answer (the API took and charged it)",
    "`UncertainTaskError`: \"A create was sent but its answer was lost: the request for the "
    "prompt ... went out at ... (the connection was reset), so the task may exist and may have "
    "been charged 5 credits. It is not sent again automatically. Look for it in your API in One "
    "dashboard; if you find its task id, enter it on the task's row in the Grok Imagine sidebar "
    "tab and press Fetch (free) ... To create a new task on purpose, change the seed.\"",
    "journal row `uncertain` (5 credits, may be charged); queueing again repeats the message and "
    "sends nothing; 1 create, 5 credits",
)  # fmt: skip
def test_connection_reset_on_create_is_uncertain_and_not_resent(proxied):
    rig, proxy = proxied
    proxy.add("POST", CREATE_PATH, FORWARD_THEN_RESET)
    caught = rig.expect(errors.UncertainCreateError, lambda: rig.runner.text_to_image(PROMPT))
    message = str(caught)
    assert "reset" in message or "closed before the answer was complete" in message
    assert "may have been charged" in message
    assert "not sent again" in message and "seed" in message
    assert rig.ledger() == (1, 5)  # the API did take it
    assert [(e.state, e.credits, e.task_id) for e in rig.history()] == [("uncertain", 5, None)]

    again = rig.expect(errors.UncertainCreateError, lambda: rig.runner.text_to_image(PROMPT))
    assert "may have been charged" in str(again)
    assert [s.method for s in proxy.seen].count("POST") == 1  # never re-sent
    assert rig.ledger() == (1, 5) and rig.kept() == []


@matrix_row(
    AREA, "the API becomes unreachable (connection refused) while a task is being waited for",
    "`TaskTimeoutError` at the node's timeout: \"Stopped waiting for task <id> after 1 s because "
    "its status could not be read: Could not reach API in One at ... to read the task status "
    "(the connection was refused). This is a local network problem ... Queue the same node "
    "again to resume it without paying again, or use Grok Load Task with the id <id>.\"",
    "journal row keeps the task id; queueing again once the network is back resumes the task "
    "(no new create); 1 create, 5 credits",
)  # fmt: skip
def test_network_lost_during_the_wait_times_out_resumably_and_says_why(sandbox_factory, tmp_path):
    sb = sandbox_factory(generation_time=(0.5, 0.5))
    with FaultProxy(sb.base_url) as proxy:
        rig = make_rig(tmp_path, sb, base_url=proxy.base_url)
        created = []

        def cut_the_network(event):
            if isinstance(event, events.TaskUpdated) and not created:
                created.append(event.task.id)
                proxy.refuse()

        hooks = journal_mod.RunHooks(on_event=cut_the_network)
        caught = rig.expect(
            errors.TaskTimeoutError,
            lambda: rig.runner.text_to_image(PROMPT, timeout=1.0, hooks=hooks),
        )
        (task_id,) = created
        assert caught.task_id == task_id and task_id in str(caught)
        assert "Load Task" in str(caught)
        assert [e.task_id for e in rig.history()] == [task_id] and rig.kept() == []

        proxy.listen_again()
        result = rig.runner.text_to_image(PROMPT)
        assert result.resumed and result.task_id == task_id and len(result.files) == 6
        assert rig.ledger() == (1, 5)
    # What the user needs to hear: the wait ended because the network failed, not the provider.
    assert "local network problem" in str(caught) and "refused" in str(caught)


@matrix_row(
    AREA, "the API accepts the connection and never answers the status reads",
    "`TaskTimeoutError` at the node's timeout: \"Stopped waiting for task <id> after 1.5 s "
    "because its status could not be read: API in One at <url> took the task status request "
    "but it did not answer within 0.3 s: it is slow or stalled right now ...\" (named as a "
    "timeout, not \"could not reach\" or a local network problem)",
    "journal row keeps the task id; queueing again once it answers resumes the task (no new "
    "create); 1 create, 5 credits",
)  # fmt: skip
def test_a_silent_api_is_named_as_a_timeout(sandbox_factory, tmp_path):
    sb = sandbox_factory(generation_time=(0.3, 0.3))
    with FaultProxy(sb.base_url) as proxy:
        rig = make_rig(tmp_path, sb, base_url=proxy.base_url, read_timeout=0.3)
        proxy.add("GET", "/api/v1/tasks/", SILENT, times=None)
        caught = rig.expect(
            errors.TaskTimeoutError, lambda: rig.runner.text_to_image(PROMPT, timeout=1.5)
        )
        message = str(caught)
        assert "did not answer within 0.3 s" in message, message
        assert "could not reach" not in message.lower() and "local network" not in message
        (entry,) = rig.history()
        assert entry.task_id and entry.task_id in message
        proxy.clear()
        result = rig.runner.text_to_image(PROMPT)
        assert result.resumed and result.task_id == entry.task_id and len(result.files) == 6
        assert rig.ledger() == (1, 5)


@matrix_row(
    AREA, "a stalled gateway dripping each status answer (a byte every 0.1 s: never silent long "
    "enough for the 30 s read timeout), through the node with `timeout` = 1 s",
    "the node's `TaskTimeoutError` line a few seconds after its timeout (the task id, how to "
    "resume): a read still dripping at the deadline is abandoned after a 5 s overrun",
    "journal row with the task id; queueing again resumes it; 1 create, 5 credits",
)  # fmt: skip
def test_dripping_status_answers_cannot_outlast_the_node_timeout(
    sandbox_factory, tmp_path, monkeypatch
):
    sb = sandbox_factory(generation_time=(5.0, 5.0))
    with FaultProxy(sb.base_url) as proxy:
        point_nodes_at(monkeypatch, tmp_path / "home", proxy.base_url)
        proxy.add("GET", STATUS_PATH, DRIP, times=None, delay=0.1)
        try:
            caught = bounded(
                lambda: raised(lambda: asyncio.run(T2I().generate(PROMPT, 0, timeout=1))),
                limit=10.0,
                what="the node to honour its 1 s timeout",
            )
        finally:
            proxy.clear()
            execution.close_journals()
    assert isinstance(caught, RuntimeError) and "Stopped waiting for task" in str(caught)
    assert sb.ledger(KEY).creates == 1


# -- the create's answer is lost: never pay twice --------------------------------------------------


@matrix_row(
    AREA, "read timeout on create (the API took it, the answer came too late)",
    "`UncertainTaskError`: \"... its answer was lost (it did not answer within 0.3 s), so the "
    "task may exist and may have been charged 5 credits. It is not sent again automatically ...\"",
    "journal row `uncertain` with 5 credits; queueing again sends nothing; 1 create, 5 credits; "
    "no files",
)  # fmt: skip
def test_read_timeout_on_create_is_uncertain_and_not_resent(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox, read_timeout=0.3)
    sandbox.faults.create_response_delay = 1.5
    caught = rig.expect(errors.UncertainCreateError, lambda: rig.runner.text_to_image(PROMPT))
    assert "did not answer within 0.3 s" in str(caught) and "may have been charged" in str(caught)
    wait_until(lambda: rig.ledger() == (1, 5), "the sandbox to take the create")
    sandbox.faults.create_response_delay = 0
    rig.expect(errors.UncertainCreateError, lambda: rig.runner.text_to_image(PROMPT))
    assert sandbox.create_requests == 1 and rig.ledger() == (1, 5)
    assert [(e.state, e.credits) for e in rig.history()] == [("uncertain", 5)]
    assert rig.kept() == []


# -- tasks that never finish or finish badly -------------------------------------------------------


@matrix_row(
    AREA, "task stuck for ever (never leaves `running`)",
    "`TaskTimeoutError`: \"Stopped waiting for task <id> after 0.5 s; the task keeps running at "
    "API in One. Queue the same node again to resume it without paying again, or use Grok Load "
    "Task with the id <id>.\"",
    "journal row with the task id, still `queued`/`running`; queueing again resumes the same "
    "task (no new create); 1 create, 5 credits",
)  # fmt: skip
def test_stuck_task_times_out_with_its_id_and_is_resumed(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.stuck = True
    caught = rig.expect(
        errors.TaskTimeoutError, lambda: rig.runner.text_to_image(PROMPT, timeout=0.5)
    )
    (entry,) = rig.history()
    assert caught.task_id == entry.task_id and entry.task_id in str(caught)
    assert "Load Task" in str(caught) and "without paying again" in str(caught)
    assert entry.state in ("queued", "running") and rig.kept() == []

    statuses = []
    hooks = journal_mod.RunHooks(on_event=statuses.append)
    again = rig.expect(
        errors.TaskTimeoutError,
        lambda: rig.runner.text_to_image(PROMPT, timeout=0.3, hooks=hooks),
    )
    assert again.task_id == entry.task_id
    assert [e.task_id for e in statuses if isinstance(e, events.TaskResumed)] == [entry.task_id]
    assert rig.ledger() == (1, 5) and len(rig.history()) == 1


@matrix_row(
    AREA, "task failed at the provider",
    "`TaskFailedError`: \"Task <id> failed: Generation failed: the upstream model returned an "
    "error. Credits were refunded. Failed tasks are not charged. Queue it again (a new task is "
    "created) ...\"",
    "journal row `failed` with 0 credits and the reason; no files; the provider refunded "
    "(1 create, 0 credits net); queueing again makes a new task",
)  # fmt: skip
def test_failed_task_shows_the_reason_and_the_refund(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    sandbox.faults.failure_rate = 1.0
    caught = rig.expect(errors.TaskFailedError, lambda: rig.runner.text_to_image(PROMPT))
    assert not isinstance(caught, errors.ModerationError)
    (entry,) = rig.history()
    message = str(caught)
    assert entry.task_id in message and "Generation failed" in message
    assert "not charged" in message and "refunded" in message
    assert (entry.state, entry.credits) == ("failed", 0) and "Generation failed" in entry.error
    assert rig.kept() == []
    assert rig.ledger() == (1, 0) and sandbox.ledger(KEY).refunds == 5


@matrix_row(
    AREA, "moderation failure (content policy)",
    "`ModerationError`: \"Task <id> was refused by the provider's content policy (...). Failed "
    "tasks are not charged; rephrase the prompt, since the same prompt will be refused again.\"",
    "journal row `failed`, 0 credits; no files; not retried (1 create, 0 credits net)",
)  # fmt: skip
def test_moderation_failure_has_its_own_message_and_is_not_retried(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    prompt = "something forbidden in a storm"
    caught = rig.expect(errors.ModerationError, lambda: rig.runner.text_to_image(prompt))
    message = str(caught)
    assert "content policy" in message and "rephrase" in message and "not charged" in message
    assert [(e.state, e.credits) for e in rig.history(prompt)] == [("failed", 0)]
    assert sandbox.create_requests == 1 and rig.ledger() == (1, 0)
    assert rig.kept() == []


pointer_row(
    AREA,
    'a stray 404 / "recordInfo is null" while resuming a task our own create returned',
    "`TaskNotFoundError` for that queue; the task is not marked failed",
    "the row stays resumable: the next queue resumes the same task (1 create, 5 credits)",
    "test_journal_runner.py::test_a_stray_not_found_on_a_resumed_task_keeps_it_resumable",
)
pointer_row(
    AREA,
    "Cancel while a create waits out HTTP 429 before re-sending it",
    '`CancelledError`: "Cancelled before any task was created; nothing was charged."',
    "row `rejected` (not uncertain); nothing sent after the Cancel; queueing again creates it",
    "test_journal_runner.py::test_cancel_while_a_create_waits_out_a_rate_limit_sends_nothing",
)
pointer_row(
    AREA,
    "a graph of Text-to-Image nodes queued at once, more creates than the account takes: 6 "
    "nodes x 8 tasks against 20 creates per 10 s, 4 x 8 against 10 per 10 s",
    'nothing: the creates wait their turns ("waiting N s for a turn to create" on the node) and '
    "every node returns all 48 images",
    "one create per task (48 / 32) and not one HTTP 429",
    "test_nodes_pacing.py::test_a_graph_queued_at_once_is_paced_and_no_create_is_refused",
)
pointer_row(
    AREA,
    "the same graph (6 x 8, 20 per 10 s) with pacing off (`GROK_IMAGINE_CREATE_RATE=off`)",
    'nothing: each refused create says "API in One is rate limiting new tasks (HTTP 429; nothing '
    "was created): sending the create again in N s\" and is sent again within the node's "
    "timeout; every node returns all 48 images",
    "48 creates; create requests = 48 + the 429s answered (each refused create sent again once "
    "per 429, nothing more)",
    "test_nodes_pacing.py::test_with_pacing_off_the_429s_are_waited_out_and_every_node_completes",
)
pointer_row(
    AREA,
    "a create's turn would come after the task's timeout (a long queue of creates)",
    "`RateLimitedError` at once: \"This create's turn under the account's create rate "
    "(GROK_IMAGINE_CREATE_RATE) comes in N s, after the task's timeout. Nothing was created or "
    'charged."',
    "row `rejected`, its turn given back; nothing sent",
    "test_journal_pacing.py::test_a_turn_after_the_timeout_is_refused_at_once_and_given_back",
)
pointer_row(
    AREA,
    "Cancel while a create waits for its turn",
    '`CancelledError` within a second: "Cancelled before any task was created; nothing was '
    'charged."',
    "row `rejected` (not uncertain), its turn given back; nothing sent",
    "test_journal_pacing.py::test_a_create_waits_for_its_turn_and_cancel_sends_nothing",
)
pointer_row(
    AREA,
    "a create waiting for its turn when the create whose turn came before it is cancelled",
    'nothing: it moves up into the turn given back, and says so again ("waiting N s for a turn '
    'to create")',
    "it is created one window earlier than its first turn; 2 creates in all (the cancelled one "
    "sent nothing)",
    "test_journal_pacing.py::test_a_turn_given_back_moves_the_next_waiter_up",
)
pointer_row(
    AREA,
    "the process (ComfyUI or the command line) killed with `kill -9` while 4 of its 6 creates "
    "wait for their turns (2 were sent and answered)",
    'nothing: the same request again creates those 4 once and resumes the 2; no "may have been '
    'charged"; meanwhile `grok-imagine tasks` and the panel list them as `waiting`',
    "the 4 rows said `waiting` (nothing sent; counted like creates until settled), then `rejected`"
    ', 0 credits: "its process ended while it waited for its turn to create; nothing was sent", '
    "their turns given back; 6 creates, 30 credits in all, under a daily limit of exactly 30",
    "test_cli_process.py::test_kill_9_while_creates_wait_for_their_turns_leaves_nothing_uncertain",
)
pointer_row(
    AREA,
    "a fleet worker (PostgreSQL) killed with `kill -9` while 3 of its 4 creates wait for their "
    "turns",
    "nothing: another worker given the same job waits until the dead worker's leases run out "
    "(10 s), then creates those 3 once and resumes the 1",
    "the 3 rows `rejected` (never sent), 0 credits; 4 creates, 20 credits in all; no `uncertain`"
    " row",
    "test_journal_fleet.py::"
    "test_a_worker_killed_while_its_creates_wait_for_turns_leaves_nothing_uncertain",
)
pointer_row(
    AREA,
    "a fleet worker stalls while its create waits for its turn (its lease runs out, it is not "
    "dead); another worker settles the row as never sent and creates the task",
    "nothing: when the stalled worker asks for its turn again it is refused (the move back to "
    "`creating` is conditional on the row still being its own and `waiting`), sends nothing, and "
    "shares the other worker's task",
    "1 create for the request (2 with the one that took the turn first); its row `rejected`, 0 "
    "credits",
    "test_journal_pg_turns.py::"
    "test_a_worker_whose_waiting_row_was_taken_over_never_sends_it_and_shares_the_other_create",
)
pointer_row(
    AREA,
    "the same request run again while the first run's create waits for its turn (the first run "
    "alive)",
    'nothing: the second run says "process N is creating this same request; waiting for it" and '
    "shares the first run's tasks",
    "one create per task (2 creates, 10 credits); both runs end with the images",
    "test_cli_process.py::test_a_live_runs_create_waiting_for_its_turn_is_waited_for_not_sent_twice",
)
pointer_row(
    AREA,
    "`kill -9` while a create sent at its turn (after waiting for it) waits for its answer",
    'the same request again: "A create was sent but its answer was lost ... may have been '
    'charged"; nothing is sent again',
    "rows `uncertain` (back to `creating` before the create was sent); 2 creates, 10 credits",
    "test_cli_process.py::test_kill_9_during_a_create_sent_at_its_turn_is_uncertain_as_before",
)
pointer_row(
    AREA,
    "the shared database (PostgreSQL) goes away while a create waits for its turn",
    "the database's one line (host and port, never the password); nothing is sent; queued "
    "again once the database is back, the task is created once",
    "the row `rejected` (0 credits, written when the database answered again), never moved "
    "back to `creating`; no `uncertain` row; 2 creates, 10 credits (1 took the turn first)",
    "test_journal_pg_turns.py::"
    "test_the_database_going_away_while_a_create_waits_for_its_turn_sends_nothing",
)
