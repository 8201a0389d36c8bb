"""The summary every benchmark writes (bench/distribution.py): the three p95 methods the benchmarks have
always used, and each benchmark's JSON keys in its order."""

import math
import statistics

import pytest
from distribution import percentile, summarize
from hypothesis import given, settings
from hypothesis import strategies as st

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
TWENTY_ONE = [float(v) for v in range(1, 22)]  # 1 .. 21


def test_p95_methods_on_a_known_sample() -> None:
    assert percentile(TWENTY_ONE, 95, "nearest-rank") == 20.0  # ceil(0.95 * 21) = 20th smallest
    assert percentile(TWENTY_ONE, 95, "nearest-index") == 20.0  # index round(0.95 * 20) = 19
    assert percentile(TWENTY_ONE, 95) == 20.0
    thirteen = TWENTY_ONE[:13]
    assert percentile(thirteen, 95, "nearest-rank") == 13.0  # ceil(12.35) = 13th
    assert percentile(thirteen, 95, "nearest-index") == 12.0  # index round(11.4) = 11
    assert math.isclose(percentile(thirteen, 95), 12.4)


def test_each_benchmark_keeps_its_keys_and_order() -> None:
    s = summarize([3.0, 1.0, 2.0], p95="nearest-rank")
    assert list(s.as_dict(("runs", "median", "p95", "min", "max")).items()) == [
        ("runs", 3), ("median", 2.0), ("p95", 3.0), ("min", 1.0), ("max", 3.0),
    ]
    assert list(s.as_dict()) == ["n", "median", "p95", "max", "min"]
    assert summarize([]).as_dict(("min", "median", "p95", "max", "n")) == {
        "min": None, "median": None, "p95": None, "max": None, "n": 0,
    }


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(st.lists(finite, min_size=1), st.floats(min_value=0, max_value=100))
def test_nearest_methods_pick_a_sample_value(values: list[float], q: float) -> None:
    for method in ("nearest-rank", "nearest-index"):
        assert percentile(values, q, method) in values


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(st.lists(finite, min_size=1))
def test_summary_is_ordered_and_median_is_the_median(values: list[float]) -> None:
    for method in ("linear", "nearest-rank", "nearest-index"):
        s = summarize(values, p95=method)
        assert s.median == statistics.median(values)
        assert s.min is not None and s.max is not None and s.p95 is not None
        assert s.min <= s.p95 <= s.max
