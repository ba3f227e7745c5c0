"""Benchmark 5: what loading the pack adds to ComfyUI's start-up.

Each sample is a fresh interpreter that imports torch first (ComfyUI has it loaded long before
custom nodes), then loads the pack exactly as ComfyUI does: ``importlib`` from the folder's
``__init__.py`` under a module name made from the path. Only the pack's load is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from pack import PACK_DIR
from results import BenchResult, Figure, markdown_table
from stats import Summary

TARGET_MS = 30.0

_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    import torch  # noqa: F401  (ComfyUI imported it long before the custom nodes)
    before = set(sys.modules)
    path = sys.argv[1]
    name = path.replace(".", "_x_")  # ComfyUI's own module name for a custom-node folder
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location(name, path + "/__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    elapsed = time.perf_counter() - started
    added = sorted(set(sys.modules) - before)
    heavy = [m for m in ("requests", "PIL", "sqlite3", "urllib3", "aiohttp") if m in added]
    print(json.dumps({"ms": elapsed * 1000, "modules": len(added), "heavy": heavy,
                      "nodes": sorted(module.NODE_CLASS_MAPPINGS)}))
    """
)


def _one_sample() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(PACK_DIR)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACK_DIR.parent,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _importtime_top(limit: int = 8) -> list[tuple[str, int]]:
    """The pack's slowest imports by self time (``python -X importtime``), for the report."""
    script = _SCRIPT.replace("import torch  # noqa", "import torch; sys.stderr.flush()  # noqa")
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script, str(PACK_DIR)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PACK_DIR.parent,
    )
    lines = out.stderr.splitlines()
    # Everything after torch's own top-level line belongs to the pack's load.
    start = max((i for i, line in enumerate(lines) if line.rstrip().endswith("| torch")), default=0)
    rows: list[tuple[str, int]] = []
    for line in lines[start + 1 :]:
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].strip().split(":")[-1].strip().isdigit():
            continue
        self_us = int(parts[0].split(":")[-1])
        rows.append((parts[2].strip().replace(str(PACK_DIR), "<pack>"), self_us))
    rows.sort(key=lambda row: row[1], reverse=True)
    return rows[:limit]


def run(quick: bool) -> BenchResult:
    samples_wanted = 3 if quick else 10
    if not quick:
        _one_sample()  # warm-up: writes the .pyc files a real install would already have
    runs = [_one_sample() for _ in range(samples_wanted)]
    ms = [run["ms"] for run in runs]
    summary = Summary.of(ms)
    last = runs[-1]
    result = BenchResult(
        key="import_cost",
        title="Import cost",
        method=(
            f"{samples_wanted} fresh interpreters (after one warm-up that writes the `.pyc` "
            "files), each importing torch first and then loading the pack from its folder's "
            "`__init__.py` with `importlib` under ComfyUI's module name. Only the pack's load "
            "is timed."
        ),
    )
    result.figures.append(
        Figure(
            "pack import, torch already loaded (median)",
            summary.p50,
            "ms",
            f"<= {TARGET_MS:.0f} ms",
            summary.p50 <= TARGET_MS,
        )
    )
    result.details += markdown_table(
        ["median", "p95", "min", "max", "modules added", "heavy modules pulled in", "nodes"],
        [
            [
                f"{summary.p50:.1f} ms",
                f"{summary.p95:.1f} ms",
                f"{summary.minimum:.1f} ms",
                f"{summary.maximum:.1f} ms",
                str(last["modules"]),
                ", ".join(last["heavy"]) or "none",
                str(len(last["nodes"])),
            ]
        ],
    )
    try:
        top = [] if quick else _importtime_top()
    except (subprocess.CalledProcessError, OSError):
        top = []
    if top:
        result.details += [
            "",
            "Slowest imports during the pack's load (`-X importtime`, self time):",
            "",
        ]
        result.details += markdown_table(
            ["module", "self"], [[f"`{name.strip()}`", f"{us / 1000:.2f} ms"] for name, us in top]
        )
    result.data = {"ms": ms, "summary": summary.as_dict(), "heavy": last["heavy"]}
    return result


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(run(quick="--quick" in sys.argv).data, indent=2))
