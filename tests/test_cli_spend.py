"""The CLI and the daily credit limit: refusals, today's and this month's spend, `resolve`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support import submodule
from support.api_names import public_api
from support.keys import TEST_KEY

api = public_api()
cli = submodule("cli")
journal_mod = submodule("journal")
spend = submodule("journal.spend_limit")


@pytest.fixture
def env(sandbox_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GROK_IMAGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GROK_IMAGINE_KEY_FILE", str(tmp_path / "config" / "api_key"))
    monkeypatch.setenv("GROK_IMAGINE_POLL_SCALE", "0.05")
    monkeypatch.delenv(spend.DAILY_LIMIT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return sandbox_env


def run(*argv: str) -> int:
    return cli.main(list(argv))


def ledger(sb: Any) -> tuple[int, int]:
    entry = sb.ledger(TEST_KEY)
    return entry.creates, entry.credits_charged


def test_generate_over_the_limit_sends_nothing(env, monkeypatch, capsys):
    monkeypatch.setenv(spend.DAILY_LIMIT_ENV, "12")
    assert run("generate", "a kestrel", "--tasks", "3", "--seed", "1") == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    assert "spent 0 of 12 credits today, this run needs 15 more" in err
    assert len(err.strip().splitlines()) == 2  # the announcement, then the one-line refusal
    assert ledger(env) == (0, 0)
    assert run("generate", "a kestrel", "--tasks", "2", "--seed", "1") == cli.EXIT_OK
    assert ledger(env) == (2, 10)


def test_the_settings_file_beside_the_key_file_is_honoured(env, tmp_path, capsys):
    settings = tmp_path / "config" / spend.SETTINGS_FILE_NAME
    spend.write_daily_limit(settings, 4)
    assert run("generate", "a kestrel", "--seed", "2") == cli.EXIT_REFUSED
    err = capsys.readouterr().err
    # The command line names the file that set the limit, never ComfyUI's Settings dialog.
    assert (
        f"To go on, raise daily_credit_limit in {settings} (or set {spend.DAILY_LIMIT_ENV}, "
        "which wins), or wait until tomorrow."
    ) in err
    assert "Settings" not in err
    assert ledger(env) == (0, 0)


def test_tasks_shows_todays_and_this_months_spend(env, monkeypatch, capsys):
    monkeypatch.setenv(spend.DAILY_LIMIT_ENV, "20")
    assert run("generate", "a kestrel", "--tasks", "2", "--seed", "3") == cli.EXIT_OK
    capsys.readouterr()
    assert run("tasks") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert "Spent today: 10 credits of a 20-credit daily limit; this month: 10 credits." in out


def _uncertain_row(env: Any, home: Path, seed: int) -> Any:
    """A create whose answer was lost (the sandbox took it; the client gave up reading)."""
    settings = api.Settings(api_key=TEST_KEY, base_url=env.base_url, read_timeout=0.3)
    runner = journal_mod.TaskRunner(
        lambda: api.GrokClient(settings, poll=api.PollSchedule().scaled(0.05)),
        journal=journal_mod.Journal(home / "journal.sqlite"),
        files=journal_mod.FileStore(home / "files"),
        api_base=env.base_url,
    )
    known = set(env.task_ids())
    env.faults.create_response_delay = 1.0
    with pytest.raises(api.errors.UncertainCreateError) as caught:
        runner.text_to_image("a lost heron", seed=seed)
    deadline = time.monotonic() + 30
    while not set(env.task_ids()) - known:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    env.faults.create_response_delay = 0.0
    (task_id,) = set(env.task_ids()) - known
    return caught.value.entry, task_id


def test_resolve_with_the_dashboard_task_id_fetches_and_keeps_it_free(env, tmp_path, capsys):
    entry, task_id = _uncertain_row(env, tmp_path / "home", seed=1)
    assert run("tasks") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"grok-imagine resolve {entry.id} --task-id ID" in out

    assert run("resolve", str(entry.id), "--task-id", "nosuchtask123") == cli.EXIT_API
    assert "not found" in capsys.readouterr().err.lower()
    creates = ledger(env)
    assert run("resolve", str(entry.id), "--task-id", task_id, "-o", "out") == cli.EXIT_OK
    paths = capsys.readouterr().out.split()
    assert paths and all(Path(p).is_file() and task_id in p for p in paths)
    assert ledger(env) == creates  # fetching it was free
    journal = journal_mod.Journal(tmp_path / "home" / "journal.sqlite")
    row = journal.entry(entry.id)
    assert (row.state, row.task_id, row.credits, len(row.files)) == ("succeeded", task_id, 5, 6)

    assert run("resolve", str(entry.id), "--not-created") == cli.EXIT_USAGE
    assert "only an uncertain create" in capsys.readouterr().err


def test_resolve_not_created_frees_the_credits_and_the_inputs(env, tmp_path, capsys):
    entry, _ = _uncertain_row(env, tmp_path / "home", seed=2)
    journal = journal_mod.Journal(tmp_path / "home" / "journal.sqlite")
    today = spend.day_start(time.time())
    assert journal.spent(today) == 5  # uncertain counts: it may have been charged
    assert run("resolve", str(entry.id), "--not-created") == cli.EXIT_OK
    assert "marked as not created" in capsys.readouterr().out
    assert journal.entry(entry.id).state == "rejected" and journal.spent(today) == 0
    assert run("resolve", "999", "--not-created") == cli.EXIT_USAGE
    assert "does not exist" in capsys.readouterr().err
