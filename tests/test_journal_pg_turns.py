"""PostgreSQL: a create waiting for its turn (its row ``waiting``, nothing sent) when another
worker takes the row over, or the database goes away, before its turn comes.

In one process against a real PostgreSQL server and the real sandbox, counting creates and
credits; the same on both stores is in ``test_journal_pacing.py``, worker processes killed while
they wait in ``test_journal_fleet.py``.
"""

from __future__ import annotations

import threading
import time

from pg_cluster import PASSWORD
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
journal_mod = submodule("journal")
open_mod = submodule("journal.open")
store_mod = submodule("journal.store")
events = submodule("journal.events")
pacing = submodule("journal.pacing")
runner_mod = submodule("journal.runner")

KEY = TEST_KEY
PROMPT = "a harbour at dawn, watercolour"
WAIT_LIMIT_S = 60.0

FOREIGN_OWNER = (
    "UPDATE grok_imagine_requests SET owner_host = 'other-host', owner_pid = 4242,"
    " owner_marker = 'linux-start:1', lease_until ="
    " extract(epoch FROM clock_timestamp())::float8 + %s WHERE id = %s"
)
"""A row as a worker on another host holds it, leased for the first parameter (seconds)."""


def make_runner(tmp_path, sb, url, rate):
    poll = api.PollSchedule().scaled(0.05)
    return journal_mod.TaskRunner(
        lambda: api.GrokClient(api.Settings(api_key=KEY, base_url=sb.base_url), poll=poll),
        journal=open_mod.open_journal(url, rate=rate),
        files=journal_mod.FileStore(tmp_path / "worker" / "files"),
    )


def ledger(sb):
    entry = sb.ledger(KEY)
    return entry.creates, entry.credits_charged


def _waited_for_turn(said, thread):
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not any(isinstance(e, events.WaitingForTurn) for e in said):
        assert thread.is_alive() and time.monotonic() < deadline, "no wait for a turn"
        time.sleep(0.02)


def test_a_worker_whose_waiting_row_was_taken_over_never_sends_it_and_shares_the_other_create(
    tmp_path, sandbox, pg_url
):
    """This worker waits for its turn; meanwhile another worker, finding its lease run out (a
    stalled host), settles the row as never sent and makes the create itself. This worker's
    next look at its turn is refused, it sends nothing, and it shares the other worker's task."""
    runner = make_runner(tmp_path, sandbox, pg_url, pacing.CreateRate(1, 30.0))
    runner.text_to_image(PROMPT, seed=30)  # takes the window's one turn
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=31)
    said, outcome = [], {}
    worker = threading.Thread(
        target=lambda: outcome.setdefault(
            "result",
            runner.text_to_image(
                PROMPT,
                seed=31,
                timeout=WAIT_LIMIT_S,
                hooks=journal_mod.RunHooks(on_event=said.append),
            ),
        )
    )
    worker.start()
    try:
        _waited_for_turn(said, worker)
        waiting = runner.journal.latest(identity)
        assert waiting.state == "waiting" and waiting.owner.is_current()
        other = open_mod.open_journal(pg_url, rate=None)  # the other worker, on its own connection
        with other.claim(identity) as claim:  # as its runner decides: settle, then create
            claim.settle_unsent(waiting.id, runner_mod.NEVER_SENT)
            entry = claim.start_create()
            claim._conn.execute(FOREIGN_OWNER, (30.0, entry.id))  # it is on another host
        other._db.release(entry.id)
        other.close()
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not any(isinstance(e, events.WaitingForProcess) for e in said):
            assert time.monotonic() < deadline, "the worker never waited for the other worker"
            time.sleep(0.02)
        with api.GrokClient(api.Settings(api_key=KEY, base_url=sandbox.base_url)) as client:
            runner.journal.record_task_id(entry, client.create_text_to_image(PROMPT))
    finally:
        worker.join(WAIT_LIMIT_S)
    result = outcome["result"]
    assert result.resumed and result.files and result.credits == 0
    assert ledger(sandbox) == (2, 10) and sandbox.create_requests == 2  # its own never went
    settled = runner.journal.entry(waiting.id)
    assert (settled.state, settled.credits) == ("rejected", 0)
    assert runner.journal.uncertain() == []
    assert waiting.id not in runner.journal._db._leased  # its lease is no longer renewed
    runner.journal.close()


def test_the_database_going_away_while_a_create_waits_for_its_turn_sends_nothing(
    tmp_path, sandbox, pg_own_cluster
):
    """The move back to `creating` must be in the database before the create is sent: with the
    database gone while the create waits for its turn, nothing is sent, the run ends with the
    database's one line, and once the database is back the row says refused (not uncertain);
    the same request then creates the task once."""
    import pg_cluster as pg

    url = pg.new_database(pg_own_cluster.server_url)
    runner = make_runner(tmp_path, sandbox, url, pacing.CreateRate(1, 8.0))
    runner.text_to_image(PROMPT, seed=40)  # takes the window's one turn: the next waits 9 s
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=41)
    said, outcome = [], {}

    def run():
        hooks = journal_mod.RunHooks(on_event=said.append)
        try:
            runner.text_to_image(PROMPT, seed=41, timeout=WAIT_LIMIT_S, hooks=hooks)
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    try:
        _waited_for_turn(said, worker)
        waiting = runner.journal.latest(identity)
        assert waiting.state == "waiting" and waiting.task_id is None
        pg_own_cluster.stop()
    finally:
        worker.join(WAIT_LIMIT_S)
    error = outcome.get("error")
    assert isinstance(error, store_mod.JournalUnavailableError), (error, ledger(sandbox))
    assert f"127.0.0.1:{pg_own_cluster.port}" in str(error) and PASSWORD not in str(error)
    assert ledger(sandbox) == (1, 5) and sandbox.create_requests == 1  # its create never went
    pg_own_cluster.start()
    left = runner.journal.entry(waiting.id)  # the refusal kept through the outage, written now
    assert (left.state, left.credits, left.task_id) == ("rejected", 0, None)
    assert runner.journal.uncertain() == []
    runner.journal.rate = None  # no turn to wait for: the same request is created at once
    result = runner.text_to_image(PROMPT, seed=41)
    assert result.credits == 5 and not result.resumed
    assert ledger(sandbox) == (2, 10) and sandbox.create_requests == 2
    runner.journal.close()
