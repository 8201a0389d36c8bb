"""The kubevip / kube-vip ratio of two summaries (the summaries themselves: bench/distribution.py)."""

from __future__ import annotations

from distribution import Summary


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
