"""The cyclic garbage collector, tuned for a long-running agent.

A full collection walks every tracked object. Right after start-up that is some 85,000 objects of the
imported modules, and walking them stopped the event loop for 0.7-1.5 s on the lab's loaded 2-core host:
Lease renewals came late and units were fenced. What is alive once the agent has started, and again once
it has loaded the cluster, lives about as long as the process, so it is frozen (`gc.freeze()`: never
walked again; reference counting still frees it). Collections that still take long are logged.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

SLOW_PAUSE = 0.1  # seconds; a pause this long eats a good part of the fencing slack
_started: list[float] = []


def settle() -> None:
    """Freeze everything alive now: later collections walk only what is created from here on."""
    gc.freeze()


def _timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[:] = [time.perf_counter()]
        return
    if _started:
        pause = time.perf_counter() - _started[0]
        if pause > SLOW_PAUSE:
            log.warning("garbage collection (generation %s) paused the agent for %.2fs",
                        info.get("generation"), pause)


def watch_pauses() -> None:
    """Log every collection that pauses the process for longer than SLOW_PAUSE (installed once)."""
    if _timer not in gc.callbacks:
        gc.callbacks.append(_timer)
