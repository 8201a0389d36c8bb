"""Normal Events: the token bucket never lets more through than its burst plus its rate, and waiting
as told always yields a token; one node reports for a Service."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core.events import Aggregate, TokenBucket, reports_for

gaps = st.lists(st.floats(min_value=0.0, max_value=2.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=50)
@given(gaps, st.integers(1, 30), st.floats(min_value=0.1, max_value=50.0))
def test_takes_never_exceed_burst_plus_rate(steps: list[float], burst: int, rate: float) -> None:
    b = TokenBucket(burst, 0.0, rate, burst)
    now = 0.0
    taken: list[float] = []
    for gap in steps:
        now += gap
        after = b.take(now)
        if after is not None:
            b = after
            taken.append(now)
    for i, start in enumerate(taken):
        for j in range(i, len(taken)):
            assert j - i + 1 <= burst + (taken[j] - start) * rate + 1e-6


@settings(max_examples=50)
@given(gaps, st.integers(1, 30), st.floats(min_value=0.1, max_value=50.0))
def test_waiting_as_told_yields_a_token(steps: list[float], burst: int, rate: float) -> None:
    b = TokenBucket(burst, 0.0, rate, burst)
    now = 0.0
    for gap in steps:
        now += gap
        after = b.take(now)
        if after is None:
            w = b.wait(now)
            assert w > 0
            after = b.take(now + w + 1e-9)
            assert after is not None
            now += w + 1e-9
        else:
            assert b.wait(now) == 0.0
        b = after


def test_an_empty_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(0.0, 10.0, 5.0, 25)
    assert b.take(10.0) is None and abs(b.wait(10.0) - 0.2) < 1e-9
    assert b.take(10.2) is not None
    assert b.refilled(100.0).tokens == 25  # never above the burst


def test_aggregate_counts_and_keeps_the_latest_message() -> None:
    a = Aggregate.one("node n1 started announcing 192.0.2.1", 100.0)
    a = a.add("node n1 started announcing x", 105.0)
    assert (a.count, a.first, a.last, a.message) == (2, 100.0, 105.0, "node n1 started announcing x")


def test_one_node_reports_for_a_service() -> None:
    assert reports_for("n1", "n1", None) and not reports_for("n2", "n1", "n2")
    # Nobody announces it now: the node vipHost still names (the one that just stopped), only it.
    assert reports_for("n2", None, "n2") and not reports_for("n1", None, "n2")
    assert not reports_for("n1", None, None)
