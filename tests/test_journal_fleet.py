"""A fleet: several worker processes, each with its own home and files, one shared PostgreSQL
journal, one sandbox account. The promises of one machine must hold across them, counted in
creates and credits at the sandbox.

Workers are the real command line (``grok-imagine generate ... --journal-url``), except where a
test needs a long-lived worker (a ComfyUI server outliving a database outage).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pg_cluster import PASSWORD
from support import submodule
from support.keys import TEST_KEY

journal_mod = submodule("journal")
open_mod = submodule("journal.open")

KEY = TEST_KEY
PROMPT = "a fleet of paper boats on a pond"
TESTS_DIR = Path(__file__).resolve().parent
WAIT_LIMIT_S = 90.0

CLI_WORKER = """
import sys
sys.path.insert(0, {tests_dir!r})
from support import submodule
sys.exit(submodule("cli").main(sys.argv[1:]))
"""


def _env(sb, **extra):
    return {
        **os.environ,
        "APIINONE_API_KEY": KEY,
        "APIINONE_BASE_URL": sb.base_url,
        "GROK_IMAGINE_POLL_SCALE": "0.05",
        **extra,
    }


def worker(tmp_path, name, sb, url, *args, **env):
    """A worker process running ``generate PROMPT *args`` with its own home, on the shared URL."""
    home = tmp_path / name
    argv = [sys.executable, "-c", CLI_WORKER.format(tests_dir=str(TESTS_DIR)), "generate", PROMPT,
            "--home", str(home), "-o", str(home / "out"), "--journal-url", url, *args]  # fmt: skip
    return subprocess.Popen(
        argv, env=_env(sb, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process):
    out, err = process.communicate(timeout=WAIT_LIMIT_S)
    return process.returncode, out, err


def ledger(sb):
    entry = sb.ledger(KEY)
    return entry.creates, entry.credits_charged


def _wait_until(predicate, what, limit=WAIT_LIMIT_S):
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def _kept(tmp_path, name):
    """The kept result files (not the hidden ``.request.json`` each task folder holds)."""
    return sorted(p for p in (tmp_path / name / "files").glob("*/*") if not p.name.startswith("."))


@pytest.fixture
def watcher(pg_url):
    journal = open_mod.open_journal(pg_url, rate=None)
    yield journal
    journal.close()


def test_the_same_request_on_three_workers_at_once_makes_one_create(
    tmp_path, sandbox_factory, pg_url
):
    sb = sandbox_factory(generation_time=(0.5, 0.5))
    workers = [worker(tmp_path, f"w{i}", sb, pg_url, "--seed", "1") for i in range(3)]
    outcomes = [finish(w) for w in workers]
    assert [code for code, _, _ in outcomes] == [0, 0, 0], [err for _, _, err in outcomes]
    assert ledger(sb) == (1, 5)
    for i in range(3):  # every worker has the images, in its own folder
        assert len(_kept(tmp_path, f"w{i}")) == 6
    outputs = [sorted(p.name for p in (tmp_path / f"w{i}" / "out").iterdir()) for i in range(3)]
    assert outputs[0] == outputs[1] == outputs[2]  # the same task id on all three


def test_a_worker_killed_mid_poll_is_resumed_by_another(tmp_path, sandbox_factory, pg_url, watcher):
    sb = sandbox_factory(generation_time=(2.0, 2.0))
    a = worker(tmp_path, "a", sb, pg_url, "--seed", "2")
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=2, api_base=sb.base_url)
    try:
        _wait_until(
            lambda: (e := watcher.latest(identity)) is not None and e.task_id is not None,
            "worker A to record its task id",
        )
        a.send_signal(signal.SIGKILL)
    finally:
        a.kill()
        a.wait(timeout=WAIT_LIMIT_S)
    assert a.returncode == -signal.SIGKILL
    left = watcher.latest(identity)
    assert left.state in ("queued", "running") and not _kept(tmp_path, "a")

    code, _, err = finish(worker(tmp_path, "b", sb, pg_url, "--seed", "2"))
    assert code == 0, err
    assert "resumed" in err and left.task_id in err
    assert ledger(sb) == (1, 5) and len(_kept(tmp_path, "b")) == 6


def test_a_worker_killed_mid_create_leaves_it_uncertain_for_the_fleet(
    tmp_path, sandbox_factory, pg_url, watcher
):
    sb = sandbox_factory()
    sb.faults.create_response_delay = 30.0  # the create is taken, its answer never comes back
    a = worker(tmp_path, "a", sb, pg_url, "--seed", "3")
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=3, api_base=sb.base_url)
    try:
        _wait_until(lambda: sb.create_requests == 1, "worker A to send its create")
        a.send_signal(signal.SIGKILL)
    finally:
        a.kill()
        a.wait(timeout=WAIT_LIMIT_S)
    assert watcher.latest(identity).state == "creating"
    sb.faults.create_response_delay = 0.0
    code, _, err = finish(worker(tmp_path, "b", sb, pg_url, "--seed", "3"))
    assert code == 3 and "may have been charged" in err and "is creating this same request" in err
    assert watcher.latest(identity).state == "uncertain"
    assert sb.create_requests == 1  # B never re-sent it


def _last_line(err):
    return err.strip().splitlines()[-1]


def test_a_worker_killed_while_its_creates_wait_for_turns_leaves_nothing_uncertain(
    tmp_path, sandbox_factory, pg_url, watcher
):
    """Worker A dies while 3 of its 4 creates wait for their turns (their rows: nothing sent).
    Once A's leases run out, worker B settles those rows as never sent and creates each once,
    under a daily limit of exactly the 4 tasks; nothing is uncertain."""
    sb = sandbox_factory(generation_time=(0.5, 0.5))
    rate = {"GROK_IMAGINE_CREATE_RATE": "1/20"}  # 1 goes at once, the others 21 s apart
    a = worker(tmp_path, "a", sb, pg_url, "--seed", "12", "--tasks", "4", **rate)
    identities = [
        journal_mod.RequestIdentity.text_to_image(PROMPT, seed=12, index=i, api_base=sb.base_url)
        for i in range(4)
    ]

    def one_sent_three_waiting():
        rows = [watcher.latest(identity) for identity in identities]
        states = sorted(str(e and e.state) for e in rows)
        return states[1:] == ["waiting"] * 3 and sum(bool(e and e.task_id) for e in rows) == 1

    try:
        _wait_until(one_sent_three_waiting, "A to send one create and wait for 3 turns")
        a.send_signal(signal.SIGKILL)
    finally:
        a.kill()
        a.wait(timeout=WAIT_LIMIT_S)
    assert a.returncode == -signal.SIGKILL
    left = [e for e in (watcher.latest(i) for i in identities) if e.state == "waiting"]
    assert len(left) == 3 and ledger(sb) == (1, 5)

    b = worker(tmp_path, "b", sb, pg_url, "--seed", "12", "--tasks", "4",
               GROK_IMAGINE_DAILY_CREDIT_LIMIT="20")  # fmt: skip
    code, _, err = finish(b)
    assert code == 0, err
    assert _last_line(err) == "Done: 3 new (15 credits charged), 1 resumed (no new charge)."
    assert "may have been charged" not in err
    assert ledger(sb) == (4, 20) and sb.create_requests == 4 and watcher.uncertain() == []
    for row in left:
        settled = watcher.entry(row.id)
        assert (settled.state, settled.credits, settled.task_id) == ("rejected", 0, None)
        assert settled.error == submodule("journal.runner").NEVER_SENT
    done = [watcher.latest(i) for i in identities]
    assert all(e.state == "succeeded" and e.credits == 5 for e in done)
    assert len({e.task_id for e in done}) == 4


def test_a_waiting_row_another_worker_settled_is_never_sent_by_its_own(
    tmp_path, sandbox_factory, pg_url
):
    """Worker A's create waits for its turn and A stalls (its lease runs out, A is not dead).
    Worker B settles A's row as never sent and creates the task; when A asks for its turn again
    it is refused: the conditional move back to `creating` finds the row settled."""
    sb = sandbox_factory(generation_time=(0.3, 0.3))
    pacing = submodule("journal.pacing")
    a = open_mod.open_journal(pg_url, rate=pacing.CreateRate(1, 30.0))
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=21, api_base=sb.base_url)
    try:
        blocker = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=20, api_base=sb.base_url)
        with a.claim(blocker) as claim:
            a.create_turn(claim.start_create())  # the window's one turn (never sent)
        with a.claim(identity) as claim:
            entry = claim.start_create()
        assert a.create_turn(entry) > 25 and a.entry(entry.id).state == "waiting"
        a._db.release(entry.id)  # A stalls: its heartbeat no longer renews the row
        with a._db.lock:
            a._db.connection("test").execute(
                "UPDATE grok_imagine_requests SET lease_until = 0 WHERE id = %s", (entry.id,)
            )
        code, _, err = finish(worker(tmp_path, "b", sb, pg_url, "--seed", "21"))
        assert code == 0, err
        assert _last_line(err) == "Done: 1 new (5 credits charged)."
        store = submodule("journal.store")
        with pytest.raises(store.SettledWhileWaitingError):
            a.create_turn(entry)
        settled = a.entry(entry.id)
        assert (settled.state, settled.credits) == ("rejected", 0)
        assert a.latest(identity).state == "succeeded" and a.uncertain() == []
        assert ledger(sb) == (1, 5) and sb.create_requests == 1
    finally:
        a.close()


def test_a_live_workers_create_waiting_for_its_turn_is_waited_for_not_duplicated(
    tmp_path, sandbox_factory, pg_url, watcher
):
    sb = sandbox_factory(generation_time=(0.5, 0.5))
    rate = {"GROK_IMAGINE_CREATE_RATE": "1/8"}  # the second create waits 9 s for its turn
    a = worker(tmp_path, "a", sb, pg_url, "--seed", "22", "--tasks", "2", **rate)
    both = [
        journal_mod.RequestIdentity.text_to_image(PROMPT, seed=22, index=i, api_base=sb.base_url)
        for i in range(2)
    ]
    try:
        _wait_until(
            lambda: any((e := watcher.latest(i)) and e.state == "waiting" for i in both),
            "one of A's creates to wait for its turn",
        )
        code, _, err = finish(worker(tmp_path, "b", sb, pg_url, "--seed", "22", "--tasks", "2"))
        a_code, _, a_err = finish(a)
    finally:
        a.kill()
        a.wait(timeout=WAIT_LIMIT_S)
    assert a_code == 0 and _last_line(a_err) == "Done: 2 new (10 credits charged).", a_err
    assert code == 0 and "is creating this same request; waiting for it" in err, err
    assert _last_line(err) == "Done: 2 resumed (no new charge)."
    assert ledger(sb) == (2, 10) and sb.create_requests == 2


def test_finished_on_one_worker_is_free_on_another(tmp_path, sandbox, pg_url):
    code, _, err = finish(worker(tmp_path, "a", sandbox, pg_url, "--seed", "4"))
    assert code == 0, err
    code, _, err = finish(worker(tmp_path, "b", sandbox, pg_url, "--seed", "4"))
    assert code == 0, err
    assert "kept images missing, downloading them again" in err  # B's disk had none: URLs
    assert len(_kept(tmp_path, "b")) == 6
    code, _, err = finish(worker(tmp_path, "b", sandbox, pg_url, "--seed", "4"))
    assert code == 0 and "reused (free" in err  # now B's own files
    assert ledger(sandbox) == (1, 5)
    sandbox.faults.download = "expired"
    code, _, err = finish(worker(tmp_path, "c", sandbox, pg_url, "--seed", "4"))
    assert code == 3 and "have expired" in err and "--new to create a new task" in err
    assert ledger(sandbox) == (1, 5)


LONG_LIVED_WORKER = """
import os, sys, time
sys.path.insert(0, {tests_dir!r})
from support import submodule
from support.api_names import public_api
api = public_api()
journal = submodule("journal")
runner = journal.TaskRunner(
    lambda: api.GrokClient(api.load_settings(), poll=api.PollSchedule().scaled(0.05)),
    journal=journal.open_journal({url!r}),
    files=journal.FileStore({files!r}),
    api_base=api.load_settings().base_url,
)
result = runner.text_to_image({prompt!r}, seed=5)
print(result.task_id, len(result.files), flush=True)
while not os.path.exists({release!r}):
    time.sleep(0.05)
runner.journal.close()
"""


def test_the_database_stopped_mid_run_fails_closed_and_loses_nothing(
    tmp_path, sandbox_factory, pg_own_cluster
):
    import pg_cluster as pg

    url = pg.new_database(pg_own_cluster.server_url)
    sb = sandbox_factory(generation_time=(3.0, 3.0))
    release = tmp_path / "release"
    script = LONG_LIVED_WORKER.format(
        tests_dir=str(TESTS_DIR), url=url, files=str(tmp_path / "a" / "files"),
        prompt=PROMPT, release=str(release),
    )  # fmt: skip
    a = subprocess.Popen(
        [sys.executable, "-c", script], env=_env(sb), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watcher = open_mod.open_journal(url, rate=None)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=5, api_base=sb.base_url)
    try:
        _wait_until(
            lambda: (e := watcher.latest(identity)) is not None and e.task_id is not None,
            "worker A to record its task id",
        )
        pg_own_cluster.stop()  # mid-poll: A's task is paid for and still running

        code, _, err = finish(worker(tmp_path, "b", sb, url, "--seed", "6"))
        assert code == 5 and "cannot be reached" in err  # refused here: the journal
        assert f"127.0.0.1:{pg_own_cluster.port}" in err
        assert "nothing was charged" in err and PASSWORD not in err
        assert ledger(sb) == (1, 5)  # B failed closed: no create

        line = a.stdout.readline()
        assert line, a.stderr.read()
        task_id, count = line.split()  # A finished during the outage
        assert int(count) == 6 and len(_kept(tmp_path, "a")) == 6
        pg_own_cluster.start()
        _wait_until(
            lambda: (e := watcher.get(task_id)) is not None and len(e.files) == 6,
            "A's writes kept through the outage to be saved",
        )
        assert watcher.get(task_id).state == "succeeded"
        release.touch()
        assert a.wait(timeout=WAIT_LIMIT_S) == 0, a.stderr.read()
        assert "cannot be reached" in a.stderr.read()  # A said once what was going on
    finally:
        a.kill()
        a.wait(timeout=WAIT_LIMIT_S)
        watcher.close()

    code, _, err = finish(worker(tmp_path, "c", sb, url, "--seed", "5"))
    assert code == 0 and task_id in err and ledger(sb) == (1, 5)  # nothing lost: free on C
    code, _, err = finish(worker(tmp_path, "b", sb, url, "--seed", "6"))
    assert code == 0 and ledger(sb) == (2, 10)  # and B's request goes through now


def test_four_workers_share_the_accounts_create_rate(tmp_path, sandbox_factory, pg_url):
    """4 workers x 8 tasks against a sandbox that refuses a 21st create in 10 s."""
    sb = sandbox_factory(rate_limit=(20, 10.0), generation_time=(0.2, 0.5))
    started = time.monotonic()
    workers = [
        worker(tmp_path, f"w{i}", sb, pg_url, "--seed", str(100 + i), "--tasks", "8")
        for i in range(4)
    ]
    outcomes = [finish(w) for w in workers]
    wall = time.monotonic() - started
    assert [code for code, _, _ in outcomes] == [0, 0, 0, 0], [err for _, _, err in outcomes]
    limited = sb.ledger(KEY).rate_limited
    print(f"\npacing: 32 tasks on 4 workers, {limited} HTTP 429, wall {wall:.1f} s")
    assert ledger(sb) == (32, 160)
    assert limited == 0
    assert any("turn to create" in err for _, _, err in outcomes)  # some waited their turn
    for i in range(4):
        assert len(_kept(tmp_path, f"w{i}")) == 48


LIMITED_NODE = """
import os, sys, time
sys.path.insert(0, {tests_dir!r})
from support import submodule
from support.api_names import public_api
api = public_api()
journal = submodule("journal")
spend = submodule("journal.spend_limit")
runner = journal.TaskRunner(
    lambda: api.GrokClient(api.load_settings(), poll=api.PollSchedule().scaled(0.05)),
    journal=journal.open_journal({url!r}),
    files=journal.FileStore(sys.argv[2]),
    api_base=api.load_settings().base_url,
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
    print("refused", flush=True)
else:
    print("ran", len(results), flush=True)
runner.journal.close()
"""


def test_the_daily_limit_counts_the_whole_fleets_spend(tmp_path, sandbox_factory, pg_url):
    """Four workers, each a node of two tasks (10 credits), a 25-credit limit: exactly two run."""
    sb = sandbox_factory(generation_time=(0.2, 0.2))
    go = tmp_path / "go"
    script = LIMITED_NODE.format(tests_dir=str(TESTS_DIR), url=pg_url, ready=str(go), prompt=PROMPT)
    env = _env(sb, GROK_IMAGINE_DAILY_CREDIT_LIMIT="25")
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(seed), str(tmp_path / f"w{seed}" / "files")],
            env=env,
            **pipes,
        )
        for seed in range(4)
    ]
    try:
        _wait_until(lambda: len(list(tmp_path.glob("go.*"))) == 4, "the workers to be ready")
        go.touch()
        outcomes = [w.communicate(timeout=WAIT_LIMIT_S) for w in workers]
    finally:
        for w in workers:
            w.kill()
            w.wait(timeout=WAIT_LIMIT_S)
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [err for _, err in outcomes]
    assert sorted(out.split()[0] for out, _ in outcomes) == ["ran", "ran", "refused", "refused"]
    assert ledger(sb) == (4, 20)
