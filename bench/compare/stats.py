"""Summaries of repeated measurements (median, p95, max) and the kubevip / kube-vip ratio."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """Distribution of one figure over n runs; values in the figure's unit (None when n == 0)."""

    n: int
    median: float | None
    p95: float | None
    max: float | None
    min: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"n": self.n, "median": self.median, "p95": self.p95, "max": self.max, "min": self.min}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of a non-empty sample, as numpy's default."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} is outside [0, 100]")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: Sequence[float]) -> Summary:
    """Median, p95, max and min of the finite values (NaN / inf are measurement failures, dropped)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Summary(0, None, None, None, None)
    return Summary(len(finite), percentile(finite, 50), percentile(finite, 95), max(finite), min(finite))


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when either is missing or theirs is zero (no meaningful ratio)."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def ratios(ours: Summary, theirs: Summary) -> dict[str, float | None]:
    """Per-statistic ratio kubevip / kube-vip (below 1 means kubevip is lower, i.e. better for times)."""
    return {
        "median": ratio(ours.median, theirs.median),
        "p95": ratio(ours.p95, theirs.p95),
        "max": ratio(ours.max, theirs.max),
    }
