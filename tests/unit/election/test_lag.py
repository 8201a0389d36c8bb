"""LagReporter: warn when a fencing timer fires later than half the slack, rate-limited."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.lag import LagReporter, SlowReplies
from kubevip.election.timings import Timings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@given(late=st.floats(min_value=0.0, max_value=5.0))
def test_warns_exactly_when_later_than_half_the_slack(late: float) -> None:
    clock = Clock()
    lag = LagReporter("lease x", Timings(), clock)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("kubevip.election.lag").addHandler(handler)
    try:
        clock.now = 100.0 + late
        lag.woke(100.0)
    finally:
        logging.getLogger("kubevip.election.lag").removeHandler(handler)
    assert lag.worst == pytest.approx(late)
    assert (len(records) == 1) == (late > (1.5 - 1.0) / 2)


def test_rate_limited_and_names_the_setting(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    lag = LagReporter("lease ns/plndr-svcs-lock", Timings(), clock, every=30.0)
    with caplog.at_level(logging.WARNING, "kubevip.election.lag"):
        for _ in range(3):
            clock.now += 1.0
            lag.woke(clock.now - 0.4)
        clock.now += 30.0
        lag.woke(clock.now - 0.4)
    assert len(caplog.records) == 2
    msg = caplog.records[0].getMessage()
    assert "plndr-svcs-lock" in msg and "vip_leaseduration" in msg and "0.40s late" in msg


@given(took=st.lists(st.floats(min_value=0.0, max_value=3.0), min_size=1, max_size=20))
def test_slow_replies_warn_with_the_count_and_the_slowest(took: list[float]) -> None:
    """Default timings: renew deadline 1.0 s, liveness period 0.25 s, so replies over 0.375 s are slow. The
    first slow reply warns at once; the rest within the rate limit are counted into the next warning."""
    clock = Clock()
    replies = SlowReplies("node n1 liveness", Timings(), clock, every=30.0)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("kubevip.election.lag").addHandler(handler)
    try:
        for t in took:
            replies.replied(t)
        clock.now += 30.0
        replies.replied(3.0)  # a last slow one after the rate limit: it carries the count since the first
    finally:
        logging.getLogger("kubevip.election.lag").removeHandler(handler)
    slow = [t for t in took if t > 0.375]
    assert replies.worst == pytest.approx(max(*took, 3.0))
    assert len(records) == (2 if slow else 1)
    last = records[-1].getMessage()
    assert f"{len(slow[1:]) + 1} renewal replies" in last
    assert "vip_renewdeadline, 1.00s" in last and "0.375" not in last and "longer than 0.38s" in last
    if slow:
        assert records[0].getMessage().startswith("node n1 liveness: 1 renewal replies")
