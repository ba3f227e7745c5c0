"""Benchmark 2: N text-to-image tasks through one node, in parallel vs one after another.

Every task has the same fixed generation time (the middle of the 3-10 s range), so N tasks in
parallel would ideally take as long as one; what they cost on top is the node's own work for N
result sets (6 images each: download, journal, decode). The baseline runs the same node with one
task at a time, N times in a row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import phases
import sandbox_run
from results import BenchResult, Figure, markdown_table
from stats import Summary, ratio

TARGET = 1.15
GENERATION_S = 6.5
NS = (1, 2, 4, 8)
ORDER = (1, 2, 4, 8, 8, 1)
"""Two runs each of the figures the target compares (N = 1 and 8), one of the others."""
QUICK_ORDER = (1, 8)


def run(quick: bool, images_dir: Path | None = None) -> BenchResult:
    scale = 0.05 if quick else 1.0
    generation = GENERATION_S * scale
    walls: dict[int, list[float]] = {n: [] for n in NS}
    splits: dict[int, list[dict[str, float]]] = {n: [] for n in NS}
    sequential: dict[int, float] = {}
    seed = 0
    with (
        tempfile.TemporaryDirectory(prefix="grok-bench-home-") as home,
        sandbox_run.sandbox(generation_time=generation) as running,
        sandbox_run.PreRenderer(running),
        sandbox_run.node_environment(running, home, poll_scale=scale),
        phases.timed_phases() as log,
    ):
        sandbox_run.run_text_to_image_node("warm-up", seed=10**6)  # imports, journal, pools
        for rep, n in enumerate(QUICK_ORDER if quick else ORDER):
            seed += 1
            log.clear()
            started = time.perf_counter()
            began = time.monotonic()
            images, task_ids, _ = sandbox_run.run_text_to_image_node(
                f"parallel benchmark n={n} rep={rep}", seed=seed, parallel_tasks=n
            )
            walls[n].append(time.perf_counter() - started)
            ended = time.monotonic()
            assert images.shape[0] == 6 * n and len(task_ids.split()) == n
            del images
            last_done = max(running.task_info(t).done_at for t in task_ids.split())
            splits[n].append(
                {
                    "created": log.last_end("create") - began,
                    "noticed": log.last_end("wait") - last_done,
                    "downloaded": log.last_end("download") - log.last_end("wait"),
                    "to_tensor": log.longest("to_tensor"),
                    "after_done": ended - last_done,
                }
            )
        started = time.perf_counter()
        for done in range(1, max(NS) + 1):
            seed += 1
            sandbox_run.run_text_to_image_node(f"sequential benchmark {done}", seed=seed)
            if done in NS:
                sequential[done] = time.perf_counter() - started

    touch_s = float("nan") if quick else _fresh_memory_touch(6 * max(NS))
    measured = [n for n in NS if walls[n]]
    base = Summary.of(walls[1]).p50
    rows = []
    chart_rows = []
    for n in measured:
        summary = Summary.of(walls[n])
        rows.append(
            [
                str(n),
                str(6 * n),
                " / ".join(f"{w:.2f}" for w in walls[n]) + " s",
                f"{summary.p50:.2f} s",
                f"{ratio(summary.p50, base):.2f}x",
                f"{sequential[n]:.2f} s",
                f"{ratio(sequential[n], summary.p50):.1f}x",
            ]
        )
        chart_rows.append({"n": n, "parallel_p50": summary.p50, "sequential": sequential[n]})
    n8 = ratio(Summary.of(walls[8]).p50, base)
    scale_text = "" if scale == 1 else f" (time-scaled x{scale:g}: smoke run only)"
    result = BenchResult(
        key="parallel_tasks",
        title="Parallel tasks",
        method=(
            f"Grok Text-to-Image's function called directly (no ComfyUI) with `parallel_tasks` = "
            f"N, against an in-process sandbox whose every task takes exactly "
            f"{generation:g} s{scale_text} and returns 6 JPEGs of 1024x1024; a new seed per run, "
            "so nothing comes from the journal. Runs in the order "
            f"{', '.join(map(str, QUICK_ORDER if quick else ORDER))}, "
            "after one warm-up run. Baseline: the same node with one task, run N times in a "
            "row. Result files are drawn by the sandbox while the task generates (as the real "
            "provider's exist when it completes), so the sandbox's drawing is not timed."
        ),
    )
    result.figures += [
        Figure("N = 8 / N = 1 wall time", n8, "x", f"<= {TARGET}x", n8 <= TARGET),
        Figure(
            "N = 8 one after another / in parallel",
            ratio(sequential[8], Summary.of(walls[8]).p50),
            "x",
        ),
    ]
    result.details += markdown_table(
        ["N", "images", "runs", "median", "vs N = 1", "one after another", "speed-up"], rows
    )
    split_rows = []
    for n in measured:
        medians = {key: Summary.of([split[key] for split in splits[n]]).p50 for key in splits[n][0]}
        split_rows.append(
            [
                str(n),
                f"{medians['created'] * 1000:.0f} ms",
                f"{medians['noticed'] * 1000:.0f} ms",
                f"{medians['downloaded'] * 1000:.0f} ms",
                f"{medians['to_tensor'] * 1000:.0f} ms",
                f"{medians['after_done'] * 1000:.0f} ms",
            ]
        )
    result.details += [
        "",
        "Where the time after generation goes (medians; timing wrappers from `bench/phases.py`):",
        "",
    ]
    result.details += markdown_table(
        [
            "N",
            "last create returned",
            "last task done -> last wait returned",
            "then: all downloads kept",
            "bytes -> IMAGE tensor",
            "last task done -> node returned",
        ],
        split_rows,
    )
    if not quick:
        result.notes.append(
            f"Reference for the N = 8 decode: in a fresh process on this machine, only allocating "
            f"and touching once every page of a {6 * max(NS)}-image float32 batch (the N = 8 "
            f"IMAGE tensor, {6 * max(NS) * 1024 * 1024 * 12 / 2**20:.0f} MiB) takes "
            f"**{touch_s:.2f} s**: memory a process has not used before is slow to map on this "
            "VM, and the node has to fill a tensor that size."
        )
    if n8 > TARGET * 0.9:
        eight = {key: Summary.of([split[key] for split in splits[8]]).p50 for key in splits[8][0]}
        one = {key: Summary.of([split[key] for split in splits[1]]).p50 for key in splits[1][0]}
        verdict = (
            f"**Target missed ({n8:.2f}x > {TARGET}x).**"
            if n8 > TARGET
            else f"**Target met narrowly ({n8:.2f}x <= {TARGET}x): other runs on this machine "
            "land either side of it.**"
        )
        result.notes.append(
            f"{verdict} The eight tasks do run at once (their "
            f"waits end {eight['noticed'] * 1000:.0f} ms after the last one is done, against "
            f"{one['noticed'] * 1000:.0f} ms for one task). The extra time is the N = 8 result "
            f"itself: the node returns {eight['after_done']:.2f} s after the last task is done "
            f"(N = 1: {one['after_done']:.2f} s), of which {eight['downloaded']:.2f} s for the "
            f"48 downloads into the journal and {eight['to_tensor']:.2f} s for the 48-image "
            "IMAGE tensor, most of it mapping fresh memory (see the reference above). Suggested "
            "fix (nodes/execution.py, journal/runner.py): decode each task's files into its slice "
            "of the batch as soon as they are kept, and allocate and pre-fault the batch while "
            "the tasks generate (its shape is known from the aspect ratio), so that work "
            "overlaps the wait instead of following it."
        )
    result.data = {
        "generation_s": generation,
        "scale": scale,
        "walls_s": walls,
        "sequential_s": sequential,
        "splits": splits,
        "fresh_touch_s": touch_s,
    }
    if images_dir is not None:
        import charts

        images_dir.mkdir(parents=True, exist_ok=True)
        charts.task_scaling(chart_rows, generation, images_dir / "bench_parallel_tasks.png")
        result.charts.append("bench_parallel_tasks.png")
    return result


def _fresh_memory_touch(images: int, size: tuple[int, int] = (1024, 1024)) -> float:
    """Seconds to allocate and touch an IMAGE-batch-sized float32 array in a fresh process."""
    script = (
        "import json, time, numpy as np\n"
        "started = time.perf_counter()\n"
        f"out = np.empty(({images}, {size[1]}, {size[0]}, 3), dtype=np.float32)\n"
        "out.reshape(-1)[::1024] = 0\n"
        "print(json.dumps(time.perf_counter() - started))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1]))
