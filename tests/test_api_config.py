"""Where the key and base URL come from, and that the key never shows."""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path

import pytest
from support import submodule
from support.keys import TEST_KEY

config = submodule("api.config")
errors = submodule("api.errors")

OTHER_KEY = "sk-from-the-key-file-0b9e1d"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_env_key_wins_over_the_key_file(tmp_path):
    key_file = write(tmp_path / "api_key", OTHER_KEY)
    settings = config.load_settings(key_file, environ={"APIINONE_API_KEY": TEST_KEY})
    assert settings.api_key == TEST_KEY
    assert settings.key_source == "environment variable APIINONE_API_KEY"
    assert settings.base_url == "https://apiin.one"


def test_key_file_argument_then_env_var_then_default(tmp_path):
    given = write(tmp_path / "given", OTHER_KEY)
    from_env = write(tmp_path / "env_file", TEST_KEY)
    env = {"GROK_IMAGINE_KEY_FILE": str(from_env), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    assert config.load_settings(given, environ=env).api_key == OTHER_KEY
    assert config.load_settings(environ=env).api_key == TEST_KEY
    default = write(tmp_path / "xdg" / "grok-imagine" / "api_key", "sk-default-file-key-1234")
    settings = config.load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    assert settings.api_key == "sk-default-file-key-1234"
    assert settings.key_source == f"key file {default}"


def test_empty_env_key_falls_through_to_the_file(tmp_path):
    key_file = write(tmp_path / "api_key", OTHER_KEY)
    settings = config.load_settings(key_file, environ={"APIINONE_API_KEY": "  "})
    assert settings.api_key == OTHER_KEY


def test_base_url_from_env_without_trailing_slash():
    env = {"APIINONE_API_KEY": TEST_KEY, "APIINONE_BASE_URL": "http://127.0.0.1:8123/"}
    assert config.load_settings(environ=env).base_url == "http://127.0.0.1:8123"


@pytest.mark.parametrize("url", ["ftp://example.com", "not a url", "http://", "https://u:p@host"])
def test_bad_base_url_is_a_clear_error(url):
    with pytest.raises(errors.InvalidRequestError) as caught:
        config.load_settings(environ={"APIINONE_API_KEY": TEST_KEY, "APIINONE_BASE_URL": url})
    assert "APIINONE_BASE_URL" in str(caught.value)


def test_missing_key_names_both_ways_and_the_settings_entry(tmp_path):
    missing = tmp_path / "nowhere" / "api_key"
    with pytest.raises(errors.MissingKeyError) as caught:
        config.load_settings(missing, environ={})
    message = str(caught.value)
    assert "APIINONE_API_KEY" in message
    assert str(missing) in message
    assert "Grok Imagine \u203a API key" in message
    assert "\n" not in message


def test_empty_key_file_counts_as_missing(tmp_path):
    with pytest.raises(errors.MissingKeyError):
        config.load_settings(write(tmp_path / "api_key", "\n  \n"), environ={})


@pytest.mark.parametrize(
    "raw",
    [
        f"  {TEST_KEY}  \n",
        f'"{TEST_KEY}"',
        f"'{TEST_KEY}'\n",
        f"Bearer {TEST_KEY}",
        f"APIINONE_API_KEY={TEST_KEY}",
        f"\ufeff{TEST_KEY}\r\n",
        f"# my key\n{TEST_KEY}\n",
    ],
)
def test_stray_whitespace_quotes_and_prefixes_are_trimmed_without_logging_the_key(
    tmp_path, caplog, raw
):
    caplog.set_level(logging.DEBUG, logger="grok_imagine")
    settings = config.load_settings(write(tmp_path / "api_key", raw), environ={})
    assert settings.api_key == TEST_KEY
    assert TEST_KEY not in caplog.text


def test_trimmed_env_key_warns_without_the_key(caplog):
    caplog.set_level(logging.DEBUG, logger="grok_imagine")
    settings = config.load_settings(environ={"APIINONE_API_KEY": f'"{TEST_KEY}"'})
    assert settings.api_key == TEST_KEY
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert TEST_KEY not in caplog.text


def test_key_with_inner_space_cannot_be_sent_and_is_not_shown():
    with pytest.raises(errors.AuthError) as caught:
        config.load_settings(environ={"APIINONE_API_KEY": "sk-half one-half-two"})
    assert "sk-half one" not in str(caught.value)
    assert "space" in str(caught.value)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads anything")
def test_unreadable_key_file_is_a_clear_error(tmp_path):
    key_file = write(tmp_path / "api_key", TEST_KEY)
    key_file.chmod(0)
    try:
        with pytest.raises(errors.MissingKeyError) as caught:
            config.load_settings(key_file, environ={})
    finally:
        key_file.chmod(0o600)
    assert "could not be read" in str(caught.value)
    assert TEST_KEY not in str(caught.value)


def test_key_file_that_is_a_folder_or_binary_is_a_clear_error(tmp_path):
    folder = tmp_path / "api_key"
    folder.mkdir()
    with pytest.raises(errors.MissingKeyError) as caught:
        config.load_settings(folder, environ={})
    assert "folder" in str(caught.value)
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(errors.MissingKeyError) as caught:
        config.load_settings(binary, environ={})
    assert "not text" in str(caught.value)


def test_settings_repr_masks_the_key():
    settings = config.Settings(api_key=TEST_KEY, base_url="http://127.0.0.1:1")
    text = repr(settings) + str(settings)
    assert TEST_KEY not in text
    assert TEST_KEY[:-4] not in text
    assert settings.masked_key == "\u2026" + TEST_KEY[-4:]
    assert config.mask_key("short") == "\u2026"


def test_settings_refuse_nonsense_timeouts():
    with pytest.raises(errors.InvalidRequestError):
        config.Settings(api_key=TEST_KEY, read_timeout=0)


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {"XDG_CONFIG_HOME": "/xdg"}, Path("/xdg/grok-imagine/api_key")),
        ("linux", {"XDG_CONFIG_HOME": "relative"}, Path.home() / ".config/grok-imagine/api_key"),
        ("linux", {}, Path.home() / ".config" / "grok-imagine" / "api_key"),
        ("darwin", {}, Path.home() / "Library/Application Support/grok-imagine/api_key"),
        ("win32", {"APPDATA": "/appdata"}, Path("/appdata/grok-imagine/api_key")),
    ],
)
def test_default_key_file_per_platform(platform, env, expected):
    assert config.default_key_file(env, platform) == expected


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_write_key_file_is_private_atomic_and_normalized(tmp_path):
    path = tmp_path / "deep" / "grok-imagine" / "api_key"
    config.write_key_file(path, f"  {TEST_KEY}\n")
    assert path.read_text() == TEST_KEY + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config.write_key_file(path, OTHER_KEY)  # replaces in place
    assert path.read_text() == OTHER_KEY + "\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["api_key"]  # no temp files left
    assert config.load_settings(path, environ={}).api_key == OTHER_KEY


def test_write_key_file_refuses_empty_or_unsendable_keys(tmp_path):
    with pytest.raises(errors.InvalidRequestError, match="empty"):
        config.write_key_file(tmp_path / "api_key", "   ")
    with pytest.raises(errors.InvalidRequestError, match="space"):
        config.write_key_file(tmp_path / "api_key", "two words")
    assert not (tmp_path / "api_key").exists()


def test_key_file_path_through_a_file_is_unreadable_not_missing(tmp_path):
    """Works as root too: opening ``<file>/api_key`` fails with an OS error other than 'absent'."""
    blocker = write(tmp_path / "not_a_folder", "x")
    with pytest.raises(errors.MissingKeyError) as caught:
        config.load_settings(blocker / "api_key", environ={})
    assert "could not be read" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "warned"),
    [
        (f"{TEST_KEY}\n", False),
        (f"{TEST_KEY}\r\n", False),
        (TEST_KEY, False),
        (f"   {TEST_KEY}   ", True),
        (f"{TEST_KEY}\n\n", True),
        (f"\t{TEST_KEY}\n", True),
    ],
)
def test_a_final_line_break_is_quiet_any_other_stray_character_warns(tmp_path, caplog, raw, warned):
    caplog.set_level(logging.DEBUG, logger="grok_imagine")
    key_file = write(tmp_path / "api_key", raw)
    assert config.load_settings(key_file, environ={}).api_key == TEST_KEY
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert bool(warnings) is warned
    assert all("whitespace" in w and str(key_file) in w for w in warnings)
    assert TEST_KEY not in caplog.text


def test_resolve_key_file_and_base_url_from_env_need_no_key(tmp_path):
    """Used by the CLI's `key` command and the nodes before any client (or key) exists."""
    given = tmp_path / "given"
    assert config.resolve_key_file(given, {}) == given
    assert config.resolve_key_file(None, {"GROK_IMAGINE_KEY_FILE": str(given)}) == given
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert config.resolve_key_file(None, env) == config.default_key_file(env)
    assert config.base_url_from_env({}) == "https://apiin.one"
    assert config.base_url_from_env({"APIINONE_BASE_URL": " http://127.0.0.1:8/ "}) == (
        "http://127.0.0.1:8"
    )
    with pytest.raises(errors.InvalidRequestError):
        config.base_url_from_env({"APIINONE_BASE_URL": "ftp://x"})
