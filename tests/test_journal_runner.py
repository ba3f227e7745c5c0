"""Never pay twice, never lose a paid image: the runner against the sandbox.

Every test counts what the sandbox's ledger says was created and charged, because that is the
promise: the number of creates is the number of deliberate requests, nothing more.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import submodule
from support.api_names import public_api
from support.journal_views import history as journal_history
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
journal_mod = submodule("journal")
owner_mod = submodule("journal.owner")
events = submodule("journal.events")

KEY = TEST_KEY
PROMPT = "a lighthouse in a storm, oil painting"
TESTS_DIR = Path(__file__).resolve().parent
WAIT_LIMIT_S = 60.0  # generous bound for anything that waits on another thread or process


def _poll():
    return api.PollSchedule().scaled(0.05)  # reads every ~25 ms: sandbox tasks take 50-600 ms


@pytest.fixture
def sb(sandbox):
    return sandbox


class Counted:
    """A client factory that counts how often the runner asked for a client."""

    def __init__(self, sb, **client_options):
        self.base_url = sb.base_url
        self.client_options = client_options
        self.calls = 0

    def __call__(self):
        self.calls += 1
        settings = api.Settings(api_key=KEY, base_url=self.base_url, **self.client_options)
        return api.GrokClient(settings, poll=_poll())


def make_runner(tmp_path, sb, api_base="", **client_options):
    factory = Counted(sb, **client_options)
    runner = journal_mod.TaskRunner(
        factory,
        journal=journal_mod.Journal(tmp_path / "journal.sqlite"),
        files=journal_mod.FileStore(tmp_path / "files"),
        api_base=api_base,
    )
    return runner, factory


def ledger(sb):
    entry = sb.ledger(KEY)
    return entry.creates, entry.credits_charged


def _wait_until(predicate, what):
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


# -- finished work is served from disk ------------------------------------------------------------


def test_same_request_again_costs_nothing_even_with_the_api_gone(tmp_path, sb):
    runner, factory = make_runner(tmp_path, sb)
    first = runner.text_to_image(PROMPT, "3:2", seed=1)
    assert not first.reused and not first.resumed
    assert len(first.files) == len(first.urls) >= 1
    assert all(p.is_file() and p.parent == tmp_path / "files" / first.task_id for p in first.files)
    assert ledger(sb) == (1, 5)

    again = runner.text_to_image(PROMPT, "3:2", seed=1)
    assert again.reused and again.task_id == first.task_id and again.files == first.files
    assert factory.calls == 1  # the factory was not even called the second time
    assert ledger(sb) == (1, 5)

    sb.stop()  # the API is gone; the kept result still comes back
    offline = runner.text_to_image(PROMPT, "3:2", seed=1)
    assert offline.reused and offline.files == first.files and factory.calls == 1


def test_each_input_is_its_own_request(tmp_path, sb):
    runner, _ = make_runner(tmp_path, sb)
    ids = {
        runner.text_to_image(PROMPT, seed=1).task_id,
        runner.text_to_image(PROMPT, seed=2).task_id,
        runner.text_to_image(PROMPT, seed=1, index=1).task_id,
        runner.text_to_image(PROMPT, "1:1", seed=1).task_id,
    }
    assert len(ids) == 4 and ledger(sb) == (4, 20)


def test_kept_files_missing_are_downloaded_again_without_a_create(tmp_path, sb):
    runner, _ = make_runner(tmp_path, sb)
    first = runner.text_to_image(PROMPT, seed=1)
    first.files[0].unlink()
    first.files[-1].write_bytes(b"damaged")
    again = runner.text_to_image(PROMPT, seed=1)
    assert not again.reused and again.task_id == first.task_id
    middle = slice(1, -1)
    assert [p.read_bytes() for p in again.files][middle] == [p.read_bytes() for p in first.files][
        middle
    ]
    assert again.files[0].is_file() and again.files[-1].read_bytes() != b"damaged"
    assert ledger(sb) == (1, 5)


def test_expired_urls_do_not_matter_while_the_files_are_kept(tmp_path, sandbox_factory):
    # Long enough for the six downloads (each decoded before it is kept) on a busy machine.
    sb = sandbox_factory(file_expiry=1.5)
    runner, factory = make_runner(tmp_path, sb)
    first = runner.text_to_image(PROMPT, seed=1)
    assert len(first.files) == 6
    time.sleep(1.7)  # now every result URL answers 410
    again = runner.text_to_image(PROMPT, seed=1)
    assert again.reused and again.files == first.files and factory.calls == 1

    for path in first.files:  # lose the copies too: the error says what happened and what to do
        path.unlink()
    with pytest.raises(errors.ResultExpiredError) as caught:
        runner.text_to_image(PROMPT, seed=1)
    message = str(caught.value)
    assert first.task_id in message and "expired" in message and "seed" in message
    assert ledger(sb) == (1, 5)


# -- unfinished work is resumed -------------------------------------------------------------------


def test_resume_after_cancel(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(1.0, 1.0))
    runner, _ = make_runner(tmp_path, sb)
    seen = []
    hooks = journal_mod.RunHooks(
        on_event=lambda event: seen.extend(_task_ids(event, events.TaskUpdated)),
        should_cancel=lambda: bool(seen),
    )
    with pytest.raises(errors.CancelledError):
        runner.text_to_image(PROMPT, seed=3, hooks=hooks)
    task_id = seen[0]
    assert runner.journal.get(task_id).state in ("queued", "running")

    seen_events = []
    result = runner.text_to_image(
        PROMPT, seed=3, hooks=journal_mod.RunHooks(on_event=seen_events.append)
    )
    assert result.resumed and result.task_id == task_id and result.files and result.credits == 0
    (resumed,) = [e for e in seen_events if isinstance(e, events.TaskResumed)]
    assert resumed.task_id == task_id
    assert not any(isinstance(e, events.TaskCreated) for e in seen_events)
    assert ledger(sb) == (1, 5)


def test_resume_after_node_timeout(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(1.0, 1.0))
    runner, _ = make_runner(tmp_path, sb)
    with pytest.raises(errors.TaskTimeoutError) as caught:
        runner.text_to_image(PROMPT, seed=4, timeout=0.2)
    result = runner.text_to_image(PROMPT, seed=4)
    assert result.resumed and result.task_id == caught.value.task_id
    assert ledger(sb) == (1, 5)


KILLED_RUNNER = """
import sys
sys.path.insert(0, {tests_dir!r})
from support import submodule
from support.api_names import public_api
api = public_api()
journal = submodule("journal")
settings = api.load_settings()
runner = journal.TaskRunner(
    lambda: api.GrokClient(settings, poll=api.PollSchedule().scaled(0.05)),
    journal=journal.Journal({journal_path!r}),
    files=journal.FileStore({files_root!r}),
)
runner.text_to_image({prompt!r}, seed={seed})
print("finished: the test should have killed this process", flush=True)
"""


def _child_env(sb):
    return {**os.environ, "APIINONE_API_KEY": KEY, "APIINONE_BASE_URL": sb.base_url}


def test_resume_after_the_process_is_killed_mid_poll(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(1.5, 1.5))
    runner, _ = make_runner(tmp_path, sb)
    script = KILLED_RUNNER.format(
        tests_dir=str(TESTS_DIR),
        journal_path=str(tmp_path / "journal.sqlite"),
        files_root=str(tmp_path / "files"),
        prompt=PROMPT,
        seed=5,
    )
    child = subprocess.Popen([sys.executable, "-c", script], env=_child_env(sb))
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=5)
    try:
        _wait_until(
            lambda: (e := runner.journal.latest(identity)) is not None and e.task_id is not None,
            "the child to record its task id",
        )
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=WAIT_LIMIT_S)
    assert child.returncode == -signal.SIGKILL
    entry = runner.journal.latest(identity)
    assert entry.state in ("queued", "running") and entry.owner.pid == child.pid

    result = runner.text_to_image(PROMPT, seed=5)
    assert result.resumed and result.task_id == entry.task_id and result.files
    assert ledger(sb) == (1, 5)


# -- one create for two identical requests at once ------------------------------------------------


def test_two_identical_requests_in_threads_make_one_create(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(0.3, 0.3))
    runner, _ = make_runner(tmp_path, sb)
    barrier = threading.Barrier(3)
    results, failures = [], []

    def node():
        barrier.wait()
        try:
            results.append(runner.text_to_image(PROMPT, seed=6))
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=node) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT_LIMIT_S)
    assert not failures and len(results) == 3
    assert len({r.task_id for r in results}) == 1
    assert sum(not r.reused for r in results) == 1  # the others got the kept files
    assert ledger(sb) == (1, 5)


def test_a_waiting_duplicate_can_be_cancelled(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(1.0, 1.0))
    runner, _ = make_runner(tmp_path, sb)
    first_created = threading.Event()
    results = []
    first = threading.Thread(
        target=lambda: results.append(
            runner.text_to_image(
                PROMPT,
                seed=20,
                hooks=journal_mod.RunHooks(
                    on_event=lambda event: (
                        isinstance(event, events.TaskCreated) and first_created.set()
                    )
                ),
            )
        )
    )
    first.start()
    try:
        assert first_created.wait(WAIT_LIMIT_S)
        waited = []
        hooks = journal_mod.RunHooks(
            on_event=waited.append, should_cancel=lambda: bool(waited)
        )  # cancel as soon as it says it is waiting for the other thread
        with pytest.raises(errors.CancelledError) as caught:
            runner.text_to_image(PROMPT, seed=20, hooks=hooks)
        assert isinstance(waited[0], events.WaitingForThread)
        assert "already running in this process" in events.describe(waited[0])
        assert "nothing was charged" in str(caught.value)
    finally:
        first.join(timeout=WAIT_LIMIT_S)
    assert len(results) == 1 and ledger(sb) == (1, 5)


CONCURRENT_RUNNER = """
import sys
sys.path.insert(0, {tests_dir!r})
from support import submodule
from support.api_names import public_api
api = public_api()
journal = submodule("journal")
settings = api.load_settings()
runner = journal.TaskRunner(
    lambda: api.GrokClient(settings, poll=api.PollSchedule().scaled(0.05)),
    journal=journal.Journal({journal_path!r}),
    files=journal.FileStore({files_root!r}),
)
ready = {ready!r}
open(ready + "." + str(__import__("os").getpid()), "w").close()
import os, time
while not os.path.exists(ready):
    time.sleep(0.005)
result = runner.text_to_image({prompt!r}, seed={seed})
print(result.task_id, result.reused, result.resumed, flush=True)
"""


def test_two_identical_requests_in_processes_make_one_create(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(0.3, 0.3))
    go = tmp_path / "go"
    script = CONCURRENT_RUNNER.format(
        tests_dir=str(TESTS_DIR),
        journal_path=str(tmp_path / "journal.sqlite"),
        files_root=str(tmp_path / "files"),
        ready=str(go),
        prompt=PROMPT,
        seed=7,
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script], env=_child_env(sb), stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    try:
        _wait_until(lambda: len(list(tmp_path.glob("go.*"))) == 2, "both processes to be ready")
        go.touch()  # both start their request at the same moment
        outputs = [c.communicate(timeout=WAIT_LIMIT_S)[0].split() for c in children]
    finally:
        for c in children:
            c.kill()
            c.wait(timeout=WAIT_LIMIT_S)
    assert [c.returncode for c in children] == [0, 0]
    assert len({out[0] for out in outputs}) == 1  # the same task for both
    assert ledger(sb) == (1, 5)


def test_waits_for_another_live_process_that_is_creating(tmp_path, sb):
    """A row in `creating` owned by a live process: wait for its task id, then share the task."""
    runner, _ = make_runner(tmp_path, sb)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=8)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        start = owner_mod._linux_start_time(other.pid)
        if start is None:
            pytest.skip("needs /proc to describe another process")
        with runner.journal.claim(identity) as claim:
            entry = claim.start_create()
        runner.journal._db.execute(
            lambda c: c.execute(
                "UPDATE requests SET owner_pid = ?, owner_marker = ? WHERE id = ?",
                (other.pid, f"linux-start:{start}", entry.id),
            )
        )
        statuses = []
        waiting = threading.Event()

        def on_event(event):
            statuses.append(event)
            if isinstance(event, events.WaitingForProcess):
                waiting.set()

        def other_process_finishes_its_create():
            assert waiting.wait(WAIT_LIMIT_S)  # the runner is waiting on the row now
            with api.GrokClient(api.Settings(api_key=KEY, base_url=sb.base_url)) as client:
                runner.journal.record_task_id(entry, client.create_text_to_image(PROMPT))

        helper = threading.Thread(target=other_process_finishes_its_create)
        helper.start()
        result = runner.text_to_image(
            PROMPT,
            seed=8,
            timeout=WAIT_LIMIT_S,
            hooks=journal_mod.RunHooks(on_event=on_event),
        )
        helper.join(timeout=WAIT_LIMIT_S)
    finally:
        other.stdin.close()
        other.wait(timeout=WAIT_LIMIT_S)
    assert events.WaitingForProcess(other.pid) in statuses
    assert f"process {other.pid} is creating" in events.describe(
        events.WaitingForProcess(other.pid)
    )
    assert result.resumed and result.files
    assert ledger(sb) == (1, 5)


# -- a lost answer is never re-sent silently -------------------------------------------------------


def test_uncertain_create_is_reported_not_resent(tmp_path, sb):
    runner, _ = make_runner(tmp_path, sb, read_timeout=0.3)
    sb.faults.create_response_delay = 1.5
    with pytest.raises(errors.UncertainCreateError) as caught:
        runner.text_to_image(PROMPT, seed=9)
    message = str(caught.value)
    for hint in (
        "may have been charged",
        "dashboard",
        "sidebar tab",
        "Fetch",
        "Not created",
        "seed",
    ):
        assert hint in message
    assert KEY not in message
    _wait_until(lambda: ledger(sb) == (1, 5), "the sandbox to finish taking the create")

    sb.faults.create_response_delay = 0
    with pytest.raises(errors.UncertainCreateError):  # queued again: still not re-sent
        runner.text_to_image(PROMPT, seed=9)
    assert ledger(sb) == (1, 5)
    assert (
        runner.journal.latest(journal_mod.RequestIdentity.text_to_image(PROMPT, seed=9)).state
        == "uncertain"
    )

    runner.text_to_image(PROMPT, seed=10)  # a new seed is a deliberate new task
    assert ledger(sb) == (2, 10)


def test_row_left_creating_by_a_dead_process_is_uncertain(tmp_path, sb):
    runner, factory = make_runner(tmp_path, sb)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=11)
    with runner.journal.claim(identity) as claim:
        entry = claim.start_create()
    runner.journal._db.execute(  # as if written by a process that was killed mid-create
        lambda c: c.execute(
            "UPDATE requests SET owner_pid = ?, owner_marker = ? WHERE id = ?",
            (os.getpid(), "linux-start:0-a-process-long-gone", entry.id),
        )
    )
    with pytest.raises(journal_mod.UncertainTaskError) as caught:
        runner.text_to_image(PROMPT, seed=11)
    assert "process that sent the create request ended" in str(caught.value)
    assert runner.journal.latest(identity).state == "uncertain"
    assert ledger(sb) == (0, 0) and factory.calls == 0


def test_an_old_creating_row_is_uncertain_even_if_its_pid_is_alive(tmp_path, sb):
    """pids are reused; no create request is in flight for minutes, whoever holds the pid now."""
    runner, factory = make_runner(tmp_path, sb)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=21)
    other = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        with runner.journal.claim(identity) as claim:
            entry = claim.start_create()
        long_ago = time.time() - 2 * journal_mod.waits.CREATE_IN_FLIGHT_LIMIT_S
        runner.journal._db.execute(
            lambda c: c.execute(
                "UPDATE requests SET owner_pid = ?, owner_marker = ?, created_at = ? WHERE id = ?",
                (other.pid, "token:reused-pid", long_ago, entry.id),
            )
        )
        with pytest.raises(journal_mod.UncertainTaskError):
            runner.text_to_image(PROMPT, seed=21, timeout=WAIT_LIMIT_S)
    finally:
        other.stdin.close()
        other.wait(timeout=WAIT_LIMIT_S)
    assert ledger(sb) == (0, 0) and factory.calls == 0


# -- failures and refusals ------------------------------------------------------------------------


def test_failed_task_is_created_again_and_history_kept(tmp_path, sb):
    runner, _ = make_runner(tmp_path, sb)
    sb.faults.failure_rate = 1.0
    with pytest.raises(errors.TaskFailedError):
        runner.text_to_image(PROMPT, seed=12)
    assert ledger(sb) == (1, 0)  # created, then refunded

    sb.faults.failure_rate = 0.0
    result = runner.text_to_image(PROMPT, seed=12)
    assert not result.reused and not result.resumed and result.files
    assert ledger(sb) == (2, 5)
    history = journal_history(
        runner.journal, journal_mod.RequestIdentity.text_to_image(PROMPT, seed=12)
    )
    assert [e.state for e in history] == ["failed", "succeeded"]
    assert [e.credits for e in history] == [0, 5]


def test_refused_create_is_not_uncertain(tmp_path, sandbox_factory):
    sb = sandbox_factory(keys={KEY: 3})  # less than one text-to-image
    runner, _ = make_runner(tmp_path, sb)
    for _ in range(2):
        with pytest.raises(errors.InsufficientCreditsError):
            runner.text_to_image(PROMPT, seed=13)
    history = journal_history(
        runner.journal, journal_mod.RequestIdentity.text_to_image(PROMPT, seed=13)
    )
    assert [e.state for e in history] == ["rejected", "rejected"]
    assert ledger(sb) == (0, 0)


def test_corrupt_journal_does_not_block_generation(tmp_path, sb, caplog):
    (tmp_path / "journal.sqlite").write_bytes(b"\x00garbage, not a journal" * 200)
    runner, _ = make_runner(tmp_path, sb)
    result = runner.text_to_image(PROMPT, seed=14)
    assert result.files and ledger(sb) == (1, 5)
    assert any("was damaged" in r.getMessage() for r in caplog.records)
    assert runner.text_to_image(PROMPT, seed=14).reused


# -- upscale and load -----------------------------------------------------------------------------


def test_upscale_is_journaled_like_text_to_image(tmp_path, sb):
    runner, factory = make_runner(tmp_path, sb)
    source = runner.text_to_image(PROMPT, seed=15)
    up = runner.upscale(source.task_id, seed=15)
    assert up.files and up.task_id != source.task_id
    calls = factory.calls
    again = runner.upscale(source.task_id, seed=15)
    assert again.reused and again.files == up.files and factory.calls == calls
    assert ledger(sb) == (2, 17)


def test_load_never_creates(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(0.4, 0.4))
    with api.GrokClient(api.Settings(api_key=KEY, base_url=sb.base_url)) as client:
        task_id = client.create_text_to_image(PROMPT)  # made elsewhere, still running
    runner, factory = make_runner(tmp_path, sb)
    loaded = runner.load(task_id)
    assert loaded.files and loaded.task_id == task_id and not loaded.reused
    entry = runner.journal.get(task_id)
    assert entry.state == "succeeded" and entry.credits == 0 and entry.identity is None
    assert runner.load(task_id).reused and factory.calls == 1
    with pytest.raises(errors.TaskNotFoundError):
        runner.load("no-such-task")
    assert runner.journal.get("no-such-task") is None  # no junk row for a mistyped id
    assert ledger(sb) == (1, 5)  # only the create made outside the runner


def test_load_of_a_journaled_task_reuses_its_files(tmp_path, sb):
    runner, factory = make_runner(tmp_path, sb)
    made = runner.text_to_image(PROMPT, seed=16)
    loaded = runner.load(made.task_id)
    assert loaded.reused and loaded.files == made.files and factory.calls == 1
    assert ledger(sb) == (1, 5)


def test_the_key_is_nowhere_on_disk(tmp_path, sb):
    runner, _ = make_runner(tmp_path, sb)
    runner.text_to_image(PROMPT, seed=17)
    runner.journal.close()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_sandbox_task_never_stands_in_for_the_same_request_elsewhere(tmp_path, sandbox_factory):
    """The API's base URL is part of the identity: one journal, two APIs, same inputs -> two
    creates, and each API's task is reused only against that API."""
    first, second = sandbox_factory(), sandbox_factory()
    runner_a, _ = make_runner(tmp_path, first, api_base=first.base_url)
    runner_b, _ = make_runner(tmp_path, second, api_base=second.base_url)
    a = runner_a.text_to_image(PROMPT, seed=11)
    b = runner_b.text_to_image(PROMPT, seed=11)
    assert a.task_id != b.task_id
    assert runner_a.text_to_image(PROMPT, seed=11).reused
    assert (ledger(first), ledger(second)) == ((1, 5), (1, 5))


def test_a_stray_not_found_on_a_resumed_task_keeps_it_resumable(tmp_path, sandbox_factory):
    """A proxy's 404 (or upstream's brief "recordInfo is null") while resuming a task we created
    must not turn the paid task into a failed row that the next queue creates again."""
    sb = sandbox_factory(generation_time=(1.0, 1.0))
    runner, _ = make_runner(tmp_path, sb)
    seen = []
    hooks = journal_mod.RunHooks(
        on_event=lambda event: seen.extend(_task_ids(event, events.TaskUpdated)),
        should_cancel=lambda: bool(seen),
    )
    with pytest.raises(errors.CancelledError):
        runner.text_to_image(PROMPT, seed=21, hooks=hooks)
    sb.faults.status_errors = [404]
    with pytest.raises(errors.TaskNotFoundError):
        runner.text_to_image(PROMPT, seed=21)
    result = runner.text_to_image(PROMPT, seed=21)
    assert result.resumed and result.task_id == seen[0] and len(result.files) == 6
    assert ledger(sb) == (1, 5)


def test_cancel_while_a_create_waits_out_a_rate_limit_sends_nothing(tmp_path, sb):
    sb.faults.retry_after = 2
    sb.faults.create_errors = [429, 429]
    cancelled = threading.Event()
    threading.Timer(0.3, cancelled.set).start()
    with pytest.raises(errors.CancelledError) as caught:
        runner, _ = make_runner(tmp_path, sb)
        runner.text_to_image(
            PROMPT, seed=22, hooks=journal_mod.RunHooks(should_cancel=cancelled.is_set)
        )
    assert "nothing was charged" in str(caught.value)
    assert sb.create_requests == 1 and ledger(sb) == (0, 0)
    # Nothing was created, so the request is not "uncertain": queueing again just creates it.
    sb.faults.create_errors = []
    assert runner.text_to_image(PROMPT, seed=22).files
    assert ledger(sb) == (1, 5)


def test_one_lost_file_never_withholds_the_paid_others(tmp_path, sb):
    runner, _ = make_runner(tmp_path, sb)
    first = runner.text_to_image(PROMPT, seed=23)
    first.files[2].unlink()
    sb.faults.download = "expired"  # the one missing file can no longer be fetched
    statuses = []
    again = runner.text_to_image(
        PROMPT, seed=23, hooks=journal_mod.RunHooks(on_event=statuses.append)
    )
    assert again.task_id == first.task_id and len(again.files) == 5
    (lost,) = [e for e in statuses if isinstance(e, events.FilesLost)]
    assert (lost.task_id, lost.lost, lost.total) == (first.task_id, 1, 6)
    assert "1 of 6 result files could not be kept" in events.describe(lost)
    assert ledger(sb) == (1, 5)


def _task_ids(event, kind):
    """The task id of ``event`` when it is a ``kind`` event (a list, for ``extend``)."""
    return [event.task.id] if isinstance(event, kind) else []


# -- a create's storage probes happen before the journal's lock, not inside it -------------------


def _probes_recorded(monkeypatch, journal):
    """Every synced probe write, as (folder, whether this thread held the journal's lock)."""
    probes = []
    real_fsync = os.fsync

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if ".grok-imagine-probe-" in name:
            probes.append((Path(name).parent, journal._db.lock._is_owned()))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return probes


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a file")
def test_parallel_creates_probe_their_folders_outside_the_journal_lock(tmp_path, sb, monkeypatch):
    runner, _ = make_runner(tmp_path, sb)
    probes = _probes_recorded(monkeypatch, runner.journal)
    seeds = range(1, 5)
    threads = [threading.Thread(target=runner.text_to_image, args=(PROMPT,), kwargs={"seed": s})
               for s in seeds]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_LIMIT_S)
    assert ledger(sb) == (4, 20)
    # Each create proved both folders writable (journal's and kept files'), and neither probe
    # made the other creates wait on the journal's lock.
    folders = sorted(str(folder) for folder, _ in probes)
    assert folders == sorted([str(tmp_path)] * 4 + [str(tmp_path / "files")] * 4)
    assert not any(under_lock for _, under_lock in probes)
    # Served again: no probe at all (free work never asks for a writable disk).
    probes.clear()
    runner.text_to_image(PROMPT, seed=1)
    assert probes == [] and ledger(sb) == (4, 20)
