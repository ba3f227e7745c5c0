"""The key file and key rules behind the Settings entry, without aiohttp or ComfyUI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest
from support import PACK_DIR, submodule

settings_route = submodule("nodes.settings_route")

KEY = "sk-live-0123456789abcdefWXYZ"


def test_key_file_is_written_0600_atomically_and_read_back(tmp_path):
    path = tmp_path / "user" / "grok_imagine" / "api_key"
    settings_route.write_key_file(path, KEY)
    assert settings_route.read_key_file(path) == KEY
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings_route.write_key_file(path, "sk-second-key-1234")
    assert settings_route.read_key_file(path) == "sk-second-key-1234"
    assert sorted(p.name for p in path.parent.iterdir()) == ["api_key"]


def test_concurrent_writers_leave_one_whole_key(tmp_path):
    path = tmp_path / "grok_imagine" / "api_key"
    keys = [f"sk-concurrent-{i:04d}-" + "k" * 40 for i in range(8)]
    threads = [
        threading.Thread(target=settings_route.write_key_file, args=(path, key)) for key in keys
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert settings_route.read_key_file(path) in keys


def test_missing_or_empty_key_file_reads_as_none(tmp_path):
    path = tmp_path / "api_key"
    assert settings_route.read_key_file(path) is None
    path.write_text("\n  \n")
    assert settings_route.read_key_file(path) is None
    settings_route.delete_key_file(path)
    settings_route.delete_key_file(path)  # deleting twice is fine
    assert not path.exists()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(KEY, KEY), (f"  {KEY}\r\n", KEY), ("", ""), (" \n", ""), ("a" * 512, "a" * 512)],
)
def test_validate_key_accepts_and_trims(raw, expected):
    assert settings_route.validate_key(raw) == expected


@pytest.mark.parametrize(
    "raw", ["1234567", "a" * 513, "sk live key", "sk-\x00-nul-key", "sk-ünïcode-key", b"bytes-key"]
)
def test_validate_key_rejects_without_quoting_the_input(raw):
    with pytest.raises(settings_route.KeyRejected) as caught:
        settings_route.validate_key(raw)
    assert caught.value.status == 400
    if isinstance(raw, str) and len(raw) >= 4:
        assert raw not in str(caught.value)


def test_status_prefers_environment_and_masks(tmp_path):
    path = tmp_path / "api_key"
    route = settings_route.KeyRoute(key_file=path, environ={})
    assert route.status().to_json() == {
        "set": False,
        "source": None,
        "last4": None,
        "file_set": False,
    }
    route.store(KEY)
    assert route.status().to_json() == {
        "set": True,
        "source": "file",
        "last4": "WXYZ",
        "file_set": True,
    }
    env_route = settings_route.KeyRoute(
        key_file=path, environ={"APIINONE_API_KEY": "sk-env-key-0000"}
    )
    assert env_route.status().to_json() == {
        "set": True,
        "source": "env",
        "last4": "0000",
        "file_set": True,
    }
    blank_env = settings_route.KeyRoute(key_file=path, environ={"APIINONE_API_KEY": "  "})
    assert blank_env.status().source == "file"


def test_key_file_location_is_resolved_per_request(tmp_path):
    calls = []

    def resolver():
        calls.append(1)
        return tmp_path / f"dir{len(calls)}" / "api_key"

    route = settings_route.KeyRoute(key_file=resolver, environ={})
    route.store(KEY)
    assert (tmp_path / "dir1" / "api_key").exists()
    assert len(calls) >= 2


def test_importing_the_route_module_pulls_in_neither_aiohttp_nor_comfyui():
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(PACK_DIR / "tests")!r})
        from support import PACK_DIR, submodule
        submodule("nodes.settings_route")
        print(sorted(m for m in ("aiohttp", "folder_paths", "server") if m in sys.modules))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
