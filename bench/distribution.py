"""Order statistics of repeated benchmark measurements (min, median, p95, max): one implementation for
every bench script and bench/compare.

Each script keeps the JSON keys and the p95 method it has always used, so new results stay comparable
with the committed ones: `summarize(values, p95=...).as_dict(keys)`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# linear: interpolated between order statistics (numpy's default); nearest-rank: the ceil(q/100 * n)-th
# smallest value; nearest-index: the sorted sample's value at index round(q/100 * (n - 1)).
Method = Literal["linear", "nearest-rank", "nearest-index"]
DEFAULT_KEYS = ("n", "median", "p95", "max", "min")


@dataclass(frozen=True)
class Summary:
    """Distribution of one figure over n runs; values in the figure's unit (None when n == 0)."""

    n: int
    median: float | None
    p95: float | None
    max: float | None
    min: float | None

    def as_dict(self, keys: Sequence[str] = DEFAULT_KEYS) -> dict[str, float | int | None]:
        """The named fields in the given order; "runs" is the name some benchmarks write for n."""
        return {k: self.n if k == "runs" else getattr(self, k) for k in keys}


def percentile(values: Sequence[float], q: float, method: Method = "linear") -> float:
    """The q-th percentile (q in [0, 100]) of a non-empty sample, by `method`."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile q={q} is outside [0, 100]")
    ordered = sorted(values)
    last = len(ordered) - 1
    if method == "nearest-rank":
        return ordered[max(0, min(last, math.ceil(q * len(ordered) / 100) - 1))]
    if method == "nearest-index":
        return ordered[max(0, min(last, round(q / 100 * last)))]
    pos = last * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(values: Sequence[float], p95: Method = "linear") -> Summary:
    """Median, p95, max and min of the finite values (NaN / inf are measurement failures, dropped)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return Summary(0, None, None, None, None)
    return Summary(
        len(finite), statistics.median(finite), percentile(finite, 95, p95), max(finite), min(finite)
    )
