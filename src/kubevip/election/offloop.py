"""The liveness renewals on their own thread and event loop, with their own API connection.

Rule: a busy agent loop (the first pass after a restart of 1000 Services, a GC pause, a burst of
report writes) must not make this node miss its liveness renewals and fence everything it holds. Only
the renewal's round trip and its own bookkeeping (`live_until`, the Lease version) run on the renewal
thread. Whatever changes what the elector decides runs on the agent's loop, and the renewal thread
waits for it there: a new epoch, the loss of the Lease, the fence. The Lease cache and `on_renewed` (the
kernel lifetimes) are posted to the agent's loop.

A wedged agent loop must not keep its units forever: the renewal thread renews only while the agent's
loop has ticked within `stall_bound` seconds (a heartbeat task on that loop). The kernel lifetimes,
extended only from the agent's loop, have by then withdrawn the VIPs; stopping the renewals lets a
peer take the units over after a lease duration (docs/election.md, "Renewals off the agent's loop").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from kubevip.election.timings import Timings

log = logging.getLogger(__name__)

T = TypeVar("T")

HEARTBEAT = 0.1  # how often the agent's loop says it is alive (seconds)
STALL_FLOOR = 5.0  # seconds: measured stalls of a 1000-Service restart are 1-3 s


def stall_bound(timings: Timings) -> float:
    """How long the agent's loop may stand still before the renewals stop: never less than the renew
    deadline (where a stalled loop used to fence before renewals moved here), nor than STALL_FLOOR."""
    return max(timings.renew_deadline, STALL_FLOOR)


class Inline:
    """The elector's loop runs the liveness too (the simulator, tests, the standalone elector)."""

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` on the elector's loop, its result here."""
        return fn()

    async def run_async(self, fn: Callable[[], Awaitable[T]]) -> T:
        return await fn()

    def post(self, fn: Callable[[], object]) -> None:
        """`fn()` on the elector's loop, soon; nobody waits."""
        fn()

    def owner_alive(self) -> bool:
        return True


class Bridge(Inline):
    """From the renewal thread to the elector's (the agent's) loop."""

    def __init__(self, stall_bound: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_bound = stall_bound
        self._clock = clock
        self.owner: asyncio.AbstractEventLoop | None = None
        self.beat = clock()
        self._stalled = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.owner = loop
        self.beat = self._clock()

    def _loop(self) -> asyncio.AbstractEventLoop:
        assert self.owner is not None, "Bridge.bind first"
        return self.owner

    async def run(self, fn: Callable[[], T]) -> T:
        async def call() -> T:
            return fn()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), self._loop()))

    async def run_async(self, fn: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await fn()

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), self._loop()))

    def post(self, fn: Callable[[], object]) -> None:
        self._loop().call_soon_threadsafe(fn)

    def owner_alive(self) -> bool:
        """The agent's loop ticked within `stall_bound` (logged once per stall, and when it is back)."""
        alive = self._clock() - self.beat < self.stall_bound
        if alive == self._stalled:
            self._stalled = not alive
            if alive:
                log.warning("the agent's event loop is running again: liveness renewals resume")
            else:
                log.error(
                    "the agent's event loop has not run for %.1fs (bound %.1fs): liveness renewals stop, so"
                    " peers take this node's units over", self._clock() - self.beat, self.stall_bound,
                )
        return alive

    async def heartbeat(self) -> None:
        """On the agent's loop, for as long as the renewal thread runs."""
        while True:
            self.beat = self._clock()
            await asyncio.sleep(HEARTBEAT)


class RenewalThread:
    """Runs `body()` (the liveness loop) on a thread of its own with a new event loop; `close()` (a
    coroutine the thread's loop runs last) releases that loop's resources (its API connection)."""

    def __init__(
        self, name: str, bridge: Bridge, body: Callable[[], Awaitable[None]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.name = name
        self.bridge = bridge
        self._body = body
        self._close = close
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()

    async def run(self) -> None:
        """Until the body ends (its exception raised here) or this task is cancelled (the thread's body
        is cancelled and awaited: nothing runs there once this returns)."""
        self.bridge.bind(asyncio.get_running_loop())
        done: Future[None] = Future()
        thread = threading.Thread(target=self._main, args=(done,), name=self.name, daemon=True)
        beat = asyncio.get_running_loop().create_task(self.bridge.heartbeat(), name=f"{self.name}:heartbeat")
        thread.start()
        ended = asyncio.wrap_future(done)
        try:
            await asyncio.shield(ended)
        except asyncio.CancelledError:
            self._stop()
            # The body may be waiting for this loop (a fence it asked for): keep serving it until the
            # thread is gone, then let the cancellation go on.
            with contextlib.suppress(BaseException):
                await ended
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    def _stop(self) -> None:
        self._ready.wait(5.0)  # the thread was started before any cancellation could arrive
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: the body is over
                loop.call_soon_threadsafe(task.cancel)

    def _main(self, done: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        failure: BaseException | None = None
        try:
            loop.run_until_complete(self._guarded())
        except BaseException as exc:  # handed to the owner's loop, which raises it
            failure = exc
        finally:
            try:
                loop.run_until_complete(self._close())
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                if failure is None:
                    done.set_result(None)
                else:
                    done.set_exception(failure)

    async def _guarded(self) -> None:
        self._task = asyncio.current_task()
        self._ready.set()
        await self._body()

    def thread_loop(self) -> Any:
        """The renewal thread's loop while it runs (tests)."""
        return self._loop
