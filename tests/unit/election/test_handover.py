"""A release seen on the follower's watch is taken on that very version: no read first."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from kubevip.election.elector import LeaseElector
from kubevip.election.timings import Timings
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually
from tests.unit.election.sim import SimApi, SimServer


class CountingApi(SimApi):
    def __init__(self, server: SimServer, node: str) -> None:
        super().__init__(server, node, f"{node}-1")
        self.gets = 0

    async def get(self, namespace: str, name: str, limit: float | None = None) -> Any:
        self.gets += 1
        return await super().get(namespace, name, limit)


async def test_the_follower_takes_a_released_lease_without_reading_it_again() -> None:
    server = SimServer(random.Random(1))
    leading: dict[str, bool] = {}

    def elector(node: str) -> tuple[LeaseElector, CountingApi]:
        api = CountingApi(server, node)

        async def started() -> None:
            leading[node] = True

        async def stopped() -> None:
            leading[node] = False

        return LeaseElector(api, "ns", "kubevip-web", node, Timings(), started, stopped), api

    a, _ = elector("a")
    guard = TaskGroupGuard("test")
    spawn(guard, "a", a.run())
    await eventually(lambda: leading.get("a") is True, "a leads", 5)
    b, b_api = elector("b")
    spawn(guard, "b", b.run())
    try:
        await eventually(lambda: b.leader == "a" and b_api.gets >= 1, "b follows a", 5)
        gets = b_api.gets
        await a.release()
        await eventually(lambda: leading.get("b") is True, "b takes over", 5)
        assert b_api.gets == gets, "the release came on the watch: taken on that version, no GET"
        assert leading["a"] is False
    finally:
        await b.release()
        await guard.close()
        await server.drain()


def _recorded(server: SimServer, leading: dict[str, bool], node: str, lease: str, t: Timings,
              fresh: bool = False) -> LeaseElector:
    """An elector on the simulated server that records in `leading` whether `node` leads. `fresh`: a unit
    that appeared after the agent's first pass (it creates its Lease without reading it first)."""
    async def started() -> None:
        leading[node] = True

    async def stopped() -> None:
        leading[node] = False

    return LeaseElector(SimApi(server, node, f"{node}-1"), "ns", lease, node, t, started, stopped,
                        fresh=fresh)


async def _stop_all(electors: dict[str, LeaseElector], guard: TaskGroupGuard, server: SimServer) -> None:
    for el in electors.values():
        await el.release()
    await guard.close()
    await server.drain()


async def _takeover_after_the_winner_stops(electors: dict[str, LeaseElector], leading: dict[str, bool]
                                           ) -> float:
    """Once one of `electors` leads, stop it (a SIGTERM: it releases); seconds until another one leads."""
    await eventually(lambda: any(leading.get(n) for n in electors), "someone leads", 5)
    (winner,) = [n for n in electors if leading.get(n)]
    loop = asyncio.get_running_loop()
    released = loop.time()
    await electors[winner].release()
    await eventually(lambda: any(leading.get(n) for n in electors if n != winner), "a loser takes over", 5)
    return loop.time() - released


async def test_losers_of_the_creation_race_follow_at_once_and_take_a_release_within_the_retry_period(
) -> None:
    """Three nodes race to create a new Service's Lease; the winner is stopped (SIGTERM) right after:
    a loser takes over long before its retry period (1 s here) would have let it look again."""
    server = SimServer(random.Random(2))
    leading: dict[str, bool] = {}
    t = Timings(lease_duration=5.0, renew_deadline=3.0, retry_period=1.0)
    electors = {node: _recorded(server, leading, node, "kubevip-new", t) for node in ("a", "b", "c")}
    guard = TaskGroupGuard("test")
    for node, el in electors.items():
        spawn(guard, node, el.run())
    try:
        assert await _takeover_after_the_winner_stops(electors, leading) < t.retry_period / 2
    finally:
        await _stop_all(electors, guard, server)


async def test_losers_of_a_race_for_a_left_over_lease_follow_at_once_too() -> None:
    """A Lease is not deleted with its Service: a new Service of the same name finds it, released. Every
    node's create conflicts (the Lease exists), every read finds it released, and all but one lose the
    compare-and-swap on that version too: two lost races in a row. The winner is stopped right after (the
    first SIGTERM of the 2026-12-06 side-by-side run, 859 ms): a loser takes over at once, not after the
    retry period that a second lost race used to sleep."""
    server = SimServer(random.Random(2))
    t = Timings(lease_duration=5.0, renew_deadline=3.0, retry_period=1.0)
    leading: dict[str, bool] = {}

    guard = TaskGroupGuard("test")
    earlier = _recorded(server, leading, "earlier", "kubevip-web", t)  # gone with the earlier Service
    spawn(guard, "earlier", earlier.run())
    electors: dict[str, LeaseElector] = {}
    try:
        await eventually(lambda: leading.get("earlier") is True, "the earlier Service's Lease is held", 5)
        await earlier.release()
        assert server.get("kubevip-web") is not None, "left over, released"
        electors = {node: _recorded(server, leading, node, "kubevip-web", t, fresh=True)
                    for node in ("a", "b", "c")}
        for node, el in electors.items():
            spawn(guard, node, el.run())
        assert await _takeover_after_the_winner_stops(electors, leading) < t.retry_period / 2
    finally:
        await _stop_all(electors, guard, server)
