"""Turn benchmark results into the console table and BENCHMARKS.md."""

from __future__ import annotations

from collections.abc import Sequence

from results import BenchResult, markdown_table


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: ""}[met]


def console_table(results: Sequence[BenchResult]) -> str:
    rows = []
    for result in results:
        if result.skipped:
            reason = result.skipped if len(result.skipped) <= 70 else result.skipped[:67] + "..."
            rows.append((result.title, "not run: " + reason, "", ""))
            continue
        for figure in result.figures:
            rows.append(
                (
                    f"{result.title}: {figure.label}",
                    figure.formatted(),
                    figure.target or "",
                    verdict(figure.met),
                )
            )
    widths = [
        max(len(row[i]) for row in [*rows, ("benchmark", "value", "target", "")]) for i in range(4)
    ]
    lines = [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in [("benchmark", "value", "target", ""), *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def markdown(
    results: Sequence[BenchResult],
    machine: dict[str, str],
    command: str,
    wall_seconds: float,
    intro: Sequence[str] = (),
) -> str:
    out: list[str] = ["# Benchmarks", ""]
    out += [
        "Measured by `python bench/run.py` against an in-process sandbox on 127.0.0.1: every "
        "figure below comes from one run of the script, alternatives side by side in that same "
        "run. The raw samples are in `bench/results.json`. Nothing here is a test: the test "
        "suite makes no timed assertions.",
        "",
        *intro,
    ]
    out += ["## Machine", ""]
    out += markdown_table(
        ["", ""],
        [
            ["date", machine["date"]],
            ["CPU", f"{machine['cpu']}, {machine['cores']} cores"],
            ["memory", machine["memory"]],
            ["freed memory returned to the host", machine.get("free_page_reporting", "?")],
            ["OS", machine["os"]],
            ["Python", machine["python"]],
            [
                "torch / numpy / Pillow / requests",
                f"{machine['torch']} / {machine['numpy']} / {machine['pillow']} / "
                f"{machine['requests']}",
            ],
            ["load average at start (1/5/15 min)", machine.get("load_start", "n/a")],
            ["load average at end", machine.get("load_end", "n/a")],
            ["1-minute load average during the run", machine.get("load_during", "n/a")],
            ["run", f"`{command}`, {wall_seconds:.0f} s"],
        ],
    )
    out += [
        "",
        "## How to reproduce",
        "",
        "```sh",
        'pip install -e ".[test,bench]"   # matplotlib for the charts; torch as in the README',
        "python bench/run.py              # full run, a few minutes on 2 cores",
        "python bench/run.py --quick      # ~30 s smoke run (fewer samples, time-scaled polling)",
        "python bench/run.py --only polling_lag,import_cost --no-write   # a subset, console only",
        "```",
        "",
        "## Summary",
        "",
    ]
    rows = []
    for result in results:
        if result.skipped:
            rows.append([result.title, "not run", "", result.skipped])
            continue
        for figure in result.figures:
            rows.append(
                [
                    f"{result.title}: {figure.label}",
                    figure.formatted(),
                    figure.target or "",
                    verdict(figure.met),
                ]
            )
    out += markdown_table(["figure", "measured", "target", ""], rows)
    for result in results:
        out += ["", f"## {result.title}", ""]
        if result.skipped:
            out += [f"Not run: {result.skipped}"]
            continue
        if result.method:
            out += [result.method, ""]
        out += result.details
        for chart in result.charts:
            out += ["", f"![{result.title}](docs/images/{chart})"]
        if result.notes:
            out += [""]
            for note in result.notes:
                out += [note, ""]
            if out[-1] == "":
                out.pop()
    return "\n".join(out).rstrip() + "\n"
