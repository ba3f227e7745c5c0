"""The report's charts (matplotlib, a dev-only dependency: the `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"ours": "#1f77b4", "fixed 5 s": "#ff7f0e", "fixed 10 s": "#7f7f7f"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def lag_distributions(lags: dict[str, list[float]], scale: float, path: Path) -> None:
    """Empirical CDF of completion-notice lag per poller, with the p50/p95 targets marked."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for name, samples in lags.items():
        ordered = sorted(samples)
        n = len(ordered)
        fractions = [(i + 1) / n for i in range(n)]
        for axis in (left, right):
            axis.step(
                ordered,
                fractions,
                where="post",
                label=f"{name} (n={n})",
                color=COLOURS.get(name),
                linewidth=1.8,
            )
    for axis in (left, right):
        axis.axhline(0.5, color="#cccccc", linewidth=0.8, zorder=0)
        axis.axhline(0.95, color="#cccccc", linewidth=0.8, zorder=0)
        axis.set_ylabel("fraction of tasks noticed")
        axis.set_ylim(0, 1.01)
        axis.grid(alpha=0.25)
    left.set_xlabel("lag: client returns the task - server marks it done (s)")
    left.set_xlim(0, max(max(s) for s in lags.values()) * 1.02)
    left.set_title("All pollers")
    right.set_xlabel("lag (s), zoomed")
    right.set_xlim(0, 1.0)
    right.axvline(0.25, color="#2ca02c", linestyle="--", linewidth=1, label="target p50 0.25 s")
    right.axvline(0.6, color="#d62728", linestyle="--", linewidth=1, label="target p95 0.6 s")
    right.set_title("Zoom on our poller")
    right.legend(loc="lower right", fontsize=8)
    left.legend(loc="lower right", fontsize=8)
    scale_text = (
        "real time" if scale == 1 else f"time-scaled x{scale:g}, shown in real-time seconds"
    )
    figure.suptitle(f"Completion-notice lag, generation 3-10 s ({scale_text})")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def task_scaling(
    rows: list[dict[str, Any]], generation_time: float, path: Path, target_ratio: float
) -> None:
    """Wall time of N tasks through the node: in parallel vs one after another, plus a zoom."""
    plt = _pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    ns = [row["n"] for row in rows]
    parallel = [row["parallel_p50"] for row in rows]
    target = parallel[0] * target_ratio if parallel else None
    for axis in (left, right):
        axis.plot(
            ns,
            parallel,
            marker="o",
            label="ours: N tasks in parallel (one node)",
            color=COLOURS["ours"],
            linewidth=2,
        )
        if target is not None:
            axis.axhline(
                target,
                color="#d62728",
                linestyle="--",
                linewidth=1,
                label=f"target: {target_ratio:g} x (N = 1)",
            )
        axis.axhline(
            generation_time,
            color="#2ca02c",
            linestyle=":",
            linewidth=1,
            label="generation time of one task (the ideal)",
        )
        axis.set_xscale("log", base=2)
        axis.set_xticks(ns, [str(n) for n in ns])
        axis.set_xlabel("N text-to-image tasks (6 images each)")
        axis.set_ylabel("wall time (s)")
        axis.grid(alpha=0.25)
    sequential = [(row["n"], row["sequential"]) for row in rows if row.get("sequential")]
    if sequential:
        left.plot(
            [n for n, _ in sequential],
            [s for _, s in sequential],
            marker="s",
            label="baseline: the same tasks one after another",
            color=COLOURS["fixed 10 s"],
            linewidth=2,
        )
    left.set_ylim(0, None)
    left.set_title("Parallel vs one after another")
    left.legend(fontsize=8)
    top = max([*parallel, target or 0.0, generation_time])
    right.set_ylim(generation_time * 0.9, top * 1.08)
    right.set_title("Zoom: ours against the target")
    for n, value in zip(ns, parallel, strict=True):
        right.annotate(
            f"{value:.2f} s",
            (n, value),
            textcoords="offset points",
            xytext=(0, 7),
            ha="center",
            fontsize=8,
        )
    figure.suptitle(f"N-task scaling, {generation_time:g} s generation per task")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def time_per_image(series: dict[str, list[tuple[int, float]]], path: Path) -> None:
    """Median wall time per image against the batch size, one line per path (JPEG sets)."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 4.6), dpi=110)
    styles = {
        "ours": {"color": COLOURS["ours"], "linewidth": 2.6, "marker": "o"},
        "ref: decode + one float32 write, 1 thread": {
            "color": "#2ca02c",
            "linestyle": "--",
            "marker": "s",
        },
        "floor: bare PIL decode": {"color": "#7f7f7f", "linestyle": ":", "marker": "v"},
        "ref: first touch of the batch": {"color": "#bcbd22", "linestyle": ":", "marker": "."},
        "naive": {"color": "#d62728", "marker": "^", "linewidth": 1.2},
        "ComfyUI API nodes style": {"color": "#9467bd", "marker": "^", "linewidth": 1.2},
        "kie.ai style": {"color": "#8c564b", "marker": "^", "linewidth": 1.2},
    }
    for name, points in series.items():
        style = styles.get(name, {"marker": "x"})
        axis.plot([n for n, _ in points], [ms for _, ms in points], label=name, **style)
    sizes = sorted({n for points in series.values() for n, _ in points})
    axis.set_xscale("log", base=2)
    axis.set_xticks(sizes, [str(n) for n in sizes])
    axis.set_xlabel("JPEGs in the batch (1024x1024 each)")
    axis.set_ylabel("wall time per image, median (ms)")
    axis.set_ylim(0, None)
    axis.grid(alpha=0.25)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axis.set_title("Bytes -> IMAGE tensor: time per image against batch size")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
