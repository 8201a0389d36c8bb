"""One guard for every long-lived asyncio task, so that no crash goes unlogged and no task leaks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class TaskGroupGuard:
    """Starts named background tasks, logs any crash, and cancels them all on close."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.crashed: list[tuple[str, BaseException]] = []

    def start(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.crashed.append((task.get_name(), exc))
            log.error("task %s crashed: %r", task.get_name(), exc, exc_info=exc)

    @property
    def tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    async def close(self) -> None:
        """Cancel every task still running and wait until each has finished."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def spawn(guard: TaskGroupGuard, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Start `coro` under `guard`; the only sanctioned way to start a long-lived task."""
    return guard.start(name, coro)


async def bounded(aw: Awaitable[T], seconds: float) -> T:
    """Await with a deadline; unlike asyncio.wait_for on Python 3.11 it never swallows a cancellation."""
    async with asyncio.timeout(seconds):
        return await aw


# What a request may take beyond its caller's deadline (`settled_within`): the caller decides at its
# deadline; the request's own timer must not cancel a reply that is already read first.
REPLY_GRACE = 0.5


async def settled_within(aw: Awaitable[T], seconds: float) -> T:
    """`bounded`, but a result that arrived in time and was only read late still counts.

    When the event loop is blocked past the deadline (a long pass, a starved CPU), the reply's socket
    callback and the deadline's timer run in the same loop iteration, the reply's first; asyncio.timeout
    would then cancel the task that already has its answer (a Lease renewal the API server accepted would
    be taken for failed, and the holder would fence for nothing). Here the deadline only stops waiting:
    the awaitable runs as its own task, which gets one more step to finish; only then is it cancelled and
    TimeoutError raised. Callers give the request's own timeout REPLY_GRACE more than `seconds`."""
    task = asyncio.ensure_future(aw)
    try:
        await asyncio.wait({task}, timeout=max(0.0, seconds))
        if not task.done():
            await asyncio.sleep(0)  # the step a reply read in this same iteration needs
    except BaseException:  # cancelled ourselves: take the request down with us
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise TimeoutError(f"no result within {seconds:.2f} s")
    return task.result()


async def run_here(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """`asyncio.to_thread`'s signature, run right here on the loop: for blocking work too small for a
    thread hand-off. The hand-off is not free: the worker waits for the GIL while the loop runs Python,
    up to the interpreter's switch interval (5 ms), which a 2-VIP netlink add (0.2 ms) does not need."""
    return fn(*args, **kwargs)


async def chunked(items: Iterable[T], every: int) -> AsyncIterator[T]:
    """`items`, with a yield to the event loop after every `every` of them: a long walk on the loop
    (a list of thousands decoded, thousands of VIPs scheduled) lets Lease renewals, due timers and
    other watches run in between instead of holding the loop until it ends."""
    for i, item in enumerate(items):
        if i and i % every == 0:
            await asyncio.sleep(0)
        yield item
