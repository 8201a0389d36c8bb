"""kubevip.signals: a signal reaches the loop even when worker threads' wake-ups filled its self-pipe
while it was blocked (at 5000 Services a SIGTERM was lost that way and the agent was SIGKILLed)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading

from kubevip.signals import on_signals

SIG = signal.SIGUSR2  # unused by pytest and by the agent
WAKEUPS = 50_000  # a 1-byte send each into an AF_UNIX socketpair: full after a few hundred


def _noop() -> None:
    return None


def test_a_signal_reaches_the_loop_when_its_wakeup_pipe_is_full() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        got: list[str] = []
        arrived = asyncio.Event()

        def callback() -> None:
            got.append("callback")
            arrived.set()

        on_signals(loop, (SIG,), callback)

        def fill_then_signal() -> None:
            for _ in range(WAKEUPS):  # worker threads finishing jobs while the loop is busy
                loop.call_soon_threadsafe(_noop)
            os.kill(os.getpid(), SIG)

        def blocked_pass() -> None:  # the loop stands still (a long pass) while that happens
            t = threading.Thread(target=fill_then_signal)
            t.start()
            t.join()

        loop.call_soon(blocked_pass)
        try:
            async with asyncio.timeout(10):
                await arrived.wait()
        finally:
            loop.remove_signal_handler(SIG)
        return len(got), WAKEUPS

    delivered, _ = asyncio.run(main())
    assert delivered == 1
    assert signal.getsignal(SIG) == signal.SIG_DFL  # the loop's own clean-up restores the default


def test_the_handler_replaces_asyncios_and_keeps_its_wakeup_fd() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        on_signals(loop, (SIG,), _noop)
        try:
            assert callable(signal.getsignal(SIG)) and signal.getsignal(SIG) is not signal.SIG_DFL
            previous = signal.set_wakeup_fd(-1)  # read it back, then put it back
            signal.set_wakeup_fd(previous)
            assert previous != -1, "the loop's self-pipe stays the wake-up fd: select() returns at once"
        finally:
            loop.remove_signal_handler(SIG)

    asyncio.run(main())
