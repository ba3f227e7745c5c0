"""Create pacing: one rule (``journal.pacing.next_turn``), the turns kept by either store.

The SQLite journal hands out turns to every thread and process of one machine, the PostgreSQL
journal to a fleet; each store test runs on both (the PostgreSQL ones skip without a server).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from support import submodule
from support.api_names import public_api
from support.journal_views import history as journal_history
from support.keys import TEST_KEY

api = public_api()
errors = submodule("api.errors")
journal_mod = submodule("journal")
open_mod = submodule("journal.open")
pacing = submodule("journal.pacing")
events = submodule("journal.events")
runner_mod = submodule("journal.runner")
store_mod = submodule("journal.store")

KEY = TEST_KEY
PROMPT = "a harbour at dawn, watercolour"
TESTS_DIR = Path(__file__).resolve().parent
WAIT_LIMIT_S = 60.0


# -- the rule --------------------------------------------------------------------------------------


def _too_full(turns, rate):
    """A window of ``rate.turn_window_s`` holding more than ``rate.creates`` of ``turns``."""
    ordered = sorted(turns)
    span = rate.creates
    return any(
        ordered[i + span] - ordered[i] < rate.turn_window_s - 1e-9
        for i in range(len(ordered) - span)
    )


@settings(max_examples=300, deadline=None)
@example(  # a turn exactly a window after one and before another: float rounding once shut it
    creates=1,
    window=3.0,
    steps=[
        (1.698894263707321, False, 0),
        (0.0, False, 1),
        (0.0, False, 1),
        (0.0, True, 1),
        (0.0, False, 1),
    ],
)
@given(
    creates=st.integers(1, 4),
    window=st.sampled_from([0.5, 1.0, 3.0]),
    steps=st.lists(
        st.tuples(st.floats(0, 3, allow_nan=False), st.booleans(), st.integers(0, 30)),
        max_size=40,
    ),
)
def test_the_rule_gives_the_earliest_turn_that_keeps_every_window_under_the_rate(
    creates, window, steps
):
    """Takes at random moments, some turns given back (if not begun) and some holders asking
    again: no window is ever too full, a new turn is the earliest one that fits, and a held
    turn only ever moves earlier."""
    rate = pacing.CreateRate(creates, window)
    now, turns, next_id = 0.0, {}, 0
    for advance, give_back, pick in steps:
        now += advance
        if give_back and turns:
            holder = sorted(turns)[pick % len(turns)]
            if turns[holder] > now:
                del turns[holder]
            continue
        holder = sorted(turns)[pick % len(turns)] if turns and pick % 3 == 0 else None
        if holder is None:
            holder, next_id = next_id, next_id + 1
        held = turns.get(holder)
        others = [t for key, t in turns.items() if key != holder]
        turn = pacing.next_turn(rate, now, others, held)
        assert turn >= min(now, held if held is not None else now)
        if held is not None:
            assert turn <= held
        assert not _too_full([*others, turn], rate)
        earlier = [now, *(t + rate.turn_window_s for t in others)]
        for moment in earlier:  # nothing earlier (from now on) would have fitted
            if now <= moment < turn - 1e-9:
                assert _too_full([*others, moment], rate)
        turns[holder] = turn


def test_the_rule_in_numbers():
    rate = pacing.CreateRate(2, 2.0)  # windows of 3 s with the margin
    assert pacing.next_turn(rate, 10.0, []) == 10.0
    assert pacing.next_turn(rate, 10.0, [10.0]) == 10.0
    assert pacing.next_turn(rate, 10.0, [10.0, 10.0]) == 13.0
    assert pacing.next_turn(rate, 10.0, [10.0, 10.0, 13.0]) == 13.0
    assert pacing.next_turn(rate, 10.0, [10.0, 10.0, 13.0, 13.0]) == 16.0
    # A turn given back (one of the two at 13) lets a waiter at 16 move up; nobody else.
    assert pacing.next_turn(rate, 11.0, [10.0, 10.0, 13.0], held=16.0) == 13.0
    assert pacing.next_turn(rate, 11.0, [10.0, 10.0, 13.0, 13.0], held=16.0) == 16.0
    assert pacing.next_turn(rate, 20.0, [], held=16.0) == 16.0  # begun: go


# -- the turns in either store ---------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    """Where a journal lives: a file of this machine's, or a fleet's database."""
    if request.param == "sqlite":
        return tmp_path / "journal.sqlite"
    return request.getfixturevalue("pg_url")


def _poll():
    return api.PollSchedule().scaled(0.05)


def make_runner(tmp_path, sb, target, rate, name="worker"):
    return journal_mod.TaskRunner(
        lambda: api.GrokClient(api.Settings(api_key=KEY, base_url=sb.base_url), poll=_poll()),
        journal=open_mod.open_journal(target, rate=rate),
        files=journal_mod.FileStore(tmp_path / name / "files"),
    )


def ledger(sb):
    entry = sb.ledger(KEY)
    return entry.creates, entry.credits_charged


def _turns_of(journal, request_id):
    """How many turns the journal holds for one request (each store in its own table)."""
    if isinstance(journal, journal_mod.Journal):
        return journal._db.execute(
            lambda c: c.execute(
                "SELECT count(*) FROM create_turns WHERE request_id = ?", (request_id,)
            ).fetchone()[0]
        )
    with journal._db.lock:
        return (
            journal._db.connection("test")
            .execute(
                "SELECT count(*) FROM grok_imagine_create_turns WHERE request_id = %s",
                (request_id,),
            )
            .fetchone()[0]
        )


def test_turns_keep_any_window_under_the_rate(target):
    rate = pacing.CreateRate(3, 1.0)
    journal = open_mod.open_journal(target, rate=rate)
    waits = [journal.create_turn(_new_create(journal, seed)) for seed in range(7)]
    window = rate.window_s + pacing.PACING_MARGIN_S
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert all(window - 0.5 < wait <= window for wait in waits[3:6]), waits
    assert 2 * window - 0.5 < waits[6] <= 2 * window, waits
    journal.close()


def test_a_create_waits_for_its_turn_and_cancel_sends_nothing(tmp_path, sandbox, target):
    runner = make_runner(tmp_path, sandbox, target, rate=pacing.CreateRate(1, 30.0))
    runner.text_to_image(PROMPT, seed=8)  # takes the window's one turn
    said = []
    started = time.monotonic()
    with pytest.raises(errors.CancelledError) as caught:
        runner.text_to_image(
            PROMPT,
            seed=9,
            hooks=journal_mod.RunHooks(on_event=said.append, should_cancel=lambda: bool(said)),
        )
    assert time.monotonic() - started < 1.0  # cancelled within the 0.1 s check, not 30 s later
    assert isinstance(said[0], events.WaitingForTurn) and 28 < said[0].wait_s <= 31
    assert "turn to create" in events.describe(said[0])
    assert "nothing was charged" in str(caught.value)
    assert ledger(sandbox) == (1, 5) and sandbox.create_requests == 1
    # The cancelled request gave its turn back and is not uncertain: a new rate lets it go.
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=9)
    cancelled = runner.journal.latest(identity)
    assert cancelled.state == "rejected"
    assert _turns_of(runner.journal, cancelled.id) == 0  # its unreached turn was given back
    runner.journal.close()


def test_a_turn_given_back_moves_the_next_waiter_up(tmp_path, sandbox, target):
    """One create per 3 s window: A goes at once, B's turn is at 3 s and C's at 6 s. B is
    cancelled while it waits: C moves up into B's turn, says so, and is created at about 3 s."""
    runner = make_runner(tmp_path, sandbox, target, rate=pacing.CreateRate(1, 2.0))
    started = time.monotonic()
    a_at = sandbox.task_info(runner.text_to_image(PROMPT, seed=1).task_id).created_unix
    b_said, c_said, outcome = [], [], {}
    cancel_b = threading.Event()

    def run_c():
        outcome["c"] = runner.text_to_image(
            PROMPT, seed=3, hooks=journal_mod.RunHooks(on_event=c_said.append)
        )
        outcome["c_at"] = sandbox.task_info(outcome["c"].task_id).created_unix

    b = threading.Thread(
        target=lambda: outcome.setdefault(
            "b",
            _raised(
                lambda: runner.text_to_image(
                    PROMPT,
                    seed=2,
                    hooks=journal_mod.RunHooks(
                        on_event=b_said.append, should_cancel=cancel_b.is_set
                    ),
                )
            ),
        )
    )
    b.start()
    _wait_until(lambda: b_said, "B to wait for its turn")
    c = threading.Thread(target=run_c)
    c.start()
    _wait_until(lambda: c_said, "C to wait for its turn")
    first_c = c_said[0]
    cancel_b.set()
    b.join(WAIT_LIMIT_S)
    c.join(WAIT_LIMIT_S)
    assert isinstance(outcome["b"], errors.CancelledError)
    assert isinstance(b_said[0], events.WaitingForTurn) and 2.0 < b_said[0].wait_s <= 3.0
    assert isinstance(first_c, events.WaitingForTurn) and 5.0 < first_c.wait_s <= 6.0
    turns = [e for e in c_said if isinstance(e, events.WaitingForTurn)]
    assert len(turns) == 2 and turns[1].wait_s < first_c.wait_s - 2.0  # moved up, and said so
    # C went at B's turn, one window (3 s) after A, not at its own two windows after A.
    assert 2.9 < outcome["c_at"] - a_at < 4.5, outcome["c_at"] - a_at
    assert time.monotonic() - started < 5.5
    assert ledger(sandbox) == (2, 10) and sandbox.create_requests == 2
    runner.journal.close()


def _raised(call):
    try:
        call()
    except BaseException as exc:
        return exc
    return None


def _wait_until(predicate, what):
    deadline = time.monotonic() + WAIT_LIMIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def test_a_turn_after_the_timeout_is_refused_at_once_and_given_back(tmp_path, sandbox, target):
    runner = make_runner(tmp_path, sandbox, target, rate=pacing.CreateRate(1, 30.0))
    runner.text_to_image(PROMPT, seed=8)
    started = time.monotonic()
    with pytest.raises(errors.RateLimitedError) as caught:
        runner.text_to_image(PROMPT, seed=9, timeout=10.0)
    assert time.monotonic() - started < 1.0
    message = str(caught.value)
    assert "turn under the account's create rate (GROK_IMAGINE_CREATE_RATE)" in message
    assert "after the task's timeout" in message and "Nothing was created or charged" in message
    assert 29 < caught.value.retry_after <= 31
    assert ledger(sandbox) == (1, 5) and sandbox.create_requests == 1
    rejected = runner.journal.latest(journal_mod.RequestIdentity.text_to_image(PROMPT, seed=9))
    assert rejected.state == "rejected" and _turns_of(runner.journal, rejected.id) == 0
    runner.journal.close()


def _state_of(journal, entry):
    return journal.entry(entry.id).state


def test_a_create_waiting_for_its_turn_says_nothing_was_sent_until_its_turn(tmp_path, target):
    """The row of a create that must wait is ``waiting`` (a process dying now leaves nothing
    uncertain), in the turn's own transaction; the answer that its turn has come moves it back
    to ``creating``. A create whose turn is now is ``creating`` throughout (no extra write)."""
    rate = pacing.CreateRate(1, 0.5)  # windows of 1.5 s with the margin
    journal = open_mod.open_journal(target, rate=rate)
    now = _new_create(journal, 0)
    assert journal.create_turn(now) == 0.0 and _state_of(journal, now) == "creating"
    later = _new_create(journal, 1)
    wait = journal.create_turn(later)
    assert 1.0 < wait <= 1.5 and _state_of(journal, later) == "waiting"
    assert journal.entry(later.id).credits == 5  # set aside as a create is, until it is settled
    assert journal.create_turn(later) > 0 and _state_of(journal, later) == "waiting"
    time.sleep(wait)
    assert journal.create_turn(later) == 0.0 and _state_of(journal, later) == "creating"
    assert _turns_of(journal, later.id) == 1
    journal.close()


def test_a_waiting_row_settled_meanwhile_is_never_moved_back_to_creating(tmp_path, target):
    """Another process or worker found this create's owner gone and settled its ``waiting`` row
    (never sent): when its turn comes the owner is refused, and the row stays settled."""
    rate = pacing.CreateRate(1, 0.5)
    journal = open_mod.open_journal(target, rate=rate)
    other = open_mod.open_journal(target, rate=rate)
    journal.create_turn(_new_create(journal, 0))
    waiting = _new_create(journal, 1)
    assert journal.create_turn(waiting) > 0 and _state_of(journal, waiting) == "waiting"
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=1)
    with other.claim(identity) as claim:
        claim.settle_unsent(waiting.id, runner_mod.NEVER_SENT)
    assert _turns_of(journal, waiting.id) == 0  # its unreached turn was given back
    for _ in range(2):  # before its turn and after it: refused either way
        with pytest.raises(store_mod.SettledWhileWaitingError) as caught:
            journal.create_turn(waiting)
        assert "nothing was sent" in str(caught.value)
        time.sleep(1.6)
    settled = journal.entry(waiting.id)
    assert (settled.state, settled.credits, settled.error) == ("rejected", 0, runner_mod.NEVER_SENT)
    assert _turns_of(journal, waiting.id) == 0
    other.close()
    journal.close()


def test_a_waiting_row_of_this_process_left_without_its_thread_is_created_once(
    tmp_path, sandbox, target
):
    """A ``waiting`` row of our own process that no thread works on (our identity lock says so)
    was never sent: it is settled as such and the request created once, nothing uncertain."""
    runner = make_runner(tmp_path, sandbox, target, rate=pacing.CreateRate(1, 30.0))
    blocker = _new_create(runner.journal, 40)
    runner.journal.create_turn(blocker)  # the window's one turn
    left = _new_create(runner.journal, 41)
    assert runner.journal.create_turn(left) > 25 and _state_of(runner.journal, left) == "waiting"
    runner.journal.mark(blocker.id, "rejected", "cancelled")
    runner.journal.rate = pacing.CreateRate(20, 30.0)  # room for the new create at once
    result = runner.text_to_image(PROMPT, seed=41)
    assert result.credits == 5 and ledger(sandbox) == (1, 5) and sandbox.create_requests == 1
    identity = journal_mod.RequestIdentity.text_to_image(PROMPT, seed=41)
    attempts = journal_history(runner.journal, identity)
    assert [(e.state, e.credits) for e in attempts] == [("rejected", 0), ("succeeded", 5)]
    assert attempts[0].id == left.id and attempts[0].error == runner_mod.NEVER_SENT
    assert attempts[1].task_id == result.task_id and runner.journal.uncertain() == []
    runner.journal.close()


TAKER = """
import os, sys, time
sys.path.insert(0, {tests_dir!r})
from support import submodule
journal = submodule("journal")
open_mod = submodule("journal.open")
pacing = submodule("journal.pacing")
store = open_mod.open_journal({target!r}, rate=pacing.CreateRate(20, 10.0))
go = {go!r}
open(go + ".ready." + str(os.getpid()), "w").close()
while not os.path.exists(go):
    time.sleep(0.005)
for seed in range(int(sys.argv[1]), int(sys.argv[1]) + 15):
    identity = journal.RequestIdentity.text_to_image("shared pace", seed=seed)
    with store.claim(identity) as claim:
        entry = claim.start_create()
    asked = time.time()
    wait = store.create_turn(entry)
    print(asked, time.time() + wait, wait, flush=True)
store.close()
"""


def test_two_processes_and_their_threads_share_one_queue_of_turns(tmp_path, target):
    """Two processes, 15 creates each, and 10 more from threads of this one, all asking at once
    on one journal at 20 per 10 s: exactly 20 go at once, the other 20 in the next window, and
    no window of 11 s (with the margin) holds more than 20 turns. Pacing alone, each process
    would have sent all its 15 (and the threads their 10) at once."""
    go = tmp_path / "go"
    script = TAKER.format(tests_dir=str(TESTS_DIR), target=str(target), go=str(go))
    takers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(start)], stdout=subprocess.PIPE, text=True
        )
        for start in (0, 100)
    ]
    rate = pacing.CreateRate(20, 10.0)
    journal = open_mod.open_journal(target, rate=rate)
    turns, lock = [], threading.Lock()

    def take(seed):
        entry = _new_create(journal, seed, "shared pace")
        asked = time.time()
        wait = journal.create_turn(entry)
        with lock:
            turns.append((asked, time.time() + wait, wait))

    _wait_until(lambda: len(list(tmp_path.glob("go.ready.*"))) == 2, "both processes to open it")
    go.touch()
    threads = [threading.Thread(target=take, args=(200 + i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_LIMIT_S)
    for taker in takers:
        out, _ = taker.communicate(timeout=WAIT_LIMIT_S)
        assert taker.returncode == 0
        turns += [tuple(map(float, line.split())) for line in out.splitlines()]
    journal.close()
    assert len(turns) == 40
    asked = sorted(a for a, _, _ in turns)
    assert asked[-1] - asked[0] < 5.0  # they all asked within the first window
    waits = sorted(w for _, _, w in turns)
    assert waits[:20] == [0.0] * 20 and waits[20] > 5.0  # the 21st waits for the next window
    at = sorted(t for _, t, _ in turns)
    window = rate.turn_window_s
    assert all(at[i + 20] - at[i] >= window - 0.1 for i in range(20)), at  # never 21 in a window
    assert at[-1] - at[0] < window + 5.0  # and the second 20 all in the next window


def test_the_create_rate_setting():
    assert pacing.rate_from_env({}) == pacing.CreateRate(20, 10.0)
    assert pacing.rate_from_env({"GROK_IMAGINE_CREATE_RATE": "5/2"}) == pacing.CreateRate(5, 2.0)
    assert pacing.rate_from_env({"GROK_IMAGINE_CREATE_RATE": "off"}) is None
    for bad in ("fast", "0/10", "5/0", "-3/1"):
        with pytest.raises(errors.InvalidRequestError) as caught:
            pacing.rate_from_env({"GROK_IMAGINE_CREATE_RATE": bad})
        assert "GROK_IMAGINE_CREATE_RATE" in str(caught.value) and "20/10" in str(caught.value)


def test_both_stores_take_the_rate_from_the_environment(tmp_path, target, monkeypatch):
    monkeypatch.setenv("GROK_IMAGINE_CREATE_RATE", "1/30")
    journal = open_mod.open_journal(target)
    for seed, expected in ((0, 0.0), (1, 31.0)):
        wait = journal.create_turn(_new_create(journal, seed))
        assert wait == pytest.approx(expected, abs=0.5)
    journal.close()
    monkeypatch.setenv("GROK_IMAGINE_CREATE_RATE", "off")
    journal = open_mod.open_journal(target)
    assert journal.create_turn(_new_create(journal, 2)) == 0.0
    journal.close()


def _new_create(journal, seed, prompt=PROMPT):
    """A request's ``creating`` row, as the runner's claim writes it before asking for a turn."""
    with journal.claim(journal_mod.RequestIdentity.text_to_image(prompt, seed=seed)) as claim:
        return claim.start_create()
