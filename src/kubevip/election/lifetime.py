"""Kernel lifetime of a held VIP: how many whole seconds the kernel may keep it after a renewal.

Pure arithmetic over the election timings and monotonic instants (no clock is read here); the agent
and the control plane set the result as the address's valid_lft / preferred_lft after each accepted
renewal, so the kernel itself withdraws the VIP when the agent dies or stalls. docs/election.md
("Kernel lifetimes") derives the bound and its margins.

Let `s` be the instant the last accepted renewal was sent (on this node's monotonic clock). A peer may
take over no earlier than `s + lease_duration` on its own clock; `skew_margin` covers clock-rate
differences. The kernel stamps the address when it processes the request (`t`, at most the instant the
batch returned) and removes it after `lifetime` whole seconds, late by at most `KERNEL_LATE` (its
expiry check runs at least 1 s after the previous one, plus timer slack). So the lifetime is safe when

    t + lifetime + KERNEL_LATE <= s + lease_duration - skew_margin
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from kubevip.election.timings import Timings

# After an expiry check, the kernel runs the next one no sooner than 1 s later (ADDRCONF_TIMER_FUZZ_MAX,
# both families), so an address whose lifetime ends just after a check goes up to 1 s late; 0.25 s more
# for the rounding of the check to whole seconds (ADDRCONF_TIMER_FUZZ), the timer wheel and the kworker.
# Measured here: 2 s lifetimes went after 2.0-2.15 s, or 2.9-3.1 s with another address changed at 1.9 s.
KERNEL_LATE = 1.25
# The kernel's smallest lifetime (0 is refused) and a ceiling far below the "forever" value 0xffffffff.
MIN_LIFETIME = 1
MAX_LIFETIME = 86_400


@dataclass(frozen=True)
class Lifetime:
    """`seconds` to set now; `guaranteed`: the kernel removes the address before a peer may take over.

    When the timings leave no whole second for a guaranteed lifetime (vip_leaseduration too short),
    `seconds` is the minimum, 1: the kernel still withdraws a dead agent's VIP within about 2.25 s of its
    last renewal instead of never; `overshoot` is how late that can be after a peer may take over.
    """

    seconds: int
    guaranteed: bool
    overshoot: float = 0.0


def budget(timings: Timings, renewed: float, now: float) -> float:
    """Seconds of lifetime that are safe for a request stamped at `now` after a renewal sent at
    `renewed` (may be negative)."""
    return renewed + timings.lease_duration - timings.skew_margin - KERNEL_LATE - now


def lifetime(timings: Timings, renewed: float, now: float) -> Lifetime:
    """The lifetime to set at `now` for a VIP whose Lease renewal (accepted) was sent at `renewed`."""
    room = budget(timings, renewed, now)
    if room >= MIN_LIFETIME:
        return Lifetime(min(MAX_LIFETIME, math.floor(room)), True)
    return Lifetime(MIN_LIFETIME, False, MIN_LIFETIME - room)


def may_extend(timings: Timings, renewed: float, now: float) -> bool:
    """Whether a holder whose last accepted renewal was sent at `renewed` may still extend at `now`: not
    once its own fencing deadline (`renewed + renew_deadline`) has passed. An extension re-creates an
    address the kernel removed meanwhile, so a holder resumed after a stall (SIGSTOP, a starved CPU)
    whose last renewal is that old would bring back VIPs a peer may already hold, until its fencing
    catches up. Found by bench/chaos.py: 132 VIPs on two nodes for ~0.75 s right after a SIGCONT, at the
    default timings (the extension round ran before the fencing)."""
    return now < renewed + timings.renew_deadline


def still_safe(timings: Timings, renewed: float, seconds: int, stamped: float) -> bool:
    """Whether `seconds` set by a request the kernel stamped at `stamped` (at most the instant the batch
    returned) still ends before a peer may take over: False means the batch was slower than the floor's
    slack, and the round must be redone with a fresh lifetime."""
    return seconds <= budget(timings, renewed, stamped)


def expected_stamp(timings: Timings, now: float, last_round: float) -> float:
    """The instant a round starting at `now` computes its lifetimes for: `now` plus how long the last
    round took (at most half the renew deadline). Rounded down from the round's start, a lifetime leaves
    only the fraction of a second it lost as slack, and a round slower than that is redone: under load a
    round over 5000 VIPs took 1.2-2.6 s and was sent again with shorter lifetimes, doubling the load that
    made it slow. Computed for the expected end, the lifetime is shorter by the last round's time, which
    is always safe (the VIP is only extended sooner); a round slower than the last is still redone."""
    return now + min(max(last_round, 0.0), timings.renew_deadline / 2)


def due(expires: float | None, now: float, new: Lifetime, renew_period: float) -> bool:
    """Whether a VIP whose address the kernel keeps until at least `expires` (None: unknown, or never
    set) needs an extension now. Every renewal would otherwise rewrite every address, and the kernel's
    work per IPv6 change grows with the addresses on the node (1000 IPv6 VIPs: ~0.3 s of CPU per round).
    It waits while more than half the new lifetime is left, and more than one renewal period (the retry
    period, or the scalable mode's liveness period) plus 1 s (the next renewal's round then comes with a
    second to spare). Skipping is always safe for fencing."""
    return expires is None or expires - now < max(new.seconds / 2, renew_period + 1.0)


def ipv6_resume_at(limit: int) -> int:
    """How few IPv6 VIPs a node must hold again before they get kernel lifetimes back, once above
    `limit`: a tenth below it (at least one), so Services coming and going at the limit do not make
    every round a full rewrite of the node's IPv6 addresses."""
    return limit - max(1, limit // 10)


def ipv6_lifetimes(count: int, limit: int, on: bool) -> bool:
    """Whether a node holding `count` IPv6 VIPs gives them kernel lifetimes (`on`: whether it does now).

    Every IPv6 address change makes the kernel walk every IPv6 address of the namespace, so one round
    over n IPv6 VIPs costs O(n^2) of CPU (0.23 s at 1000, 5.3 s at 5000 on kernel 6.18: at 5000 the holder
    could not finish a round before its lifetimes ran out). Above `limit` the node's IPv6 VIPs are
    permanent (IPv4 ones keep lifetimes: linear); with hysteresis (`ipv6_resume_at`) on the way back."""
    if count > limit:
        return False
    return on or count <= ipv6_resume_at(limit)


def minimum_lease_duration(timings: Timings, renew_latency: float = 0.1) -> float:
    """The shortest vip_leaseduration with a guaranteed lifetime of 1 s when renewals take
    `renew_latency` (for the start-up log line and the docs)."""
    return MIN_LIFETIME + KERNEL_LATE + timings.skew_margin + renew_latency


__all__ = [
    "KERNEL_LATE", "Lifetime", "budget", "due", "expected_stamp", "ipv6_lifetimes", "ipv6_resume_at",
    "lifetime", "may_extend", "minimum_lease_duration", "still_safe",
]
