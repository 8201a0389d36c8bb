"""Event-loop lag: fencing is only as punctual as the loop that runs it, so lateness is reported."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kubevip.election.timings import Timings

log = logging.getLogger(__name__)


class LagReporter:
    """Warns (at most every `every` seconds) when a timer fires later than half the fencing slack."""

    def __init__(
        self, what: str, timings: Timings, clock: Callable[[], float] = time.monotonic, every: float = 30.0
    ) -> None:
        self.what = what
        self.slack = timings.lease_duration - timings.renew_deadline
        self._clock = clock
        self._every = every
        self._last = -every
        self.worst = 0.0

    def woke(self, intended: float) -> None:
        late = self._clock() - intended
        self.worst = max(self.worst, late)
        if late <= self.slack / 2 or self._clock() - self._last < self._every:
            return
        self._last = self._clock()
        log.warning(
            "%s: timer fired %.2fs late (CPU-starved process or blocked event loop); the fencing slack,"
            " vip_leaseduration - vip_renewdeadline, is %.2fs: give the agent more CPU or raise"
            " vip_leaseduration",
            self.what,
            late,
            self.slack,
        )
