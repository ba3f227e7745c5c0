"""The daily credit limit against the sandbox: no over-spend, whole runs refused, free work never.

Every test counts the sandbox ledger's creates and credits, because the promise is about money:
with a limit of Y credits, what the API charged today never passes Y, however many threads,
nodes or processes ask at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
journal_mod = submodule("journal")
spend = submodule("journal.spend_limit")

PROMPT = "a red kite over a wheat field"
TESTS_DIR = Path(__file__).resolve().parent
WAIT_LIMIT_S = 60.0


def make_runner(tmp_path, sb, limit=None, clock=time.time, **client_options):
    def client():
        settings = api.Settings(api_key=TEST_KEY, base_url=sb.base_url, **client_options)
        return api.GrokClient(settings, poll=api.PollSchedule().scaled(0.05))

    return journal_mod.TaskRunner(
        client,
        journal=journal_mod.Journal(tmp_path / "journal.sqlite"),
        files=journal_mod.FileStore(tmp_path / "files"),
        daily_limit=lambda: spend.DailyLimit(limit, "env" if limit is not None else None),
        clock=clock,
    )


def ledger(sb):
    entry = sb.ledger(TEST_KEY)
    return entry.creates, entry.credits_charged


def run_node(runner, seeds, index_count=1):
    """What a node does: reserve the run's creates, then run each task."""
    requests = [
        runner.text_to_image_request(PROMPT, seed=seed, index=index)
        for seed in seeds
        for index in range(index_count)
    ]
    with runner.reserve(requests):
        return [
            runner.text_to_image(PROMPT, seed=r.seed, index=r.index) for r in requests
        ]  # fmt: skip


# -- refusing before anything is sent ------------------------------------------------------------


def test_a_run_over_the_limit_is_refused_whole_with_one_line(tmp_path, sandbox):
    runner = make_runner(tmp_path, sandbox, limit=12)
    with pytest.raises(spend.SpendLimitError) as caught:
        run_node(runner, seeds=[1], index_count=3)  # 15 credits
    message = str(caught.value)
    assert message == (
        "Daily credit limit reached: spent 0 of 12 credits today, this run needs 15 more, so "
        f"nothing was sent. To go on, raise or unset {spend.DAILY_LIMIT_ENV} in ComfyUI's "
        "environment and restart ComfyUI, or wait until tomorrow."
    )
    assert caught.value.line(errors.Surface.CLI) == (
        "Daily credit limit reached: spent 0 of 12 credits today, this run needs 15 more, so "
        f"nothing was sent. To go on, raise or unset {spend.DAILY_LIMIT_ENV}, or wait until "
        "tomorrow."
    )
    assert isinstance(caught.value, errors.GrokError) and "\n" not in message
    assert (caught.value.spent, caught.value.limit, caught.value.need) == (0, 12, 15)
    assert ledger(sandbox) == (0, 0)
    assert runner.journal.count() == 0  # not even a reservation is left behind

    run_node(runner, seeds=[1], index_count=2)  # 10 credits fit
    assert ledger(sandbox) == (2, 10)
    with pytest.raises(spend.SpendLimitError) as caught:
        run_node(runner, seeds=[2])
    assert (caught.value.spent, caught.value.need) == (10, 5)
    assert ledger(sandbox) == (2, 10)


def test_the_settings_entry_is_named_when_the_limit_comes_from_settings(tmp_path, sandbox):
    runner = make_runner(tmp_path, sandbox)
    settings = tmp_path / spend.SETTINGS_FILE_NAME
    runner.daily_limit = lambda: spend.DailyLimit(0, "settings", settings)
    with pytest.raises(spend.SpendLimitError) as caught:
        runner.text_to_image(PROMPT, seed=1)
    assert str(caught.value).endswith(
        "To go on, raise it in Settings \u203a Grok Imagine \u203a Daily credit limit, or wait "
        "until tomorrow."
    )
    # On the command line the same refusal names the file that set the limit.
    assert caught.value.line(errors.Surface.CLI).endswith(
        f"To go on, raise daily_credit_limit in {settings} (or set {spend.DAILY_LIMIT_ENV}, which "
        "wins), or wait until tomorrow."
    )
    assert ledger(sandbox) == (0, 0)


def test_parallel_tasks_of_threads_never_overspend(tmp_path, sandbox_factory):
    """Twelve single tasks at once (threads of one process, distinct seeds), room for four."""
    sb = sandbox_factory(generation_time=(0.2, 0.2))
    runner = make_runner(tmp_path, sb, limit=20)
    barrier = threading.Barrier(12)
    done, refused, other = [], [], []

    def task(seed):
        barrier.wait()
        try:
            done.append(runner.text_to_image(PROMPT, seed=seed))
        except spend.SpendLimitError as exc:
            refused.append(exc)
        except BaseException as exc:  # pragma: no cover - reported below
            other.append(exc)

    threads = [threading.Thread(target=task, args=(seed,)) for seed in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT_LIMIT_S)
    assert not other and (len(done), len(refused)) == (4, 8)
    assert ledger(sb) == (4, 20)
    assert runner.journal.spent(spend.day_start(time.time())) == 20


def test_concurrent_runs_of_nodes_in_threads_are_each_whole_or_refused(tmp_path, sandbox_factory):
    """Five nodes of three tasks (15 credits) at once with 40 credits: two run, three refused."""
    sb = sandbox_factory(generation_time=(0.2, 0.2))
    runner = make_runner(tmp_path, sb, limit=40)
    barrier = threading.Barrier(5)
    ran, refused = [], []

    def node(seed):
        barrier.wait()
        try:
            ran.append(run_node(runner, seeds=[seed], index_count=3))
        except spend.SpendLimitError as exc:
            refused.append(exc)

    threads = [threading.Thread(target=node, args=(seed,)) for seed in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT_LIMIT_S)
    assert (len(ran), len(refused)) == (2, 3)
    assert all(len(results) == 3 for results in ran)
    assert ledger(sb) == (6, 30)


NODE_PROCESS = """
import os, sys, time
sys.path.insert(0, {tests_dir!r})
from support import submodule
from support.api_names import public_api
api = public_api()
journal = submodule("journal")
spend = submodule("journal.spend_limit")
settings = api.load_settings()
runner = journal.TaskRunner(
    lambda: api.GrokClient(settings, poll=api.PollSchedule().scaled(0.05)),
    journal=journal.Journal({journal_path!r}),
    files=journal.FileStore({files_root!r}),
    daily_limit=lambda: spend.read_daily_limit(None),
)
ready = {ready!r}
open(ready + "." + str(os.getpid()), "w").close()
while not os.path.exists(ready):
    time.sleep(0.005)
seed = int(sys.argv[1])
requests = [runner.text_to_image_request({prompt!r}, seed=seed, index=i) for i in range(2)]
try:
    with runner.reserve(requests):
        results = [runner.text_to_image({prompt!r}, seed=seed, index=i) for i in range(2)]
except spend.SpendLimitError as exc:
    print("refused", exc.spent, exc.need, flush=True)
else:
    print("ran", len(results), flush=True)
"""


def test_concurrent_processes_sharing_the_journal_never_overspend(tmp_path, sandbox_factory):
    """Four processes, each a node of two tasks (10 credits), 25 credits: exactly two run."""
    sb = sandbox_factory(generation_time=(0.2, 0.2))
    go = tmp_path / "go"
    script = NODE_PROCESS.format(
        tests_dir=str(TESTS_DIR),
        journal_path=str(tmp_path / "journal.sqlite"),
        files_root=str(tmp_path / "files"),
        ready=str(go),
        prompt=PROMPT,
    )
    env = {
        **os.environ,
        "APIINONE_API_KEY": TEST_KEY,
        "APIINONE_BASE_URL": sb.base_url,
        spend.DAILY_LIMIT_ENV: "25",
    }
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(seed)], env=env, stdout=subprocess.PIPE, text=True
        )
        for seed in range(4)
    ]
    try:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while len(list(tmp_path.glob("go.*"))) < 4:
            assert time.monotonic() < deadline, "the processes never got ready"
            time.sleep(0.02)
        go.touch()
        outputs = [c.communicate(timeout=WAIT_LIMIT_S)[0].split() for c in children]
    finally:
        for c in children:
            c.kill()
            c.wait(timeout=WAIT_LIMIT_S)
    assert [c.returncode for c in children] == [0, 0, 0, 0]
    assert sorted(out[0] for out in outputs) == ["ran", "ran", "refused", "refused"]
    assert ledger(sb) == (4, 20)


# -- what costs nothing is never refused ----------------------------------------------------------


def test_reused_and_resumed_requests_are_never_refused(tmp_path, sandbox_factory):
    sb = sandbox_factory(generation_time=(1.0, 1.0))
    runner = make_runner(tmp_path, sb, limit=10)
    first = run_node(runner, seeds=[1])[0]
    # The second task is cancelled while it runs: paid, unfinished, resumable.
    seen = []
    hooks = journal_mod.RunHooks(on_event=seen.append, should_cancel=lambda: len(seen) > 1)
    with pytest.raises(errors.CancelledError):
        runner.text_to_image(PROMPT, seed=2, hooks=hooks)
    assert ledger(sb) == (2, 10)

    runner.daily_limit = lambda: spend.DailyLimit(0, "env")  # now nothing new is allowed
    again = run_node(runner, seeds=[1, 2])  # one reused, one resumed: needs 0
    assert again[0].reused and again[0].task_id == first.task_id
    assert again[1].resumed and again[1].files
    assert ledger(sb) == (2, 10)
    with pytest.raises(spend.SpendLimitError):
        run_node(runner, seeds=[3])
    assert ledger(sb) == (2, 10)


def test_a_free_run_goes_on_even_when_the_limit_cannot_be_read(tmp_path, sandbox):
    runner = make_runner(tmp_path, sandbox)
    kept = run_node(runner, seeds=[1])[0]

    def unreadable():
        return spend.read_daily_limit(None, {spend.DAILY_LIMIT_ENV: "ten"})

    runner.daily_limit = unreadable
    assert run_node(runner, seeds=[1])[0].task_id == kept.task_id
    with pytest.raises(spend.SpendLimitConfigError) as caught:
        run_node(runner, seeds=[2])
    assert spend.DAILY_LIMIT_ENV in str(caught.value)
    with pytest.raises(spend.SpendLimitConfigError):
        runner.text_to_image(PROMPT, seed=3)
    assert ledger(sandbox) == (1, 5)


def test_failed_tasks_are_not_counted(tmp_path, sandbox):
    runner = make_runner(tmp_path, sandbox, limit=5)
    sandbox.faults.failure_rate = 1.0
    with pytest.raises(errors.TaskFailedError):
        run_node(runner, seeds=[1])
    sandbox.faults.failure_rate = 0.0
    assert ledger(sandbox) == (1, 0)  # the failed task was refunded
    result = run_node(runner, seeds=[1])[0]  # its retry fits in the 5 credits
    assert result.files and ledger(sandbox) == (2, 5)


def test_a_refused_create_is_not_counted(tmp_path, sandbox):
    runner = make_runner(tmp_path, sandbox, limit=5)
    sandbox.faults.create_errors = [422]
    with pytest.raises(errors.GrokError):
        runner.text_to_image(PROMPT, seed=1)
    assert runner.journal.spent(spend.day_start(time.time())) == 0
    runner.text_to_image(PROMPT, seed=1)
    assert ledger(sandbox) == (1, 5)


def test_an_uncertain_create_counts_fail_closed(tmp_path, sandbox):
    runner = make_runner(tmp_path, sandbox, limit=5, read_timeout=0.3)
    sandbox.faults.create_response_delay = 1.5
    with pytest.raises(errors.UncertainCreateError):
        runner.text_to_image(PROMPT, seed=1)
    sandbox.faults.create_response_delay = 0
    with pytest.raises(spend.SpendLimitError) as caught:
        runner.text_to_image(PROMPT, seed=2)
    assert caught.value.spent == 5
    deadline = time.monotonic() + WAIT_LIMIT_S
    while ledger(sandbox) != (1, 5):
        assert time.monotonic() < deadline
        time.sleep(0.02)


# -- the day --------------------------------------------------------------------------------------


def test_spending_counts_for_the_local_day_it_happened(tmp_path, sandbox):
    today = time.time()
    runner = make_runner(tmp_path, sandbox, limit=5, clock=lambda: today)
    run_node(runner, seeds=[1])
    with pytest.raises(spend.SpendLimitError):
        run_node(runner, seeds=[2])
    tomorrow = spend.day_start(today) + 86400 + 3600  # an hour into the next local day
    runner.clock = lambda: tomorrow
    run_node(runner, seeds=[2])  # yesterday's 5 credits no longer count
    assert ledger(sandbox) == (2, 10)
    assert runner.journal.spent(spend.day_start(today)) == 10
    assert runner.journal.spent(spend.day_start(tomorrow)) == 0  # the rows carry today's time


@pytest.mark.parametrize("zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata"])
def test_day_and_month_start_are_local_midnight(monkeypatch, zone):
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        # 2026-03-08 is the US switch to daylight time: the day is 23 hours long there.
        noon = time.mktime((2026, 3, 8, 12, 0, 0, 0, 0, -1))
        start = spend.day_start(noon)
        assert time.localtime(start)[:6] == (2026, 3, 8, 0, 0, 0)
        assert spend.day_start(start) == start
        assert spend.day_start(start - 1) < start
        assert time.localtime(start - 1)[:3] == (2026, 3, 7)
        assert time.localtime(spend.month_start(noon))[:6] == (2026, 3, 1, 0, 0, 0)
    finally:
        monkeypatch.undo()
        time.tzset()


# -- where the limit comes from -------------------------------------------------------------------


def test_the_environment_wins_over_the_settings_file(tmp_path):
    settings = tmp_path / spend.SETTINGS_FILE_NAME
    assert spend.read_daily_limit(settings, {}) == spend.NO_LIMIT
    spend.write_daily_limit(settings, 30)
    assert json.loads(settings.read_text()) == {"daily_credit_limit": 30}
    assert spend.read_daily_limit(settings, {}) == spend.DailyLimit(30, "settings", settings)
    env = {spend.DAILY_LIMIT_ENV: " 7 "}
    assert spend.read_daily_limit(settings, env) == spend.DailyLimit(7, "env")
    spend.write_daily_limit(settings, None)
    assert spend.read_daily_limit(settings, {}) == spend.NO_LIMIT


@pytest.mark.parametrize("raw", ["ten", "-1", "2.5", "1e3", "99999999999"])
def test_an_unreadable_limit_is_a_one_line_error(raw):
    with pytest.raises(spend.SpendLimitConfigError) as caught:
        spend.read_daily_limit(None, {spend.DAILY_LIMIT_ENV: raw})
    assert spend.DAILY_LIMIT_ENV in str(caught.value) and "\n" not in str(caught.value)


def test_a_damaged_settings_file_refuses_until_saved_again(tmp_path):
    settings = tmp_path / spend.SETTINGS_FILE_NAME
    settings.write_text("{not json")
    with pytest.raises(spend.SpendLimitConfigError) as caught:
        spend.read_daily_limit(settings, {})
    assert str(caught.value) == (
        f"The Grok Imagine settings file {settings} is damaged. Save the daily credit limit "
        "again in Settings \u203a Grok Imagine \u203a Daily credit limit."
    )
    assert caught.value.line(errors.Surface.CLI) == (
        f"The Grok Imagine settings file {settings} is damaged. Fix or delete that file (it "
        f"holds daily_credit_limit), or set {spend.DAILY_LIMIT_ENV}, which wins over it."
    )
    spend.write_daily_limit(settings, 12)
    assert spend.read_daily_limit(settings, {}).credits == 12
