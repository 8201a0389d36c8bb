"""The start-up settling window (core/settling.py): fixed, extended by progress, ended by a look or the
cap, never back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.settling import SETTLED, Settling, starting

LEASE = 1.5


def test_the_fixed_window_is_two_lease_durations_whatever_the_election_does() -> None:
    s = starting(100.0, LEASE)
    assert (s.until, s.cap, s.grace) == (103.0, 130.0, LEASE)
    s = s.observe(100.1, 0)  # nothing unheld: still the fixed window
    assert s.active(102.99) and not s.look_due(102.99)
    assert s.next_look() == 103.0 and s.look_due(103.0)
    assert s.observe(103.0, 0).over


def test_progress_extends_it_a_look_after_a_pause_of_one_grace_ends_it() -> None:
    s = starting(0.0, LEASE).observe(0.5, 2000)
    for t, n in ((2.5, 1500), (3.9, 900), (5.3, 100)):
        s = s.observe(t, n)
        assert s.active(t) and s.progress_at == t, (t, s)
    assert s.next_look() == 5.3 + LEASE
    # A look without progress keeps the time of the last progress, and ends it once grace has passed.
    s = s.observe(6.0, 100)
    assert s.progress_at == 5.3 and s.active(6.0)
    assert s.active(5.3 + LEASE + 10)  # no look yet: it lasts
    ended = s.observe(5.3 + LEASE, 100)
    assert ended.over and not ended.active(5.3 + LEASE)


def test_looks_far_apart_while_claims_progress_do_not_end_it() -> None:
    """Session 33: a loaded reporter looked 1-2 s apart while every look found 40-80 addresses fewer
    waiting; ended by the clock one grace after the last progress seen, settling ended in the middle
    of the claims."""
    s = starting(0.0, LEASE, fixed_leases=3)
    for t, n in ((0.31, 707), (1.24, 641), (1.8, 598), (2.56, 541), (3.54, 460), (5.28, 390),
                 (7.4, 250), (9.5, 90)):
        s = s.observe(t, n)
        assert not s.over and s.progress_at == t, (t, s)
    s = s.observe(12.0, 0)  # every address held
    assert s.over


def test_more_unheld_units_are_not_progress() -> None:
    s = starting(0.0, LEASE).observe(2.9, 10).observe(3.5, 12)
    assert s.progress_at == 2.9
    assert s.next_look() == 2.9 + LEASE
    assert s.observe(2.9 + LEASE, 12).over


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
        assert s.active(t)
        n -= 1
        t += 0.5
    assert not s.active(6.0)  # with no look
    assert s.observe(6.0, n - 1).over


def test_settled_is_never_active() -> None:
    assert not SETTLED.active(0.0)
    assert SETTLED.observe(0.0, 5) is SETTLED
    assert SETTLED.next_look() is None and not SETTLED.look_due(0.0)


looks = st.lists(st.tuples(st.floats(0.0, 5.0), st.integers(0, 50)), max_size=30)


@given(looks, st.floats(0.5, 5.0), st.floats(2.0, 40.0), st.floats(0.0, 100.0))
def test_only_a_look_or_the_cap_ends_it_and_never_for_long(
    steps: list[tuple[float, int]], lease: float, cap_leases: float, probe: float
) -> None:
    """Whatever the looks: a look ends it exactly when, past the fixed window, nothing waits or nothing
    progressed for a grace; between looks it lasts until the cap; once over, for ever."""
    s: Settling = starting(0.0, lease, cap_leases)
    now = 0.0
    last_unheld: int | None = None
    for dt, unheld in steps:
        now += dt
        before = s
        s = s.observe(now, unheld)
        if before.over:
            assert s is before and not s.active(now)
            continue
        progressed = last_unheld is None or unheld < last_unheld
        last_unheld = unheld
        ends = now >= s.cap or (now >= s.until and (
            unheld == 0 or (not progressed and now >= before.progress_at + before.grace)))
        assert s.over == ends
        if not s.over:
            if progressed:
                assert s.progress_at == now
            later = now + probe
            assert s.active(later) == (later < s.cap)  # no look in between: only the cap ends it
        assert not s.active(s.cap)


@given(looks, st.floats(0.5, 5.0), st.floats(2.0, 40.0))
def test_the_next_look_is_always_ahead_of_the_look_just_made(
    steps: list[tuple[float, int]], lease: float, cap_leases: float
) -> None:
    """The owner wakes at `next_look` and looks at everything: that instant always lies after the look
    it just made (no round after round), and a look there ends it unless progress carries it on."""
    s: Settling = starting(0.0, lease, cap_leases)
    now = 0.0
    for dt, unheld in steps:
        now += dt
        s = s.observe(now, unheld)
        at = s.next_look()
        assert (at is None) == s.over
        if at is None:
            continue
        assert at > now and not s.look_due(now)
        assert s.look_due(at) == (at < s.cap)
        if s.until <= at < s.cap:
            assert s.observe(at, s.unheld if s.unheld is not None else 0).over


def test_the_fixed_window_is_as_long_as_the_agent_asks() -> None:
    """The agent asks for the scalable election's restart grace plus one lease duration."""
    s = starting(10.0, LEASE, fixed_leases=3)
    assert (s.until, s.cap) == (10.0 + 3 * LEASE, 10.0 + 20 * LEASE)
    assert s.observe(10.0 + 3 * LEASE - 0.01, 0).active(10.0 + 3 * LEASE - 0.01)
