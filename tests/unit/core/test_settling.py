"""The start-up settling window (core/settling.py): fixed, extended by progress, capped, never back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.settling import SETTLED, Settling, starting

LEASE = 1.5


def test_the_fixed_window_is_two_lease_durations_whatever_the_election_does() -> None:
    s = starting(100.0, LEASE)
    assert (s.until, s.cap, s.grace) == (103.0, 130.0, LEASE)
    s = s.observe(100.1, 0)  # nothing unheld: still the fixed window
    assert s.active(102.99)
    assert not s.active(103.0)
    assert s.observe(103.0, 0).over


def test_progress_extends_it_a_pause_of_one_grace_ends_it() -> None:
    s = starting(0.0, LEASE).observe(0.5, 2000)
    for t, n in ((2.5, 1500), (3.9, 900), (5.3, 100)):
        s = s.observe(t, n)
        assert s.active(t) and s.progress_at == t, (t, s)
    assert s.active(5.3 + LEASE - 0.01)
    assert not s.active(5.3 + LEASE)
    # A look without progress keeps the time of the last progress, and ends it once grace has passed.
    s = s.observe(6.0, 100)
    assert s.progress_at == 5.3 and s.active(6.0)
    ended = s.observe(5.3 + LEASE, 100)
    assert ended.over and not ended.active(5.3 + LEASE)


def test_more_unheld_units_are_not_progress() -> None:
    s = starting(0.0, LEASE).observe(2.9, 10).observe(3.5, 12)
    assert s.progress_at == 2.9
    assert not s.active(2.9 + LEASE)


def test_every_unit_held_after_the_fixed_window_ends_it_at_once() -> None:
    s = starting(0.0, LEASE).observe(2.0, 5)
    assert s.active(3.2)
    s = s.observe(3.2, 0)
    assert s.over


def test_the_cap_ends_it_even_while_claims_progress() -> None:
    s = starting(0.0, LEASE, cap_leases=4)
    n = 10_000
    t = 0.0
    while t < 6.0:
        s = s.observe(t, n)
        assert s.active(t) == (t < 6.0)
        n -= 1
        t += 0.5
    assert s.observe(6.0, n - 1).over


def test_settled_is_never_active() -> None:
    assert not SETTLED.active(0.0)
    assert SETTLED.observe(0.0, 5) is SETTLED


looks = st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(0, 50)), max_size=30)


@given(looks, st.floats(0.5, 5.0), st.floats(2.0, 40.0))
def test_bounded_monotone_and_once_over_for_ever(steps: list[tuple[float, int]], lease: float,
                                                 cap_leases: float) -> None:
    """Whatever the looks: active only before the cap, always within the fixed window, only while the
    last progress is less than one grace ago after it, and never again once over."""
    s: Settling = starting(0.0, lease, cap_leases)
    now = 0.0
    seen_over = False
    last_unheld: int | None = None
    for dt, unheld in steps:
        now += dt
        before = s
        s = s.observe(now, unheld)
        if seen_over:
            assert s is before and not s.active(now)
            continue
        ended = not before.active(now)  # by time, since the last look
        progressed = last_unheld is None or unheld < last_unheld
        last_unheld = unheld
        if ended:
            assert s.over and not s.active(now)
            seen_over = True
            continue
        if progressed:
            assert s.progress_at == now
        expected = now < s.cap and (now < s.until or (unheld > 0 and now < s.progress_at + s.grace))
        assert s.active(now) == expected
        assert s.over == (not expected)
        seen_over = s.over
        assert not s.active(s.cap)


def test_ended_by_time_progress_after_it_does_not_revive_it() -> None:
    s = starting(0.0, LEASE).observe(2.0, 5)
    assert not s.active(4.0)  # past the window, the last progress more than one grace ago
    s = s.observe(4.0, 1)
    assert s.over and not s.active(4.0)


def test_ends_by_names_the_next_instant_it_may_end() -> None:
    s = starting(0.0, LEASE, cap_leases=4)
    assert s.ends_by(0.0) == 3.0  # the fixed window
    s = s.observe(2.8, 10)
    assert s.ends_by(3.0) == 2.8 + LEASE  # a pause in progress
    s = s.observe(4.2, 5)
    assert s.ends_by(4.2) == 4.2 + LEASE
    s = s.observe(5.5, 3)
    assert s.ends_by(5.5) == 6.0  # the cap comes first
    assert s.ends_by(6.0) is None


@given(looks, st.floats(0.5, 5.0), st.floats(2.0, 40.0), st.floats(0.0, 1.0))
def test_it_lasts_until_the_instant_it_names(steps: list[tuple[float, int]], lease: float,
                                             cap_leases: float, frac: float) -> None:
    """The owner sleeps until `ends_by`: it must not have ended before then, nor last past it unless
    that instant was the fixed window's end (progress may carry it on)."""
    s: Settling = starting(0.0, lease, cap_leases)
    now = 0.0
    for dt, unheld in steps:
        now += dt
        s = s.observe(now, unheld)
        at = s.ends_by(now)
        assert (at is None) == (not s.active(now))
        if at is None:
            continue
        assert at > now
        assert s.active(now + frac * (at - now) * 0.999)
        if at != s.until:
            assert not s.active(at)


def test_the_fixed_window_is_as_long_as_the_agent_asks() -> None:
    """The agent asks for the scalable election's restart grace plus one lease duration."""
    s = starting(10.0, LEASE, fixed_leases=3)
    assert (s.until, s.cap) == (10.0 + 3 * LEASE, 10.0 + 20 * LEASE)
    assert s.observe(10.0 + 3 * LEASE - 0.01, 0).active(10.0 + 3 * LEASE - 0.01)
