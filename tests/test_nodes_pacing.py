"""Under load nothing gives up: a studio graph of Text-to-Image nodes queued at once.

Each graph is several Text-to-Image nodes of 8 parallel tasks, awaited together in one event
loop as ComfyUI's prompt worker awaits the async nodes of one prompt, against a sandbox that
refuses (HTTP 429 with Retry-After) any create over the account's rate. With pacing on (the
default, ``GROK_IMAGINE_CREATE_RATE``) the creates wait their turns and the sandbox answers no
429; with it off, the 429s come and are waited out within the node's timeout. Either way every
node returns every image, and the sandbox counts exactly one create per task.

Then the same machine from two processes: two CLIs on one journal share its turns.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from support import pack, submodule
from support.reliability import KEY, point_nodes_at
from support.status_text import status_text

execution = submodule("nodes.execution")
comfy_hooks = submodule("nodes.comfy_hooks")

T2I = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]
TASKS = 8
IMAGES_PER_TASK = 6
TESTS_DIR = Path(__file__).resolve().parent
WAIT_LIMIT_S = 120.0

pytestmark = pytest.mark.slow


@pytest.fixture
def studio(tmp_path, monkeypatch, sandbox_factory):
    """``studio(rate_limit, create_rate)`` -> a sandbox refusing creates over ``rate_limit``,
    the nodes pointed at it with ``GROK_IMAGINE_CREATE_RATE=create_rate``; small images."""

    def start(rate_limit, create_rate):
        sb = sandbox_factory(
            keys={KEY: 100_000}, rate_limit=rate_limit, images_per_task=IMAGES_PER_TASK,
            image_size=(64, 64),
        )  # fmt: skip
        point_nodes_at(monkeypatch, tmp_path / "home", sb.base_url)
        monkeypatch.setenv("GROK_IMAGINE_CREATE_RATE", create_rate)
        return sb

    yield start
    comfy_hooks.set_test_interrupt(False)
    execution.close_journals()


@pytest.fixture
def shown(monkeypatch):
    """Every status each node showed, as an English UI shows it, by node id."""
    texts: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()

    def status(self, message):
        with lock:
            texts[self.node_id].append(status_text(message))

    monkeypatch.setattr(comfy_hooks.NodeHooks, "status", status)
    return texts


async def _prompt(nodes: int) -> list:
    """One prompt of ``nodes`` Text-to-Image nodes of 8 tasks, awaited together."""
    calls = [
        T2I().generate(f"studio shot {n}: a lighthouse", 0, parallel_tasks=TASKS, unique_id=str(n))
        for n in range(nodes)
    ]
    return await asyncio.gather(*calls, return_exceptions=True)


def _queue_at_once(sb, nodes: int) -> None:
    """Queue the prompt; every node must return all its images, each task created once."""
    outputs = asyncio.run(_prompt(nodes))
    task_ids = []
    for node, output in enumerate(outputs):
        assert not isinstance(output, BaseException), f"node {node}: {output!r}"
        images, ids, urls = output
        assert images.shape[0] == TASKS * IMAGES_PER_TASK, f"node {node}: {images.shape[0]}"
        assert len(ids.splitlines()) == TASKS and len(urls.splitlines()) == TASKS * IMAGES_PER_TASK
        task_ids += ids.splitlines()
    assert len(set(task_ids)) == nodes * TASKS
    ledger = sb.ledger(KEY)
    assert (ledger.creates, ledger.credits_charged) == (nodes * TASKS, nodes * TASKS * 5)


def _said(shown, words: str) -> bool:
    return any(words in text for texts in shown.values() for text in texts)


@pytest.mark.parametrize(
    ("nodes", "rate"),
    [(6, (20, 10.0)), (4, (10, 10.0))],
    ids=["6x8-at-20-per-10", "4x8-at-10-per-10"],
)
def test_a_graph_queued_at_once_is_paced_and_no_create_is_refused(studio, shown, nodes, rate):
    creates, window = rate
    sb = studio(rate, f"{creates}/{window:g}")
    _queue_at_once(sb, nodes)
    assert sb.ledger(KEY).rate_limited == 0
    assert sb.create_requests == nodes * TASKS  # each create sent once: none was refused
    assert _said(shown, "s for a turn to create")


def test_with_pacing_off_the_429s_are_waited_out_and_every_node_completes(studio, shown):
    sb = studio((20, 10.0), "off")
    _queue_at_once(sb, 6)
    refused = sb.ledger(KEY).rate_limited
    assert refused >= 28  # 48 at once: 20 taken, the other 28 refused at least once
    assert sb.create_requests == 48 + refused  # each refused create sent again, nothing more
    assert _said(shown, "API in One is rate limiting new tasks (HTTP 429; nothing was created)")
    assert not _said(shown, "turn to create")


CLI_RUN = """
import sys
sys.path.insert(0, {tests_dir!r})
from support import submodule
sys.exit(submodule("cli").main(sys.argv[1:]))
"""


def test_two_command_lines_on_one_journal_share_its_pace(tmp_path, sandbox_factory):
    """Two CLIs of 8 tasks each on one journal (one --home), 4 creates per 2 s allowed: paced
    alone, each would send 8 at once and meet 429s; sharing the journal's turns, none comes."""
    sb = sandbox_factory(keys={KEY: 1000}, rate_limit=(4, 2.0), images_per_task=1)
    env = {
        **os.environ,
        "APIINONE_API_KEY": KEY,
        "APIINONE_BASE_URL": sb.base_url,
        "GROK_IMAGINE_POLL_SCALE": "0.05",
        "GROK_IMAGINE_CREATE_RATE": "4/2",
    }
    env.pop("GROK_IMAGINE_JOURNAL_URL", None)
    script = CLI_RUN.format(tests_dir=str(TESTS_DIR))
    home = tmp_path / "home"
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    runs = []
    for n in range(2):
        argv = [sys.executable, "-c", script, "generate", f"two lines {n}", "--tasks", "8",
                "--home", str(home), "-o", str(tmp_path / f"out{n}")]  # fmt: skip
        runs.append(subprocess.Popen(argv, env=env, **pipes))
    outcomes = [run.communicate(timeout=WAIT_LIMIT_S) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outcomes]
    ledger = sb.ledger(KEY)
    assert (ledger.creates, ledger.credits_charged, ledger.rate_limited) == (16, 80, 0)
    assert sb.create_requests == 16
    assert all("s for a turn to create" in err for _, err in outcomes)  # each one waited
    for n in range(2):
        assert len(list((tmp_path / f"out{n}").iterdir())) == 8
