"""The real `grok-imagine` command in a subprocess against the sandbox: Ctrl-C, SIGTERM, kill -9,
timeouts and reruns, with the exact creates taken from the sandbox's ledger.

The stop latency (signal sent -> process gone) is measured and printed; the promise is 1 s, and the
assertion leaves generous slack for a loaded machine.
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
from support import submodule
from support.cli_process import (
    WAIT_LIMIT_S,
    Cli,
    LineReader,
    last_line,
    stop_and_time,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("comfyui_grok_imagine") is None,
    reason="the pack is not pip-installed here (pip install -e .); the CLI runs as a subprocess",
)


journal_mod = submodule("journal")
runner_mod = submodule("journal.runner")


@pytest.fixture
def cli(sandbox_factory: Callable[..., Any], tmp_path: Path) -> Iterator[Cli]:
    yield Cli(sandbox_factory(generation_time=3.0, images_per_task=2), tmp_path)


PROMPT = "a fox in the snow"


def test_ctrl_c_during_the_wait_stops_names_the_task_and_the_rerun_resumes_it(cli):
    proc = cli.start("generate", PROMPT, "-o", "out")
    wait_until(lambda: cli.sandbox.task_ids(), "the task to be created")
    time.sleep(0.3)
    _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C during the wait")
    assert proc.returncode == 130
    (task_id,) = cli.sandbox.task_ids()
    assert f"task {task_id} keeps running at API in One, created by this run: 5 credits" in err
    assert f"Run `grok-imagine generate '{PROMPT}' -o out` to pick the work up" in err
    assert cli.sandbox.task_info(task_id).state in ("queued", "running")

    again = cli.run("generate", PROMPT, "-o", "out")
    assert again.returncode == 0, again.stderr
    assert f"resuming task {task_id}" in again.stderr
    assert last_line(again.stderr) == "Done: 1 resumed (no new charge)."
    assert len(again.stdout.split()) == 2
    assert cli.ledger() == (1, 5)

    third = cli.run("generate", PROMPT, "-o", "out")
    assert last_line(third.stderr) == "Done: 1 reused (free)." and cli.ledger() == (1, 5)


def test_sigterm_during_the_wait_stops_like_ctrl_c(cli):
    proc = cli.start("generate", PROMPT, "--tasks", "2")
    wait_until(lambda: len(cli.sandbox.task_ids()) == 2, "both tasks to be created")
    _, _, err = stop_and_time(proc, signal.SIGTERM, "SIGTERM during the wait")
    assert proc.returncode == 130
    for task_id in cli.sandbox.task_ids():
        assert task_id in err
    again = cli.run("generate", PROMPT, "--tasks", "2")
    assert last_line(again.stderr) == "Done: 2 resumed (no new charge)."
    assert cli.ledger() == (2, 10)


def test_ctrl_c_during_the_create_stops_and_the_rerun_sends_nothing_again(cli):
    cli.sandbox.faults.create_response_delay = 20.0  # accepted and charged; the answer is late
    proc = cli.start("generate", PROMPT)
    wait_until(lambda: cli.sandbox.create_requests == 1, "the create request")
    time.sleep(0.2)
    _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C during the create")
    assert proc.returncode == 130
    assert "had no task id yet" in err and f"`grok-imagine generate '{PROMPT}'`" in err
    cli.sandbox.faults.create_response_delay = 0.0

    again = cli.run("generate", PROMPT)
    assert again.returncode == 3
    line = last_line(again.stderr)
    assert line.startswith("error: A create was sent but its answer was lost")
    assert "grok-imagine resolve 1 --task-id ID" in line and "--new" in line
    assert "Load Task" not in line
    assert cli.ledger() == (1, 5)  # the rerun did not pay again


def test_ctrl_c_during_a_rate_limit_wait_stops_and_nothing_was_created(cli):
    cli.sandbox.faults.retry_after = 10
    cli.sandbox.faults.create_errors = [429] * 3
    proc = cli.start("generate", PROMPT)
    wait_until(lambda: cli.sandbox.create_requests == 1, "the rate-limited create")
    time.sleep(0.3)
    stop_and_time(proc, signal.SIGINT, "Ctrl-C during a rate-limit wait")
    assert proc.returncode == 130 and cli.ledger() == (0, 0)
    assert cli.sandbox.create_requests == 1  # the create was not sent again after Ctrl-C
    cli.sandbox.faults.create_errors = []
    again = cli.run("generate", PROMPT)
    assert last_line(again.stderr) == "Done: 1 new (5 credits charged)."
    assert cli.ledger() == (1, 5)


def test_ctrl_c_during_the_downloads_stops_and_the_rerun_fetches_them_free(cli):
    cli.sandbox.faults.download = "slow"
    cli.sandbox.faults.drip_delay = 5.0
    proc = cli.start("generate", PROMPT)
    wait_until(lambda: cli.sandbox.file_requests, "a download to start")
    time.sleep(0.2)
    _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C during the downloads")
    assert proc.returncode == 130
    (task_id,) = cli.sandbox.task_ids()
    assert task_id in err
    # Issue case 4: a finished task whose files were downloading is not said to keep running.
    assert (
        f"  [t2i 1/1] task {task_id} is finished at API in One; its images were still being "
        "fetched, created by this run: 5 credits" in err.splitlines()
    )
    assert "keeps running" not in err
    cli.sandbox.faults.download = None
    again = cli.run("generate", PROMPT)
    assert again.returncode == 0, again.stderr
    assert len(again.stdout.split()) == 2 and cli.ledger() == (1, 5)
    assert "no new charge" in last_line(again.stderr)


def test_kill_9_mid_wait_then_the_same_command_resumes(cli):
    proc = cli.start("generate", PROMPT)
    wait_until(lambda: cli.sandbox.task_ids(), "the task to be created")
    time.sleep(0.3)
    proc.kill()
    proc.communicate(timeout=WAIT_LIMIT_S)
    again = cli.run("generate", PROMPT)
    assert again.returncode == 0, again.stderr
    assert last_line(again.stderr) == "Done: 1 resumed (no new charge)."
    assert cli.ledger() == (1, 5)


def _rows(cli):
    """The command's journal rows, oldest first (read as the panel and `tasks` read them)."""
    journal = journal_mod.Journal(cli.home / "journal.sqlite")
    try:
        return list(reversed(journal.page(1000)))
    finally:
        journal.close()


def _turns_held(cli, row_ids):
    journal = journal_mod.Journal(cli.home / "journal.sqlite")
    try:
        marks = ",".join("?" * len(row_ids))
        return journal._db.execute(
            lambda c: c.execute(
                f"SELECT count(*) FROM create_turns WHERE request_id IN ({marks})", row_ids
            ).fetchone()[0]
        )
    finally:
        journal.close()


def test_kill_9_while_creates_wait_for_their_turns_leaves_nothing_uncertain(cli):
    """The process (ComfyUI or this command) dies while its creates wait for their turns: their
    rows say nothing was sent, so the same command creates each of those once and resumes the
    two it had sent. Nothing is uncertain; the daily limit counted them like creates meanwhile,
    and a settled row's credits go to its own create (a limit of exactly the 6 tasks holds)."""
    cli.env["GROK_IMAGINE_CREATE_RATE"] = "2/10"  # 2 go at once, 2 in 11 s and 2 in 22 s

    def sent_two_four_waiting():
        rows = _rows(cli)
        waiting = [e for e in rows if e.state == "waiting"]
        return len(waiting) == 4 and sum(e.task_id is not None for e in rows) == 2

    proc = cli.start("generate", PROMPT, "--tasks", "6")
    wait_until(sent_two_four_waiting, "2 creates answered and 4 waiting for their turns")
    proc.kill()
    proc.communicate(timeout=WAIT_LIMIT_S)
    assert proc.returncode == -signal.SIGKILL
    waiting = [e for e in _rows(cli) if e.state == "waiting"]
    assert all(e.owner.pid == proc.pid and e.credits == 5 for e in waiting)
    assert cli.sandbox.create_requests == 2 and cli.ledger() == (2, 10)
    listed = cli.run("tasks")
    assert listed.returncode == 0, listed.stderr
    assert sum(" waiting " in line for line in listed.stdout.splitlines()) == 4
    assert "Spent today: 30 credits" in listed.stdout and "Uncertain" not in listed.stdout

    cli.env["GROK_IMAGINE_CREATE_RATE"] = "20/10"
    cli.env["GROK_IMAGINE_DAILY_CREDIT_LIMIT"] = "30"
    again = cli.run("generate", PROMPT, "--tasks", "6")
    assert again.returncode == 0, again.stderr
    assert last_line(again.stderr) == "Done: 4 new (20 credits charged), 2 resumed (no new charge)."
    assert "may have been charged" not in again.stderr
    assert cli.ledger() == (6, 30) and cli.sandbox.create_requests == 6
    rows = {e.id: e for e in _rows(cli)}
    for left in waiting:
        settled = rows[left.id]
        assert (settled.state, settled.credits) == ("rejected", 0)
        assert settled.error == runner_mod.NEVER_SENT and settled.task_id is None
    assert _turns_held(cli, [e.id for e in waiting]) == 0  # their unreached turns given back
    assert not any(e.state in ("uncertain", "waiting", "creating") for e in rows.values())
    paid = [e for e in rows.values() if e.task_id is not None]
    assert sorted(e.index for e in paid) == list(range(6)) and len({e.task_id for e in paid}) == 6
    assert all(e.state == "succeeded" and e.credits == 5 for e in paid)


def test_kill_9_during_a_create_sent_at_its_turn_is_uncertain_as_before(cli):
    """A create that waited for its turn is back to `creating` before it is sent: killed while
    its answer is on the way, it is uncertain, and the rerun sends nothing again."""
    cli.env["GROK_IMAGINE_CREATE_RATE"] = "1/2"  # the second create waits 3 s for its turn
    cli.sandbox.faults.create_response_delay = 20.0  # taken and charged; the answers are late
    proc = cli.start("generate", PROMPT, "--tasks", "2")
    wait_until(lambda: "waiting" in [e.state for e in _rows(cli)], "a create to wait its turn")
    wait_until(lambda: cli.sandbox.create_requests == 2, "the second create, sent at its turn")
    time.sleep(0.2)
    proc.kill()
    proc.communicate(timeout=WAIT_LIMIT_S)
    assert [e.state for e in _rows(cli)] == ["creating", "creating"]
    cli.sandbox.faults.create_response_delay = 0.0

    again = cli.run("generate", PROMPT, "--tasks", "2")
    assert again.returncode == 3
    assert again.stderr.count("error: A create was sent but its answer was lost") == 2
    assert [e.state for e in _rows(cli)] == ["uncertain", "uncertain"]
    assert cli.ledger() == (2, 10) and cli.sandbox.create_requests == 2  # nothing sent again


def test_a_live_runs_create_waiting_for_its_turn_is_waited_for_not_sent_twice(cli):
    """Another run of the same command starts while the first one's second create waits for
    its turn: it waits for that run (alive) instead of creating it too, and shares its tasks."""
    cli.env["GROK_IMAGINE_CREATE_RATE"] = "1/8"  # the second create waits 9 s for its turn
    first = cli.start("generate", PROMPT, "--tasks", "2")
    wait_until(lambda: "waiting" in [e.state for e in _rows(cli)], "a create to wait its turn")
    second = cli.run("generate", PROMPT, "--tasks", "2")
    _, first_err = first.communicate(timeout=WAIT_LIMIT_S)
    assert first.returncode == 0, first_err
    assert last_line(first_err) == "Done: 2 new (10 credits charged)."
    assert second.returncode == 0, second.stderr
    assert f"process {first.pid} is creating this same request; waiting for it" in second.stderr
    assert last_line(second.stderr) == "Done: 2 resumed (no new charge)."
    assert cli.ledger() == (2, 10) and cli.sandbox.create_requests == 2
    assert [e.state for e in _rows(cli)] == ["succeeded", "succeeded"]


def test_timeout_names_the_commands_and_the_rerun_resumes(cli):
    """Issue case 5: the rerun it suggests waits longer than the --timeout that ran out."""
    first = cli.run("generate", PROMPT, "--timeout", "0.5")
    assert first.returncode == 4
    (task_id,) = cli.sandbox.task_ids()
    line = last_line(first.stderr)
    assert line == (
        f"error: Stopped waiting for task {task_id} after 0.5 s; the task keeps running at API "
        f"in One. Run `grok-imagine generate '{PROMPT}' --timeout 1` to resume it without paying "
        f"again, or fetch it with `grok-imagine task {task_id}`."
    )
    assert line.startswith(f"error: Stopped waiting for task {task_id}")
    assert f"`grok-imagine task {task_id}`" in line
    assert "Queue" not in line and "Load Task" not in line
    again = cli.run("generate", PROMPT)
    assert last_line(again.stderr) == "Done: 1 resumed (no new charge)."
    assert cli.ledger() == (1, 5)


def test_new_pays_on_purpose_and_its_printed_command_repeats_it(cli):
    cli.sandbox.config.generation_time = 0.1
    first = cli.run("generate", PROMPT, "--new")
    second = cli.run("generate", PROMPT, "--new")
    assert last_line(first.stderr) == last_line(second.stderr) == "Done: 1 new (5 credits charged)."
    assert cli.ledger() == (2, 10)
    seed = next(w for w in first.stderr.split("`")[1].split() if w.isdigit())
    again = cli.run("generate", PROMPT, "--seed", seed)
    assert last_line(again.stderr) == "Done: 1 reused (free)." and cli.ledger() == (2, 10)


def test_a_closed_pipe_ends_quietly_with_141(cli):
    """Issue case 9: `grok-imagine tasks | head` stops as other Unix tools do: no line, 141."""
    assert cli.run("generate", PROMPT, "--timeout", "30").returncode == 0
    proc = cli.start("tasks")
    proc.stdout.close()  # the reader is gone before anything is written (`| head -0`)
    err = proc.stderr.read()
    assert proc.wait(timeout=WAIT_LIMIT_S) == 141
    assert err == ""


def test_a_busy_port_is_one_line(cli):
    proc = cli.run("sandbox", "--port", cli.sandbox.base_url.rsplit(":", 1)[1])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "cannot be used" in proc.stderr and "--port 0" in proc.stderr


def test_ctrl_c_at_the_key_prompt_is_one_line(cli, tmp_path):
    cli.env["GROK_IMAGINE_KEY_FILE"] = str(tmp_path / "key")
    proc = cli.start("key", "set", stdin=subprocess.PIPE)
    time.sleep(1.5)  # python is up and reading standard input
    _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C at the key prompt")
    assert proc.returncode == 130 and err.strip().count("\n") == 0
    assert not (tmp_path / "key").exists()


def test_the_standalone_sandbox_logs_and_serves_its_ledger(tmp_path):
    import json
    import urllib.request

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comfyui_grok_imagine",
            "sandbox",
            "--port",
            "0",
            "--generation-time",
            "0.1",
            "--failure-rate",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = ""
        while "APIINONE_BASE_URL=" not in line:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
        base = line.split("APIINONE_BASE_URL=")[1].split()[0]
        key = line.split("APIINONE_API_KEY=")[1].split()[0]
        request = urllib.request.Request(
            base + "/api/v1/images/generations",
            data=json.dumps({"model": "grok-imagine/text-to-image", "prompt": "x"}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        task_id = json.load(urllib.request.urlopen(request, timeout=10))["data"]["task_id"]
        time.sleep(0.3)  # it fails (failure rate 1) and is refunded
        with urllib.request.urlopen(base + "/sandbox/ledger", timeout=10) as answer:
            ledger = json.load(answer)
        (account,) = ledger["keys"]
        assert account["key"] == "..." + key[-4:] and key not in json.dumps(ledger)
        assert (account["creates"], account["credits_charged"], account["refunds"]) == (1, 0, 5)
        assert account["tasks"][0]["task_id"] == task_id and account["tasks"][0]["refunded"]
    finally:
        _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C on the standalone sandbox")
    assert proc.returncode == 0
    assert f"create {task_id}" in err and "charged 5 credits" in err
    assert f"refund {task_id}" in err and "balance" in err


def test_ctrl_c_after_one_task_failed_says_which_failed_and_which_keeps_running(
    sandbox_factory, tmp_path
):
    cli = Cli(sandbox_factory(generation_times=(0.2, 20.0), images_per_task=2), tmp_path)
    cli.sandbox.faults.failure_rate = 1.0  # both end failed: the first after 0.2 s
    proc = cli.start("generate", PROMPT, "--tasks", "2")
    reader = LineReader(proc)
    failed = reader.wait_for(lambda line: re.search(r": failed \(\d+ s\)$", line), "a failure")
    wait_until(lambda: len(cli.sandbox.task_ids()) == 2, "both tasks to be created")
    _, _, err = stop_and_time(proc, signal.SIGINT, "Ctrl-C after one task failed", reader)
    assert proc.returncode == 130
    quick, slow = cli.sandbox.task_ids()
    label = failed.split("]")[0] + "]"
    other = "[t2i 2/2]" if label == "[t2i 1/2]" else "[t2i 1/2]"
    assert f"  {label} task {quick} failed (failed tasks are not charged)" in err.splitlines()
    assert (
        f"  {other} task {slow} keeps running at API in One, created by this run: 5 credits"
        in err.splitlines()
    )
