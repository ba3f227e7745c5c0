"""The `grok-imagine` command line against the sandbox: files, journal reuse, exit codes."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import submodule
from support.keys import TEST_KEY

cli = submodule("cli")


@pytest.fixture
def env(sandbox_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.chdir(tmp_path)
    return sandbox_env


def run(*argv: str) -> int:
    return cli.main(list(argv))


def test_generate_writes_each_image_as_received_and_prints_paths(env, tmp_path, capsys):
    assert run("generate", "a red fox in snow", "--seed", "7", "-o", "out") == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 6
    for path in map(Path, printed):
        assert path.parent == Path("out") and path.suffix == ".jpg"
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.size == (1024, 1024)
    assert env.ledger(TEST_KEY).creates == 1


def test_same_seed_again_reuses_the_journal_without_paying(env, capsys):
    assert run("generate", "a red fox", "--seed", "1", "--aspect-ratio", "3:2") == 0
    first = capsys.readouterr()
    assert run("generate", "a red fox", "--seed", "1", "--aspect-ratio", "3:2") == 0
    second = capsys.readouterr()
    assert "no API call" in second.err
    assert first.out == second.out
    ledger = env.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (1, 5)
    with Image.open(first.out.split()[0]) as img:
        assert img.size == (1296, 864)


def test_generate_several_tasks_then_upscale_each(env, capsys):
    assert run("generate", "two moons", "--tasks", "2", "--upscale", "--seed", "3") == 0
    paths = capsys.readouterr().out.split()
    assert len(paths) == 2 * 6 + 2
    ledger = env.ledger(TEST_KEY)
    assert (ledger.creates, ledger.credits_charged) == (4, 2 * 5 + 2 * 12)
    with Image.open(paths[-1]) as img:
        assert img.size == (2048, 2048)


def test_task_and_tasks_commands_recover_and_list_paid_work(env, capsys):
    assert run("generate", "a lantern", "--seed", "4", "-o", "a") == 0
    task_id = Path(capsys.readouterr().out.split()[0]).name.rsplit("_", 1)[0]
    assert run("task", task_id, "-o", "b") == 0
    assert len(capsys.readouterr().out.split()) == 6
    assert env.ledger(TEST_KEY).creates == 1  # loading is free

    assert run("tasks") == 0
    listing = capsys.readouterr().out
    assert task_id in listing and "a lantern" in listing
    assert run("tasks", task_id) == 0
    assert task_id in capsys.readouterr().out


def test_bad_input_is_a_usage_error_and_costs_nothing(env, capsys):
    assert run("generate", "   ") == cli.EXIT_USAGE
    assert "prompt" in capsys.readouterr().err.lower()
    assert run("upscale", "../etc/passwd") == cli.EXIT_USAGE
    assert run("generate", "x" * 5001) == cli.EXIT_USAGE
    assert env.create_requests == 0


def test_api_errors_exit_3_with_one_readable_line(env, monkeypatch, capsys):
    monkeypatch.setenv("APIINONE_API_KEY", "sk-not-a-key-of-this-sandbox")
    assert run("generate", "a cat") == cli.EXIT_API
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ")
    assert "401" in err or "rejected" in err.lower()


def test_timeout_exits_4_and_names_the_task_to_resume(env, capsys):
    env.faults.stuck = True
    assert run("generate", "a stuck task", "--seed", "9", "--timeout", "0.5") == cli.EXIT_TIMEOUT
    err = capsys.readouterr().err
    task_id = env.task_ids()[0]
    assert task_id in err
    env.faults.stuck = False


def test_missing_key_names_both_ways_to_set_it(env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("APIINONE_API_KEY")
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "nokey"))
    assert run("generate", "a cat") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "APIINONE_API_KEY" in err and "nokey" in err


def test_key_set_writes_a_private_file_and_status_masks_it(env, monkeypatch, tmp_path, capsys):
    key_file = tmp_path / "cfg" / "api_key"
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(key_file))
    monkeypatch.delenv("APIINONE_API_KEY")
    monkeypatch.setattr(sys, "stdin", _Stdin(TEST_KEY + "\n"))
    assert run("key", "set") == 0
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert run("key", "status") == 0
    out = capsys.readouterr().out
    assert TEST_KEY not in out and TEST_KEY[-4:] in out
    assert run("key", "clear") == 0
    assert not key_file.exists()


class _Stdin:
    def __init__(self, text: str) -> None:
        self._text = text

    def isatty(self) -> bool:
        return False

    def readline(self) -> str:
        return self._text


def test_installed_module_entry_point_lists_every_command():
    """`python -m comfyui_grok_imagine` as `pip install -e .` provides it (the README's set-up)."""
    if importlib.util.find_spec("comfyui_grok_imagine") is None:
        pytest.skip("the pack is not pip-installed here; the README's Quick start installs it")
    out = subprocess.run(
        [sys.executable, "-m", "comfyui_grok_imagine", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert out.returncode == 0, out.stderr
    for command in ("generate", "upscale", "task", "tasks", "sandbox", "key"):
        assert command in out.stdout


def test_upscale_on_a_fresh_sandbox_explains_it_knows_no_tasks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    assert run("upscale", "sbx0000000000000000_grok", "--sandbox", "-o", str(tmp_path)) == 3
    err = capsys.readouterr().err
    assert "starts empty" in err and "--sandbox --upscale" in err
