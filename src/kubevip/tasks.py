"""One guard for every long-lived asyncio task, so that no crash goes unlogged and no task leaks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
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
