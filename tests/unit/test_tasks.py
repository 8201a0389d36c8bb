"""kubevip.tasks: `bounded` never loses a cancel; `settled_within`, a deadline that does not throw away a
result read late."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubevip.tasks import bounded, settled_within


def _late_reply(loop: asyncio.AbstractEventLoop) -> asyncio.Future[str]:
    """A reply that arrives at 50 ms while the loop is blocked from 10 to 210 ms, past a 100 ms deadline:
    the reply's callback and the deadline's timer then run in the same loop iteration."""
    fut: asyncio.Future[str] = loop.create_future()
    loop.call_later(0.05, fut.set_result, "renewed")
    loop.call_later(0.01, time.sleep, 0.2)  # the blocked loop (a long pass), not synchronisation
    return fut


async def _await(fut: asyncio.Future[str]) -> str:
    return await fut


async def test_a_reply_that_arrived_in_time_counts_though_read_late() -> None:
    fut = _late_reply(asyncio.get_running_loop())
    assert await settled_within(_await(fut), 0.1) == "renewed"


async def test_asyncio_timeout_loses_that_reply() -> None:
    """Why settled_within exists: the plain deadline cancels the task that already has its answer."""
    fut = _late_reply(asyncio.get_running_loop())
    with pytest.raises(TimeoutError):
        await bounded(_await(fut), 0.1)


async def test_no_reply_is_a_timeout_and_the_request_is_cancelled() -> None:
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def hang() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    with pytest.raises(TimeoutError):
        await settled_within(hang(), 0.05)
    assert started.is_set() and cancelled.is_set()


async def test_errors_and_our_own_cancellation_pass_through() -> None:
    async def fail() -> str:
        raise ValueError("conflict")

    with pytest.raises(ValueError, match="conflict"):
        await settled_within(fail(), 1.0)

    inner_cancelled = asyncio.Event()

    async def hang() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            inner_cancelled.set()
            raise
        return "never"

    outer = asyncio.ensure_future(settled_within(hang(), 10.0))
    await asyncio.sleep(0.01)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert inner_cancelled.is_set()


async def test_bounded_keeps_a_cancel_that_races_with_the_result() -> None:
    """The result and the cancel land in the same loop iteration. asyncio.wait_for on Python 3.11 returns
    the result and drops the cancel (ruff bans it, TID251); a loop built on it goes on after its cancel, and
    whoever awaits its end hangs. That hung CI stop 36: a test's prober asking a VIP every 50 ms."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[str] = loop.create_future()
    reached = asyncio.Event()

    async def ask() -> str:
        reached.set()
        return await bounded(fut, 10.0)

    task = asyncio.ensure_future(ask())
    await reached.wait()
    await asyncio.sleep(0)  # the task now waits on fut inside bounded's own await
    fut.set_result("answer")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
