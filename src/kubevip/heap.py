"""The cyclic garbage collector and the C allocator, tuned for a long-running agent.

A full collection walks every tracked object. Right after start-up that is some 85,000 objects of the
imported modules, and walking them stopped the event loop for 0.7-1.5 s on the lab's loaded 2-core host:
Lease renewals came late and units were fenced. What is alive once the agent has started, and again once
it has loaded the cluster, lives about as long as the process, so it is frozen (`gc.freeze()`: never
walked again; reference counting still frees it). Collections that still take long are logged.

The thresholds make collections rarer: with the defaults (700, 10, 10) a process parsing thousands of
Lease and Service events ran a full collection every 70,000 allocations, each walking everything created
since the freeze (a second and more under CPU pressure). Young garbage cycles are still collected young.
Young collections stay small, though: each one stops every thread of the process.

The C allocator (glibc's malloc) keeps the pages of what was freed in the middle of its heap: dict and
list tables above pymalloc's 512 bytes, response bodies, the JSON text of every list and event. An agent
that had loaded 1000 Services held 4.6-5.8 MB of such pages (of 67-72 MB), handed back by one
`malloc_trim(0)` (issue 21, docs/performance.md). So the agent trims every TRIM_EVERY seconds from its
first pass on; a libc without `malloc_trim` (musl) is left alone.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

SLOW_PAUSE = 0.1  # seconds; a pause this long eats a good part of the fencing slack
# Young collection per 10,000 allocations, the middle one per 500,000, a full one per 10 million. A
# collection holds the GIL, so it stops the liveness renewal thread too (election.offloop): young
# collections per 50,000 allocations paused a 1000-Service agent for 0.1-0.7 s each on the loaded
# 2-core host (138 pauses over 0.1 s in one scalable restart, nodes fenced on late renewals); per
# 10,000: 33, and the restart converged in 29 s instead of 70 s (docs/performance-history.md).
THRESHOLDS = (10_000, 50, 20)
# Seconds between two malloc_trim calls: what RSS shows lags what is alive by at most this. A trim takes
# 0.03 ms when little was freed since the last, 8 ms after 25 MB of freed lists (on the loop: no stall).
TRIM_EVERY = 10.0
_started: list[float] = []
_trim: list[Callable[[int], int] | None] = []  # [libc's malloc_trim, or None where libc has none]


def configure() -> None:
    """Collect less often (THRESHOLDS) and log long pauses."""
    gc.set_threshold(*THRESHOLDS)
    watch_pauses()


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


def _malloc_trim() -> Callable[[int], int] | None:
    if not _trim:
        import ctypes  # here, not at import: 2 ms and 0.3 MB that a start need not wait for

        try:
            fn = getattr(ctypes.CDLL(None), "malloc_trim", None)
        except OSError:
            fn = None
        _trim.append(fn)
    return _trim[0]


def release_free_memory() -> bool:
    """Hand the C heap's free pages back to the kernel; False where libc cannot (not glibc)."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


async def tend(ready: Callable[[], Any], every: float = TRIM_EVERY) -> None:
    """Once `ready()` is done (the agent's first pass), freeze what is alive (`settle`); from `every`
    seconds later on, trim the C heap every `every` seconds (what the lists and events freed). Not at
    once: in a restart of every agent the peers' first passes still want the CPU then (issue 21)."""
    await ready()
    settle()
    while True:
        await asyncio.sleep(every)
        release_free_memory()
