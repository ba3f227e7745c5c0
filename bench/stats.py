"""The few statistics the report quotes: median, p95 and friends over raw samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (NumPy's default method), ``q`` in 0..100."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


@dataclass(frozen=True)
class Summary:
    """What a table row says about one sample set."""

    n: int
    p50: float
    p95: float
    mean: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        return cls(
            n=len(samples),
            p50=median(samples),
            p95=percentile(samples, 95),
            mean=sum(samples) / len(samples),
            minimum=min(samples),
            maximum=max(samples),
        )

    def as_dict(self) -> dict[str, float]:
        return {
            "n": self.n,
            "p50": self.p50,
            "p95": self.p95,
            "mean": self.mean,
            "min": self.minimum,
            "max": self.maximum,
        }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan
