"""Soak: 50 text-to-image tasks through the node, with status-read faults and failed tasks.

Users leave these nodes running over hundreds of prompts; this is that, compressed to about half
a minute. Ten Text-to-Image node runs of five parallel tasks each go through the node function
(as ComfyUI calls it, two independent nodes at a time in one event loop) against a sandbox where
10 % of the status reads are answered by one of its injected faults (429, 5xx, 455, malformed
JSON, an HTML 502 page, an error code in a 200 body) and 5 % of the tasks fail. Node runs whose
tasks failed are queued again, as a user would, until every task has its images.

What must hold: every successful task's images reach the node's output (and the disk); creates
equal the 50 tasks requested plus one re-create per failed task, nothing more; credits net of
refunds are exactly 50 x 5; and no thread or file descriptor is left behind (counted before and
after, once the pools the pack reuses, the decode pool and the open journal, exist).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import threading
import time

import pytest
from support import pack, submodule
from support.reliability import (
    KEY,
    WAIT_LIMIT_S,
    matrix_row,
    no_key_leaks,  # noqa: F401 - autouse: DEBUG logs on, no key in any record or file
    point_nodes_at,
)

sandbox_mod = submodule("sandbox")
execution = submodule("nodes.execution")
comfy_hooks = submodule("nodes.comfy_hooks")

pytestmark = pytest.mark.slow

T2I = pack.NODE_CLASS_MAPPINGS["GrokImagineTextToImage"]
NODE_RUNS = 10
TASKS_PER_RUN = 5
IMAGES_PER_TASK = 2
STATUS_FAULT_RATE = 0.10
FAILURE_RATE = 0.05
SANDBOX_SEED = 3  # its first 50 task draws hold 4 failures: the re-create path really runs
MAX_ROUNDS = 8


class FaultRateSandbox(sandbox_mod.Sandbox):
    """The sandbox, answering a random ``rate`` of status reads with one of its own faults."""

    KINDS = (429, 500, 502, 503, 504, 455, "malformed_json", "html_error", "error_in_body")

    def __init__(self, config, rate: float, seed: int) -> None:
        super().__init__(config)
        self.rate = rate
        self._fault_rng = random.Random(seed)
        self._fault_lock = threading.Lock()
        self.reads = 0
        self.injected = 0

    def take_status_fault(self):  # type: ignore[no-untyped-def]
        queued = super().take_status_fault()
        if queued is not None:
            return queued
        with self._fault_lock:
            self.reads += 1
            if self._fault_rng.random() < self.rate:
                self.injected += 1
                return self._fault_rng.choice(self.KINDS)
        return None


@pytest.fixture
def soak_sandbox(tmp_path, monkeypatch):
    config = sandbox_mod.SandboxConfig(
        keys={KEY: 100_000}, generation_time=(0.05, 0.3), images_per_task=IMAGES_PER_TASK,
        seed=SANDBOX_SEED,
    )  # fmt: skip
    sb = FaultRateSandbox(config, STATUS_FAULT_RATE, seed=7).start()
    point_nodes_at(monkeypatch, tmp_path / "home", sb.base_url)
    try:
        yield sb
    finally:
        comfy_hooks.set_test_interrupt(False)
        execution.close_journals()
        sb.stop()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled(read, limit: float = WAIT_LIMIT_S) -> int:
    """The value once it stops changing (connection threads of the sandbox wind down)."""
    deadline = time.monotonic() + limit
    last = read()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = read()
        if now == last:
            return now
        last = now
    return last


def _back_to(read, baseline: int) -> int:
    deadline = time.monotonic() + WAIT_LIMIT_S
    while (value := read()) > baseline and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.1)
    return value


Outcome = tuple[int, object, "BaseException | None"]


async def _run_nodes(seeds: list[int], prompt: str) -> list[Outcome]:
    """Node runs two at a time, as two independent Grok nodes in one ComfyUI prompt."""
    outcomes = []
    for start in range(0, len(seeds), 2):
        pair = seeds[start : start + 2]
        calls = [T2I().generate(prompt, seed, parallel_tasks=TASKS_PER_RUN) for seed in pair]
        done = await asyncio.gather(*calls, return_exceptions=True)
        for seed, out in zip(pair, done, strict=True):
            failed = isinstance(out, BaseException)
            outcomes.append((seed, None if failed else out, out if failed else None))
    return outcomes


@matrix_row(
    "Load (soak)", "50 text-to-image tasks through the node (10 runs x 5 parallel tasks, two "
    "nodes at a time) with 10 % of status reads faulted and 5 % of tasks failing",
    "every successful task's images in the node output; runs with a failed task return the "
    "others and are queued again until complete",
    "every task's images on disk; creates = 50 + one re-create per failed task; credits net "
    "= 250; threads and file descriptors back to their count before",
)  # fmt: skip
def test_soak_fifty_tasks_with_faults(soak_sandbox, tmp_path):
    sb = soak_sandbox
    files_root = tmp_path / "home" / "files"
    # Warm-up: the decode pool and the journal the pack keeps open are made once and reused.
    sb.faults.failure_rate = 0.0
    asyncio.run(T2I().generate("warm-up: a pebble", 0))
    sb.faults.failure_rate = FAILURE_RATE
    warm = sb.ledger(KEY)
    warm_requests = sb.create_requests
    threads_before = _settled(threading.active_count)
    fds_before = _settled(_fds)

    prompt = "soak: a lighthouse in a storm"
    pending = list(range(1, NODE_RUNS + 1))
    complete: dict[int, list[str]] = {}
    partial_runs = 0
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        for seed, out, error in asyncio.run(_run_nodes(pending, prompt)):
            if error is not None:  # every task of the run failed: one readable line
                assert isinstance(error, RuntimeError) and "failed" in str(error), error
                continue
            images, task_ids, urls = out
            ids = task_ids.splitlines()
            assert images.shape[0] == IMAGES_PER_TASK * len(ids)  # every image of every success
            assert len(urls.splitlines()) == IMAGES_PER_TASK * len(ids)
            for task_id in ids:
                assert sb.task_info(task_id).state == "completed"
                kept = [p for p in (files_root / task_id).iterdir() if not p.name.startswith(".")]
                assert len(kept) == IMAGES_PER_TASK
            if len(ids) == TASKS_PER_RUN:
                complete[seed] = ids
            else:
                partial_runs += 1
        pending = [seed for seed in pending if seed not in complete]
    assert not pending, f"runs {pending} never completed in {MAX_ROUNDS} rounds"

    requested = NODE_RUNS * TASKS_PER_RUN
    ids = [task_id for seed in sorted(complete) for task_id in complete[seed]]
    assert len(set(ids)) == requested
    failed = [t for t in sb.task_ids() if sb.task_info(t).state == "failed"]
    ledger = sb.ledger(KEY)
    assert failed and partial_runs, "the soak must meet failed tasks to prove the re-create path"
    assert sb.injected >= 10, "the soak must meet status-read faults"
    assert ledger.creates - warm.creates == requested + len(failed)
    assert sb.create_requests - warm_requests == requested + len(failed)  # nothing re-sent
    assert ledger.credits_charged - warm.credits_charged == requested * 5
    assert ledger.refunds - warm.refunds == 5 * len(failed)

    gc.collect()
    threads_after = _back_to(threading.active_count, threads_before)
    fds_after = _back_to(_fds, fds_before)
    names = sorted(t.name for t in threading.enumerate())
    assert threads_after <= threads_before, f"threads {threads_before} -> {threads_after}: {names}"
    assert fds_after <= fds_before, f"file descriptors {fds_before} -> {fds_after}"
