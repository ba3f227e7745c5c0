"""What every benchmark hands back: headline figures against targets, details, raw samples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One headline number, with the issue's target when there is one."""

    label: str
    value: float
    unit: str
    target: str | None = None
    met: bool | None = None

    def formatted(self) -> str:
        return format_value(self.value, self.unit)


@dataclass
class BenchResult:
    """A benchmark's outcome: figures for the table, markdown for BENCHMARKS.md, raw data."""

    key: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    method: str = ""
    """How it was measured, in a sentence or three (markdown)."""
    details: list[str] = field(default_factory=list)
    """Markdown lines (tables) for BENCHMARKS.md."""
    notes: list[str] = field(default_factory=list)
    """Misses explained, caveats, profiles (markdown)."""
    data: dict[str, Any] = field(default_factory=dict)
    """Raw samples, kept in results.json and used by the charts."""
    charts: list[str] = field(default_factory=list)
    """Chart file names under docs/images/."""
    skipped: str | None = None
    """Why the benchmark could not run (a piece it measures has not landed, ...)."""


def format_value(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "req":
        return f"{value:.1f}"
    if unit == "req/s":
        return f"{value:.2f}/s"
    return f"{value:g} {unit}".strip()


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines
