"""The kept files (byte-exact, atomic, checked) and where they live by default."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from support import PACK_DIR, submodule
from support.journal_views import kept_paths

files_mod = submodule("journal.files")
durability = submodule("journal.durability")
errors = submodule("api.errors")
paths_mod = submodule("journal.paths")
FileStore = files_mod.FileStore


def _encoded(image_format: str) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, image_format)
    return buffer.getvalue()


JPEG = _encoded("JPEG")
PNG = _encoded("PNG")
WEBP = _encoded("WEBP")


def test_save_keeps_the_bytes_as_received(tmp_path):
    store = FileStore(tmp_path)
    stored = store.save("task-1", 0, JPEG, "jpeg")
    assert stored.path == tmp_path / "task-1" / "0.jpg"
    assert stored.path.read_bytes() == JPEG
    assert stored.sha256 == hashlib.sha256(JPEG).hexdigest() and stored.size == len(JPEG)
    assert store.save("task-1", 1, PNG).path.name == "1.png"  # format sniffed when not given
    assert store.save("task-1", 2, WEBP).path.name == "2.webp"
    with pytest.raises(errors.NotAnImageError):  # a kept file is a decodable file
        store.save("task-1", 3, b"\xff\xd8\xff\xe0 a JPEG's magic, then nothing of one")
    # no temporary files left behind, nothing written for the bad one
    assert sorted(p.name for p in (tmp_path / "task-1").iterdir()) == [
        "0.jpg", "1.png", "2.webp",
    ]  # fmt: skip


def test_request_notes_name_their_task(tmp_path):
    store = FileStore(tmp_path)
    store.note_task("task-1", {"identity": "abc", "prompt": "a fox", "credits": 5})
    store.save("task-2", 0, JPEG)  # a folder without a note
    (tmp_path / "task-3").mkdir()
    (tmp_path / "task-3" / files_mod.NOTE_NAME).write_text("{not json")
    assert list(store.noted_tasks()) == [
        {"task_id": "task-1", "identity": "abc", "prompt": "a fox", "credits": 5}
    ]
    assert kept_paths(store, "task-1") == []  # a note is not a result file


def test_check_writable_names_the_folder(tmp_path):
    blocker = tmp_path / "in-the-way"
    blocker.write_text("a file")
    with pytest.raises(durability.StorageUnavailableError) as refused:
        FileStore(blocker / "files").check_writable()
    assert refused.value.role == "kept-files" and str(blocker) in str(refused.value)
    FileStore(tmp_path / "files").check_writable()  # made when missing
    assert (tmp_path / "files").is_dir() and not list((tmp_path / "files").iterdir())


def test_each_index_is_found_under_its_own_name(tmp_path):
    store = FileStore(tmp_path)
    assert store.find("task-1", 0) is None
    for index in (10, 2, 0, 1):
        store.save("task-1", index, JPEG, "jpeg")
    assert [p.name for p in kept_paths(store, "task-1")] == ["0.jpg", "1.jpg", "2.jpg", "10.jpg"]
    assert store.find("task-1", 10).name == "10.jpg" and store.find("task-1", 3) is None


def test_resaving_under_another_format_replaces_the_copy(tmp_path):
    store = FileStore(tmp_path)
    store.save("task-1", 0, JPEG, "jpeg")
    store.save("task-1", 0, PNG, "png")
    assert [p.name for p in kept_paths(store, "task-1")] == ["0.png"]


def test_damaged_copy_is_not_served(tmp_path):
    store = FileStore(tmp_path)
    stored = store.save("task-1", 0, JPEG, "jpeg")
    assert store.verified("task-1", 0, stored.sha256) == stored.path
    stored.path.write_bytes(JPEG[:-10])  # truncated on disk
    assert store.verified("task-1", 0, stored.sha256) is None
    stored.path.unlink()
    assert store.verified("task-1", 0, stored.sha256) is None


@pytest.mark.parametrize("bad", ["", "../escape", "a/b", "a\\b", ".hidden", "c:x", "a\x00b"])
def test_task_ids_cannot_escape_the_store(tmp_path, bad):
    with pytest.raises(ValueError):
        FileStore(tmp_path / "store").save(bad, 0, JPEG)
    assert not (tmp_path / "escape").exists()


def test_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "gi"))
    assert paths_mod.default_home() == tmp_path / "gi"
    assert paths_mod.journal_path() == tmp_path / "gi" / "journal.sqlite"
    assert paths_mod.files_root() == tmp_path / "gi" / "files"
    assert paths_mod.journal_path(tmp_path) == tmp_path / "journal.sqlite"

    monkeypatch.delenv("GROK_IMAGINE_HOME")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
        assert paths_mod.default_home() == tmp_path / "xdg" / "grok-imagine"
        monkeypatch.delenv("XDG_DATA_HOME")
        assert paths_mod.default_home() == Path.home() / ".local" / "share" / "grok-imagine"
    assert not (tmp_path / "gi").exists()  # asking never creates anything


def test_loading_the_pack_does_not_load_the_journal():
    """ComfyUI's start-up imports the node declarations and the route table only: the journal
    (and with it sqlite3) loads when a node first runs, the route handlers (the key handling,
    the panel) on their first request."""
    script = textwrap.dedent(
        f"""
        import importlib, importlib.util, json, sys
        spec = importlib.util.spec_from_file_location(
            "pack-x", {str(PACK_DIR / "__init__.py")!r},
            submodule_search_locations=[{str(PACK_DIR)!r}])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["pack-x"] = mod
        spec.loader.exec_module(mod)
        heavy = ("pack-x.journal", "sqlite3", "requests", "PIL", "numpy", "torch", "aiohttp",
                 "pack-x.api.config", "pack-x.nodes.settings_route", "pack-x.nodes.panel_routes")
        loaded = [m for m in heavy if m in sys.modules]
        journal = importlib.import_module("pack-x.journal")
        print(json.dumps({{"loaded": loaded, "after": "sqlite3" in sys.modules}}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )  # fmt: skip
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"loaded": [], "after": True}


# -- a probe made ahead of a lock answers once, on its own thread ---------------------------------


def test_a_probe_made_ahead_answers_the_next_check_once_on_its_thread(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with durability.probed_ahead([(tmp_path, "kept-files")]):
        assert len(synced) == 1
        durability.require_writable(tmp_path, "kept-files")  # takes the answer made ahead
        assert len(synced) == 1
        other = threading.Thread(target=durability.require_writable, args=(tmp_path, "x"))
        other.start()
        other.join()
        assert len(synced) == 2  # another thread probes for itself
        durability.require_writable(tmp_path, "kept-files")  # good once: probed again
        assert len(synced) == 3
    durability.require_writable(tmp_path, "kept-files")
    assert len(synced) == 4


def test_a_folder_that_fails_ahead_is_refused_where_it_is_required(tmp_path):
    blocked = tmp_path / "files"
    blocked.write_text("a file in the way")
    with (
        durability.probed_ahead([(blocked, "kept-files")]),  # does not raise here...
        pytest.raises(durability.StorageUnavailableError) as refused,
    ):
        durability.require_writable(blocked, "kept-files")  # ...but where it is required
    assert refused.value.problem == durability.NOT_A_FOLDER
