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
from support import mounts, submodule
from support.journal_views import history as journal_history

db = submodule("journal.sqlite")
durability = submodule("journal.durability")
errors = submodule("api.errors")
salvage_mod = submodule("journal.sqlite.salvage")
identity_mod = submodule("journal.identity")
owner_mod = submodule("journal.owner")

Journal = db.Journal
State = submodule("journal.model").State
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
    history = journal_history(journal, T2I)
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


def _record_files_side_by_side(journal, count, *, fail_batch=None):
    """``count`` threads each record one kept file while the first commit is held up, as the
    downloads of eight tasks do; returns (rows per commit, each caller's error or None)."""
    batches: list[int] = []
    rows_mod = submodule("journal.sqlite.rows")
    original = rows_mod.insert_files
    first_commit_started = threading.Event()

    def commit(conn, rows):
        batches.append(len(rows))
        if len(batches) == 1:
            first_commit_started.set()
            # A synced commit on a slow disk: every other caller queues its row meanwhile.
            deadline = time.monotonic() + 30
            while len(journal._file_rows.queued) < count - 1 and time.monotonic() < deadline:
                time.sleep(0.005)
        if fail_batch is not None and len(batches) == fail_batch:
            raise sqlite3.OperationalError("disk I/O error")
        original(conn, rows)

    outcomes: dict[int, BaseException | None] = {}

    def keep(n):
        try:
            journal.record_file("task-g", n, f"/kept/{n}.jpg", f"{n:064x}", n + 1, f"http://x/{n}")
            outcomes[n] = None
        except BaseException as exc:
            outcomes[n] = exc

    rows_mod.insert_files = commit
    try:
        first = threading.Thread(target=keep, args=(0,))
        first.start()
        assert first_commit_started.wait(10)
        rest = [threading.Thread(target=keep, args=(n,)) for n in range(1, count)]
        for thread in rest:
            thread.start()
        for thread in [first, *rest]:
            thread.join(timeout=30)
    finally:
        rows_mod.insert_files = original
    return batches, outcomes


def test_files_kept_side_by_side_share_one_commit(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.record_loaded("task-g")
        batches, outcomes = _record_files_side_by_side(journal, 16)
        assert outcomes == {n: None for n in range(16)}
        # The first commit carries its own row; the 15 that queued meanwhile go in one more.
        assert batches == [1, 15]
        with Journal(path) as other:  # on disk, seen from another connection
            files = other.get("task-g").files
        assert sorted(f.index for f in files) == list(range(16))
        assert {f.sha256 for f in files} == {f"{n:064x}" for n in range(16)}


def test_a_failed_group_commit_is_raised_to_every_caller_in_it(tmp_path):
    path = tmp_path / "journal.sqlite"
    with Journal(path) as journal:
        journal.record_loaded("task-g")
        batches, outcomes = _record_files_side_by_side(journal, 8, fail_batch=2)
        assert batches == [1, 7]
        assert outcomes[0] is None
        failed = [outcomes[n] for n in range(1, 8)]
        assert all(isinstance(exc, sqlite3.OperationalError) for exc in failed)
        # Nothing half-written: the failed group left no rows, and a later file still records.
        assert [f.index for f in journal.get("task-g").files] == [0]
        journal.record_file("task-g", 3, "/kept/3.jpg", "3" * 64, 4, None)
        assert sorted(f.index for f in journal.get("task-g").files) == [0, 3]


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


# -- the edges: damaged, older, newer, unwritable journals -------------------------------------

DATA = Path(__file__).resolve().parent / "data"


def _write_rows(path, count=40):
    with Journal(path) as j:
        for seed in range(count):
            _create(j, RequestIdentity.text_to_image("p" * 500, seed=seed), task_id=f"t{seed}")


def _fold_wal(path):
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    for suffix in ("-wal", "-shm"):
        (path.parent / (path.name + suffix)).unlink(missing_ok=True)


def _not_a_database(path):
    path.write_bytes(b"this is not an sqlite file at all\n" * 100)


def _truncated(path):
    _write_rows(path)
    _fold_wal(path)
    data = path.read_bytes()
    assert len(data) > 3 * 4096
    path.write_bytes(data[: len(data) // 2 + 100])


def _overwritten_pages(path):
    """Pages in the middle of the file overwritten with noise, as a bad sector or a stray write
    would leave them; the first pages (the schema) and the last ones survive."""
    _write_rows(path)
    _fold_wal(path)
    data = bytearray(path.read_bytes())
    page = 4096
    pages = len(data) // page
    assert pages > 6
    for number in range(pages // 3, pages // 3 + 2):
        data[number * page : (number + 1) * page] = bytes((i * 37 + 11) % 256 for i in range(page))
    path.write_bytes(bytes(data))


def _foreign_tables(path):
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE photos (id INTEGER, name TEXT)")
    raw.commit()
    raw.close()


def _wrong_columns(path):
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE requests (id INTEGER)")
    raw.execute("CREATE TABLE files (task_id TEXT)")
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION}")
    raw.commit()
    raw.close()


def _command_line_recover_problem(probe):
    """Why SQLite's command line cannot ``.recover`` here (None when it can)."""
    cli = salvage_mod.shutil.which("sqlite3")
    if cli is None:
        return "the sqlite3 command line is not installed"
    raw = sqlite3.connect(probe)
    raw.execute("CREATE TABLE t (x)")
    raw.execute("INSERT INTO t VALUES (1)")
    raw.commit()
    raw.close()
    done = subprocess.run([cli, str(probe), ".recover"], capture_output=True, text=True)
    probe.unlink()
    if "INSERT" not in done.stdout:
        return f"this sqlite3 command line cannot .recover ({done.stderr.strip()[:80]})"
    return None


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "damage, some_rows_back",
    [
        (_not_a_database, False),
        (_truncated, True),
        (_overwritten_pages, True),
        (_foreign_tables, False),
        (_wrong_columns, False),
    ],
)
@pytest.mark.parametrize("recovery", ["sqlite3 .recover", "row-by-row read"])
def test_damaged_journal_is_salvaged_and_kept_beside(tmp_path, caplog, monkeypatch, damage,
                                                     some_rows_back, recovery):  # fmt: skip
    if recovery == "row-by-row read":
        monkeypatch.setattr(salvage_mod.shutil, "which", lambda name: None)
    else:
        problem = _command_line_recover_problem(tmp_path / "probe.sqlite")
        if problem:
            pytest.skip(problem)
    path = tmp_path / "journal.sqlite"
    damage(path)
    original = path.read_bytes()
    caplog.set_level(logging.DEBUG)

    with Journal(path) as journal:
        report = journal.salvaged
        assert report is not None
        assert report.kept_as.read_bytes() == original  # kept for the user, never deleted
        assert report.kept_as.parent == tmp_path and report.kept_as.name.startswith(
            "journal.sqlite.damaged-"
        )
        recovered = [journal.get(f"t{seed}") for seed in range(40)]
        back = [entry for entry in recovered if entry is not None]
        assert report.tasks == len(back) == report.rows
        if some_rows_back:
            assert back, f"no row recovered by {recovery}"
            for entry in back:  # each names its task and the request it was paid for
                seed = int(entry.task_id[1:])
                assert entry.identity == RequestIdentity.text_to_image("p" * 500, seed=seed).key
                assert entry.state == State.QUEUED  # a re-queue resumes it (free)
                assert entry.prompt in ("p" * 500, None)  # None: only the indexes had it
        else:
            assert back == []
        _create(journal, task_id="task-new")  # paid work goes on, in the fresh journal
        assert journal.get("task-new").state == State.QUEUED

    (warning,) = _warnings(caplog)
    message = warning.getMessage()
    assert f"{report.tasks} task(s) were recovered" in message
    assert str(report.kept_as) in message and str(path) in message and "\n" not in message

    with Journal(path) as again:  # the fresh journal is a good one: no second warning
        assert again.salvaged is None and again.get("task-new").state == State.QUEUED
    assert len(_warnings(caplog)) == 1


def test_salvaged_rows_keep_what_a_requeue_needs(tmp_path):
    """The recovered row of an identity is its latest: a re-queue resumes, never re-creates."""
    path = tmp_path / "journal.sqlite"
    _truncated(path)
    with Journal(path) as journal:
        back = [seed for seed in range(40) if journal.get(f"t{seed}") is not None]
        assert back
        seed = back[0]
        with journal.claim(RequestIdentity.text_to_image("p" * 500, seed=seed)) as claim:
            assert claim.latest is not None and claim.latest.task_id == f"t{seed}"


def test_corruption_found_mid_run_is_salvaged(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    try:
        _create(journal)
        journal._db.conn.close()
        _not_a_database(path)
        for suffix in ("-wal", "-shm"):
            (tmp_path / (path.name + suffix)).unlink(missing_ok=True)
        journal._db.conn = journal._db.connect()  # a connection to the now-damaged file
        caplog.set_level(logging.WARNING)
        assert journal.get("task-1") is None  # salvaged: nothing readable was left in it
        assert journal.salvaged is not None and journal.salvaged.tasks == 0
        _create(journal, task_id="task-2")
        assert journal.get("task-2").state == State.QUEUED
    finally:
        journal.close()
    assert len(caplog.records) == 1 and "damaged" in caplog.records[0].getMessage()
    assert any(p.name.startswith("journal.sqlite.damaged-") for p in tmp_path.iterdir())


def test_a_task_id_arriving_after_the_journal_was_salvaged_is_kept(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    try:
        with journal.claim(T2I) as claim:
            entry = claim.start_create()  # the create request is now on the wire...
        journal._db.conn.close()
        _not_a_database(path)  # ...and the journal file is damaged meanwhile
        for suffix in ("-wal", "-shm"):
            (tmp_path / (path.name + suffix)).unlink(missing_ok=True)
        journal._db.conn = journal._db.connect()
        caplog.set_level(logging.WARNING)
        journal.record_task_id(entry, "task-paid")
        kept = journal.get("task-paid")
        assert kept.identity == T2I.key and kept.prompt == T2I.prompt and kept.credits == 5
        assert journal.latest(T2I).task_id == "task-paid"  # a re-queue resumes it
    finally:
        journal.close()
    assert len(caplog.records) == 1
    assert any(p.name.startswith("journal.sqlite.damaged-") for p in tmp_path.iterdir())


def _table_columns(path):
    raw = sqlite3.connect(path)
    try:
        tables = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        return {
            name: tuple(row[1] for row in raw.execute(f"PRAGMA table_info({name})"))
            for (name,) in tables
            if not name.startswith("sqlite_")
        }
    finally:
        raw.close()


def test_the_migrations_make_the_models_columns_new_or_migrated(tmp_path):
    """A field is the model's column and one migration: a fresh journal and a migrated v1 one
    both hold exactly the model's tables and columns, in its order (salvage reads by position)."""
    model = submodule("journal.model")
    wanted = {table.name: table.names for table in model.TABLES}
    fresh, old = tmp_path / "fresh.sqlite", tmp_path / "old.sqlite"
    old.write_bytes((DATA / "journal-v1.sqlite").read_bytes())
    for path in (fresh, old):
        Journal(path).close()
        assert _table_columns(path) == wanted


def test_older_journal_is_migrated_forward_keeping_every_row(tmp_path, caplog):
    """``tests/data/journal-v1.sqlite`` was written by the schema-1 code (see make_journal_v1)."""
    path = tmp_path / "journal.sqlite"
    path.write_bytes((DATA / "journal-v1.sqlite").read_bytes())
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
    raw.close()
    caplog.set_level(logging.WARNING)

    with Journal(path) as journal:
        done = journal.get("v1-task-done")
        assert done.state == State.SUCCEEDED and done.credits == 5 and len(done.result_urls) == 2
        assert [(f.index, f.size) for f in done.files] == [(0, 1234), (1, 2345)]
        assert done.failed_files == ()
        assert journal.get("v1-task-running").state == State.RUNNING
        assert journal.get("v1-task-failed").credits == 0
        identity = RequestIdentity.text_to_image("a lighthouse in a storm, oil painting")
        assert journal.latest(identity).task_id == "v1-task-done"  # identities unchanged
        upscale = journal.latest(RequestIdentity.upscale("v1-task-done"))
        assert upscale.state == State.UNCERTAIN and upscale.credits == 12
        journal.record_file_failure("v1-task-done", 1, "not an image", None)  # the new table
        assert [f.reason for f in journal.get("v1-task-done").failed_files] == ["not an image"]
        assert len(journal.recent(10)) == 5
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    raw.close()
    assert not _warnings(caplog) and sorted(p.name for p in tmp_path.iterdir())[0] == (
        "journal.sqlite"
    )
    assert not [p for p in tmp_path.iterdir() if ".damaged-" in p.name]


def _newer_journal(path, *, readable):
    """A journal as a later pack version could leave it: same file, higher ``user_version``."""
    _write_rows(path, count=3)
    raw = sqlite3.connect(path)
    if readable:  # it added things, with defaults: our rows still fit
        raw.execute("ALTER TABLE requests ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
        raw.execute("CREATE TABLE tags (task_id TEXT, tag TEXT)")
    else:  # it reshaped what we write
        raw.execute("ALTER TABLE requests RENAME COLUMN prompt TO prompt_text")
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 7}")
    raw.commit()
    raw.close()
    _fold_wal(path)


def test_newer_readable_journal_is_used_as_it_is(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    _newer_journal(path, readable=True)
    caplog.set_level(logging.WARNING)
    with Journal(path) as journal:
        assert journal.get("t1").state == State.QUEUED  # its rows are ours
        journal.check_durable()
        _create(journal, task_id="task-new")  # and paid work is recorded in it
        journal.record_file("task-new", 0, "/k/0.jpg", "c" * 64, 3, None)
        assert journal.get("task-new").files[0].size == 3
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION + 7
    assert raw.execute("SELECT count(*) FROM tags").fetchone()[0] == 0  # its table untouched
    raw.close()
    assert not [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert not _warnings(caplog)


def test_a_pack_from_before_the_turns_table_uses_this_packs_journal_as_it_is(
    tmp_path, monkeypatch, caplog
):
    """Schema 3 added one table, ``create_turns``. A pack of schema 2 (its model: the other
    three tables) opening a schema-3 journal follows the newer-version rule: every table and
    column it writes is there and the extra table asks nothing of its rows, so it uses the file
    as it is, paid work included, and leaves the version and the turns alone. Its own creates
    take no turns: a machine mixing the two packs paces only the newer pack's creates."""
    path = tmp_path / "journal.sqlite"
    with Journal(path, rate=submodule("journal.pacing").CreateRate(1, 30.0)) as journal:
        entry = _create(journal, task_id=None)
        assert journal.create_turn(entry) == 0.0
    schema, model = submodule("journal.sqlite.schema"), submodule("journal.model")
    assert db.SCHEMA_VERSION == 3 and [t.name for t in model.TABLES][3:] == ["create_turns"]
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)  # what the older pack knows
    monkeypatch.setattr(schema, "TABLES", model.TABLES[:3])
    caplog.set_level(logging.WARNING)
    with Journal(path) as older:
        older.check_durable()  # not refused
        _create(older, RequestIdentity.text_to_image("from the older pack"), task_id="t-old")
        assert older.get("t-old").state == State.QUEUED
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 3
    assert raw.execute("SELECT request_id FROM create_turns").fetchall() == [(entry.id,)]
    raw.close()
    assert not _warnings(caplog)


def test_newer_unreadable_journal_refuses_paid_work_and_is_never_moved(tmp_path, caplog):
    path = tmp_path / "journal.sqlite"
    _newer_journal(path, readable=False)
    original = path.read_bytes()
    caplog.set_level(logging.WARNING)
    with Journal(path) as journal:
        with pytest.raises(durability.StorageUnavailableError) as refused:
            journal.check_durable()
        assert refused.value.problem == durability.NEWER_JOURNAL
        message = str(refused.value)
        assert "newer version of this pack" in message and "Update the pack" in message
        assert str(path) in message and "nothing was charged" in message and "\n" not in message
        with pytest.raises(durability.StorageUnavailableError), journal.claim(T2I) as claim:
            claim.start_create()
        loaded = journal.record_loaded("someone-elses-task")  # free work still goes on
        assert loaded.task_id == "someone-elses-task" and loaded.credits == 0
    assert path.read_bytes() == original
    names = {p.name for p in tmp_path.iterdir()}
    assert names <= {"journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm",
                     "journal.sqlite.reserve"}, names  # fmt: skip
    assert len(_warnings(caplog)) == 1 and "newer version" in _warnings(caplog)[0].getMessage()


def test_unusable_location_refuses_paid_work_never_memory(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the folder should be")
    caplog.set_level(logging.WARNING)
    with Journal(blocker / "journal.sqlite") as journal:
        with pytest.raises(durability.StorageUnavailableError) as refused:
            _create(journal)
        assert refused.value.problem == durability.NOT_A_FOLDER
        assert str(blocker) in str(refused.value) and "--user-directory" in str(refused.value)
        assert "--home" in refused.value.line(errors.Surface.CLI)
        assert journal.latest(T2I) is None  # nothing was written anywhere
        assert journal.record_loaded("free-task").task_id == "free-task"  # free work is fine
    assert len(caplog.records) == 1 and "nothing was charged" in caplog.records[0].getMessage()


def test_full_disk_refuses_paid_work_until_space_is_freed(tmp_path):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        path = disk.path / "home" / "journal.sqlite"
        with Journal(path) as journal:
            _create(journal, task_id="task-1")
            disk.fill()
            with pytest.raises(durability.StorageUnavailableError) as refused:
                _create(journal, identity=RequestIdentity.text_to_image("p", seed=1))
            assert refused.value.problem == durability.FULL
            assert str(path.parent) in str(refused.value) and "Free some space" in str(
                refused.value
            )
            assert journal.latest(RequestIdentity.text_to_image("p", seed=1)) is None
            assert journal.get("task-1").state == State.QUEUED  # reads go on
            disk.free_up()
            _create(journal, identity=RequestIdentity.text_to_image("p", seed=1), task_id="t2")
            assert journal.get("t2").state == State.QUEUED


def test_a_paid_task_id_fits_on_a_disk_that_filled_during_the_create(tmp_path, caplog):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        path = disk.path / "journal.sqlite"
        caplog.set_level(logging.WARNING)
        with Journal(path) as journal:
            for seed in range(3):  # a journal in use, its WAL checkpointed now and then
                _create(journal, RequestIdentity.text_to_image("q", seed=seed), f"old-{seed}")
            with journal.claim(T2I) as claim:
                entry = claim.start_create()  # the create is on the wire...
            disk.fill()  # ...when the disk fills up
            journal.record_task_id(entry, "task-paid")
            assert journal.get("task-paid").identity == T2I.key
        assert not journal.reserve_path.exists()  # given back to record the id
        assert any("reserve" in r.getMessage() for r in _warnings(caplog))
        disk.free_up()
        with Journal(path) as journal:
            assert journal.latest(T2I).task_id == "task-paid"  # survived close and reopen


def test_read_only_journal_still_serves_reads_and_refuses_paid_work(tmp_path, caplog):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        path = disk.path / "journal.sqlite"
        _write_rows(path, count=2)
        disk.read_only()
        try:
            caplog.set_level(logging.WARNING)
            with Journal(path) as journal:
                assert journal.get("t1").state == State.QUEUED  # kept results stay readable
                with pytest.raises(durability.StorageUnavailableError) as refused:
                    _create(journal, RequestIdentity.text_to_image("new"))
                assert refused.value.problem == durability.READ_ONLY
                assert str(disk.path) in str(refused.value)
                assert journal.record_loaded("free").task_id == "free"
        finally:
            disk.writable()
        with Journal(path) as journal:  # writable again: paid work goes on
            _create(journal, RequestIdentity.text_to_image("new"), task_id="t-new")


OPEN_AT_ONCE = """
import logging, os, sys, time
sys.path.insert(0, {tests_dir!r})
from support import mounts, submodule
warnings = []
class Catch(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger().addHandler(Catch(level=logging.WARNING))
db = submodule("journal.sqlite")
durability = submodule("journal.durability")
salvage_mod = submodule("journal.sqlite.salvage")
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
    assert not list(tmp_path.glob("j.sqlite.damaged-*"))
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


def _refused_attempt(journal, identity):
    """A create the API turned down: the row stays, as 'rejected' (no task, nothing charged)."""
    with journal.claim(identity) as claim:
        entry = claim.start_create()
    journal.mark(entry.id, State.REJECTED, "HTTP 401")
    return entry


def test_a_listing_can_leave_refused_attempts_out(journal):
    _create(journal, RequestIdentity.text_to_image("p", seed=0), task_id="t0")
    _refused_attempt(journal, RequestIdentity.text_to_image("p", seed=1))
    _create(journal, RequestIdentity.text_to_image("p", seed=2), task_id="t2")
    assert [e.task_id for e in journal.page(10)] == ["t2", None, "t0"]
    assert [e.task_id for e in journal.page(10, with_rejected=False)] == ["t2", "t0"]
    assert [e.task_id for e in journal.page(1, 1, with_rejected=False)] == ["t0"]
    assert (journal.count(), journal.count(with_rejected=False)) == (3, 2)
