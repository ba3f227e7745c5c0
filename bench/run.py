"""Run the pack's benchmarks, print a table, write BENCHMARKS.md, charts and raw samples.

    python bench/run.py            # full run: a few minutes on a 2-core machine
    python bench/run.py --quick    # smoke run, ~30 s
    python bench/run.py --only polling_lag,import_cost --no-write

Each benchmark lives in its own module with a ``run(quick) -> BenchResult``. A benchmark whose
pieces of the pack have not landed (or that fails) is reported as not run, never hidden.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
if str(BENCH_DIR) not in sys.path:
    sys.path.insert(0, str(BENCH_DIR))

import machine  # noqa: E402
import report  # noqa: E402
from pack import PACK_DIR  # noqa: E402
from results import BenchResult  # noqa: E402

BENCHMARKS = {
    "polling_lag": ("polling_lag", "Completion-notice lag"),
    "parallel_tasks": ("parallel_tasks", "Parallel tasks"),
    "image_decode": ("image_decode", "Bytes -> IMAGE tensor"),
    "node_overhead": ("node_overhead", "Node overhead"),
    "import_cost": ("import_cost", "Import cost"),
    "journal_overhead": ("journal_overhead", "Journal overhead (PostgreSQL vs SQLite)"),
    "panel_page": ("panel_page", "Panel page with 10,000 tasks; the limit's check per run"),
    "create_pacing": ("create_pacing", "Create pacing: 48 tasks queued at once"),
    "parallel_varied": ("parallel_varied", "Parallel tasks that finish apart"),
}
"""key -> (module in bench/, title), in the issue's order; ``parallel_varied`` last, since its
memory churn changed the figures of the benchmarks run after it."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer samples, ~30 s")
    parser.add_argument(
        "--only", default="", help="comma-separated benchmark keys: " + ", ".join(BENCHMARKS)
    )
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the table only; leave BENCHMARKS.md and charts alone",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=PACK_DIR / "BENCHMARKS.md",
        help="where the report goes (default: BENCHMARKS.md in the checkout)",
    )
    args = parser.parse_args(argv)
    keys = [key.strip() for key in args.only.split(",") if key.strip()] or list(BENCHMARKS)
    unknown = [key for key in keys if key not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    images_dir = args.output.parent / "docs" / "images"
    context = {"quick": args.quick, "images_dir": None if args.no_write else images_dir}
    info = machine.describe()
    info["load_start"] = machine.load_average()
    started = time.perf_counter()
    results: list[BenchResult] = []
    with machine.LoadSampler() as load:
        for key in keys:
            module_name, title = BENCHMARKS[key]
            print(f"== {title} ...", flush=True)
            began = time.perf_counter()
            results.append(_run_one(key, module_name, title, context))
            print(f"   ({time.perf_counter() - began:.0f} s)", flush=True)
            done = results[-1]
            if done.skipped:
                print(f"   not run: {done.skipped}", flush=True)
            else:
                print("\n".join("   " + line for line in done.details), flush=True)
    wall = time.perf_counter() - started
    info["load_end"] = machine.load_average()
    info["load_during"] = load.summary()

    print()
    print(report.console_table(results))
    print(f"\n{wall:.0f} s, load average {info['load_start']} -> {info['load_end']}")
    if args.no_write:
        return 0
    command = "python bench/run.py" + (" --quick" if args.quick else "")
    if args.only:
        command += f" --only {args.only}"
    intro = []
    if args.quick:
        intro += [
            "**This is a `--quick` smoke run**: few samples and time-scaled sandboxes; the "
            "figures show the script works, not how the pack performs. Run without `--quick` "
            "for the real figures.",
            "",
        ]
    if load.busy(int(info["cores"]) if info["cores"].isdigit() else 2):
        intro += [
            f"**The machine was busy during this run**: 1-minute load average {load.summary()} "
            f"on {info['cores']} cores, shared with other engineers' test suites (the benchmark "
            "itself accounts for about one core, two while its busy-core series runs). Absolute "
            "times are pessimistic and wall-time ratios that need a free core suffer most; the "
            "alternatives of each table were still measured side by side, interleaved.",
            "",
        ]
    args.output.write_text(report.markdown(results, info, command, wall, intro), encoding="utf-8")
    raw = {
        "machine": info,
        "command": command,
        "wall_s": wall,
        "results": [asdict(result) for result in results],
    }
    default_output = args.output.resolve() == (PACK_DIR / "BENCHMARKS.md").resolve()
    raw_path = BENCH_DIR / "results.json" if default_output else args.output.parent / "results.json"
    raw_path.write_text(json.dumps(raw, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.output} and {raw_path}")
    return 0


def _run_one(key: str, module_name: str, title: str, context: dict) -> BenchResult:
    try:
        module = importlib.import_module(module_name)
        return module.run(**{k: v for k, v in context.items() if k in _parameters(module.run)})
    except Exception as exc:  # a broken benchmark is reported, the others still run
        traceback.print_exc()
        reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        return BenchResult(key=key, title=title, skipped=reason)


def _parameters(function) -> set[str]:
    import inspect

    return set(inspect.signature(function).parameters)


if __name__ == "__main__":
    sys.exit(main())
