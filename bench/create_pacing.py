"""Benchmark: a graph queued at once, more creates than the account takes (create pacing).

Six Text-to-Image nodes of 8 parallel tasks each (48 tasks), awaited together in one event loop
as ComfyUI's prompt worker awaits the async nodes of one prompt, against an in-process sandbox
that takes 20 creates per 10 s per account and answers any more with HTTP 429 + Retry-After.
Runs alternate between pacing on (``GROK_IMAGINE_CREATE_RATE=20/10``, the default) and off.

The floor is what the rate allows: the last of the 48 turns the pacing rule hands out when all
are asked for at once (``pacing.next_turn``; 22 s, the windows being 11 s with the margin), plus
one generation. Off, the provider's own window is the only bound (20 s + one generation), but
the 429s it answers are counted.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from typing import Any

import machine
import sandbox_run
from pack import submodule
from results import BenchResult, Figure, markdown_table
from stats import Summary

NODES = 6
TASKS = 8
IMAGES_PER_TASK = 6
IMAGE_SIZE = (256, 256)
"""Small images: the figure is about when the creates go, not about decoding 288 of 1 MP."""
RATE = (20, 10.0)
GENERATION_S = 4.0
MODES = ("paced", "off", "paced", "off")
QUICK = {"rate": (20, 1.0), "generation": 0.5, "modes": ("paced", "off")}


def run(quick: bool) -> BenchResult:
    rate = QUICK["rate"] if quick else RATE
    generation = QUICK["generation"] if quick else GENERATION_S
    modes = QUICK["modes"] if quick else MODES
    creates, window = rate
    pacing = submodule("journal.pacing")
    paced_rate = pacing.CreateRate(creates, window)
    turns: list[float] = []
    for _ in range(NODES * TASKS):
        turns.append(pacing.next_turn(paced_rate, 0.0, turns))
    floors = {
        "paced": max(turns) + generation,
        "off": (NODES * TASKS - 1) // creates * window + generation,
    }
    runs = [
        _one_run(mode, index, rate, generation, floors[mode]) for index, mode in enumerate(modes)
    ]
    return _result(runs, rate, generation, floors, quick)


def _one_run(mode: str, index: int, rate: tuple[int, float], generation: float, floor: float):
    """One prompt of the graph on a fresh sandbox and journal; what it took and what it met."""
    setting = f"{rate[0]}/{rate[1]:g}" if mode == "paced" else "off"
    with (
        tempfile.TemporaryDirectory(prefix="grok-bench-pacing-") as home,
        sandbox_run.sandbox(
            rate_limit=rate,
            generation_time=(generation, generation),
            images_per_task=IMAGES_PER_TASK,
            image_size=IMAGE_SIZE,
        ) as running,  # fmt: skip
        sandbox_run.PreRenderer(running),
        sandbox_run.node_environment(running, home),
        sandbox_run.environment(GROK_IMAGINE_CREATE_RATE=setting),
    ):
        load_before = machine.load_average()
        started = time.monotonic()
        outputs = _queue_graph(f"pacing benchmark run {index}")
        wall = time.monotonic() - started
        load_after = machine.load_average()
        for images, _, _ in outputs:
            assert images.shape[0] == TASKS * IMAGES_PER_TASK, images.shape
        ledger = running.ledger(sandbox_run.BENCH_KEY)
        assert ledger.creates == NODES * TASKS, ledger
        created = sorted(
            running.task_info(task_id).created_at - started
            for _, task_ids, _ in outputs
            for task_id in task_ids.split()
        )
        return {
            "mode": mode,
            "wall_s": wall,
            "floor_s": floor,
            "last_create_s": created[-1],
            "rate_limited": ledger.rate_limited,
            "create_requests": running.create_requests,
            "load": f"{load_before} -> {load_after}",
        }


def _queue_graph(prompt: str) -> list[Any]:
    """The graph's nodes awaited together on ComfyUI's prompt worker (one event loop)."""

    async def graph() -> list[Any]:
        calls = [
            sandbox_run.text_to_image_function()(
                f"{prompt}, node {n}", 0, parallel_tasks=TASKS, unique_id=str(n)
            )
            for n in range(NODES)
        ]
        return list(await asyncio.gather(*calls))

    return sandbox_run.on_prompt_worker(graph)


def _result(runs, rate, generation, floors, quick) -> BenchResult:
    creates, window = rate
    paced = [r for r in runs if r["mode"] == "paced"]
    off = [r for r in runs if r["mode"] == "off"]
    paced_wall = Summary.of([r["wall_s"] for r in paced])
    result = BenchResult(
        key="create_pacing",
        title="Create pacing: 48 tasks queued at once",
        method=(
            f"{NODES} Text-to-Image nodes x {TASKS} parallel tasks, called directly (no ComfyUI) "
            "and awaited together in one event loop, as ComfyUI's prompt worker awaits the async "
            f"nodes of one prompt; an in-process sandbox taking {creates} creates per "
            f"{window:g} s (HTTP 429 + Retry-After beyond), {generation:g} s generations, "
            f"{IMAGES_PER_TASK} images of {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} per task, drawn before "
            "they are fetched; a fresh sandbox and journal per run, the modes alternating. "
            "Floor (paced): the last turn the pacing rule gives 48 creates asked for at once, "
            f"{floors['paced'] - generation:g} s, plus one generation; (off): the provider's "
            f"window alone, {floors['off'] - generation:g} s, plus one generation."
            + (" **Smoke run**: a 1 s window." if quick else "")
        ),
    )
    result.figures.append(Figure("wall, paced (median)", paced_wall.p50, "s"))
    result.figures.append(
        Figure("wall over the floor, paced (median)", paced_wall.p50 - floors["paced"], "s")
    )
    result.figures.append(
        Figure("HTTP 429 answered, paced (all runs)", sum(r["rate_limited"] for r in paced), "")
    )
    if off:
        result.figures.append(
            Figure("HTTP 429 answered, off (per run, median)",
                   Summary.of([r["rate_limited"] for r in off]).p50, "")
        )  # fmt: skip
    rows = [
        [
            r["mode"],
            f"{r['wall_s']:.1f} s",
            f"{r['floor_s']:.1f} s",
            f"{r['wall_s'] - r['floor_s']:+.1f} s",
            f"{r['last_create_s']:.1f} s",
            str(r["rate_limited"]),
            str(r["create_requests"]),
            r["load"],
        ]
        for r in runs
    ]
    result.details += markdown_table(
        ["pacing", "wall", "floor", "over the floor", "last create at", "HTTP 429 answered",
         "create requests", "load average (1/5/15 min) before -> after"],
        rows,
    )  # fmt: skip
    result.data = {"runs": runs, "floors": floors, "rate": list(rate), "generation_s": generation}
    return result
