"""How long the agent's start-up settling lasts: a pure decision over the clock values it is given.

While the agent settles after its start, "nobody holds this unit" may only mean "not claimed yet", so a
Service's status never loses an address for want of a known holder then (`agent/reporter.py`). A fixed
window (three lease durations: the scalable election's restart grace plus one) is not enough when every
agent restarts at once in scalable mode: 2000
units are claimed one compare-and-swap at a time for many seconds, and shrinking then re-growing every
Service's status meanwhile doubled the API writes the restart competes with. So settling lasts the
fixed window, and after it as long as the election keeps making progress (the reporter counts the
addresses it kept in statuses for want of a holder, not the Services: a dual-stack Service waits for two
units; fewer than at the previous look, at most one `grace` ago), never
past `cap`; once over it never starts again (a later failover is covered by the reporter's hold-down),
not even when progress follows a pause that had already ended it. `ends_by` names the instant it may
end without a further look: its owner must wake itself then (CI run 32: nothing else woke the reporter,
and conditions waited for the cap, 20 lease durations).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Settling:
    """The settling state; `observe` after each look at the election, `active` to ask."""

    until: float  # end of the fixed window (start + `fixed_leases` lease durations)
    cap: float  # settling never lasts past this
    grace: float  # the longest pause in progress that settling outlasts
    unheld: int | None = None  # what still waits for a holder at the last look (None: not looked yet)
    progress_at: float = 0.0  # when that number last fell (or was first seen)
    over: bool = False

    def observe(self, now: float, unheld: int) -> Settling:
        """The state after a look at `now` that found `unheld` things still waiting for a holder."""
        if self.over:
            return self
        if not self._lasts(now):  # it ended by time since the last look: progress now cannot revive it
            return replace(self, over=True)
        progressed = self.unheld is None or unheld < self.unheld
        s = replace(self, unheld=unheld, progress_at=now if progressed else self.progress_at)
        return s if s._lasts(now) else replace(s, over=True)

    def active(self, now: float) -> bool:
        """Whether the agent still settles at `now`."""
        return not self.over and self._lasts(now)

    def ends_by(self, now: float) -> float | None:
        """The instant at which `active` may turn False with no further look (the owner wakes then to
        ask again: nothing else may wake it), or None when it is not active at `now`."""
        if not self.active(now):
            return None
        if now < self.until:
            return self.until
        return min(self.progress_at + self.grace, self.cap)

    def _lasts(self, now: float) -> bool:
        if now >= self.cap:
            return False
        if now < self.until:
            return True
        # The same sum as `ends_by`, so the instant it names is the instant it ends (no float rounding).
        return bool(self.unheld) and now < self.progress_at + self.grace


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
