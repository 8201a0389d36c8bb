"""How long the agent's start-up settling lasts: a pure decision over the clock values it is given.

While the agent settles after its start, "nobody holds this unit" may only mean "not claimed yet", so a
Service's status never loses an address for want of a known holder then (`agent/reporter.py`). A fixed
window (three lease durations: the scalable election's restart grace plus one) is not enough when every
agent restarts at once in scalable mode: 2000
units are claimed one compare-and-swap at a time for many seconds, and shrinking then re-growing every
Service's status meanwhile doubled the API writes the restart competes with. So settling lasts the
fixed window, and after it as long as the election keeps making progress (the reporter counts the
addresses it kept in statuses for want of a holder, not the Services: a dual-stack Service waits for two
units; fewer than at the previous look), never past `cap`; once over it never starts again (a later
failover is covered by the reporter's hold-down).

Only a look ends it (or the cap): one after the fixed window that finds nothing waiting, or that finds
no progress since the last progress seen at least `grace` ago. Between looks it lasts, however long
they take: the owner looks in rounds over every Service, and on a loaded node (a restart of 1000
Services in scalable mode, three agents and the control plane on two cores) rounds came 1-2 s apart, so a
settling that ended by the clock one grace (1.5 s) after the last progress seen ended while the claims
still progressed at 60-80 addresses a look, and 70-850 statuses and vipHosts shrank and grew back
(session 33). `next_look` names the instant a look is due (the end of the fixed window, one grace after
the last progress, the cap): the owner must wake itself then and look at everything, since nothing else
may wake it (CI run 32: conditions waited for the cap, 20 lease durations).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settling:
    """The settling state; `observe` after each look at the election, `active` to ask, `next_look` for
    when to look again."""

    until: float  # end of the fixed window (start + `fixed_leases` lease durations)
    cap: float  # settling never lasts past this
    grace: float  # the longest pause in progress that settling outlasts
    unheld: int | None = None  # what still waits for a holder at the last look (None: not looked yet)
    progress_at: float = 0.0  # the look at which that number last fell (or was first seen)
    over: bool = False

    def observe(self, now: float, unheld: int) -> Settling:
        """The state after a look at `now` that found `unheld` things still waiting for a holder."""
        if self.over:
            return self
        if now >= self.cap:
            return replace(self, over=True)
        progressed = self.unheld is None or unheld < self.unheld
        s = replace(self, unheld=unheld, progress_at=now if progressed else self.progress_at)
        if now < self.until:
            return s
        if unheld == 0 or (not progressed and now >= self.progress_at + self.grace):
            return replace(s, over=True)
        return s

    def active(self, now: float) -> bool:
        """Whether the agent still settles at `now`: until a look ends it, or the cap."""
        return not self.over and now < self.cap

    def next_look(self) -> float | None:
        """The instant a look is due, at which the owner must look at everything (nothing else may wake
        it): the end of the fixed window, one grace after the last progress, or the cap, whichever is
        latest of the first two and not past the cap; None once over."""
        if self.over:
            return None
        return min(self.cap, max(self.until, self.progress_at + self.grace))

    def look_due(self, now: float) -> bool:
        """Whether a look is due at `now` (at or after `next_look`, before the cap)."""
        at = self.next_look()
        return at is not None and at <= now < self.cap


# No settling: a reporter before its agent's start-up window began (or one in a unit test).
SETTLED = Settling(until=0.0, cap=0.0, grace=0.0, over=True)


def starting(now: float, lease_duration: float, cap_leases: float = 20.0,
             fixed_leases: float = 2.0) -> Settling:
    """Settling of an agent starting at `now`: `fixed_leases` lease durations, extended while claims
    progress (pauses of at most one lease duration), at most `cap_leases` lease durations in all. The
    agent passes the scalable election's restart grace plus one: while a starting node leaves units to
    previous holders not yet back, nothing progresses, and statuses must not shrink meanwhile."""
    return Settling(until=now + fixed_leases * lease_duration, cap=now + cap_leases * lease_duration,
                    grace=lease_duration)
