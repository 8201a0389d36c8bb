"""LeaseElector.release(): withdraw, then hand the Lease back, and never campaign again afterwards.

Found by mutation testing (docs/testing.md): the simulator releases only from outside a running
elector, so these paths had no test.
"""

from __future__ import annotations

import asyncio
import random

from kubevip.election.elector import LeaseElector
from kubevip.election.timings import Timings
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually
from tests.unit.election.sim import SimApi, SimServer
from tests.unit.election.test_handback import ScriptedApi, rec


async def test_a_release_before_the_elector_ran_keeps_it_from_ever_campaigning() -> None:
    server = SimServer(random.Random(1))
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def stopped() -> None:
        events.append("stopped")

    e = LeaseElector(SimApi(server, "a", "a-1"), "ns", "kubevip-web", "a", Timings(), started, stopped)
    guard = TaskGroupGuard("test")
    task = spawn(guard, "a", e.run())  # created, not yet running
    try:
        await e.release()
        await asyncio.wait_for(asyncio.shield(task), 5)  # run() sees it is closing and returns at once
        assert events == [] and not e.is_leader
        assert server.get("kubevip-web") is None, "a released elector wrote the Lease"
    finally:
        await guard.close()
        await server.drain()


async def test_a_release_from_the_elector_s_own_callback_ends_its_campaign() -> None:
    server = SimServer(random.Random(2))
    events: list[str] = []
    e: LeaseElector

    async def started() -> None:
        events.append("started")
        await e.release()  # e.g. the agent shutting down while this unit's on_started runs

    async def stopped() -> None:
        events.append("stopped")

    e = LeaseElector(SimApi(server, "a", "a-1"), "ns", "kubevip-web", "a", Timings(), started, stopped)
    guard = TaskGroupGuard("test")
    task = spawn(guard, "a", e.run())
    try:
        await asyncio.wait_for(asyncio.shield(task), 5)  # ends after the release; never campaigns again
        assert events == ["started", "stopped"] and not e.is_leader
        lease = server.get("kubevip-web")
        assert lease is not None and not lease.held, "handed back, not taken again"
    finally:
        await guard.close()
        await server.drain()


async def test_a_release_hands_back_our_own_landed_renewal_within_the_renew_deadline() -> None:
    # White-box: the elector last saw version 7 as its own; a renewal of ours landed as version 8 but
    # its answer was lost, so the release conflicts, re-reads, and must release version 8.
    api = ScriptedApi([False, True], [rec("8")])

    async def nothing() -> None:
        pass

    timings = Timings()
    e = LeaseElector(api, "ns", "lease", "me", timings, nothing, nothing)
    e._mine = rec("7")
    await e.release()
    assert api.replaced_versions() == ["7", "8"], "our own newer version must be handed back too"
    assert {c[2] for c in api.calls} == {timings.renew_deadline}, "each call bounded by the renew deadline"
    await eventually(lambda: e._mine is None, "nothing left to hand back", 1)
