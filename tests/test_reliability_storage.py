"""The fault matrix, storage side: a disk that is full or read-only, journals from another
version or damaged, and keys echoed back into what is stored.

A paid create is only sent when its result can be remembered, so every row counts creates and
credits in the sandbox's ledger. Disk faults are real: a small tmpfs that fills up, or is
remounted read-only (root only; the rows skip with the reason elsewhere).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from support import mounts, pack, submodule
from support.reliability import (
    KEY,
    PROMPT,
    REWRITE,
    FaultProxy,
    bounded,
    make_rig,
    matrix_row,
    no_key_leaks,  # noqa: F401 - autouse: DEBUG logs on, no key in any record or file
    point_nodes_at,
    pointer_row,
    wait_until,
)
from support.status_text import status_text

errors = submodule("api.errors")
durability = submodule("journal.durability")
journal_db = submodule("journal.sqlite")
sqlite_database = submodule("journal.sqlite.database")
sqlite_schema = submodule("journal.sqlite.schema")
journal_mod = submodule("journal")
events = submodule("journal.events")
execution = submodule("nodes.execution")

AREA = "Storage and the journal"


def _rig_at(home: Path, sb, **settings):
    home.mkdir(parents=True, exist_ok=True)
    return make_rig(home, sb, **settings)


def _collect_events(into: list):
    return journal_mod.RunHooks(on_event=into.append)


# -- fail closed before the create -----------------------------------------------------------------


@matrix_row(
    AREA, "the disk holding the journal and the kept files is full (a 16 MB tmpfs, filled)",
    "`StorageUnavailableError` before anything is sent: \"Nothing was sent, so nothing was "
    "charged: the disk holding the kept-files folder <folder> is full (No space left on "
    "device). Free some space there. Or start ComfyUI with a --user-directory / "
    "--output-directory on a disk that works; then queue it again.\"",
    "0 creates, 0 credits, no journal row; once space is freed the same queue creates it "
    "(1 create, 5 credits)",
)  # fmt: skip
def test_full_disk_sends_no_create(sandbox, tmp_path):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        rig = _rig_at(disk.path / "home", sandbox)
        disk.fill()
        caught = rig.expect(
            durability.StorageUnavailableError, lambda: rig.runner.text_to_image(PROMPT)
        )
        assert caught.problem == durability.FULL and str(disk.path / "home") in str(caught)
        assert "Free some space" in str(caught) and "nothing was charged" in str(caught)
        assert rig.ledger() == (0, 0) and rig.history() == [] and rig.factory.calls == 0
        disk.free_up()
        result = rig.runner.text_to_image(PROMPT)
        assert len(result.files) == 6 and rig.ledger() == (1, 5)
        rig.runner.journal.close()


@matrix_row(
    AREA, "the journal's folder is read-only (a tmpfs remounted read-only)",
    "`StorageUnavailableError` before anything is sent: \"... the task journal folder <folder> "
    "cannot be written (Read-only file system). Fix its permissions (or the read-only mount). "
    "Or start ComfyUI with a --user-directory / --output-directory ...\" (on the command line: "
    "\"Or point --home (see --help) ...\"); the kept results of earlier runs still "
    "come back, free",
    "0 new creates; the earlier task's kept files are served without an API call, by a re-queue "
    "and by Grok Load Task (1 create, 5 credits in all)",
)  # fmt: skip
def test_read_only_journal_sends_no_create_but_serves_kept_results(sandbox, tmp_path):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        rig = _rig_at(disk.path / "home", sandbox)
        first = rig.runner.text_to_image(PROMPT)
        rig.runner.journal.close()
        disk.read_only()
        try:
            rig = _rig_at(disk.path / "home", sandbox)  # a new process: the journal opened again
            again = rig.runner.text_to_image(PROMPT)
            assert again.reused and again.files == first.files
            loaded = rig.runner.load(first.task_id)  # Grok Load Task of kept files: free
            assert loaded.reused and loaded.files == first.files
            caught = rig.expect(
                durability.StorageUnavailableError,
                lambda: rig.runner.text_to_image(PROMPT, seed=1),
            )
            assert caught.problem == durability.READ_ONLY and str(disk.path) in str(caught)
            assert "Read-only" in str(caught) and "--user-directory" in str(caught)
            assert rig.ledger() == (1, 5)
            rig.runner.journal.close()
        finally:
            disk.writable()


@matrix_row(
    AREA, "the kept-files folder is read-only while the journal is fine (separate disks)",
    "`StorageUnavailableError` before anything is sent: \"... the kept-files folder <folder> "
    "cannot be written (Read-only file system) ...\"",
    "0 creates, 0 credits; no journal row",
)  # fmt: skip
def test_read_only_files_folder_sends_no_create(sandbox, tmp_path):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        (disk.path / "files").mkdir()
        disk.read_only()
        try:
            factory_rig = make_rig(tmp_path, sandbox)
            runner = journal_mod.TaskRunner(
                factory_rig.factory,
                journal=factory_rig.runner.journal,
                files=journal_mod.FileStore(disk.path / "files"),
            )
            factory_rig.runner = runner
            caught = factory_rig.expect(
                durability.StorageUnavailableError, lambda: runner.text_to_image(PROMPT)
            )
            assert caught.role == "kept-files" and str(disk.path / "files") in str(caught)
            assert factory_rig.ledger() == (0, 0) and factory_rig.history() == []
            runner.journal.close()
        finally:
            disk.writable()


# -- disk trouble after the create -------------------------------------------------------------


@matrix_row(
    AREA, "the disk fills up while the create is on the wire (after the check, before the task id "
    "is written), then stays full while the images arrive",
    "the images are returned from memory; the status says \"task <id>: 6 of 6 images could not be "
    "written to <folder> ([Errno 28] No space left on device); they are shown but NOT kept: free "
    "some space ... and run it again to keep them (free)\"",
    "the task id is recorded (the journal's reserve is given back for it); no file kept; after "
    "space is freed the same queue keeps the images without a new create (1 create, 5 credits)",
)  # fmt: skip
def test_disk_full_after_the_create_returns_images_from_memory(sandbox, tmp_path):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        rig = _rig_at(disk.path / "home", sandbox)
        sandbox.faults.create_response_delay = 0.5
        filled = threading.Event()

        def fill_while_the_create_is_sent():
            wait_until(lambda: sandbox.create_requests >= 1, "the create request")
            disk.fill()
            filled.set()

        filler = threading.Thread(target=fill_while_the_create_is_sent)
        filler.start()
        seen: list = []

        def on_event(event):
            seen.append(event)
            if isinstance(event, events.TaskCreated):
                disk.fill()  # what the reserve gave back to record the task id is taken too

        hooks = journal_mod.RunHooks(on_event=on_event)
        result = bounded(lambda: rig.runner.text_to_image(PROMPT, hooks=hooks))
        filler.join()
        assert filled.is_set()
        assert result.files == [] and len(result.images) == 6
        assert all(isinstance(image, bytes) for image in result.images)
        (not_kept,) = [e for e in seen if isinstance(e, events.FilesNotKept)]
        text = events.describe(not_kept)
        assert "6 of 6 images could not be written" in text and "NOT kept" in text
        assert [e.path for e in seen if isinstance(e, events.FileKept)] == [None] * 6
        (entry,) = rig.history()
        assert entry.task_id == result.task_id  # the paid task id made it to the journal
        assert rig.kept() == [] and rig.ledger() == (1, 5)

        disk.free_up()
        sandbox.faults.create_response_delay = 0.0
        again = rig.runner.text_to_image(PROMPT)
        assert again.task_id == result.task_id and len(again.files) == 6
        assert [p.read_bytes() for p in again.files] == list(result.images)
        assert rig.ledger() == (1, 5)
        rig.runner.journal.close()


@matrix_row(
    AREA, "the disk is full when the images arrive, through the node",
    "the node outputs every image (from memory) and its status says they were not kept",
    "no file kept; queueing again after freeing space keeps them (1 create, 5 credits)",
)  # fmt: skip
def test_disk_full_after_the_create_through_the_node(sandbox_factory, tmp_path, monkeypatch):
    sb = sandbox_factory(images_per_task=2)
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        point_nodes_at(monkeypatch, disk.path / "home", sb.base_url)
        sb.faults.create_response_delay = 1.0  # the disk is full before the answer comes
        texts: list[str] = []
        monkeypatch.setattr(
            submodule("nodes.comfy_hooks").NodeHooks,
            "status",
            lambda self, status: texts.append(status_text(status)),
        )

        # A reserve big enough for the task id's write, too small for an image: what it gives
        # back on the full disk records the id, and the images still find no room.
        monkeypatch.setattr(sqlite_database, "RESERVE_BYTES", 16 * 1024)

        def fill_once_created():
            wait_until(lambda: sb.create_requests >= 1, "the create request")
            disk.fill()

        filler = threading.Thread(target=fill_once_created)
        filler.start()
        node = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]()
        try:
            images, task_ids, _ = bounded(lambda: asyncio.run(node.generate(PROMPT, 0)))
            filler.join()
            assert tuple(images.shape[:1]) == (2,)
            assert "NOT kept" in texts[-1], texts[-1]
            disk.free_up()
            images_again, ids_again, _ = bounded(lambda: asyncio.run(node.generate(PROMPT, 0)))
            assert ids_again == task_ids and tuple(images_again.shape[:1]) == (2,)
        finally:
            execution.close_journals()
        task_id = task_ids.strip()
        kept = sorted(p.name for p in (disk.path / "home" / "files" / task_id).iterdir())
        assert kept == [".request.json", "0.jpg", "1.jpg"]
        assert (sb.ledger(KEY).creates, sb.ledger(KEY).credits_charged) == (1, 5)


# -- journals from another version, or damaged ---------------------------------------------------


def _journal_path(rig) -> Path:
    return rig.home / "journal.sqlite"


def _reopen(rig, sb):
    rig.runner.journal.close()
    return make_rig(rig.home, sb)


@matrix_row(
    AREA, "a journal of the previous schema (version 1: no `file_failures` table)",
    "nothing: it is migrated forward in place (one explicit step per version) and its kept "
    "results come back",
    "every row; the kept files are served with no API call (1 create, 5 credits)",
)  # fmt: skip
def test_older_journal_is_migrated_and_its_results_reused(sandbox, tmp_path):
    rig = make_rig(tmp_path, sandbox)
    first = rig.runner.text_to_image(PROMPT)
    rig.runner.journal.close()
    raw = sqlite3.connect(_journal_path(rig))  # back to what the schema-1 code wrote
    schema_1 = sqlite_schema.columns(1)
    for (table,) in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
        if table.startswith("sqlite_"):
            continue
        if table not in schema_1:
            raw.execute(f"DROP TABLE {table}")
            continue
        for row in raw.execute(f"PRAGMA table_info({table})").fetchall():
            if row[1] not in schema_1[table]:
                raw.execute(f"ALTER TABLE {table} DROP COLUMN {row[1]}")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    rig = make_rig(tmp_path, sandbox)
    again = rig.runner.text_to_image(PROMPT)
    assert again.reused and again.files == first.files and rig.ledger() == (1, 5)
    raw = sqlite3.connect(_journal_path(rig))
    assert raw.execute("PRAGMA user_version").fetchone()[0] == journal_db.SCHEMA_VERSION
    raw.close()
    rig.runner.journal.close()


@matrix_row(
    AREA, "a journal written by a newer pack version (a user rolled the pack back): readable "
    "(our tables and columns are there) / unreadable (it reshaped them)",
    "readable: nothing, it is used as it is. Unreadable: `StorageUnavailableError` for paid "
    "work: \"... the task journal <path> was written by a newer version of this pack (...), in "
    "a form this version cannot write. Update the pack (kept results still load meanwhile) ...\"",
    "the journal file is never moved or changed; readable: the kept results are reused; "
    "unreadable: no create is sent (1 create, 5 credits in all)",
)  # fmt: skip
@pytest.mark.parametrize("readable", [True, False], ids=["readable", "unreadable"])
def test_newer_journal_is_used_or_refused_never_moved(sandbox, tmp_path, readable):
    rig = make_rig(tmp_path, sandbox)
    first = rig.runner.text_to_image(PROMPT)
    rig.runner.journal.close()
    raw = sqlite3.connect(_journal_path(rig))
    if readable:
        raw.execute("ALTER TABLE requests ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
    else:
        raw.execute("ALTER TABLE requests RENAME COLUMN identity TO request_key")
    raw.execute(f"PRAGMA user_version = {journal_db.SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    rig = make_rig(tmp_path, sandbox)
    if readable:
        again = rig.runner.text_to_image(PROMPT)
        assert again.reused and again.files == first.files
        assert len(rig.runner.text_to_image(PROMPT, seed=1).files) == 6  # paid work goes on
        assert rig.ledger() == (2, 10)
    else:
        caught = rig.expect(
            durability.StorageUnavailableError, lambda: rig.runner.text_to_image(PROMPT)
        )
        assert caught.problem == durability.NEWER_JOURNAL and "Update the pack" in str(caught)
        assert rig.ledger() == (1, 5)
    rig.runner.journal.close()
    assert not [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    raw = sqlite3.connect(_journal_path(rig))
    assert raw.execute("PRAGMA user_version").fetchone()[0] == journal_db.SCHEMA_VERSION + 1
    raw.close()


def _cut_in_half(path: Path) -> None:
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


@matrix_row(
    AREA, "a damaged journal (cut in half, as a crash during a copy leaves it), six paid tasks",
    "one WARNING line: \"The task journal <path> was damaged (...); N task(s) were recovered "
    "from it into a fresh journal, and the damaged file is kept as <path>.damaged-...\" (and one "
    "more for tasks found through their kept-files folders)",
    "the damaged file beside the fresh one; every task comes back (from its rows, the indexes "
    "or its folder's `.request.json`): queueing the six again creates nothing (6 creates, 30 "
    "credits)",
)  # fmt: skip
def test_damaged_journal_is_salvaged_and_nothing_is_paid_twice(sandbox, tmp_path, caplog):
    rig = make_rig(tmp_path, sandbox)
    firsts = [rig.runner.text_to_image(PROMPT, seed=seed) for seed in range(6)]
    rig.runner.journal.close()
    _cut_in_half(_journal_path(rig))
    shutil.rmtree(rig.files_root / firsts[0].task_id)  # one task's files lost as well
    rig = make_rig(tmp_path, sandbox)
    report = rig.runner.journal.salvaged
    assert report is not None and report.kept_as.exists()
    lines = [r.getMessage() for r in caplog.records if "was damaged" in r.getMessage()]
    assert len(lines) == 1 and str(report.kept_as) in lines[0]
    for seed, first in enumerate(firsts):
        again = rig.runner.text_to_image(PROMPT, seed=seed)
        assert again.task_id == first.task_id and len(again.images) == 6
    assert rig.ledger() == (6, 30)
    rig.runner.journal.close()


@matrix_row(
    AREA, "a journal damaged beyond reading (overwritten with noise: no row, no index left), "
    "three paid tasks",
    "the WARNING line says 0 tasks were recovered from the file, and a second that 3 were found "
    "in their kept-files folders (`.request.json`) and recorded again",
    "the damaged file beside; each task comes back from its folder's note with its identity, "
    "so queueing the three again resumes them (no create: 3 creates, 15 credits)",
)  # fmt: skip
def test_tasks_lost_with_the_journal_come_back_from_their_folders(sandbox, tmp_path, caplog):
    rig = make_rig(tmp_path, sandbox)
    firsts = [rig.runner.text_to_image(PROMPT, seed=seed) for seed in range(3)]
    rig.runner.journal.close()
    path = _journal_path(rig)
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    path.write_bytes(b"\x13 noise where the journal was " * 2000)
    rig = make_rig(tmp_path, sandbox)
    report = rig.runner.journal.salvaged
    assert report is not None and report.tasks == 0 and report.kept_as.exists()
    found = [r.getMessage() for r in caplog.records if "kept-files folders" in r.getMessage()]
    assert len(found) == 1 and found[0].startswith("3 more task(s)")
    for seed, first in enumerate(firsts):
        again = rig.runner.text_to_image(PROMPT, seed=seed)
        assert again.task_id == first.task_id and not again.credits and len(again.images) == 6
    assert rig.ledger() == (3, 15)
    rig.runner.journal.close()


# -- keys echoed back ------------------------------------------------------------------------------


@matrix_row(
    AREA, "the API echoes the key into every result URL (`?token=<key>`, and `user:password@` "
    "userinfo) and into the in-progress status word",
    "nothing: the images arrive; the URLs the node outputs read `token=<redacted key>`, without "
    "userinfo; no log line at DEBUG (urllib3's request lines included) has the key",
    "the journal's URLs and status are redacted (its bytes hold no key, no userinfo); the task's "
    "images; 1 create, 5 credits",
)  # fmt: skip
def test_a_key_echoed_into_urls_and_status_is_never_stored_or_shown(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(generation_time=(0.3, 0.3))  # long enough to be seen in progress
    sandbox.faults.echo_key = True
    rig = make_rig(tmp_path, sandbox)
    seen: list = []
    result = rig.runner.text_to_image(PROMPT, hooks=_collect_events(seen))
    assert len(result.files) == 6 and rig.ledger() == (1, 5)
    assert result.urls and all(KEY not in url for url in result.urls)
    assert all("token=<redacted key>" in url and "@" not in url for url in result.urls)
    (entry,) = rig.history()
    assert all(KEY not in url and "cdn-password" not in url for url in entry.result_urls)
    updates = [e.task for e in seen if isinstance(e, events.TaskUpdated)]
    assert updates and all(KEY not in (task.raw_status or "") for task in updates)
    assert any("<redacted key>" in (task.raw_status or "") for task in updates)
    rig.runner.journal.close()
    journal_bytes = b"".join(p.read_bytes() for p in tmp_path.glob("journal.sqlite*"))
    assert b"cdn-password" not in journal_bytes and KEY.encode() not in journal_bytes


pointer_row(
    AREA,
    "real damaged journal files: cut short mid-page, pages in the middle overwritten with noise, "
    "not SQLite at all, foreign tables, our version with other columns; read by SQLite's own "
    "`.recover` where the command line can, else row by row (tables both ways, then the indexes)",
    "one WARNING line naming how many tasks came back and where the damaged file is kept",
    "the damaged file byte for byte beside the fresh journal; every row that can be read (from "
    "the indexes, identity and task id when the row itself is lost), each resumable",
    "test_journal_db.py::test_damaged_journal_is_salvaged_and_kept_beside",
)
pointer_row(
    AREA,
    "a real schema-1 journal file written by the schema-1 code (`tests/data/journal-v1.sqlite`)",
    "nothing: migrated forward in place, no warning",
    "every row (succeeded, running, failed, uncertain, loaded) and its kept-file records",
    "test_journal_db.py::test_older_journal_is_migrated_forward_keeping_every_row",
)
pointer_row(
    AREA,
    "the disk fills while a create is on the wire (a 16 MB tmpfs), journal only",
    "one WARNING line: the journal's reserve was used to record a paid task id",
    "the task id, recorded and still there after a reopen",
    "test_journal_db.py::test_a_paid_task_id_fits_on_a_disk_that_filled_during_the_create",
)
pointer_row(
    AREA,
    "this pack's journal (schema 3: one more table, `create_turns`) opened by a pack of schema 2 "
    "(a user rolled the pack back)",
    "nothing: the older pack uses it as it is (every table and column it writes is there); its "
    "own creates take no turns, so only the newer pack's creates are paced",
    "the version stays 3 and the turns table is left alone; the older pack's paid work is "
    "recorded in the journal",
    "test_journal_db.py::test_a_pack_from_before_the_turns_table_uses_this_packs_journal_as_it_is",
)


@matrix_row(
    AREA, "the API echoes the key as the userinfo of the result URLs (`http://user:<key>@cdn/...`)",
    "nothing: the images arrive; the URLs shown carry no userinfo",
    "the task's images; the file host saw no credentials (requests would have sent the key as "
    "Basic auth to that other origin); the journal holds no key; 1 create, 5 credits",
)  # fmt: skip
def test_a_key_echoed_as_url_userinfo_is_never_sent_to_the_file_host(sandbox, tmp_path):
    with FaultProxy(sandbox.base_url) as proxy:
        rig = make_rig(tmp_path, sandbox, base_url=proxy.base_url)

        def key_as_userinfo(payload):
            output = (payload.get("data") or {}).get("output") or {}
            output["image_urls"] = [
                url.replace("://", f"://user:{KEY}@", 1) for url in output.get("image_urls", [])
            ]
            return payload

        proxy.add("GET", "/api/v1/tasks/", REWRITE, times=None, transform=key_as_userinfo)
        result = rig.runner.text_to_image(PROMPT)
    assert len(result.files) == 6 and rig.ledger() == (1, 5)
    assert len(sandbox.file_requests) == 6
    assert not any(r.had_authorization for r in sandbox.file_requests)
    assert all("@" not in url and KEY not in url for url in result.urls)
    rig.runner.journal.close()
