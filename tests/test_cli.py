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
    assert run("upscale", "sbx0000000000000000_grok", "--sandbox", "-o", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "starts empty" in err and "--sandbox --upscale" in err


# -- one line, never a traceback ------------------------------------------------------------------


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("generate", "a cat", "--timeout", "-1"), "--timeout"),
        (("generate", "a cat", "--timeout", "0"), "more than 0"),
        (("generate", "a cat", "--timeout", "inf"), "more than 0"),
        (("generate", "a cat", "--tasks", "9"), "between 1 and 8"),
        (("generate", "a cat", "--tasks", "0"), "between 1 and 8"),
        (("generate", "a cat", "--tasks", "two"), "whole number"),
        (("generate", "a cat", "--seed", "-3"), "between 0 and"),
        (("generate", "a cat", "--seed", "1", "--new"), "not allowed with"),
        (("tasks", "--limit", "0"), "between 1 and"),
        (("upscale",), "task_id"),
    ],
)
def test_bad_numbers_and_usage_are_one_line_and_exit_2(env, capsys, argv, says):
    with pytest.raises(SystemExit) as caught:
        run(*argv)
    assert caught.value.code == cli.EXIT_USAGE
    line = one_error_line(capsys)
    assert says in line and "--help" in line
    assert env.create_requests == 0


def test_output_that_is_a_file_is_refused_before_anything_is_paid(env, tmp_path, capsys):
    (tmp_path / "taken").write_text("not a folder")
    assert run("generate", "a cat", "-o", "taken") == cli.EXIT_USAGE
    assert "is a file, not a folder" in one_error_line(capsys)
    assert run("generate", "a cat", "-o", "taken/inside") == cli.EXIT_USAGE
    assert "cannot be written" in one_error_line(capsys)
    assert env.create_requests == 0 and env.ledger(TEST_KEY).creates == 0


def test_server_refusals_name_cli_commands_not_node_actions(env, monkeypatch, capsys):
    env.faults.create_errors = [400]
    assert run("generate", "a cat") == cli.EXIT_API
    line = one_error_line(capsys)
    assert "the command's arguments" in line and "queue" not in line.lower()
    monkeypatch.setenv("APIINONE_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert run("generate", "a dog") == cli.EXIT_API
    line = one_error_line(capsys)
    assert "Could not reach API in One" in line and "Run the command again" in line
    assert "queue" not in line.lower() and "node" not in line.lower()


def test_missing_key_suggests_key_set_and_a_sandbox_trial(env, monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("APIINONE_API_KEY")
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "nokey"))
    assert run("key", "status") == cli.EXIT_USAGE
    line = one_error_line(capsys)
    assert "grok-imagine key set" in line and "--sandbox" in line
    assert "Settings" not in line


def test_key_set_with_a_bad_key_or_nothing_is_bad_input(env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setattr(sys, "stdin", _Stdin("bad key\n"))
    assert run("key", "set") == cli.EXIT_USAGE
    assert "space" in one_error_line(capsys)
    monkeypatch.setattr(sys, "stdin", _Stdin(""))
    assert run("key", "set") == cli.EXIT_USAGE
    assert "standard input" in one_error_line(capsys)
    assert not (tmp_path / "key").exists()
    assert run("key", "clear") == 0
    assert "nothing to remove" in capsys.readouterr().out


def test_task_with_an_in_process_sandbox_says_why_it_cannot_work(tmp_path, capsys):
    assert run("task", "sbx0000000000000000_grok", "--sandbox", "-o", str(tmp_path)) == 2
    line = one_error_line(capsys)
    assert "starts empty" in line and "grok-imagine sandbox" in line


def test_help_is_complete(capsys):
    parser = cli.build_parser()
    with pytest.raises(SystemExit):
        run("--version")
    assert capsys.readouterr().out.startswith("grok-imagine ")
    top = parser.format_help()
    for name in ("APIINONE_API_KEY", "APIINONE_BASE_URL", "GROK_IMAGINE_HOME", "--new"):
        assert name in top
    for code, _ in cli.EXIT_CODES:
        assert f"  {code} " in top
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.dest} has no help text"
    assert "standard input" in sub.choices["key"].format_help()


def test_progress_never_goes_backwards_nor_shows_provider_words(env, capsys):
    env.faults.failure_rate = 1.0
    assert run("generate", "a failing cat") == cli.EXIT_API
    err = capsys.readouterr().err
    percents = [
        int(word[:-1]) for word in err.split() if word.endswith("%") and word[:-1].isdigit()
    ]
    assert percents == sorted(percents)
    for raw in ("IN_PROGRESS", "generating", "completed", "waiting"):
        assert raw not in err
    assert "failed 0%" not in err


# -- the README's troubleshooting table is true ---------------------------------------------------


def readme_phrases() -> list[str]:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Troubleshooting", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert len(rows) > 2, "the troubleshooting table is gone"
    phrases = []
    for row in rows[2:]:
        first_cell = row.split("|")[1]
        phrases += first_cell.split("`")[1::2]
    return phrases


def _phrase_case(phrase: str, env: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Set the sandbox up to produce the message ``phrase`` describes; return the argv."""
    faults = env.faults
    if phrase.startswith("No API in One key"):
        monkeypatch.delenv("APIINONE_API_KEY")
        monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "nokey"))
    elif phrase.startswith("API in One did not accept"):
        monkeypatch.setenv("APIINONE_API_KEY", "sk-not-a-key-of-this-sandbox")
    elif phrase.startswith("Not enough"):
        faults.create_errors = [402]
    elif phrase.startswith("API in One is rate limiting"):  # waited out within the timeout
        faults.create_errors, faults.retry_after = [429] * 5, 60
        return ("generate", "a cat", "--timeout", "30")
    elif phrase.startswith("turn under the account's create rate"):
        monkeypatch.setenv("GROK_IMAGINE_CREATE_RATE", "1/60")  # the second task's turn: 61 s
        return ("generate", "a cat", "--tasks", "2", "--timeout", "30")
    elif phrase == "The prompt ...":
        return ("generate", " ")
    elif phrase == "The task id ...":
        return ("upscale", "../etc")
    elif "content policy" in phrase:
        faults.moderation_word = "forbidden"
        return ("generate", "a forbidden cat")
    elif phrase.startswith("Task ..."):
        faults.failure_rate = 1.0
    elif phrase.startswith("Stopped waiting"):
        faults.stuck = True
        return ("generate", "a cat", "--timeout", "0.3")
    elif phrase.startswith("A create was sent"):
        faults.create_errors = [502]
    elif phrase.startswith("Could not reach"):
        monkeypatch.setenv("APIINONE_BASE_URL", "http://127.0.0.1:9")
    elif phrase == "does not speak HTTPS":
        monkeypatch.setenv("APIINONE_BASE_URL", env.base_url.replace("http://", "https://"))
    elif phrase.startswith("API in One is under maintenance"):
        faults.create_errors = [455]
    elif phrase == "had a server error":
        faults.create_errors = [500]
    elif phrase.startswith("The result file is no longer"):
        env.config.file_expiry = 0.0
    elif phrase.startswith("not an image"):
        faults.download = "not_image"
    else:
        raise AssertionError(f"no case makes the README phrase {phrase!r}: add one")
    return ("generate", "a cat")


@pytest.mark.parametrize("phrase", readme_phrases())
def test_every_readme_troubleshooting_phrase_occurs_in_its_real_message(
    env, monkeypatch, tmp_path, capsys, phrase
):
    argv = _phrase_case(phrase, env, monkeypatch, tmp_path)
    assert run(*argv) != 0
    line = one_error_line(capsys)
    print(f"\n{len(line)} chars: {line}")
    position = 0
    for part in (p.strip() for p in phrase.split("...")):
        found = line.find(part, position)
        assert found >= 0, f"README phrase {phrase!r} is not in the message: {line}"
        position = found + len(part)


def test_every_failed_task_of_a_run_is_named(env, capsys):
    env.faults.stuck = True
    assert run("generate", "two stuck tasks", "--tasks", "2", "--timeout", "0.3") == 4
    err = capsys.readouterr().err
    errors_shown = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors_shown) == 2 and "Traceback" not in err
    for task_id in env.task_ids():
        assert any(task_id in line for line in errors_shown)
    assert env.ledger(TEST_KEY).creates == 2
