"""The shared PostgreSQL journal in one process: the runner's promises, leases, schema.

Against a real PostgreSQL server (``pg_url``: a fresh database on a throwaway cluster, or on the
server ``GROK_IMAGINE_TEST_PG_URL`` names) and the real sandbox; every test counts creates and
credits. Several worker *processes* on one database are in ``test_journal_fleet.py``; pacing,
on both stores, in ``test_journal_pacing.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from pg_cluster import PASSWORD
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
journal_mod = submodule("journal")
open_mod = submodule("journal.open")
store_mod = submodule("journal.store")
events = submodule("journal.events")

KEY = TEST_KEY
PROMPT = "a harbour at dawn, watercolour"
TESTS_DIR = Path(__file__).resolve().parent
WAIT_LIMIT_S = 60.0


@pytest.fixture
def pg_mod(pg_url):
    """The shared journal's schema module (its versions and migrations)."""
    return submodule("journal.postgres.schema")


@pytest.fixture
def pg_database(pg_url):
    """The shared journal's connection module (its heartbeat and timeouts)."""
    return submodule("journal.postgres.database")


def _poll():
    return api.PollSchedule().scaled(0.05)


def make_runner(tmp_path, sb, url, name="worker", rate=None):
    journal = open_mod.open_journal(url, rate=rate)
    runner = journal_mod.TaskRunner(
        lambda: api.GrokClient(api.Settings(api_key=KEY, base_url=sb.base_url), poll=_poll()),
        journal=journal,
        files=journal_mod.FileStore(tmp_path / name / "files"),
    )
    return runner


def ledger(sb):
    entry = sb.ledger(KEY)
    return entry.creates, entry.credits_charged


def _sql(journal, statement, params=()):
    """A statement on the journal's own connection (tests set up rows other workers left)."""
    with journal._db.lock:
        journal._db.connection("test").execute(statement, params)


# -- the same promises as on one machine ----------------------------------------------------------


def test_a_finished_request_is_served_again_without_any_api_call(tmp_path, sandbox, pg_url):
    runner = make_runner(tmp_path, sandbox, pg_url)
    first = runner.text_to_image(PROMPT, seed=1)
    assert len(first.files) == 6 and not first.reused
    sandbox.stop()  # the API is gone: the kept files and the shared journal are enough
    again = runner.text_to_image(PROMPT, seed=1)
    assert again.reused and again.task_id == first.task_id and again.files == first.files
    assert ledger(sandbox) == (1, 5)
    entry = runner.journal.get(first.task_id)
    assert entry.state == "succeeded" and len(entry.files) == 6 and entry.credits == 5
    runner.journal.close()


def test_two_identical_requests_in_threads_make_one_create(tmp_path, sandbox_factory, pg_url):
    sb = sandbox_factory(generation_time=(0.3, 0.3))
    runner = make_runner(tmp_path, sb, pg_url)
    barrier = threading.Barrier(3)
    results = []

    def node():
        barrier.wait()
        results.append(runner.text_to_image(PROMPT, seed=2))

    threads = [threading.Thread(target=node) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT_LIMIT_S)
    assert len(results) == 3 and len({r.task_id for r in results}) == 1
    assert ledger(sb) == (1, 5)
    runner.journal.close()


def test_finished_on_one_worker_is_free_on_another_with_its_own_files(tmp_path, sandbox, pg_url):
    a = make_runner(tmp_path, sandbox, pg_url, "a")
    b = make_runner(tmp_path, sandbox, pg_url, "b")
    first = a.text_to_image(PROMPT, seed=3)
    on_b = b.text_to_image(PROMPT, seed=3)  # B has no files: downloads the recorded URLs (free)
    assert on_b.task_id == first.task_id and not on_b.reused and len(on_b.files) == 6
    assert all(str(tmp_path / "b") in str(path) for path in on_b.files)
    assert ledger(sandbox) == (1, 5)
    assert b.text_to_image(PROMPT, seed=3).reused  # now from B's own files
    assert a.text_to_image(PROMPT, seed=3).reused  # and A still has its own
    sandbox.faults.download = "expired"
    c = make_runner(tmp_path, sandbox, pg_url, "c")
    with pytest.raises(errors.ResultExpiredError) as caught:
        c.text_to_image(PROMPT, seed=3)
    assert "expired" in str(caught.value) and "change the seed" in str(caught.value).lower()
    assert ledger(sandbox) == (1, 5)
    for runner in (a, b, c):
        runner.journal.close()


# -- leases: a creating row is owned while its worker lives ---------------------------------------


def _foreign_creating_row(runner, identity, lease_s):
    """A ``creating`` row as a worker on another host leaves it, leased for ``lease_s``."""
    with runner.journal.claim(identity) as claim:
        entry = claim.start_create()
    runner.journal._db.release(entry.id)  # not ours to renew
    _sql(
        runner.journal,
        "UPDATE grok_imagine_requests SET owner_host = 'other-host', owner_pid = 4242,"
        " owner_marker = 'linux-start:1', lease_until ="
        " extract(epoch FROM clock_timestamp())::float8 + %s WHERE id = %s",
        (lease_s, entry.id),
    )
    return entry


def test_a_dead_workers_create_is_uncertain_not_resent(tmp_path, sandbox, pg_url):
    runner = make_runner(tmp_path, sandbox, pg_url)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=4)
    _foreign_creating_row(runner, identity, lease_s=-1.0)  # its lease ran out: it died
    with pytest.raises(journal_mod.UncertainTaskError) as caught:
        runner.text_to_image(PROMPT, seed=4)
    assert "may have been charged" in str(caught.value)
    assert runner.journal.latest(identity).state == "uncertain"
    with pytest.raises(journal_mod.UncertainTaskError):  # and again: never re-sent silently
        runner.text_to_image(PROMPT, seed=4)
    assert ledger(sandbox) == (0, 0)
    runner.journal.close()


def _run_while_the_other_worker_answers(runner, sandbox, entry, seed):
    """Run the request of ``entry`` (another worker's ``creating`` row); once the run says it
    waits for that worker, the worker (a thread here) sends its create and records the id."""
    waiting = threading.Event()

    def note_the_wait(event):
        if isinstance(event, events.WaitingForProcess):
            waiting.set()

    def other_worker_gets_its_answer():
        assert waiting.wait(WAIT_LIMIT_S)
        with api.GrokClient(api.Settings(api_key=KEY, base_url=sandbox.base_url)) as client:
            runner.journal.record_task_id(entry, client.create_text_to_image(PROMPT))

    helper = threading.Thread(target=other_worker_gets_its_answer)
    helper.start()
    try:
        return runner.text_to_image(
            PROMPT,
            seed=seed,
            timeout=WAIT_LIMIT_S,
            hooks=journal_mod.RunHooks(on_event=note_the_wait),
        )
    finally:
        waiting.set()  # the helper is never left hanging when the run did not wait
        helper.join(WAIT_LIMIT_S)


def test_a_live_workers_create_is_waited_for_and_shared(tmp_path, sandbox, pg_url):
    runner = make_runner(tmp_path, sandbox, pg_url)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=5)
    entry = _foreign_creating_row(runner, identity, lease_s=30.0)
    result = _run_while_the_other_worker_answers(runner, sandbox, entry, seed=5)
    assert result.resumed and result.files and ledger(sandbox) == (1, 5)
    runner.journal.close()


@pytest.mark.parametrize("skew_s", [-400.0, 400.0])
def test_a_live_workers_create_is_waited_for_whatever_this_hosts_clock_says(
    tmp_path, sandbox, pg_url, monkeypatch, skew_s
):
    """This worker's clock is minutes off the database's (beyond the runner's 300 s in-flight
    limit): a live worker's fresh create is still waited for, not reported as uncertain."""
    import types

    runner_mod = submodule("journal.runner")
    skewed = {n: getattr(time, n) for n in dir(time) if not n.startswith("_")}
    skewed["time"] = lambda: time.clock_gettime(time.CLOCK_REALTIME) + skew_s
    monkeypatch.setattr(runner_mod, "time", types.SimpleNamespace(**skewed))
    monkeypatch.setattr(submodule("journal.waits"), "time", types.SimpleNamespace(**skewed))
    assert abs(runner_mod.time.time() - time.time() - skew_s) < 1.0
    runner = make_runner(tmp_path, sandbox, pg_url)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=8)
    entry = _foreign_creating_row(runner, identity, lease_s=30.0)
    result = _run_while_the_other_worker_answers(runner, sandbox, entry, seed=8)
    assert result.resumed and result.files and ledger(sandbox) == (1, 5)
    assert runner.journal.latest(identity).state == "succeeded"
    runner.journal.close()


def test_a_lease_runs_out_when_its_worker_stops_renewing_it(tmp_path, sandbox, pg_url, pg_database):
    runner = make_runner(tmp_path, sandbox, pg_url)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=6)
    entry = _foreign_creating_row(runner, identity, lease_s=0.5)
    assert runner.journal.entry(entry.id).owner.is_alive()
    time.sleep(0.7)
    assert not runner.journal.entry(entry.id).owner.is_alive()
    # Our own create is renewed by the heartbeat for as long as it is on its way.
    mine = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=7)
    with runner.journal.claim(mine) as claim:
        own = claim.start_create()
    time.sleep(pg_database.HEARTBEAT_S * 1.5)
    row = runner.journal.entry(own.id)
    assert row.owner.is_current() and row.owner.lease_live
    runner.journal.close()


# -- fleet-wide pacing: tests/test_journal_pacing.py runs each pacing test on both stores ------


# -- schema versions ------------------------------------------------------------------------------


def test_a_fresh_database_gets_the_current_schema(pg_url, pg_mod):
    journal = open_mod.open_journal(pg_url)
    with journal._db.lock:
        row = (
            journal._db.connection("test")
            .execute("SELECT version, oldest_compatible FROM grok_imagine_schema")
            .fetchone()
        )
    assert row == (pg_mod.SCHEMA_VERSION, pg_mod.OLDEST_COMPATIBLE)
    journal.close()
    open_mod.open_journal(pg_url).close()  # opening again migrates nothing and keeps the row


def test_the_migrations_make_the_models_columns(pg_url):
    """A field is the model's column and one migration: the shared tables hold the model's
    columns (the requests table also the lease's), no more and no fewer."""
    model, rows = submodule("journal.model"), submodule("journal.postgres.rows")
    journal = open_mod.open_journal(pg_url, rate=None)
    with journal._db.lock:
        conn = journal._db.connection("test")
        for table in model.TABLES:
            names = conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (rows.table(table.name),),
            ).fetchall()
            extra = rows.LEASE_COLUMNS if table is model.REQUESTS else ()
            assert sorted(name for (name,) in names) == sorted((*table.names, *extra))
    journal.close()


def _schema_1_database(url, pg_mod):
    """A database exactly as the first release of the shared journal left it, with one task."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(pg_mod._SCHEMA_TABLE)
        for statement in pg_mod.MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO grok_imagine_schema VALUES (TRUE, 1, 1, 0)")
        identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=30)
        conn.execute(
            "INSERT INTO grok_imagine_requests (identity, model, prompt, seed, batch_index,"
            " task_id, state, credits, result_urls, created_at, updated_at)"
            " VALUES (%s, %s, %s, 30, 0, 'sbxfromschema1_grok', 'succeeded', 5,"
            " '[\"https://x.example/0\"]', 1, 1)",
            (identity.key, identity.model, PROMPT),
        )
        conn.execute(
            "INSERT INTO grok_imagine_files VALUES ('sbxfromschema1_grok', 0, '/w/0.jpg',"
            " %s, 10, 'https://x.example/0', 1)",
            ("0" * 64,),
        )
    return identity


def test_a_schema_1_journal_is_migrated_and_keeps_every_row(pg_url, pg_mod, caplog):
    identity = _schema_1_database(pg_url, pg_mod)
    with caplog.at_level("WARNING"):
        journal = open_mod.open_journal(pg_url, rate=None)
    latest = pg_mod.SCHEMA_VERSION
    assert any(f"upgraded from schema 1 to {latest}" in r.getMessage() for r in caplog.records)
    kept = journal.latest(identity)
    assert kept.task_id == "sbxfromschema1_grok" and kept.state == "succeeded"
    assert len(kept.files) == 1 and kept.credits == 5
    with journal._db.lock:
        conn = journal._db.connection("test")
        assert conn.execute("SELECT version FROM grok_imagine_schema").fetchone()[0] == latest
        workers = conn.execute("SELECT pid, schema_version FROM grok_imagine_workers").fetchall()
    assert workers == [(os.getpid(), pg_mod.SCHEMA_VERSION)]  # and it says who uses it
    journal.close()


def test_an_upgrade_older_packs_cannot_follow_names_the_workers_to_update(
    pg_url, pg_mod, monkeypatch, caplog
):
    now, later = pg_mod.SCHEMA_VERSION, pg_mod.SCHEMA_VERSION + 1
    journal = open_mod.open_journal(pg_url, rate=None)
    _sql(journal, "INSERT INTO grok_imagine_workers VALUES ('gpu-box-7', 4242, %s, 1e12)", (now,))
    journal.close()
    # A later pack whose next migration older packs cannot follow:
    monkeypatch.setattr(pg_mod, "SCHEMA_VERSION", later)
    monkeypatch.setattr(pg_mod, "OLDEST_COMPATIBLE", later)
    monkeypatch.setitem(pg_mod.MIGRATIONS, later, ("ALTER TABLE grok_imagine_files ADD w TEXT",))
    with caplog.at_level("WARNING"):
        open_mod.open_journal(pg_url, rate=None).close()
    said = " ".join(r.getMessage() for r in caplog.records)
    assert f"upgraded from schema {now} to {later}" in said
    assert f"gpu-box-7 (pid 4242, schema {now})" in said
    assert "until their Grok Imagine pack is updated" in said
    monkeypatch.undo()  # and the older pack, on its next start, refuses with its own message
    with pytest.raises(store_mod.JournalVersionError):
        open_mod.open_journal(pg_url, rate=None)


def test_a_journal_from_a_newer_pack_says_this_one_must_be_updated(pg_url, pg_mod):
    journal = open_mod.open_journal(pg_url)
    _sql(journal, "UPDATE grok_imagine_schema SET version = 99, oldest_compatible = 99")
    journal.close()
    with pytest.raises(store_mod.JournalVersionError) as caught:
        open_mod.open_journal(pg_url)
    message = str(caught.value)
    assert "schema version 99" in message and "Update the Grok Imagine pack" in message
    assert PASSWORD not in message and isinstance(caught.value, errors.GrokError)


def test_a_newer_schema_that_keeps_older_packs_working_is_used(tmp_path, sandbox, pg_url):
    journal = open_mod.open_journal(pg_url)
    _sql(journal, "UPDATE grok_imagine_schema SET version = 99, oldest_compatible = 1")
    _sql(journal, "ALTER TABLE grok_imagine_requests ADD COLUMN from_the_future TEXT")
    journal.close()
    runner = make_runner(tmp_path, sandbox, pg_url)
    assert runner.text_to_image(PROMPT, seed=10).files and ledger(sandbox) == (1, 5)
    runner.journal.close()


# -- failing closed -------------------------------------------------------------------------------


def _closed_port_url():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://fleet:{PASSWORD}@127.0.0.1:{port}/grok"


def test_an_unreachable_database_is_one_clear_error_naming_the_host(tmp_path, sandbox):
    url = _closed_port_url()
    with pytest.raises(store_mod.JournalUnavailableError) as caught:
        open_mod.open_journal(url)
    message = str(caught.value)
    assert "127.0.0.1:" in message and "cannot be reached" in message
    assert "nothing was charged" in message and "GROK_IMAGINE_JOURNAL_URL" in message
    assert PASSWORD not in message and PASSWORD not in repr(caught.value)
    assert ledger(sandbox) == (0, 0)


def test_the_database_going_away_stops_creates_and_keeps_writes(tmp_path, sandbox, pg_own_cluster):
    import pg_cluster as pg

    url = pg.new_database(pg_own_cluster.server_url)
    runner = make_runner(tmp_path, sandbox, url)
    first = runner.text_to_image(PROMPT, seed=11)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=11)
    pg_own_cluster.stop()
    with pytest.raises(store_mod.JournalUnavailableError) as caught:
        runner.text_to_image(PROMPT, seed=12)
    assert f"127.0.0.1:{pg_own_cluster.port}" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    runner.journal.record_state(first.task_id, "succeeded", error="written during the outage")
    assert ledger(sandbox) == (1, 5)
    pg_own_cluster.start()
    assert runner.journal.latest(identity).error == "written during the outage"
    assert runner.text_to_image(PROMPT, seed=12).files and ledger(sandbox) == (2, 10)
    runner.journal.close()


class SilentHost:
    """A database host that accepts connections and never answers (a hung server or a
    firewall that swallows packets): a connect to it waits out the whole connect timeout."""

    def __init__(self):
        import socket

        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._held = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                self._held.append(self._listener.accept()[0])
            except OSError:
                continue

    def close(self):
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._listener.close()


def test_a_silent_database_host_never_stalls_a_paid_tasks_writes(
    tmp_path, pg_url, pg_database, caplog
):
    journal = open_mod.open_journal(pg_url, rate=None)
    silent = SilentHost()
    try:
        with journal._db.lock:  # the host goes silent and the connection we held is dropped
            journal._db.dsn = f"postgresql://fleet:{PASSWORD}@127.0.0.1:{silent.port}/grok"
            journal._db.broken()
        slowest = 0.0
        deadline = time.monotonic() + 2 * pg_database.CONNECT_TIMEOUT_S + pg_database.HEARTBEAT_S
        calls = 0
        with caplog.at_level("WARNING"):
            while time.monotonic() < deadline:  # as a paid poll's updates and downloads do
                started = time.monotonic()
                journal.record_state(f"sbxsilent{calls:03d}_grok", "running", error=f"poll {calls}")
                journal.record_file(
                    f"sbxsilent{calls:03d}_grok", 0, f"/o/{calls}.png", "ab", 1, None
                )
                slowest = max(slowest, time.monotonic() - started)
                calls += 1
                time.sleep(0.05)
        print(f"{calls} pairs of writes against a silent host: slowest {slowest * 1000:.1f} ms")
        assert slowest < 0.5 and len(journal._db.pending) == 2 * calls
        assert [r for r in caplog.records if "cannot be reached" in r.getMessage()]
        with journal._db.lock:
            journal._db.dsn = pg_url  # the database answers again: the heartbeat saves everything
        saved_by = (
            time.monotonic() + pg_database.CONNECT_TIMEOUT_S + 2 * pg_database.HEARTBEAT_S + 5
        )
        while journal._db.pending and time.monotonic() < saved_by:
            time.sleep(0.05)
        assert not journal._db.pending
    finally:
        journal.close()
        silent.close()
    check = open_mod.open_journal(pg_url, rate=None)
    try:
        # record_state updates rows the journal knows; record_file rows are there as written
        files = check._db.read("test", "SELECT count(*) FROM grok_imagine_files")[0][0]
        assert files == calls
        assert check._db.read("test", "SELECT max(path) FROM grok_imagine_files WHERE idx = 0")[0][
            0
        ]
    finally:
        check.close()


MISSING_DRIVER = """
import sys
sys.modules["psycopg"] = None  # as if the optional extra was never installed
sys.path.insert(0, {tests_dir!r})
from support import submodule
sys.exit(submodule("cli").main(sys.argv[1:]))
"""


def test_a_url_without_the_driver_is_one_clear_error_before_anything_is_paid(tmp_path, sandbox):
    url = f"postgresql://fleet:{PASSWORD}@db.example.internal:5433/grok"
    env = {
        **os.environ,
        "APIINONE_API_KEY": KEY,
        "APIINONE_BASE_URL": sandbox.base_url,
        "GROK_IMAGINE_JOURNAL_URL": url,
    }
    done = subprocess.run(
        [sys.executable, "-c", MISSING_DRIVER.format(tests_dir=str(TESTS_DIR)), "generate",
         PROMPT, "--home", str(tmp_path / "home"), "-o", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=WAIT_LIMIT_S,
    )  # fmt: skip
    assert done.returncode == 5, done.stderr  # refused here, nothing sent: the journal
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert '"psycopg[binary]>=3.1"' in lines[0] and "postgres extra" in lines[0]
    assert "db.example.internal:5433" in lines[0] and PASSWORD not in done.stderr
    assert ledger(sandbox) == (0, 0) and sandbox.create_requests == 0


def test_the_cli_lists_the_shared_journal(tmp_path, sandbox, pg_url, capsys):
    runner = make_runner(tmp_path, sandbox, pg_url)
    result = runner.text_to_image(PROMPT, seed=13)
    runner.journal.close()
    cli = submodule("cli")
    assert cli.main(["tasks", "--journal-url", pg_url]) == 0
    out = capsys.readouterr().out
    assert result.task_id in out and "succeeded" in out
    assert cli.main(["tasks", result.task_id, "--journal-url", pg_url]) == 0
    assert PASSWORD not in capsys.readouterr().out


# -- the nodes ------------------------------------------------------------------------------------


@pytest.fixture
def node_env(tmp_path, sandbox, monkeypatch):
    """The nodes' environment: a home, fast polling, the sandbox's key and URL."""
    execution = submodule("nodes.execution")
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "key" / "api_key"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.setenv("APIINONE_API_KEY", KEY)
    monkeypatch.setenv("APIINONE_BASE_URL", sandbox.base_url)
    yield sandbox
    execution.close_journals()


def _generate_node(seed):
    import asyncio

    from support import pack

    node = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]()
    return asyncio.run(node.generate(PROMPT, seed))


def test_the_nodes_use_the_shared_journal_the_url_names(node_env, pg_url, monkeypatch):
    monkeypatch.setenv("GROK_IMAGINE_JOURNAL_URL", pg_url)
    images, task_ids, _ = _generate_node(seed=14)
    assert images.shape[0] == 6 and ledger(node_env) == (1, 5)
    journal = open_mod.open_journal(pg_url, rate=None)
    assert journal.get(task_ids.strip()).state == "succeeded"  # in PostgreSQL, not SQLite
    journal.close()
    assert _generate_node(seed=14)[1] == task_ids and ledger(node_env) == (1, 5)


def test_a_node_with_an_unreachable_journal_is_one_line_and_pays_nothing(node_env, monkeypatch):
    monkeypatch.setenv("GROK_IMAGINE_JOURNAL_URL", _closed_port_url())
    with pytest.raises(RuntimeError) as caught:
        _generate_node(seed=15)
    text = str(caught.value)
    assert "\n" not in text and "cannot be reached" in text and "127.0.0.1:" in text
    assert PASSWORD not in text and KEY not in text
    assert ledger(node_env) == (0, 0) and node_env.create_requests == 0


def test_a_database_that_cannot_be_written_sends_no_create(tmp_path, sandbox, pg_url):
    runner = make_runner(tmp_path, sandbox, pg_url)
    _sql(runner.journal, "SET SESSION default_transaction_read_only = on")
    with pytest.raises(store_mod.JournalUnavailableError) as caught:
        runner.text_to_image(PROMPT, seed=16)
    message = str(caught.value)
    assert "cannot be written" in message and "nothing was charged" in message
    assert "127.0.0.1:" in message and PASSWORD not in message
    assert ledger(sandbox) == (0, 0) and sandbox.create_requests == 0
    runner.journal.close()


def test_an_answer_lost_while_the_database_is_away_is_still_reported_uncertain(
    tmp_path, sandbox, pg_own_cluster
):
    import pg_cluster as pg

    url = pg.new_database(pg_own_cluster.server_url)
    runner = journal_mod.TaskRunner(
        lambda: api.GrokClient(
            api.Settings(api_key=KEY, base_url=sandbox.base_url, read_timeout=0.5), poll=_poll()
        ),
        journal=open_mod.open_journal(url, rate=None),
        files=journal_mod.FileStore(tmp_path / "files"),
    )
    sandbox.faults.create_response_delay = 3.0
    threading.Timer(0.2, pg_own_cluster.stop).start()  # the database goes while the create hangs
    with pytest.raises(journal_mod.UncertainTaskError) as caught:
        runner.text_to_image(PROMPT, seed=17)
    assert "may have been charged" in str(caught.value)
    pg_own_cluster.start()
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=17)
    deadline = time.monotonic() + WAIT_LIMIT_S
    while runner.journal.latest(identity).state != "uncertain":  # the kept write lands
        assert time.monotonic() < deadline
        time.sleep(0.1)
    runner.journal.close()


def test_an_in_process_sandbox_run_stays_out_of_the_fleets_journal(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("GROK_IMAGINE_JOURNAL_URL", pg_url)
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    cli = submodule("cli")
    assert cli.main(["generate", PROMPT, "--sandbox", "-o", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 6
    journal = open_mod.open_journal(pg_url, rate=None)
    assert journal.recent() == []  # its tasks vanish with the sandbox: none in the shared journal
    journal.close()


def test_writes_that_never_reach_the_database_name_their_tasks_on_close(pg_own_cluster, caplog):
    import pg_cluster as pg

    journal = open_mod.open_journal(pg.new_database(pg_own_cluster.server_url), rate=None)
    pg_own_cluster.stop()
    journal.record_state("sbxkept0000_grok", "succeeded", result_urls=["https://x.example/0"])
    with caplog.at_level("WARNING"):
        journal.close()
    lost = [r.getMessage() for r in caplog.records if "could not be saved" in r.getMessage()]
    assert len(lost) == 1 and "sbxkept0000_grok" in lost[0] and "Load Task" in lost[0]


# -- the daily credit limit counts the whole fleet ------------------------------------------------


def _limited_runner(tmp_path, sb, url, limit, name="worker"):
    spend = submodule("journal.spend_limit")
    runner = make_runner(tmp_path, sb, url, name)
    runner.daily_limit = lambda: spend.DailyLimit(limit, "env")
    return runner


def _run_node(runner, seeds):
    requests = [runner.text_to_image_request(PROMPT, seed=seed) for seed in seeds]
    with runner.reserve(requests):
        return [runner.text_to_image(PROMPT, seed=r.seed) for r in requests]


def test_the_daily_limit_holds_for_the_fleet_on_the_shared_journal(tmp_path, sandbox, pg_url):
    spend = submodule("journal.spend_limit")
    a = _limited_runner(tmp_path, sandbox, pg_url, 12, "a")
    b = _limited_runner(tmp_path, sandbox, pg_url, 12, "b")
    with pytest.raises(spend.SpendLimitError) as caught:
        _run_node(a, seeds=[1, 2, 3])  # 15 credits > 12: refused whole
    assert "0" in str(caught.value) and ledger(sandbox) == (0, 0)
    assert len(_run_node(a, seeds=[1, 2])) == 2 and ledger(sandbox) == (2, 10)
    with pytest.raises(spend.SpendLimitError):  # worker B sees A's spending: 10 + 5 > 12
        _run_node(b, seeds=[4])
    with pytest.raises(spend.SpendLimitError):  # a single create outside a run, too
        b.text_to_image(PROMPT, seed=5)
    assert b.text_to_image(PROMPT, seed=1).task_id  # A's task is free on B: never refused
    assert ledger(sandbox) == (2, 10) and a.journal.spent(0) == 10
    for runner in (a, b):
        runner.journal.close()


def test_a_dead_workers_reservation_stops_counting(tmp_path, sandbox, pg_url):
    runner = _limited_runner(tmp_path, sandbox, pg_url, 5)
    request = runner.text_to_image_request(PROMPT, seed=6)
    reservation = runner.journal.reserve([request], limit=5, since=0)
    assert reservation.granted and runner.journal.spent(0) == 5
    held = reservation.entries[0]
    runner.journal._db.release(held.id)  # as if its worker died: nobody renews the lease
    _sql(
        runner.journal,
        "UPDATE grok_imagine_requests SET owner_host = 'gone', lease_until = 0 WHERE id = %s",
        (held.id,),
    )
    assert runner.journal.spent(0) == 0
    assert runner.text_to_image(PROMPT, seed=7).files and ledger(sandbox) == (1, 5)
    runner.journal.close()


def test_the_panel_lists_the_fleets_journal_and_resolves_its_uncertain_rows(
    tmp_path, sandbox, pg_url
):
    panel_routes = submodule("nodes.panel_routes")
    spend = submodule("journal.spend_limit")
    a = make_runner(tmp_path, sandbox, pg_url, "a")
    b = make_runner(tmp_path, sandbox, pg_url, "b")
    first = a.text_to_image(PROMPT, seed=40)
    second = b.text_to_image(PROMPT, seed=41)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=42)
    lost = _foreign_creating_row(b, identity, lease_s=-1.0)
    with pytest.raises(journal_mod.UncertainTaskError):
        b.text_to_image(PROMPT, seed=42)
    context = panel_routes.PanelContext(
        lambda: b, lambda: tmp_path / "user" / spend.SETTINGS_FILE_NAME, {}
    )
    routes = panel_routes.PanelRoutes(lambda: context)
    listed = routes.page(0, 20)
    assert listed["total"] == 3 and listed["spent_today"] == 15  # the uncertain one counts
    assert [row["state"] for row in listed["rows"]] == ["uncertain", "succeeded", "succeeded"]
    assert routes.thumbnail(second.task_id, 0)  # B's own kept files are shown...
    with pytest.raises(panel_routes.Refused):  # ...A's stay on A (kept files are per worker)
        routes.thumbnail(first.task_id, 0)
    routes.resolve(lost.id, None)  # the user found nothing in the dashboard: not created
    assert routes.page(0, 20)["spent_today"] == 10 and ledger(sandbox) == (2, 10)
    for runner in (a, b):
        runner.journal.close()


def test_a_database_restart_between_writes_is_not_an_outage(
    tmp_path, sandbox, pg_own_cluster, caplog
):
    import pg_cluster as pg

    runner = make_runner(tmp_path, sandbox, pg.new_database(pg_own_cluster.server_url))
    first = runner.text_to_image(PROMPT, seed=50)
    pg_own_cluster.stop()
    pg_own_cluster.start()  # the journal's connection is now a dead one
    with caplog.at_level("WARNING"):
        runner.journal.record_state(first.task_id, "succeeded", error="after the restart")
        # a write never reconnects itself (a silent host would stall it there): the heartbeat,
        # woken at once, saves it on a new connection
        saved_by = time.monotonic() + 1.0
        while runner.journal._db.pending and time.monotonic() < saved_by:
            time.sleep(0.01)
    assert not runner.journal._db.pending
    assert not [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert runner.journal.get(first.task_id).error == "after the restart"
    runner.journal.close()


def test_a_bad_result_file_is_recorded_for_the_fleet_and_not_fetched_again(
    tmp_path, sandbox, pg_url
):
    events_seen = []
    a = make_runner(tmp_path, sandbox, pg_url, "a")
    sandbox.faults.download = "truncated_image"  # passes the magic-byte sniff, fails a decode
    sandbox.faults.download_only_index = 2
    first = a.text_to_image(PROMPT, seed=60)
    entry = a.journal.get(first.task_id)
    assert [f.index for f in entry.failed_files] == [2] and len(first.files) == 5
    b = make_runner(tmp_path, sandbox, pg_url, "b")
    again = b.text_to_image(
        PROMPT, seed=60, hooks=journal_mod.RunHooks(on_event=events_seen.append)
    )
    assert len(again.files) == 5 and ledger(sandbox) == (1, 5)
    assert any(isinstance(e, events.FilesLost) for e in events_seen)  # B says which is missing
    a.journal.close()
    b.journal.close()


def test_a_good_copy_clears_a_recorded_file_failure(pg_url):
    journal = open_mod.open_journal(pg_url, rate=None)
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=61)
    with journal.claim(identity) as claim:
        entry = claim.start_create()
    journal.record_task_id(entry, "sbxfailedonce_grok")
    journal.record_file_failure("sbxfailedonce_grok", 1, "truncated JPEG", "https://x.example/1")
    assert [f.reason for f in journal.get("sbxfailedonce_grok").failed_files] == ["truncated JPEG"]
    journal.record_file("sbxfailedonce_grok", 1, "/w/1.jpg", "0" * 64, 10, "https://x.example/1")
    kept = journal.get("sbxfailedonce_grok")
    assert kept.failed_files == () and [f.index for f in kept.files] == [1]
    journal.close()


def test_a_throwaway_server_left_by_a_killed_test_run_is_reaped(pg_server):
    """Test tooling (tools/pg_cluster.py): a run killed before its teardown leaves no server."""
    import pg_cluster as pg

    if pg.binaries() is None:
        pytest.skip("no PostgreSQL server binaries to start a server of our own")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stray = pg.Cluster(owner_pid=gone.pid).start()
    mine = pg.Cluster().start()  # reaps the stray, keeps what a live run owns
    try:
        assert not stray.dir.exists()
        assert mine.dir not in pg.reap_stale() and mine.dir.exists()
        import psycopg

        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(stray.server_url, connect_timeout=2).close()
    finally:
        mine.destroy()
        stray.destroy()


@pytest.mark.parametrize("given", ["", ".", "not-a-cluster"])
def test_stop_removes_only_a_folder_the_tool_made(tmp_path, monkeypatch, given):
    """Test tooling: ``pg_cluster.py stop "$UNSET_VARIABLE"`` once deleted the current folder."""
    import pg_cluster as pg

    monkeypatch.chdir(tmp_path)
    (tmp_path / "not-a-cluster").mkdir()
    (tmp_path / "work.txt").write_text("keep me")
    assert pg.main(["stop", given]) == 2
    assert (tmp_path / "work.txt").read_text() == "keep me"
    assert (tmp_path / "not-a-cluster").is_dir()


def test_a_shared_listing_can_leave_refused_attempts_out(pg_url):
    journal = open_mod.open_journal(pg_url, rate=None)
    try:
        State, Identity = journal_mod.State, journal_mod.RequestIdentity
        entries = []
        for seed in range(3):
            with journal.claim(Identity.text_to_image(PROMPT, seed=seed)) as claim:
                entries.append(claim.start_create())
        journal.record_task_id(entries[0], "t0")
        journal.mark(entries[1].id, State.REJECTED, "HTTP 401")  # the API turned it down
        journal.record_task_id(entries[2], "t2")
        assert [e.task_id for e in journal.page(10)] == ["t2", None, "t0"]
        assert [e.task_id for e in journal.page(10, with_rejected=False)] == ["t2", "t0"]
        assert [e.task_id for e in journal.page(1, 1, with_rejected=False)] == ["t0"]
        assert (journal.count(), journal.count(with_rejected=False)) == (3, 2)
    finally:
        journal.close()
