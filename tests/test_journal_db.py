"""The journal's SQLite layer: rows in the order money moves, and a damaged file never blocks."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import submodule

db = submodule("journal.db")
identity_mod = submodule("journal.identity")
owner_mod = submodule("journal.owner")

Journal = db.Journal
State = db.State
RequestIdentity = identity_mod.RequestIdentity

T2I = RequestIdentity.text_to_image("a red fox in snow", "3:2", seed=7, index=1)


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.sqlite") as j:
        yield j


def _create(journal, identity=T2I, task_id="task-1"):
    with journal.claim(identity) as claim:
        assert claim.latest is None or claim.latest.state in (State.FAILED, State.REJECTED)
        entry = claim.start_create()
    if task_id is not None:
        journal.record_task_id(entry, task_id)
    return entry


def test_identity_key_is_stable_and_every_input_counts():
    same = RequestIdentity.text_to_image("a red fox in snow", "3:2", seed=7, index=1)
    assert T2I.key == same.key and len(T2I.key) == 64
    variants = [
        RequestIdentity.text_to_image("a red fox in snow!", "3:2", seed=7, index=1),
        RequestIdentity.text_to_image("a red fox in snow", None, seed=7, index=1),
        RequestIdentity.text_to_image("a red fox in snow", "3:2", seed=8, index=1),
        RequestIdentity.text_to_image("a red fox in snow", "3:2", seed=7, index=2),
        RequestIdentity.upscale("task-1", seed=7, index=1),
    ]
    assert len({v.key for v in variants} | {T2I.key}) == len(variants) + 1
    assert T2I.credits == 5 and RequestIdentity.upscale("t").credits == 12
    # "provider default" aspect ratio spelled as "" or None is the same request
    assert (
        RequestIdentity.text_to_image("p", "").key == RequestIdentity.text_to_image("p", None).key
    )


def test_fresh_journal_is_wal_and_versioned(journal, tmp_path):
    raw = sqlite3.connect(tmp_path / "journal.sqlite")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    finally:
        raw.close()


def test_rows_follow_the_money(journal):
    with journal.claim(T2I) as claim:
        assert claim.latest is None
        entry = claim.start_create()
    row = journal.latest(T2I)
    assert row.state == State.CREATING and row.task_id is None
    assert (row.model, row.prompt, row.aspect_ratio, row.seed, row.index) == (
        "grok-imagine/text-to-image", "a red fox in snow", "3:2", 7, 1,
    )  # fmt: skip
    assert row.credits == 5 and row.owner == owner_mod.current_owner()

    journal.record_task_id(entry, "task-1")
    assert journal.get("task-1").state == State.QUEUED
    journal.record_state("task-1", State.RUNNING)
    journal.record_state(
        "task-1", State.SUCCEEDED, result_urls=["http://x/0.jpg", "http://x/1.jpg"]
    )
    journal.record_file("task-1", 1, "/kept/1.jpg", "b" * 64, 20, "http://x/1.jpg")
    journal.record_file("task-1", 0, "/kept/0.jpg", "a" * 64, 10, "http://x/0.jpg")

    done = journal.get("task-1")
    assert done.state == State.SUCCEEDED and done.finished and done.finished_at is not None
    assert done.result_urls == ("http://x/0.jpg", "http://x/1.jpg")
    assert [(f.index, f.path, f.size) for f in done.files] == [
        (0, "/kept/0.jpg", 10),
        (1, "/kept/1.jpg", 20),
    ]
    assert done.credits == 5
    assert journal.get("no-such-task") is None


def test_failed_attempts_stay_on_record_and_are_not_charged(journal):
    _create(journal, task_id="task-1")
    journal.record_state("task-1", State.FAILED, error="content policy")
    with journal.claim(T2I) as claim:
        assert claim.latest.state == State.FAILED
        claim.start_create()
    history = journal.history(T2I)
    assert [e.state for e in history] == [State.FAILED, State.CREATING]
    assert [e.credits for e in history] == [0, 5]
    assert history[0].error == "content policy"


def test_mark_uncertain_and_rejected(journal):
    entry = _create(journal, task_id=None)
    journal.mark(entry.id, State.REJECTED, "HTTP 402")
    assert journal.latest(T2I).state == State.REJECTED and journal.latest(T2I).credits == 0
    with journal.claim(T2I) as claim:
        second = claim.start_create()
        claim.mark_uncertain(second.id, "answer lost")
        assert claim.latest.state == State.UNCERTAIN
    assert journal.latest(T2I).credits == 5  # it may have been charged


def test_claim_rolls_back_on_error(journal):
    with pytest.raises(RuntimeError), journal.claim(T2I) as claim:
        claim.start_create()
        raise RuntimeError("boom")
    assert journal.latest(T2I) is None


def test_recent_is_newest_first_and_loaded_tasks_are_free(journal):
    for seed in range(5):
        _create(journal, RequestIdentity.text_to_image("p", seed=seed), task_id=f"t{seed}")
    loaded = journal.record_loaded("someone-elses-task")
    assert loaded.identity is None and loaded.credits == 0
    assert journal.record_loaded("someone-elses-task").id == loaded.id  # idempotent
    assert journal.record_loaded("t2").identity is not None  # already known: untouched
    assert [e.task_id for e in journal.recent(3)] == ["someone-elses-task", "t4", "t3"]


def test_threads_share_one_journal(journal):
    errors = []

    def work(n):
        try:
            for i in range(20):
                ident = RequestIdentity.text_to_image(f"thread {n}", seed=i)
                entry = _create(journal, ident, task_id=f"t{n}-{i}")
                journal.record_state(f"t{n}-{i}", State.SUCCEEDED, result_urls=["u"])
                journal.record_file(f"t{n}-{i}", 0, "p", "0" * 64, 1, "u")
                assert journal.get(f"t{n}-{i}").id == entry.id
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(journal.recent(1000)) == 120


def test_two_journals_on_one_file_see_each_other(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path) as a, Journal(path) as b:
        _create(a, task_id="task-1")
        with b.claim(T2I) as claim:
            assert claim.latest.task_id == "task-1"


def test_nothing_secret_in_the_schema(journal, tmp_path):
    raw = sqlite3.connect(tmp_path / "journal.sqlite")
    try:
        columns = {
            row[1]
            for table in ("requests", "files")
            for row in raw.execute(f"PRAGMA table_info({table})")
        }
    finally:
        raw.close()
    assert not {c for c in columns if any(w in c for w in ("key", "auth", "header", "token"))}


# -- a damaged journal never blocks generation ------------------------------------------------


def _write_rows(path):
    with Journal(path) as j:
        for seed in range(40):
            _create(j, RequestIdentity.text_to_image("p" * 500, seed=seed), task_id=f"t{seed}")


def _not_a_database(path):
    path.write_bytes(b"this is not an sqlite file at all\n" * 100)


def _truncated(path):
    _write_rows(path)
    with sqlite3.connect(path) as raw:  # fold the WAL into the main file, then cut it short
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = path.read_bytes()
    assert len(data) > 3 * 4096
    path.write_bytes(data[: len(data) // 2 + 100])
    for suffix in ("-wal", "-shm"):
        (path.parent / (path.name + suffix)).unlink(missing_ok=True)


def _foreign_tables(path):
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE photos (id INTEGER, name TEXT)")
    raw.commit()
    raw.close()


def _future_schema(path):
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE requests (id INTEGER)")
    raw.execute("PRAGMA user_version = 99")
    raw.commit()
    raw.close()


def _wrong_columns(path):
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE requests (id INTEGER)")
    raw.execute("CREATE TABLE files (task_id TEXT)")
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION}")
    raw.commit()
    raw.close()


@pytest.mark.parametrize(
    "damage", [_not_a_database, _truncated, _foreign_tables, _future_schema, _wrong_columns]
)
def test_unreadable_journal_is_set_aside_with_one_warning(tmp_path, caplog, damage):
    path = tmp_path / "journal.sqlite"
    damage(path)
    original = path.read_bytes()
    caplog.set_level(logging.DEBUG)

    with Journal(path) as journal:
        _create(journal)  # generation goes on
        assert journal.get("task-1").state == State.QUEUED

    aside = [p for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite.corrupt-")]
    main_aside = [p for p in aside if not p.name.endswith(("-wal", "-shm"))]
    assert len(main_aside) == 1
    assert main_aside[0].read_bytes() == original  # kept for the user, not deleted
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "set aside" in message and main_aside[0].name in message

    with Journal(path) as again:  # the fresh journal is a good one: no second warning
        assert again.get("task-1").state == State.QUEUED
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


def test_corruption_found_mid_run_starts_fresh(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    try:
        _create(journal)
        journal._conn.close()
        _not_a_database(path)
        for suffix in ("-wal", "-shm"):
            (tmp_path / (path.name + suffix)).unlink(missing_ok=True)
        journal._conn = journal._connect()  # a connection to the now-damaged file
        caplog.set_level(logging.WARNING)
        assert journal.get("task-1") is None  # recovered: a fresh, empty journal
        _create(journal, task_id="task-2")
        assert journal.get("task-2").state == State.QUEUED
    finally:
        journal.close()
    assert len(caplog.records) == 1
    assert any(p.name.startswith("journal.sqlite.corrupt-") for p in tmp_path.iterdir())


def test_a_task_id_arriving_after_the_journal_was_set_aside_is_kept(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    try:
        with journal.claim(T2I) as claim:
            entry = claim.start_create()  # the create request is now on the wire...
        journal._conn.close()
        _not_a_database(path)  # ...and the journal file is damaged meanwhile
        for suffix in ("-wal", "-shm"):
            (tmp_path / (path.name + suffix)).unlink(missing_ok=True)
        journal._conn = journal._connect()
        caplog.set_level(logging.WARNING)
        journal.record_task_id(entry, "task-paid")
        kept = journal.get("task-paid")
        assert kept.identity == T2I.key and kept.prompt == T2I.prompt and kept.credits == 5
        assert journal.latest(T2I).task_id == "task-paid"  # a re-queue resumes it
    finally:
        journal.close()
    assert len(caplog.records) == 1
    assert any(p.name.startswith("journal.sqlite.corrupt-") for p in tmp_path.iterdir())


def test_unusable_location_falls_back_to_memory(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    caplog.set_level(logging.WARNING)
    with Journal(blocker / "journal.sqlite") as journal:
        _create(journal)
        assert journal.get("task-1").state == State.QUEUED
    assert len(caplog.records) == 1 and "in memory" in caplog.records[0].getMessage()


OPEN_AT_ONCE = """
import logging, os, sys, time
sys.path.insert(0, {tests_dir!r})
from support import submodule
warnings = []
class Catch(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger().addHandler(Catch(level=logging.WARNING))
db = submodule("journal.db")
open({go!r} + "." + str(os.getpid()), "w").close()
while not os.path.exists({go!r}):
    time.sleep(0.001)
journal = db.Journal({path!r})
journal.record_loaded("task-" + str(os.getpid()))
print(len(warnings), flush=True)
"""


def test_processes_opening_a_new_journal_at_once_all_use_it(tmp_path):
    """Creating the file races (WAL switch, schema): nobody falls back or sets it aside."""
    tests_dir = str(Path(__file__).resolve().parent)
    go = str(tmp_path / "go")
    script = OPEN_AT_ONCE.format(tests_dir=tests_dir, go=go, path=str(tmp_path / "j.sqlite"))
    children = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("go.*"))) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        (tmp_path / "go").touch()
        outputs = [c.communicate(timeout=60)[0].strip() for c in children]
    finally:
        for c in children:
            c.kill()
            c.wait(timeout=60)
    assert outputs == ["0"] * 4
    assert not list(tmp_path.glob("j.sqlite.corrupt-*"))
    with Journal(tmp_path / "j.sqlite") as journal:
        assert len(journal.recent(10)) == 4


# -- owners: a row left in `creating` by a dead process is recognisable ----------------------------


def test_owner_liveness():
    me = owner_mod.current_owner()
    assert me.is_alive() and me.is_current()
    assert not owner_mod.ProcessOwner(me.pid, me.marker + "-other-start").is_alive()

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    dead_pid = int(child.stdout)
    assert not owner_mod.ProcessOwner(dead_pid, "token:whatever").is_alive() or (
        owner_mod._pid_exists(dead_pid)  # the pid was reused by now: allowed to look alive
    )
    if me.marker.startswith("linux-start:"):
        assert not owner_mod.ProcessOwner(dead_pid, "linux-start:1").is_alive()


def test_owner_of_a_live_other_process(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        start = owner_mod._linux_start_time(proc.pid)
        marker = f"linux-start:{start}" if start else "token:x"
        assert owner_mod.ProcessOwner(proc.pid, marker).is_alive()
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    # exited and reaped: gone
    assert not owner_mod.ProcessOwner(proc.pid, marker).is_alive() or owner_mod._pid_exists(
        proc.pid
    )
