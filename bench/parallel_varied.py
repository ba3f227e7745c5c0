"""Benchmark 2b: the parallel-tasks tail when a node's tasks finish apart, as real ones do.

In ``parallel_tasks`` every task takes the same time, so a node's eight tasks finish within the
spread of their creates and all 48 images follow the last one. Here each task's generation time
is drawn from 3-10 s (the polling benchmark's range, seeded, so every run draws the same times):
the figure is what decode on arrival is for, only the last task's own images left to convert.

It runs after every other benchmark. Placed inside ``parallel_tasks`` (a second sandbox, eight
more runs of up to 48 images), it changed the figures of the benchmarks that followed: two full
runs gave 6 JPEGs / bare PIL 1.91x and 1.92x and node overhead 0.370 s and 0.426 s, against
1.51x and 0.354 s in a run without it made between them.
"""

from __future__ import annotations

import tempfile

import parallel_tasks
import phases
import sandbox_run
from results import BenchResult, Figure, markdown_table
from stats import ratio

GENERATION_S = (3.0, 10.0)
SEED = 18
"""The sandbox's random draws: the same generation times in every run."""
ORDER = (1, 8, 8, 1, 1, 8, 8, 1)
TARGET = 1.0
"""Last task done -> node returned, N = 8 over N = 1: the other tasks' images are in already."""
QUICK_ORDER = (1, 8)


def run(quick: bool) -> BenchResult:
    scale = 0.05 if quick else 1.0
    low, high = (bound * scale for bound in GENERATION_S)
    with (
        tempfile.TemporaryDirectory(prefix="grok-bench-home-") as home,
        sandbox_run.sandbox(generation_time=(low, high), seed=SEED) as running,
        sandbox_run.PreRenderer(running),
        sandbox_run.node_environment(running, home, poll_scale=scale),
        phases.timed_phases() as log,
    ):
        sandbox_run.run_text_to_image_node("warm-up", seed=10**6)
        seeds = iter(range(1, 10**6))
        order = QUICK_ORDER if quick else ORDER
        data = parallel_tasks.run_series(running, log, order, seeds, "varied")
    medians = parallel_tasks.series_medians(data)
    splits = medians["splits"]
    after = ratio(splits[8]["after_done"], splits[1]["after_done"])
    scale_text = "" if scale == 1 else f" (time-scaled x{scale:g}: smoke run only)"
    result = BenchResult(
        key="parallel_varied",
        title="Parallel tasks that finish apart",
        method=(
            "The node of the parallel-tasks benchmark, against a sandbox whose tasks each take "
            f"a generation time drawn from {low:g}-{high:g} s{scale_text} (seeded {SEED}, so "
            f"every run draws the same times), runs in the order {', '.join(map(str, order))} "
            "after one warm-up; 6 JPEGs of 1024x1024 per task, a new seed per run. Every other "
            "benchmark has run before this one (see the module's docstring)."
        ),
    )
    result.figures.append(
        Figure(
            "last task done -> node returned: N = 8 / N = 1, generation times 3-10 s",
            after,
            "x",
            f"<= {TARGET:g}x",
            after <= TARGET,
        )
    )
    rows = []
    for n in (1, 8):
        m = splits[n]
        rows.append(
            [
                str(n),
                f"{m['created'] * 1000:.0f} ms",
                f"{m['noticed'] * 1000:.0f} ms",
                f"{m['downloaded'] * 1000:.0f} ms",
                f"{m['late_decodes']:.0f} of {6 * n}",
                f"{m['after_done'] * 1000:.0f} ms",
            ]
        )
    result.details += markdown_table(
        [
            "N",
            "last create returned",
            "last task done -> last wait returned",
            "then: all downloads kept (and decoded)",
            "decoded late",
            "last task done -> node returned",
        ],
        rows,
    )
    late = splits[8]["late_decodes"]
    result.notes.append(
        f"The node returns {splits[8]['after_done']:.2f} s after the last of eight tasks is "
        f"done (one task: {splits[1]['after_done']:.2f} s, {after:.2f}x), with {late:.0f} of "
        "48 images decoded after it"
        + (
            ": the other tasks' images went into the batch while the last one still generated."
            if late <= 6
            else "."
        )
    )
    result.data = {"generation_s": [low, high], "seed": SEED, "series": data}
    return result
