"""Leader election on the real API server with electors as separate processes.

Every test records each elector's start/stop of leadership and asserts that no two processes ever
believed they led the same unit at once, and that a new leader appears when one should.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubevip.lab.controlplane import ControlPlane
from tests.cluster.election_fleet import Fleet

pytestmark = pytest.mark.cluster

# Generous deadlines: the defaults fail over in ~1.5 s, but a loaded CI machine is slow to start Python.
FAILOVER = 30.0


@pytest.fixture
async def fleet_factory(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> AsyncIterator[object]:
    fleets: list[Fleet] = []

    def make(*args: str) -> Fleet:
        f = Fleet(control_plane, tmp_path, kube_namespace, list(args))
        fleets.append(f)
        return f

    yield make
    for f in fleets:
        await f.close()


def lease_fleet(factory: object) -> tuple[Fleet, str]:
    name = f"kvt-elect-{secrets.token_hex(3)}"
    assert callable(factory)
    fleet: Fleet = factory("--lease", name)
    return fleet, name


async def one_leader(fleet: Fleet, unit: str, exclude: set[str] = frozenset()) -> str:  # type: ignore[assignment]
    def ok() -> bool:
        leaders = fleet.leaders(unit)
        return len(leaders) == 1 and not (leaders & exclude)

    await fleet.wait_for(ok, FAILOVER, f"exactly one leader of {unit} outside {sorted(exclude)}")
    (leader,) = fleet.leaders(unit)
    return leader


async def test_sigkill_of_the_leader_hands_over(fleet_factory):
    fleet, unit = lease_fleet(fleet_factory)
    for n in ("node-a", "node-b"):
        await fleet.spawn(n)
    first = await one_leader(fleet, unit)
    await fleet.kill(first)
    await one_leader(fleet, unit, exclude={first})
    fleet.assert_never_two_holders()


async def test_sigterm_of_the_leader_releases_and_a_peer_takes_over(fleet_factory):
    fleet, unit = lease_fleet(fleet_factory)
    for n in ("node-a", "node-b", "node-c"):
        await fleet.spawn(n)
    first = await one_leader(fleet, unit)
    await fleet.terminate(first)
    second = await one_leader(fleet, unit, exclude={first})
    await fleet.terminate(second)
    await one_leader(fleet, unit, exclude={first, second})
    fleet.assert_never_two_holders()


async def test_leader_cut_off_from_the_api_server_fences_itself(fleet_factory):
    fleet, unit = lease_fleet(fleet_factory)
    for n in ("node-a", "node-b", "node-c"):
        await fleet.spawn(n)
    first = await one_leader(fleet, unit)
    fleet.electors[first].proxy.cut()
    await fleet.wait_for(lambda: unit not in fleet.leading(first), FAILOVER, f"{first} fences itself")
    second = await one_leader(fleet, unit, exclude={first})
    fleet.electors[first].proxy.restore()
    # Back online, the old leader must not take the unit back while the new one renews.
    third = await one_leader(fleet, unit)
    assert third == second
    await fleet.kill(second)
    await one_leader(fleet, unit, exclude={second})
    fleet.assert_never_two_holders()


async def test_api_server_stopped_and_restarted(fleet_factory, control_plane: ControlPlane):
    fleet, unit = lease_fleet(fleet_factory)
    for n in ("node-a", "node-b"):
        await fleet.spawn(n)
    first = await one_leader(fleet, unit)
    await asyncio.to_thread(control_plane.stop_apiserver)
    try:
        # Nobody can renew: the leader must stop announcing on its own.
        await fleet.wait_for(lambda: not fleet.leaders(unit), FAILOVER, "leader fences while the API is down")
    finally:
        await asyncio.to_thread(control_plane.start_apiserver)
    await one_leader(fleet, unit)
    fleet.assert_never_two_holders()
    assert first in fleet.electors


# -- scalable mode ------------------------------------------------------------------------------

UNITS = [f"default/svc-{i}" for i in range(12)]


def scalable_fleet(factory: object) -> Fleet:
    assert callable(factory)
    # A 1 s fencing margin: on a loaded 2-core host the event loop can lag past the 0.25 s default,
    # and this test asserts that no two processes ever hold a unit at once.
    args = ["--mode", "scalable", "--lease-duration", "3", "--renew-deadline", "1.5", "--skew-margin", "1"]
    for u in UNITS:
        args += ["--unit", u]
    fleet: Fleet = factory(*args)
    return fleet


async def all_held_once(fleet: Fleet, exclude: set[str] = frozenset()) -> dict[str, str]:  # type: ignore[assignment]
    def ok() -> bool:
        return all(len(fleet.leaders(u)) == 1 and not (fleet.leaders(u) & exclude) for u in UNITS)

    await fleet.wait_for(ok, FAILOVER, f"every unit held by exactly one node outside {sorted(exclude)}")
    return {u: next(iter(fleet.leaders(u))) for u in UNITS}


async def test_scalable_spread_failover_and_no_move_back(fleet_factory):
    fleet = scalable_fleet(fleet_factory)
    for n in ("node-a", "node-b", "node-c"):
        await fleet.spawn(n)
    # Nodes joined one after another, so the first may hold everything until someone dies; then
    # rendezvous spreads the orphans over the survivors.
    before = await all_held_once(fleet)
    victim = before[UNITS[0]]
    await fleet.kill(victim)
    after = await all_held_once(fleet, exclude={victim})
    for u in UNITS:
        if before[u] != victim:
            assert after[u] == before[u], f"{u} moved from live holder {before[u]} to {after[u]}"
    # The victim comes back: it must not take anything back (no move-back).
    await fleet.spawn(victim + "-again")
    again = await all_held_once(fleet)
    assert again == after
    fleet.assert_never_two_holders()


async def test_scalable_units_spread_over_live_nodes(fleet_factory):
    fleet = scalable_fleet(fleet_factory)
    # Start all three before any unit is claimed is not guaranteed; kill the first to force spreading.
    for n in ("node-a", "node-b", "node-c", "node-d"):
        await fleet.spawn(n)
    first = await all_held_once(fleet)
    holders = set(first.values())
    victims = sorted(holders)
    await fleet.terminate(victims[0])
    second = await all_held_once(fleet, exclude={victims[0]})
    assert len(set(second.values())) >= 2, f"orphans were not spread: {second}"
    fleet.assert_never_two_holders()


async def test_scalable_sigterm_cut_off_and_api_restart(fleet_factory, control_plane: ControlPlane):
    fleet = scalable_fleet(fleet_factory)
    for n in ("node-a", "node-b", "node-c"):
        await fleet.spawn(n)
    held = await all_held_once(fleet)
    # Graceful: SIGTERM withdraws then releases.
    leaving = held[UNITS[0]]
    await fleet.terminate(leaving)
    held = await all_held_once(fleet, exclude={leaving})
    # Cut a holder off the API server: it fences; its units move; after restore nothing moves back.
    cut = held[UNITS[1]]
    fleet.electors[cut].proxy.cut()
    await fleet.wait_for(lambda: not fleet.leading(cut), FAILOVER, f"{cut} fences itself")
    held = await all_held_once(fleet, exclude={leaving, cut})
    fleet.electors[cut].proxy.restore()
    await asyncio.to_thread(control_plane.stop_apiserver)
    try:
        await fleet.wait_for(lambda: not any(fleet.leaders(u) for u in UNITS), FAILOVER, "all fence")
    finally:
        await asyncio.to_thread(control_plane.start_apiserver)
    # Back from the outage, every node resumes the claims it held; the returned node takes nothing back.
    assert await all_held_once(fleet, exclude={leaving}) == held
    fleet.assert_never_two_holders()
