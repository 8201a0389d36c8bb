"""The agent's fencing path (agent/leadership.py: the global Lease, Lease-per-unit for Services with
externalTrafficPolicy Local, the scalable adapter) in the election simulator, at default timings:
what the agent announces (between on_started and on_stopped) and what it asks (`holds(unit)`, sampled
every 20 ms of simulated time) never name two nodes for one unit, never a node outside the unit's
eligible set, and every unit is held again once the faults are over."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from kubevip.agent.leadership import Leadership, Scalable, make
from kubevip.election.timings import ElectionConfig, Timings
from kubevip.metrics import Metrics
from tests.unit.election.sim import (
    BLACKHOLE,
    LOST_REPLIES,
    NS,
    SLOW,
    WATCH_DELAY,
    Fault,
    Recorder,
    SimApi,
    SimServer,
    feed_cache_from,
    run_sim,
)

NODES = ("node-a", "node-b", "node-c")
UNITS: dict[str, frozenset[str] | None] = {
    "default/web": None,  # the global Lease (plndr-svcs-lock) in Lease mode
    "default/local": frozenset({"node-a", "node-b"}),  # ETP Local: its own Lease among eligible nodes
    "default/c-only": frozenset({"node-c"}),
}
T = Timings()
BOUND = 3 * T.lease_duration + 4 * T.retry_period + 0.5  # as in tests/unit/election/test_simulator.py


def run(mode: str, faults: list[Fault], seed: int, leave: str | None = None, drop: str | None = None,
        ) -> dict[str, Any]:
    """`leave`: that node releases at t=6 s; `drop`: that unit goes from every node's set at t=6 s (its
    Service deleted)."""
    cfg = ElectionConfig(True, "plndr-cp-lock", NS, "plndr-svcs-lock", False, mode, T)
    over = max([f.end for f in faults] + [0.0])

    async def main() -> dict[str, Any]:
        server = SimServer(random.Random(seed), faults)
        rec = Recorder()
        clock = asyncio.get_running_loop().time
        adapters: dict[str, Leadership] = {}
        renewals = dict.fromkeys(NODES, 0)
        tasks = []
        for node in NODES:
            async def started(unit: str, node: str = node) -> None:
                rec.started(node, unit)

            async def stopped(unit: str, node: str = node) -> None:
                rec.stopped(node, unit)

            def renewed(node: str = node) -> None:
                renewals[node] += 1

            api: Any = SimApi(server, node, node)  # the adapters take any LeaseApi as their client
            a = make(api, cfg, node, started, stopped, Metrics(node), renewed, clock=clock)
            if isinstance(a, Scalable):
                feed_cache_from(a.elector.cache, api)
            a.set_units(UNITS)
            adapters[node] = a
            tasks.append(asyncio.get_running_loop().create_task(a.run(), name=f"leadership:{node}"))
        asked: list[str] = []
        end = over + BOUND + 3.0
        left: set[str] = set()
        units = dict(UNITS)
        while server.now() < end:
            if drop and drop in units and server.now() >= 6.0:
                del units[drop]
                for a in adapters.values():
                    a.set_units(units)
            if leave and leave not in left and server.now() >= 6.0:
                left.add(leave)
                await adapters[leave].release()  # SIGTERM: withdraw, then release
            for unit, eligible in UNITS.items():
                holding = {n for n, a in adapters.items() if n not in left and a.holds(unit)}
                if len(holding) > 1:
                    asked.append(f"t={server.now():.2f} {unit}: holds() true on {sorted(holding)}")
                if eligible is not None and holding - eligible:
                    asked.append(f"t={server.now():.2f} {unit}: held by ineligible {holding - eligible}")
            await asyncio.sleep(0.02)
        held = {u: rec.holders(u) for u in UNITS}
        # What the agent asks before it announces agrees with what it was told, once all is quiet.
        holds = {u: {n for n, a in adapters.items() if n not in left and a.holds(u)} for u in UNITS}
        holds["unknown"] = {n for n, a in adapters.items() if a.holds("default/unknown")}
        crashed = [f"{t.get_name()}: {t.exception()!r}" for t in tasks if t.done() and not t.cancelled()
                   and t.exception() is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"rec": rec, "asked": asked, "held": held, "left": left, "crashed": crashed, "holds": holds,
                "renewals": renewals, "units": units}

    return run_sim(main)


def check(out: dict[str, Any]) -> None:
    rec: Recorder = out["rec"]
    assert not out["crashed"], out["crashed"]
    assert not rec.violations, rec.violations
    assert not out["asked"], out["asked"][:5]
    for s in rec.spans:
        eligible = UNITS[s.unit]
        assert eligible is None or s.incarnation in eligible, f"{s.incarnation} announced {s.unit}"
    for unit, holders in out["held"].items():
        if unit not in out["units"]:  # its Service went: no node may announce it
            assert not out["holds"][unit], f"{unit}: holds() still true on {out['holds'][unit]}"
            continue
        assert len(holders) == 1 and not holders & out["left"], f"{unit} held by {holders} at the end"
        assert out["holds"][unit] == holders, f"{unit}: holds() true on {out['holds'][unit]}, held {holders}"
    assert not out["holds"]["unknown"], "a unit nobody was told of is held"
    for node in set().union(*out["held"].values()):  # every holder renewed (kernel lifetimes, /livez)
        assert out["renewals"][node] > 0, f"{node} holds a unit but on_renewed never ran"


@pytest.mark.parametrize("mode", ["lease", "scalable"])
@pytest.mark.parametrize("seed", range(5))
def test_random_faults(mode: str, seed: int) -> None:
    rnd = random.Random(f"leadership-{mode}-{seed}")
    faults = []
    for _ in range(rnd.randint(1, 4)):
        start = round(rnd.uniform(3.0, 15.0), 3)
        faults.append(Fault(rnd.choice([BLACKHOLE, LOST_REPLIES, SLOW, WATCH_DELAY]), rnd.choice(NODES),
                            start, round(start + rnd.uniform(0.3, 4.0), 3)))
    check(run(mode, faults, seed))


@pytest.mark.parametrize("mode", ["lease", "scalable"])
@pytest.mark.parametrize("node", NODES)
def test_each_node_cut_off_then_back(mode: str, node: str) -> None:
    check(run(mode, [Fault(BLACKHOLE, node, 4.0, 7.0)], 1))


@pytest.mark.parametrize("mode", ["lease", "scalable"])
@pytest.mark.parametrize("node", ["node-a", "node-b"])
def test_release_hands_over(mode: str, node: str) -> None:
    """A node that leaves (release) withdraws and its units are held by eligible peers."""
    out = run(mode, [], 2, leave=node)
    check(out)
    assert any(s.incarnation == node and s.end is not None for s in out["rec"].spans) or not any(
        s.incarnation == node for s in out["rec"].spans
    )


@pytest.mark.parametrize("mode", ["lease", "scalable"])
@pytest.mark.parametrize("unit", ["default/web", "default/local"])
def test_a_unit_that_goes_is_withdrawn_everywhere(mode: str, unit: str) -> None:
    """A deleted Service's unit: no node asks to announce it any more, and its holder is told to stop it
    (Lease mode: its per-unit elector is released). A unit of the global Lease gets no on_stopped: the
    global leader keeps leading the others (docs/testing.md, mutation testing)."""
    out = run(mode, [], 3, drop=unit)
    check(out)
    if not (mode == "lease" and UNITS[unit] is None):
        assert not out["held"][unit], f"{unit} still held by {out['held'][unit]}"
