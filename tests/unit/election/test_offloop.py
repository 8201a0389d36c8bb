"""The renewal thread's plumbing: where each call runs, how it stops, what a stalled owner loop means."""

from __future__ import annotations

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.offloop import STALL_FLOOR, Bridge, RenewalThread, stall_bound
from kubevip.election.timings import Timings
from tests.unit.election.sim import run_sim


@given(st.floats(0.1, 60), st.floats(0.1, 0.9))
def test_the_stall_bound_is_never_below_the_renew_deadline_nor_the_floor(lease: float, share: float) -> None:
    t = Timings(lease_duration=lease, renew_deadline=lease * share, retry_period=lease * share / 4)
    bound = stall_bound(t)
    assert bound >= t.renew_deadline and bound >= STALL_FLOOR
    assert bound in (t.renew_deadline, STALL_FLOOR)


async def test_the_body_runs_on_its_thread_and_the_owner_work_on_the_owner_loop() -> None:
    owner = threading.get_ident()
    seen: dict[str, int] = {}
    bridge = Bridge(stall_bound=5.0)
    closed = threading.Event()

    async def body() -> None:
        seen["body"] = threading.get_ident()
        seen["run"] = await bridge.run(threading.get_ident)

        async def on_owner() -> int:
            await asyncio.sleep(0)
            return threading.get_ident()

        seen["run_async"] = await bridge.run_async(on_owner)
        posted = asyncio.Event()
        loop = asyncio.get_running_loop()

        def mark() -> None:
            seen["post"] = threading.get_ident()
            loop.call_soon_threadsafe(posted.set)

        bridge.post(mark)
        await posted.wait()

    async def close() -> None:
        closed.set()

    await RenewalThread("t", bridge, body, close).run()
    assert seen["body"] != owner
    assert seen["run"] == seen["run_async"] == seen["post"] == owner
    assert closed.is_set()


async def test_cancelling_the_owner_task_stops_the_thread_and_waits_for_it() -> None:
    bridge = Bridge(stall_bound=5.0)
    started, finished = threading.Event(), threading.Event()

    async def body() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.set()

    async def close() -> None:
        return None

    task = asyncio.ensure_future(RenewalThread("t", bridge, body, close).run())
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # nothing runs there any more once the owner's task has ended


async def test_a_failure_on_the_thread_is_raised_on_the_owner_loop() -> None:
    async def body() -> None:
        raise RuntimeError("boom")

    async def close() -> None:
        return None

    with pytest.raises(RuntimeError, match="boom"):
        await RenewalThread("t", Bridge(stall_bound=5.0), body, close).run()


def test_the_owner_is_alive_while_its_heartbeat_is_within_the_bound(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    bridge = Bridge(stall_bound=5.0, clock=lambda: now[0])
    assert bridge.owner_alive()
    now[0] = 104.9
    assert bridge.owner_alive()
    now[0] = 105.0
    caplog.set_level("WARNING", logger="kubevip.election.offloop")
    assert not bridge.owner_alive() and not bridge.owner_alive()
    assert len([r for r in caplog.records if "has not run" in r.getMessage()]) == 1  # once per stall
    bridge.beat = 105.0
    assert bridge.owner_alive()
    assert any("running again" in r.getMessage() for r in caplog.records)


def test_a_running_owner_loop_stays_alive_however_long_it_runs() -> None:
    """The heartbeat keeps beating on the owner's loop: without it the renewals would stop after the
    stall bound and a healthy node would fence every unit it holds (found by mutation testing).
    Virtual time: a minute of the owner loop in a fraction of a second."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        bridge = Bridge(stall_bound=5.0, clock=loop.time)
        bridge.bind(loop)
        beat = loop.create_task(bridge.heartbeat())
        for _ in range(60):
            await asyncio.sleep(1.0)
            assert bridge.owner_alive(), f"owner loop taken for stalled at t={loop.time():.1f}s"
        beat.cancel()
        await asyncio.gather(beat, return_exceptions=True)

    run_sim(main)
