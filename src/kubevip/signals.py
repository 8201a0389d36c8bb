"""Process signals for an event loop, delivered even when the loop's wake-up pipe is full.

Rule: a SIGTERM is never lost. asyncio's `add_signal_handler` alone learns of a signal from one byte that
the C-level handler writes into the loop's self-pipe (`signal.set_wakeup_fd`). Worker threads wake the
loop through the same pipe (`call_soon_threadsafe`, one byte each): while a holder of 10000 VIPs had its
loop blocked for seconds, their wake-ups filled it, the signal's byte was dropped ("Exception ignored
when trying to write to the signal wakeup fd") and the agent never began its shutdown; it was SIGKILLed
15 s later with its VIPs in place (bench/agent.py at 5000 Services, 2026-12-05). Here the Python-level
handler, which the interpreter runs in the main thread from its own per-signal flag, queues the callback
with `call_soon_threadsafe`; the self-pipe, still registered, wakes the loop at once when its byte fits.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterable
from types import FrameType


def _wake_only() -> None:
    """asyncio's own dispatch of the signal: the callback is already queued by the handler below."""


def on_signals(
    loop: asyncio.AbstractEventLoop, sigs: Iterable[signal.Signals], callback: Callable[[], object],
) -> None:
    """Run `callback` on `loop` when any of `sigs` arrives (from the main thread, as asyncio requires)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)

    for sig in sigs:
        loop.add_signal_handler(sig, _wake_only)  # sets the wake-up fd: select() returns at once
        signal.signal(sig, handler)
    # A full pipe is expected now, and harmless: no "Exception ignored" for the byte that did not fit.
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd, warn_on_full_buffer=False)


__all__ = ["on_signals"]
