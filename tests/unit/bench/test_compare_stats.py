"""Summaries (bench/distribution.py) and ratios (bench/compare/stats.py) of the side-by-side benchmark."""

import math

from compare.stats import ratio, ratios
from distribution import percentile, summarize
from hypothesis import given, settings
from hypothesis import strategies as st

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def test_known_sample() -> None:
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (s.n, s.median, s.max, s.min) == (5, 3.0, 5.0, 1.0)
    assert s.p95 == 4.8


def test_failed_measurements_are_dropped() -> None:
    s = summarize([math.nan, 2.0, math.inf])
    assert (s.n, s.median, s.p95, s.max) == (1, 2.0, 2.0, 2.0)
    assert summarize([]).median is None


def test_ratio_needs_both_sides() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 4.0) is None
    assert ratio(1.0, 0.0) is None


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(st.lists(finite, min_size=1))
def test_order_statistics_are_ordered(values: list[float]) -> None:
    s = summarize(values)
    assert s.min is not None and s.median is not None and s.p95 is not None and s.max is not None
    assert s.min <= s.median <= s.p95 <= s.max
    assert s.max == max(values)


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(st.lists(finite, min_size=1), st.floats(min_value=0, max_value=100))
def test_percentile_within_range(values: list[float], q: float) -> None:
    assert min(values) <= percentile(values, q) <= max(values)


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(st.lists(st.floats(min_value=0.001, max_value=1e3), min_size=1))
def test_same_sample_ratio_is_one(values: list[float]) -> None:
    s = summarize(values)
    assert all(r is not None and math.isclose(r, 1.0) for r in ratios(s, s).values())


def test_apiserver_request_counters() -> None:
    from compare.apimetrics import by_verb, delta, per_second, request_totals

    before = request_totals(
        '# HELP x\napiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"} 10\n'
        'apiserver_request_total{code="200",resource="",subresource="",verb="GET"} 3\n'
    )
    after = request_totals(
        'apiserver_request_total{code="200",resource="leases",subresource="",verb="PUT"} 40\n'
        'apiserver_request_total{code="409",resource="leases",subresource="",verb="PUT"} 2\n'
        'apiserver_request_total{code="200",resource="",subresource="",verb="GET"} 9\n'
    )
    d = delta(before, after)
    assert d == {("PUT", "leases", ""): 32.0}
    assert per_second(d, 16.0) == 2.0
    assert by_verb(d, 16.0) == {"PUT": 2.0}


def test_report_writes_leave_out_the_election_and_reads() -> None:
    from compare.apimetrics import by_verb_resource, report_writes

    d = {
        ("PUT", "leases", ""): 40.0, ("PATCH", "services", "status"): 3.0, ("PATCH", "services", ""): 2.0,
        ("POST", "events", ""): 5.0, ("GET", "services", ""): 9.0,
    }
    assert report_writes(d) == {"PATCH services status": 3.0, "PATCH services": 2.0, "POST events": 5.0}
    rates = by_verb_resource(d, 10.0)
    assert next(iter(rates)) == "PUT leases" and rates["POST events"] == 0.5 and len(rates) == len(d)
