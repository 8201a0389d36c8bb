"""Event-loop lag: fencing is only as punctual as the loop that runs it, so lateness is reported."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kubevip.election.timings import Timings

log = logging.getLogger(__name__)


class _Throttle:
    """At most one warning every `every` seconds on `clock`."""

    def __init__(self, clock: Callable[[], float], every: float) -> None:
        self._clock = clock
        self._every = every
        self._last = -every

    def due(self) -> bool:
        """Whether a warning may be logged now (and, if so, that one was)."""
        if self._clock() - self._last < self._every:
            return False
        self._last = self._clock()
        return True


class LagReporter:
    """Warns (at most every `every` seconds) when a timer fires later than half the fencing slack."""

    def __init__(
        self, what: str, timings: Timings, clock: Callable[[], float] = time.monotonic, every: float = 30.0
    ) -> None:
        self.what = what
        self.slack = timings.lease_duration - timings.renew_deadline
        self._clock = clock
        self._throttle = _Throttle(clock, every)
        self.worst = 0.0

    def woke(self, intended: float) -> None:
        late = self._clock() - intended
        self.worst = max(self.worst, late)
        if late <= self.slack / 2 or not self._throttle.due():
            return
        log.warning(
            "%s: timer fired %.2fs late (CPU-starved process or blocked event loop); the fencing slack,"
            " vip_leaseduration - vip_renewdeadline, is %.2fs: give the agent more CPU or raise"
            " vip_leaseduration",
            self.what,
            late,
            self.slack,
        )


class SlowReplies:
    """Warns (at most every `every` seconds, with the worst and the count since the last warning) when a
    liveness renewal's reply took longer than half the room the renew deadline leaves after one liveness
    period: renewals are sequential (each a compare-and-swap on the last version), so replies that slow
    leave the node fenced between two renewals even though every renewal succeeds."""

    def __init__(
        self, what: str, timings: Timings, clock: Callable[[], float] = time.monotonic, every: float = 30.0
    ) -> None:
        self.what = what
        self.limit = max(0.0, timings.renew_deadline - timings.liveness_period) / 2
        self.deadline = timings.renew_deadline
        self._throttle = _Throttle(clock, every)
        self._slow = 0
        self._worst = 0.0
        self.worst = 0.0

    def replied(self, took: float) -> None:
        self.worst = max(self.worst, took)
        if took <= self.limit:
            return
        self._slow += 1
        self._worst = max(self._worst, took)
        if not self._throttle.due():
            return
        log.warning(
            "%s: %d renewal replies took longer than %.2fs, the slowest %.2fs (API server overloaded or"
            " far away); a reply and a liveness period must fit in vip_renewdeadline, %.2fs, or the node"
            " fences between two successful renewals",
            self.what, self._slow, self.limit, self._worst, self.deadline,
        )
        self._slow = 0
        self._worst = 0.0
