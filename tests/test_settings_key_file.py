"""One home for the key (``api.config``): the Settings entry, the CLI and the nodes read, clean,
check, mask and write the key file the same way."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest
from support import PACK_DIR, submodule
from support.keys import TEST_KEY

config = submodule("api.config")
errors = submodule("api.errors")
settings_route = submodule("nodes.settings_route")
client_mod = submodule("api.client")

KEY = "sk-live-0123456789abcdefWXYZ"


def test_key_file_is_written_0600_atomically_and_read_back(tmp_path):
    path = tmp_path / "user" / "grok_imagine" / "api_key"
    config.write_key_file(path, KEY)
    assert config.read_stored_key(path) == KEY
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config.write_key_file(path, "sk-second-key-1234")
    assert config.read_stored_key(path) == "sk-second-key-1234"
    assert sorted(p.name for p in path.parent.iterdir()) == ["api_key"]


def test_concurrent_writers_leave_one_whole_key(tmp_path):
    path = tmp_path / "grok_imagine" / "api_key"
    keys = [f"sk-concurrent-{i:04d}-" + "k" * 40 for i in range(8)]
    threads = [threading.Thread(target=config.write_key_file, args=(path, key)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert config.read_stored_key(path) in keys


def test_missing_or_empty_key_file_reads_as_none(tmp_path):
    path = tmp_path / "api_key"
    assert config.read_stored_key(path) is None
    path.write_text("\n  \n")
    assert config.read_stored_key(path) is None
    assert config.delete_key_file(path) is True
    assert config.delete_key_file(path) is False  # nothing left to remove, and it says so
    assert not path.exists()


@pytest.mark.parametrize(
    "raw",
    [
        KEY,
        f"  {KEY}\r\n",
        f'"{KEY}"',
        f"'{KEY}'\n",
        f"Bearer {KEY}",
        f"APIINONE_API_KEY={KEY}",
        f'APIINONE_API_KEY="{KEY}"\n',
        f"# my key\n{KEY}\n",
    ],
)
def test_validate_key_cleans_what_people_paste(raw):
    assert config.validate_key(raw) == KEY


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("1234567", "too short"),
        ("a" * 513, "too long"),
        ("sk live key", "space"),
        ("sk-\x00-nul-key", "not plain ASCII"),
        ("sk-ünïcode-key", "not plain ASCII"),
        (b"bytes-key", "must be text"),
        ("   ", "empty"),
    ],
)
def test_validate_key_rejects_without_quoting_the_input(raw, fragment):
    with pytest.raises(errors.InvalidRequestError) as caught:
        config.validate_key(raw)
    assert fragment in str(caught.value) and caught.value.field == "key"
    if isinstance(raw, str) and len(raw.strip()) >= 4:
        assert raw not in str(caught.value)


def test_key_info_prefers_environment_and_masks(tmp_path):
    path = tmp_path / "api_key"
    assert config.key_info(path, {}) == config.KeyInfo(False, None, None, file_set=False)
    config.write_key_file(path, KEY)
    assert config.key_info(path, {}) == config.KeyInfo(True, "file", "WXYZ", file_set=True)
    env = {"APIINONE_API_KEY": "sk-env-key-0000"}
    assert config.key_info(path, env) == config.KeyInfo(True, "env", "0000", file_set=True)
    assert config.key_info(path, {"APIINONE_API_KEY": "  "}).source == "file"
    assert config.key_info(path, {"APIINONE_API_KEY": "sk-short"}).last4 is None
    assert config.mask_key("sk-short") == "…" and config.mask_key(KEY) == "…WXYZ"


def test_key_file_location_is_resolved_per_request(tmp_path):
    calls = []

    def resolver():
        calls.append(1)
        return tmp_path / f"dir{len(calls)}" / "api_key"

    route = settings_route.KeyRoute(key_file=resolver, environ={})
    route.store(KEY)
    assert (tmp_path / "dir1" / "api_key").exists()
    assert len(calls) >= 2


@pytest.mark.parametrize(
    "contents",
    [
        f"{TEST_KEY}\n",
        f'"{TEST_KEY}"\n',  # hand-edited with quotes: Settings once showed a wrong last-4 here
        f"  Bearer {TEST_KEY}  \n",
        f"APIINONE_API_KEY='{TEST_KEY}'\n",
    ],
)
def test_settings_cli_and_nodes_agree_on_a_hand_edited_key_file(tmp_path, sandbox, contents):
    """The same file: Settings shows the real key's last four, the CLI names the same four, and
    the key the nodes send is accepted by the (real, sandbox) API."""
    path = tmp_path / "grok_imagine" / "api_key"
    path.parent.mkdir(parents=True)
    path.write_text(contents)
    last4 = TEST_KEY[-4:]

    shown = settings_route.KeyRoute(key_file=path, environ={}).status()
    assert (shown.is_set, shown.source, shown.last4) == (True, "file", last4)

    env = {k: v for k, v in os.environ.items() if k != "APIINONE_API_KEY"}
    cli = subprocess.run(
        [sys.executable, "-m", "comfyui_grok_imagine", "key", "status"],
        capture_output=True, text=True, timeout=60,
        env={**env, "GROK_IMAGINE_KEY_FILE": str(path), "PYTHONPATH": str(PACK_DIR.parent)},
    )  # fmt: skip
    if "No module named comfyui_grok_imagine" in cli.stderr:
        pytest.skip("the pack is not pip-installed here; the README's Quick start installs it")
    assert cli.returncode == 0, cli.stderr
    assert f"…{last4}" in cli.stdout and TEST_KEY not in cli.stdout + cli.stderr

    settings = config.load_settings(key_file=path, environ={"APIINONE_BASE_URL": sandbox.base_url})
    assert settings.api_key == TEST_KEY and settings.masked_key == f"…{last4}"
    with client_mod.GrokClient(settings) as client:
        assert client.create_text_to_image("a key check")
    assert sandbox.ledger(TEST_KEY).creates == 1


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
