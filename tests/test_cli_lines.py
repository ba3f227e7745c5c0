"""Every line the command line prints is true and worded for it: the real `grok-imagine` in a
subprocess against the sandbox, asserting the exact lines a user reads and the exit codes.

Each test names the case of the CLI review it covers (1-11); cases 4, 5 and 9 are in
test_cli_process.py (the downloads Ctrl-C, the timeout and the closed pipe).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import mounts, submodule
from support.cli_process import Cli, LineReader, last_line, stop_and_time
from support.keys import TEST_KEY
from support.screen import Screen, run_in_pty

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("comfyui_grok_imagine") is None,
    reason="the pack is not pip-installed here (pip install -e .); the CLI runs as a subprocess",
)

journal_mod = submodule("journal")

PROMPT = "a heron at dawn"
SANDBOX_RERUNS = (
    "start `grok-imagine sandbox` and point APIINONE_BASE_URL and APIINONE_API_KEY at it to see "
    "a rerun resume or reuse its task"
)


@pytest.fixture
def cli(sandbox_factory: Callable[..., Any], tmp_path: Path) -> Iterator[Cli]:
    yield Cli(sandbox_factory(generation_time=0.2, images_per_task=2), tmp_path)


def when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def test_case_1_a_run_that_reused_kept_images_on_a_read_only_home_is_no_error(cli, tmp_path):
    with mounts.tmpfs(tmp_path / "disk", "16m") as disk:
        home = disk.path / "home"
        first = cli.run("generate", PROMPT, "--home", str(home))
        assert first.returncode == 0, first.stderr
        disk.read_only()
        try:
            again = cli.run("generate", PROMPT, "--home", str(home), "-o", "again")
            paid = cli.run("generate", PROMPT, "--home", str(home), "--seed", "1")
        finally:
            disk.writable()
    assert again.returncode == 0, again.stderr
    lines = again.stderr.splitlines()
    assert lines[-1] == "warning: " + (
        f"the task journal folder {home} cannot be written: kept images still come back free, "
        "but a run that needs a new task is refused (nothing sent) until it can be written. Fix "
        "it, or point --home at another folder."
    )
    assert lines[-2] == "Done: 1 reused (free)."
    assert not [line for line in lines if line.startswith("error") or "ComfyUI" in line]
    assert len(again.stdout.split()) == 2
    # A run that does need a new task: refused before sending, one CLI-worded line, exit 5.
    assert paid.returncode == 5
    assert last_line(paid.stderr) == (
        f"error: Nothing was sent, so nothing was charged: the kept-files folder {home}/files "
        "cannot be written (Read-only file system). Fix its permissions (or the read-only "
        "mount). Or point --home (see --help) at a folder on a disk that works; then run the "
        "command again."
    )
    assert "warning:" not in paid.stderr
    assert cli.ledger() == (1, 5)


def test_case_1_a_file_that_could_not_be_kept_is_said_once_and_the_run_succeeds(cli):
    cli.sandbox.faults.download = "not_image"
    cli.sandbox.faults.download_only_index = 1
    done = cli.run("generate", PROMPT)
    assert done.returncode == 0, done.stderr
    (task_id,) = cli.sandbox.task_ids()
    said = [line for line in done.stderr.splitlines() if "could not be kept" in line]
    assert len(said) == 1 and said[0].startswith(f"[t2i 1/1] task {task_id}: 1 of 2 result files")
    assert not [line for line in done.stderr.splitlines() if line.startswith(("error", "warn"))]
    assert last_line(done.stderr) == "Done: 1 new (5 credits charged)."


def test_case_2_tasks_shows_the_row_resolve_takes(cli):
    cli.sandbox.faults.create_errors = [502]  # a gateway lost the create's answer
    lost = cli.run("generate", PROMPT)
    assert lost.returncode == 3
    assert "`grok-imagine resolve 1 --task-id ID`" in last_line(lost.stderr)
    entry = journal_mod.Journal(cli.home / "journal.sqlite").entry(1)
    listing = cli.run("tasks")
    assert listing.returncode == 0, listing.stderr
    out = listing.stdout.splitlines()
    assert out[0] == (
        "  row  updated              task id                   state        cr  files  prompt"
    )
    assert out[1] == f"    1  {when(entry.updated_at)}  {'-':24}  uncertain     5      0  {PROMPT}"
    assert out[-1] == (
        f"Uncertain create, row 1 ({when(entry.created_at)}, 5 credits): find its task id in the "
        "API in One dashboard, then `grok-imagine resolve 1 --task-id ID` (free), or "
        "`grok-imagine resolve 1 --not-created`."
    )
    helped = cli.run("resolve", "--help")
    assert "the journal row: the first column of `grok-imagine tasks`" in " ".join(
        helped.stdout.split()
    )
    settled = cli.run("resolve", "1", "--not-created")
    assert (settled.returncode, settled.stdout) == (0, "Row 1 marked as not created (0 credits).\n")


def _sandbox_cli(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "GROK_IMAGINE_POLL_SCALE": "0.05"}
    env["GROK_IMAGINE_HOME"] = str(tmp_path / "home")
    for name in ("APIINONE_API_KEY", "APIINONE_BASE_URL", "GROK_IMAGINE_JOURNAL_URL"):
        env.pop(name, None)
    return env


def test_case_3_the_in_process_sandbox_says_every_run_is_a_new_task(tmp_path):
    argv = [sys.executable, "-m", "comfyui_grok_imagine", "generate", PROMPT, "--sandbox"]
    env = _sandbox_cli(tmp_path)
    runs = [
        subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        for _ in range(2)
    ]
    for done in runs:
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert re.fullmatch(
            r"Using an in-process sandbox at http://127\.0\.0\.1:\d+: no key needed, and its "
            r"credits are play money\.",
            lines[0],
        )
        assert lines[1] == (
            "Text-to-image x1, seed 0: the in-process sandbox starts empty, so every run of this "
            f"command makes new tasks (5 credits per new task, in play credits); {SANDBOX_RERUNS}."
        )
        assert lines[-1] == "Done: 1 new (5 credits charged)."
        assert "resumes or reuses" not in done.stderr


def test_case_3_ctrl_c_on_the_in_process_sandbox_says_its_tasks_end(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "comfyui_grok_imagine", "generate", PROMPT, "--sandbox"],
        env=_sandbox_cli(tmp_path),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader = LineReader(proc)
    created = reader.wait_for(lambda line: "created task" in line, "the sandbox task")
    task_id = created.split("created task ")[1].split()[0]
    _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C on the in-process sandbox", reader)
    assert proc.returncode == 130
    assert err.splitlines()[-3:] == [
        "interrupted: stopped; the in-process sandbox and its tasks end with it.",
        f"  [t2i 1/1] task {task_id} ended with the sandbox, created by this run: 5 credits",
        f"Running the command again starts a new task; {SANDBOX_RERUNS}.",
    ]
    assert "API in One" not in err


def test_case_3_and_5_a_timeout_on_the_in_process_sandbox_suggests_a_wait_that_fits(tmp_path):
    argv = [sys.executable, "-m", "comfyui_grok_imagine", "generate", PROMPT, "--sandbox"]
    done = subprocess.run(
        [*argv, "--timeout", "1"],
        env=_sandbox_cli(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 4
    task_id = done.stderr.split("created task ")[1].split()[0]
    assert last_line(done.stderr) == (
        f"error: Stopped waiting for task {task_id} after 1 s: the in-process sandbox ends with "
        f"this command, and the task with it. Run `grok-imagine generate '{PROMPT}' --sandbox "
        "--timeout 20` to try again with a longer wait (a new task: this sandbox starts empty)."
    )


def test_case_6_an_https_address_of_a_plain_http_server_is_named(cli):
    plain = cli.sandbox.base_url
    cli.env["APIINONE_BASE_URL"] = plain.replace("http://", "https://")
    done = cli.run("generate", PROMPT)
    assert done.returncode == 3
    assert last_line(done.stderr) == (
        f"error: The server at {plain.replace('http://', 'https://')} does not speak HTTPS (it "
        f"answered in plain HTTP): did you mean {plain}? Set APIINONE_BASE_URL to the address "
        "the API really has. Nothing was sent, so nothing was charged."
    )
    assert cli.ledger() == (0, 0) and cli.sandbox.create_requests == 0


def test_case_7_a_prompt_split_into_words_gets_a_quote_hint(cli):
    done = cli.run("generate", "a", "cat", "--tasks", "2")
    assert done.returncode == 2
    assert done.stderr == (
        "error: grok-imagine generate: the prompt came as 2 words: put it in quotes, as in "
        "`grok-imagine generate 'a cat'` (see `grok-imagine generate --help`)\n"
    )
    assert cli.sandbox.create_requests == 0


def test_case_8_each_kind_of_ending_has_its_own_exit_code(cli, tmp_path):
    helped = cli.run("--help")
    assert [line for line in helped.stdout.splitlines() if line.startswith("  5 ")] == [
        "  5    refused here, nothing sent: the daily credit limit (or its setting), journal "
        "storage"
    ]
    cli.env["GROK_IMAGINE_DAILY_CREDIT_LIMIT"] = "4"
    limit = cli.run("generate", PROMPT)
    assert (limit.returncode, last_line(limit.stderr)) == (
        5,
        "error: Daily credit limit reached: spent 0 of 4 credits today, this run needs 5 more, "
        "so nothing was sent. To go on, raise or unset GROK_IMAGINE_DAILY_CREDIT_LIMIT, or wait "
        "until tomorrow.",
    )
    cli.env["GROK_IMAGINE_DAILY_CREDIT_LIMIT"] = "lots"
    bad = cli.run("generate", PROMPT)
    assert (bad.returncode, last_line(bad.stderr)) == (
        5,
        "error: GROK_IMAGINE_DAILY_CREDIT_LIMIT must be a whole number of credits from 0 to "
        "10000000 (or empty for no limit); paid requests are refused until it is fixed.",
    )
    del cli.env["GROK_IMAGINE_DAILY_CREDIT_LIMIT"]
    (tmp_path / "a-file").write_text("")
    home = tmp_path / "a-file" / "home"
    storage = cli.run("generate", PROMPT, "--home", str(home))
    assert (storage.returncode, last_line(storage.stderr)) == (
        5,
        f"error: Nothing was sent, so nothing was charged: the kept-files folder {home}/files "
        "cannot be made (Not a directory). Remove what is in the way. Or point --home (see "
        "--help) at a folder on a disk that works; then run the command again.",
    )
    cli.env["APIINONE_API_KEY"] = "sk-not-a-key-of-this-sandbox"
    refused = cli.run("generate", PROMPT)
    assert refused.returncode == 3
    assert last_line(refused.stderr).startswith("error: API in One did not accept the API key")
    assert cli.run("generate", "a", "cat").returncode == 2
    assert cli.ledger() == (0, 0)


def test_case_10_refused_attempts_are_hidden_from_tasks_unless_asked(cli):
    good_key, good_url = cli.env["APIINONE_API_KEY"], cli.env["APIINONE_BASE_URL"]
    cli.env["APIINONE_API_KEY"] = "sk-not-a-key-of-this-sandbox"
    assert cli.run("generate", PROMPT).returncode == 3
    cli.env["APIINONE_API_KEY"], cli.env["APIINONE_BASE_URL"] = good_key, "http://127.0.0.1:9"
    assert cli.run("generate", PROMPT).returncode == 3  # nothing listens there
    cli.env["APIINONE_BASE_URL"] = good_url
    made = cli.run("generate", PROMPT, "--upscale", "-o", "out")
    assert made.returncode == 0, made.stderr
    upscale_id = Path(made.stdout.split()[-1]).name.rsplit("_", 1)[0]
    assert cli.run("upscale", upscale_id).returncode == 3  # an upscale of an upscale
    listing = cli.run("tasks")
    lines = listing.stdout.splitlines()
    assert [line.split()[4] for line in lines[1:3]] == ["succeeded", "succeeded"]
    assert lines[3:] == [
        "3 refused attempts not shown (no task was made, nothing charged or counted): "
        "`grok-imagine tasks --all` lists them.",
        "Spent today: 17 credits; this month: 17 credits.",
    ]
    everything = cli.run("tasks", "--all").stdout.splitlines()
    assert [line.split()[4] for line in everything[1:6]] == [
        "rejected", "succeeded", "succeeded", "rejected", "rejected",
    ]  # fmt: skip
    assert cli.ledger() == (2, 17)


# -- case 11: parallel tasks, one line each on a terminal; plain lines otherwise ----------------

LIVE = re.compile(r"\[t2i (\d)/3\] (.+) · (\d+) s · task (sbx\w+)")


def test_case_11_parallel_tasks_on_a_terminal_have_a_line_each(sandbox_factory, tmp_path):
    sandbox = sandbox_factory(generation_time=3.0, images_per_task=2)
    cli = Cli(sandbox, tmp_path)
    del cli.env["GROK_IMAGINE_POLL_SCALE"]  # the real schedule: the first status read at 1.5 s
    screen = Screen(columns=160)
    code = run_in_pty(
        [sys.executable, "-m", "comfyui_grok_imagine", "generate", PROMPT, "--tasks", "3"],
        cli.env,
        tmp_path,
        screen,
    )
    assert code == 0, "\n".join(screen.lines())
    created = {
        m.group(1): m.group(2)
        for line in screen.lines()
        if (m := re.fullmatch(r"\[t2i (\d)/3\] created task (\S+) \(5 credits\)", line))
    }
    assert sorted(created) == ["1", "2", "3"]
    # Before the first status read, each task's line already ticks from its create on.
    for number, task_id in created.items():
        line = f"[t2i {number}/3] created · 1 s · task {task_id}"
        assert any(line in frame for frame in screen.frames), line
    # While they run, one line per task, every task at once.
    numbers_drawn = [
        sorted(m.group(1) for line in frame if (m := LIVE.fullmatch(line)))
        for frame in screen.frames
    ]
    assert ["1", "2", "3"] in numbers_drawn
    final = [m.groups() for line in screen.lines() if (m := LIVE.fullmatch(line))]
    assert [(n, state, task) for n, state, _, task in final] == [
        (n, "done, 2 images", created[n]) for n in ("1", "2", "3")
    ]
    assert screen.lines()[-1] == "Done: 3 new (15 credits charged)."
    assert sandbox.ledger(TEST_KEY).creates == 3


def test_case_11_without_a_terminal_progress_is_plain_lines(sandbox_factory, tmp_path):
    cli = Cli(sandbox_factory(generation_time=0.5, images_per_task=2), tmp_path)
    done = cli.run("generate", PROMPT, "--tasks", "3")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stderr and "\r" not in done.stderr
    lines = done.stderr.splitlines()
    for task_id in cli.sandbox.task_ids():
        number = next(
            n for n in "123" if f"[t2i {n}/3] created task {task_id} (5 credits)" in lines
        )
        assert any(re.fullmatch(rf"\[t2i {number}/3\] task {task_id}: running.*", x) for x in lines)
    assert lines[-1] == "Done: 3 new (15 credits charged)."
