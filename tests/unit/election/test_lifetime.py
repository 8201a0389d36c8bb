"""The kernel lifetime of a held VIP (pure arithmetic): it ends before a peer may take over, whenever
the timings leave a whole second for it; otherwise the minimum, flagged as not guaranteed."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from kubevip.election.lifetime import (
    KERNEL_LATE,
    MAX_LIFETIME,
    Lifetime,
    due,
    expected_stamp,
    ipv6_lifetimes,
    ipv6_resume_at,
    lifetime,
    may_extend,
    minimum_lease_duration,
    still_safe,
)
from kubevip.election.timings import Timings

seconds = st.floats(0.05, 120, allow_nan=False, allow_infinity=False)


@st.composite
def timings(draw: st.DrawFn) -> Timings:
    lease = draw(seconds)
    skew = draw(st.floats(0, lease / 2))
    renew = draw(st.floats(0.02, lease - skew - 0.01)) if lease - skew > 0.03 else 0.0
    assume(renew > 0)
    retry = draw(st.floats(0.01, renew * 0.99))
    t = Timings(lease_duration=lease, renew_deadline=renew, retry_period=retry, skew_margin=skew)
    assume(renew + skew < lease and retry < renew)
    return t


@given(timings(), st.floats(0, 1e6), st.floats(0, 5))
def test_a_guaranteed_lifetime_ends_before_a_peer_may_take_over(
    t: Timings, renewed: float, delay: float
) -> None:
    now = renewed + delay
    lt = lifetime(t, renewed, now)
    assert 1 <= lt.seconds <= MAX_LIFETIME and isinstance(lt.seconds, int)
    # The kernel stamps the address at `now` at the earliest and removes it KERNEL_LATE after the end at
    # the latest; a peer may take over at renewed + lease_duration (skew_margin before, on our clock).
    removed_by = now + lt.seconds + KERNEL_LATE
    if lt.guaranteed:
        assert removed_by <= renewed + t.lease_duration - t.skew_margin + 1e-9
        assert lt.overshoot == 0
    else:
        assert lt.seconds == 1
        assert math.isclose(
            removed_by - (renewed + t.lease_duration - t.skew_margin), lt.overshoot, abs_tol=1e-6
        )


@given(timings(), st.floats(0, 1e6), st.floats(0, 5))
def test_the_lifetime_is_the_longest_whole_second_that_is_safe(
    t: Timings, renewed: float, delay: float
) -> None:
    """Not shorter than it must be: one second more would overrun (so a live holder keeps its VIP)."""
    now = renewed + delay
    lt = lifetime(t, renewed, now)
    if lt.guaranteed and lt.seconds < MAX_LIFETIME:
        assert now + lt.seconds + 1 + KERNEL_LATE > renewed + t.lease_duration - t.skew_margin


@given(timings(), st.floats(0, 1e6), st.floats(0, 5), st.floats(0, 5))
def test_later_renewals_never_give_shorter_deadlines(
    t: Timings, renewed: float, d1: float, d2: float
) -> None:
    """A round that starts later from a later renewal never ends earlier than its deadline allows."""
    a = lifetime(t, renewed, renewed + d1)
    b = lifetime(t, renewed + d2, renewed + d2 + d1)
    # only the time since the renewal counts, never the absolute clock
    assert (a.seconds, a.guaranteed) == (b.seconds, b.guaranteed) or math.isclose(
        (renewed + d1) % 1, 0, abs_tol=1e-6
    )
    assert math.isclose(a.overshoot, b.overshoot, abs_tol=1e-6)


@given(timings(), st.floats(0, 1e6), st.floats(0, 3), st.floats(0, 3))
def test_still_safe_tells_a_slow_round_apart(t: Timings, renewed: float, delay: float, took: float) -> None:
    now = renewed + delay
    lt = lifetime(t, renewed, now)
    assume(lt.guaranteed)
    stamped = now + took
    safe = still_safe(t, renewed, lt.seconds, stamped)
    assert safe == (
        stamped + lt.seconds + KERNEL_LATE <= renewed + t.lease_duration - t.skew_margin + 1e-9
    ) or (math.isclose(stamped + lt.seconds + KERNEL_LATE, renewed + t.lease_duration - t.skew_margin))
    assert still_safe(t, renewed, lt.seconds, now)


@given(timings(), st.floats(0, 1e6), st.floats(0, 3), st.floats(-1, 5), st.floats(0, 1))
def test_a_lifetime_for_the_expected_stamp_is_never_longer_and_survives_a_round_as_slow_as_the_last(
    t: Timings, renewed: float, delay: float, last: float, share: float
) -> None:
    now = renewed + delay
    at = expected_stamp(t, now, last)
    assert now <= at <= now + t.renew_deadline / 2 + 1e-9
    assert at == now + max(0.0, min(last, t.renew_deadline / 2))
    lt = lifetime(t, renewed, at)
    assert lt.seconds <= lifetime(t, renewed, now).seconds
    # A round that takes no longer than expected (any share of it) keeps a guaranteed lifetime safe:
    # it is not redone.
    if lt.guaranteed:
        assert still_safe(t, renewed, lt.seconds, now + share * (at - now))


def test_our_defaults_leave_no_guaranteed_second_and_kube_vips_do() -> None:
    """vip_leaseduration 1.5 s (ours) is too short for a guaranteed kernel lifetime; 15 s (kube-vip's) is
    not: 13 s after a renewal answered within 0.1 s."""
    ours = lifetime(Timings(), 0.0, 0.1)
    assert not ours.guaranteed and ours.seconds == 1
    assert minimum_lease_duration(Timings()) > Timings().lease_duration
    kube_vip = lifetime(Timings(15, 10, 2, 0.25), 0.0, 0.1)
    assert kube_vip.guaranteed and kube_vip.seconds == 13
    assert lifetime(Timings(3, 2, 0.5, 0.25), 0.0, 0.1).seconds == 1


@given(timings(), st.floats(0, 1e6), st.floats(0, 5), st.one_of(st.none(), st.floats(-10, 100)))
def test_due_extends_unknown_expired_and_half_spent_lifetimes(
    t: Timings, renewed: float, delay: float, left: float | None
) -> None:
    now = renewed + delay
    new = lifetime(t, renewed, now)
    expires = None if left is None else now + left
    r = t.retry_period
    assert due(expires, now, new, r) == (left is None or left < max(new.seconds / 2, r + 1))
    # Skipped only with a retry period and 1 s left: a live holder's next round comes before the kernel
    # can act; and never once half the lifetime is spent.
    if not due(expires, now, new, r):
        assert left is not None and left >= r + 1 and left >= new.seconds / 2


@given(timings(), st.floats(0, 1e6), st.floats(0, 300))
def test_no_extension_once_the_holders_own_fencing_deadline_has_passed(
    t: Timings, renewed: float, after: float
) -> None:
    """An extension re-creates an expired address: a holder resumed after a stall (its last renewal older
    than its renew deadline) must fence, not bring VIPs back next to a peer (bench/chaos.py saw it)."""
    assume(abs(after - t.renew_deadline) > 1e-6 * max(1.0, renewed))  # float rounding at the boundary
    assert may_extend(t, renewed, renewed + after) == (after < t.renew_deadline)


def test_a_resumed_agent_at_the_default_timings_extends_nothing() -> None:
    t = Timings()  # 1.5 / 1.0 / 0.25 s
    assert may_extend(t, 100.0, 100.1)
    assert not may_extend(t, 100.0, 105.4)  # SIGSTOP for 5 s after a renewal, then SIGCONT


def test_the_boundaries_are_exact() -> None:
    """Literal values at each boundary (mutation testing found every comparison here could move by one
    step unnoticed). The default timings leave lease_duration - skew_margin - KERNEL_LATE = 0, so the
    budget is exactly `renewed - now`."""
    t = Timings()
    assert t.lease_duration - t.skew_margin - KERNEL_LATE == 0
    assert lifetime(t, 1.0, 0.0) == Lifetime(1, True)  # a budget of exactly the minimum is guaranteed
    assert lifetime(t, 0.5, 0.0) == Lifetime(1, False, 0.5)
    assert still_safe(t, 1.0, 1, 0.0) and not still_safe(t, 0.999, 1, 0.0)
    assert may_extend(t, 0.0, 0.999) and not may_extend(t, 0.0, t.renew_deadline)  # not AT the deadline
    # Extend once no more than half the new lifetime, or a renewal period + 1 s, is left.
    ten = Lifetime(10, True)
    assert not due(5.0, 0.0, ten, 0.25) and due(4.999, 0.0, ten, 0.25)
    assert due(4.0, 0.0, ten, 0.25)
    one = Lifetime(1, True)
    assert due(1.0, 0.0, one, 0.25) and not due(1.25, 0.0, one, 0.25)
    assert minimum_lease_duration(t) == 1 + KERNEL_LATE + t.skew_margin + 0.1


@given(st.integers(0, 100_000), st.integers(0, 100_000), st.booleans())
def test_ipv6_lifetimes_never_above_the_limit_always_at_the_resume_point(
    count: int, limit: int, on: bool
) -> None:
    now = ipv6_lifetimes(count, limit, on)
    if count > limit:
        assert not now
    elif count <= ipv6_resume_at(limit):
        assert now
    else:
        assert now == on  # between the two: as it was (hysteresis)
    assert ipv6_resume_at(limit) < limit


@given(st.integers(0, 5000), st.lists(st.integers(0, 6000), max_size=60))
def test_ipv6_lifetimes_switch_only_after_the_count_crossed_the_whole_gap(
    limit: int, counts: list[int]
) -> None:
    """Services coming and going at the limit never make every round a full rewrite: between two
    switches the count moved by more than the gap between the limit and the resume point."""
    on, last = True, None
    for count in counts:
        now = ipv6_lifetimes(count, limit, on)
        if now != on:
            if last is not None:
                assert abs(count - last) >= limit - ipv6_resume_at(limit) + 1
            last = count
        on = now


def test_ipv6_limit_literal_values() -> None:
    assert ipv6_resume_at(1000) == 900 and ipv6_resume_at(2) == 1 and ipv6_resume_at(0) == -1
    assert ipv6_lifetimes(1000, 1000, True) and not ipv6_lifetimes(1001, 1000, True)
    assert not ipv6_lifetimes(901, 1000, False) and ipv6_lifetimes(900, 1000, False)
    assert not ipv6_lifetimes(1, 0, True) and not ipv6_lifetimes(0, 0, False)  # 0: IPv6 never gets them
