"""LeaseElector.release(): withdraw, then hand the Lease back, and never campaign again afterwards.

Found by mutation testing (docs/testing.md): the simulator releases only from outside a running
elector, so these paths had no test.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, cast

import aiohttp
import pytest

from kubevip.election.elector import LeaseElector
from kubevip.election.leaseapi import Conflict
from kubevip.election.record import LeaseRecord
from kubevip.election.timings import Timings
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually
from tests.unit.election.sim import SimApi, SimServer, run_sim
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


class RenewApi(ScriptedApi):
    """Acquires (create), then answers each renewal from `replaces` (True, False: Conflict, or an
    exception to raise) and each read after the first from `gets` (a record, None, an exception, or
    "hang"; when they run out, every read hangs)."""

    def __init__(self, replaces: list[object], gets: list[object]) -> None:
        super().__init__([], [])
        self.script_replaces = list(replaces)
        self.script_gets = [None, *gets]  # the candidate reads first: no Lease yet
        self.version = 7

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("create", body, limit))
        return rec("7")

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.calls.append(("replace", body, limit))
        step = self.script_replaces.pop(0) if self.script_replaces else True
        if isinstance(step, BaseException):
            raise step
        if not step:
            raise Conflict(409, "update lease ns/lease")
        self.version += 1
        return rec(str(self.version))

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.calls.append(("get", (namespace, name), limit))
        step = self.script_gets.pop(0) if self.script_gets else "hang"
        if isinstance(step, BaseException):
            raise step
        if step == "hang":  # a black-holed read: no answer, ever
            await asyncio.Event().wait()
        return cast(LeaseRecord | None, step)


def lead_with(api: RenewApi, until: float) -> tuple[list[float], list[float]]:
    """Run an elector on `api` in virtual time until `until`: (times started, times stopped before)."""
    started: list[float] = []
    stopped: list[float] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def on_started() -> None:
            started.append(loop.time())

        async def on_stopped() -> None:
            stopped.append(loop.time())

        e = LeaseElector(api, "ns", "lease", "me", Timings(), on_started, on_stopped, clock=loop.time)
        guard = TaskGroupGuard("test")
        spawn(guard, "e", e.run())
        await asyncio.sleep(until)
        before_close.extend(stopped)
        await guard.close()

    before_close: list[float] = []
    run_sim(main)
    return started, before_close


def test_a_renewal_conflict_whose_read_black_holes_still_fences_at_the_renew_deadline() -> None:
    # The read that tells our own landed write from someone else's is bounded by the fencing deadline.
    t = Timings()
    api = RenewApi([True, False], ["hang"])  # renewed at once, then a conflict at the next renewal
    started, stopped = lead_with(api, t.lease_duration)
    assert started == [0.0]
    assert stopped and stopped[0] <= t.renew_deadline + 1e-9, "fenced late: a peer may already hold it"
    limit = [c for c in api.calls if c[0] == "get"][1][2]
    assert limit == pytest.approx(t.renew_deadline - t.retry_period), "the read's own limit: time left"


def test_a_renewal_conflict_with_our_own_landed_write_keeps_leading_on_that_version() -> None:
    t = Timings()
    api = RenewApi([False], [rec("8")])
    api.version = 8
    started, stopped = lead_with(api, 3 * t.lease_duration)
    assert started == [0.0] and stopped == [], "our own write: nothing changed hands"
    versions = api.replaced_versions()
    assert versions[:3] == ["7", "8", "9"], "renewed at once on the version the read found"


def test_a_renewal_conflict_we_cannot_read_back_keeps_leading_until_the_deadline_says_otherwise() -> None:
    t = Timings()
    api = RenewApi([False], [aiohttp.ServerDisconnectedError("lost")])
    started, stopped = lead_with(api, 3 * t.lease_duration)
    assert started == [0.0] and stopped == [], "a transient read error is no proof of a foreign write"
    assert api.replaced_versions()[:2] == ["7", "7"]
