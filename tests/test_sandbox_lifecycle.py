"""Start, stop, Ctrl-C, threads, logs and command-line flags of the sandbox."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
from support import submodule
from support.keys import TEST_KEY
from support.sandbox_http import CREATE, WAIT_LIMIT_S, auth, create, wait_done, wait_until

sandbox_module = submodule("sandbox")
cli_args = submodule("sandbox.cli_args")
TESTS_DIR = Path(__file__).resolve().parent


def sandbox_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("grok-sandbox")]


def stop_within_bound(sb) -> None:
    """Stop from another thread and require it to return (a generous bound, not a timing)."""
    stopper = threading.Thread(target=sb.stop)
    stopper.start()
    stopper.join(WAIT_LIMIT_S)
    assert not stopper.is_alive(), "stop() hung"


# -- shutdown ------------------------------------------------------------------------------------


def test_stop_leaves_no_threads_even_mid_request(sandbox_factory):
    before = sandbox_threads()
    sb = sandbox_factory()
    urls = wait_done(sb, create(sb).json()["data"]["task_id"])["output"]["image_urls"]

    idle = requests.Session()  # a keep-alive connection left open on each listener
    idle.get(urls[0], timeout=10)
    idle.get(f"{sb.base_url}/api/v1/tasks/x", headers=auth(), timeout=10)

    sb.faults.download = "slow"  # a download dripping a chunk every 30 s
    sb.faults.drip_delay = 30.0
    dripping = requests.get(urls[1], stream=True, timeout=10)
    next(dripping.iter_content(1024))

    sb.faults.create_response_delay = 30.0  # a create waiting 30 s to answer
    errors: list[BaseException] = []

    def slow_create() -> None:
        try:
            create(sb)
        except requests.RequestException as exc:
            errors.append(exc)

    creator = threading.Thread(target=slow_create)
    creator.start()
    wait_until(lambda: sb.ledger(TEST_KEY).creates == 2, "the slow create to be taken")

    stop_within_bound(sb)
    creator.join(WAIT_LIMIT_S)
    assert errors  # the client saw the connection end, it did not get an answer
    assert sandbox_threads() == before
    idle.close()
    dripping.close()


def test_serve_forever_returns_when_stopped_elsewhere(sandbox_factory):
    sb = sandbox_factory()
    server = threading.Thread(target=sb.serve_forever)
    server.start()
    assert create(sb).status_code == 200
    sb.stop()
    server.join(WAIT_LIMIT_S)
    assert not server.is_alive()


def test_ctrl_c_stops_the_server_cleanly():
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
        "from support import submodule\n"
        "sandbox = submodule('sandbox')\n"
        "sb = sandbox.Sandbox(sandbox.SandboxConfig(generation_time=0.05)).start()\n"
        "print(sb.base_url, flush=True)\n"
        "sb.serve_forever()\n"
        "print('stopped', flush=True)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        key = sandbox_module.DEFAULT_KEY
        assert (
            requests.post(
                base_url + CREATE, json={"prompt": "p"}, headers=auth(key), timeout=10
            ).status_code
            == 200
        )
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=WAIT_LIMIT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip() == "stopped" and "Traceback" not in err


def test_base_url_needs_a_started_sandbox():
    sb = sandbox_module.Sandbox(sandbox_module.SandboxConfig())
    with pytest.raises(RuntimeError):
        _ = sb.base_url
    sb.stop()  # harmless before start


def test_a_busy_port_is_reported_and_nothing_is_left_running(sandbox):
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    before = sandbox_threads()
    with pytest.raises(OSError):
        sandbox_module.Sandbox(sandbox_module.SandboxConfig(port=port)).start()
    assert sandbox_threads() == before


# -- concurrency ---------------------------------------------------------------------------------


def test_parallel_creates_never_overdraw(sandbox_factory):
    sb = sandbox_factory(keys={TEST_KEY: 52})  # ten creates' worth, plus change
    codes: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with requests.Session() as session:
            for _ in range(4):
                code = session.post(
                    sb.base_url + CREATE, json={"prompt": "p"}, headers=auth(), timeout=10
                ).status_code
                with lock:
                    codes.append(code)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_LIMIT_S)
    assert sorted(set(codes)) == [200, 402] and codes.count(200) == 10
    assert sb.ledger(TEST_KEY) == sandbox_module.Ledger(
        creates=10, credits_charged=50, refunds=0, balance=2
    )
    assert sb.create_requests == 24


# -- logging -------------------------------------------------------------------------------------


def test_one_log_line_per_request_and_never_the_key(sandbox, caplog):
    caplog.set_level(logging.DEBUG, logger="grok_imagine.sandbox")
    task_id = create(sandbox).json()["data"]["task_id"]
    urls = wait_done(sandbox, task_id)["output"]["image_urls"]
    requests.get(urls[0], headers=auth(), timeout=10)
    requests.post(
        sandbox.base_url + CREATE,
        json={"prompt": "p"},
        headers=auth("sk-wrong-key-123"),
        timeout=10,
    )
    reads = sandbox.task_info(task_id).status_reads
    sandbox.stop()  # every handler has finished logging
    lines = [r.getMessage() for r in caplog.records if r.name == "grok_imagine.sandbox"]
    assert len([line for line in lines if " -> " in line]) == 1 + reads + 1 + 1
    assert any("api POST /api/v1/images/generations -> 200" in line for line in lines)
    assert any("files GET /files/" in line and "-> 200" in line for line in lines)
    assert any("-> 401" in line for line in lines)
    text = caplog.text + "\n".join(lines)
    assert TEST_KEY not in text and "sk-wrong-key-123" not in text


# -- configuration and command line --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_format": "GIF"},
        {"generation_time": (2.0, 1.0)},
        {"generation_time": -1.0},
        {"images_per_task": 0},
        {"rate_limit": (0, 10.0)},
        {"keys": {}},
    ],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(ValueError):
        sandbox_module.SandboxConfig(**kwargs)


def test_default_config_is_the_users_sandbox():
    config = sandbox_module.SandboxConfig()
    assert list(config.keys) == [sandbox_module.DEFAULT_KEY]
    assert config.keys[sandbox_module.DEFAULT_KEY] >= 100_000
    assert config.generation_bounds == (3.0, 10.0)
    assert config.images_per_task == 6 and config.image_format == "JPEG"
    assert sandbox_module.SandboxConfig(image_format="jpg").image_format == "JPEG"


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    cli_args.add_arguments(parser)
    return cli_args.config_from_args(parser.parse_args(list(argv)))


def test_cli_defaults():
    config, faults = parse()
    assert config.port == 8765 and config.keys == {sandbox_module.DEFAULT_KEY: 1_000_000}
    assert config.generation_bounds == (3.0, 10.0) and config.separate_file_host
    assert faults == sandbox_module.Faults()


def test_cli_sets_every_switch():
    config, faults = parse(
        "--port",
        "0",
        "--key",
        "sk-a=50",
        "--key",
        "sk-b",
        "--credits",
        "7",
        "--generation-time",
        "0.5-2",
        "--images-per-task",
        "2",
        "--format",
        "png",
        "--expiry",
        "60",
        "--rate-limit",
        "20/10",
        "--seed",
        "3",
        "--single-origin",
        "--failure-rate",
        "0.25",
        "--moderation-word",
        "",
        "--create-errors",
        "429,503",
        "--status-errors",
        "455",
        "--retry-after",
        "4",
        "--stuck",
        "--malformed-json",
        "1",
        "--html-error",
        "2",
        "--error-in-body",
        "3",
        "--create-response-delay",
        "1.5",
        "--shape",
        "upstream",
        "--download",
        "slow",
        "--drip-delay",
        "0.1",
    )
    assert config.keys == {"sk-a": 50, "sk-b": 7} and config.port == 0
    assert config.generation_time == (0.5, 2.0) and config.images_per_task == 2
    assert config.image_format == "PNG" and config.file_expiry == 60.0
    assert config.rate_limit == (20, 10.0) and config.seed == 3 and not config.separate_file_host
    assert faults == sandbox_module.Faults(
        failure_rate=0.25,
        moderation_word=None,
        create_errors=[429, 503],
        status_errors=[455],
        retry_after=4,
        stuck=True,
        malformed_json=1,
        html_error=2,
        error_in_body=3,
        create_response_delay=1.5,
        response_shape="upstream",
        download="slow",
        drip_delay=0.1,
    )
    assert parse("--generation-time", "0.25")[0].generation_time == 0.25


@pytest.mark.parametrize(
    "argv",
    [
        ["--generation-time", "soon"],
        ["--rate-limit", "20"],
        ["--status-errors", "x"],
        ["--shape", "nope"],
        ["--download", "nope"],
        ["--key", "=5"],
    ],
)
def test_cli_refuses_bad_values(argv, capsys):  # capsys keeps argparse's usage text quiet
    with pytest.raises(SystemExit):
        parse(*argv)


def test_cli_config_runs():
    config, faults = parse(
        "--port",
        "0",
        "--generation-time",
        "0.05",
        "--key",
        f"{TEST_KEY}=20",
        "--images-per-task",
        "1",
    )
    sb = sandbox_module.Sandbox(config, faults=faults)
    with sb:
        task_id = create(sb).json()["data"]["task_id"]
        assert len(wait_done(sb, task_id)["output"]["image_urls"]) == 1
        assert sb.ledger(TEST_KEY).balance == 15


def test_sandbox_env_points_the_environment_at_the_sandbox(sandbox_env):
    assert os.environ["APIINONE_API_KEY"] == TEST_KEY
    assert os.environ["APIINONE_BASE_URL"] == sandbox_env.base_url
    assert create(sandbox_env).status_code == 200
