"""ScalableElector paths the random simulator schedules do not reach, each found by mutation testing
(docs/mutation/election-scalable-and-rest.md): virtual time (SimLoop), the real elector against the
simulated API server, no sleeps as synchronisation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import itertools
import random
from typing import Any

import pytest

from kubevip.election import scalable
from kubevip.election.record import parse_lease
from kubevip.election.rendezvous import choose_holder
from kubevip.election.scalable import (
    BUSY_PATIENCE,
    CLAIM_CONCURRENCY,
    GC_AFTER,
    PREFERENCE_HOLD,
    RESTART_GRACE,
    ScalableElector,
    claim_lease_name,
    node_lease_name,
)
from kubevip.election.timings import Timings
from tests.unit.controlplane.fakes import FakeLeaseApi
from tests.unit.election import sim
from tests.unit.election.sim import NS, Fault, Fleet, SimApi, SimServer, feed_cache_from, run_sim
from tests.unit.election.test_incremental_pass import _noop, claim_body, node_body

UNIT = "vip:198.18.0.1"


def _elector(server: SimServer, node: str, events: list[str]) -> ScalableElector:
    api = SimApi(server, node, f"{node}#0")

    async def started(unit: str) -> None:
        events.append(f"started {unit}")

    async def stopped(unit: str) -> None:
        events.append(f"stopped {unit}")

    el = ScalableElector(api, NS, node, Timings(), started, stopped, clock=asyncio.get_running_loop().time)
    feed_cache_from(el.cache, api)
    el.set_units({UNIT: None})
    return el


def test_a_release_before_the_elector_ran_keeps_it_from_ever_campaigning() -> None:
    async def main() -> None:
        server = SimServer(random.Random(1))
        events: list[str] = []
        el = _elector(server, "node-a", events)
        task = asyncio.get_running_loop().create_task(el.run())  # created, not yet running
        await el.release()
        await asyncio.sleep(10)  # virtual: ten seconds of election time
        assert events == [] and not el.held
        assert server.get(claim_lease_name(UNIT)) is None, "a released elector claimed a unit"
        live = server.get(node_lease_name("node-a"))
        assert live is None or not live.held, "a released elector holds its liveness Lease"
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.drain()

    run_sim(main)


NODES = ("node-a", "node-b", "node-c")


def _electors_of(fleet: Fleet, node: str) -> list[ScalableElector]:
    return [el for el, _ in fleet._procs[fleet.incarnation(node)]]


def _electors(fleet: Fleet) -> list[ScalableElector]:
    return [el for node in fleet.nodes for el in _electors_of(fleet, node)]


async def _settled(server: SimServer, units: tuple[str, ...]) -> Fleet:
    """Every node of NODES started on `units` and given 3 s (virtual) to settle."""
    fleet = Fleet("scalable", NODES, units, server)
    for n in NODES:
        fleet.start(n)
    await asyncio.sleep(3.0)
    return fleet


def _holder(fleet: Fleet, unit: str) -> str | None:
    holders = fleet.rec.holders(unit)
    assert len(holders) <= 1, fleet.rec.violations
    return next(iter(holders)).split("#")[0] if holders else None


def test_a_holder_no_longer_eligible_hands_the_unit_to_an_eligible_node_at_once() -> None:
    """GIVE_UP must clear our claim: while we stay live, peers count our claim valid and never touch
    it, so a claim left in place keeps the unit unheld for as long as we live."""

    async def main() -> None:
        server = SimServer(random.Random(3))
        fleet = await _settled(server, (UNIT,))
        old = _holder(fleet, UNIT)
        assert old is not None
        others = [n for n in NODES if n != old]
        for el in _electors(fleet):
            el.set_units({UNIT: others})  # the holder's endpoint went (externalTrafficPolicy Local)
        changed = server.now()
        await asyncio.sleep(1.0)
        new = _holder(fleet, UNIT)
        assert new in others, f"{UNIT} held by {new} 1 s after {old} became ineligible"
        assert not fleet.rec.violations
        (span,) = [s for s in fleet.rec.spans if s.unit == UNIT and s.incarnation.startswith(new)]
        assert span.start - changed <= 2 * Timings().retry_period, "taken over at once, not at expiry"
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_removed_unit_s_claim_is_deleted_at_the_version_we_wrote() -> None:
    """The holder of a unit nobody wants any more withdraws and deletes its claim Lease, guarded by the
    version it wrote (a claim written meanwhile survives)."""

    async def main() -> None:
        server = SimServer(random.Random(4))
        fleet = await _settled(server, (UNIT,))
        claim = server.get(claim_lease_name(UNIT))
        assert claim is not None and claim.holder == _holder(fleet, UNIT)
        deletes: list[tuple[str, str, str]] = []
        for el in _electors(fleet):
            api = el.api
            delete = api.delete

            async def recording(namespace: str, name: str, resource_version: str,
                                limit: float | None = None, delete: Any = delete) -> None:
                deletes.append((namespace, name, resource_version))
                await delete(namespace, name, resource_version, limit)

            api.delete = recording  # type: ignore[method-assign]
            el.set_units({})
        await asyncio.sleep(1.0)
        assert fleet.rec.holders(UNIT) == set()
        assert server.get(claim_lease_name(UNIT)) is None, "the claim of a removed unit stays behind"
        assert deletes == [(NS, claim.name, claim.resource_version)]
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_preferred_node_takes_the_unit_back_once_settled_and_not_before() -> None:
    """kube-vip.io/preferred-nodes in scalable mode: a unit held by a less preferred node moves to the
    preferred one once that has been live PREFERENCE_HOLD lease durations (the hysteresis against a
    flapping node), through a cleared claim: at once then, never two holders, never before."""

    async def main() -> None:
        server = SimServer(random.Random(5))
        fleet = Fleet("scalable", ("node-a", "node-b"), (UNIT,), server)
        preferred = {UNIT: ["node-b", "node-a"]}
        fleet.start("node-a")
        for el in _electors_of(fleet, "node-a"):
            el.set_preferred(preferred)
        await asyncio.sleep(3.0)  # virtual
        assert _holder(fleet, UNIT) == "node-a"
        fleet.start("node-b")
        for el in _electors_of(fleet, "node-b"):
            el.set_preferred(preferred)
        b_started = server.now()
        hold = PREFERENCE_HOLD * Timings().lease_duration
        await asyncio.sleep(hold - 0.1)
        assert _holder(fleet, UNIT) == "node-a", "moved before the preferred node settled"
        await asyncio.sleep(1.5)
        assert _holder(fleet, UNIT) == "node-b", "the preferred node never took the unit back"
        assert not fleet.rec.violations
        (span,) = [s for s in fleet.rec.spans if s.incarnation.startswith("node-b")]
        assert b_started + hold <= span.start, "moved before the preferred node settled"
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_preferred_node_that_restarts_settles_again_from_its_new_epoch() -> None:
    """The hold counts from when the preferred node became live in its CURRENT epoch: a node that
    restarts (a new liveness epoch, seen without a gap) starts over, or a flapping node would pull
    the unit back. White-box: settled_nodes() over a scripted Lease cache and clock."""
    now = [0.0]
    el = ScalableElector(FakeLeaseApi().view("node-a"), NS, "node-a", Timings(), _noop, _noop,
                         clock=lambda: now[0])
    hold = PREFERENCE_HOLD * Timings().lease_duration
    live = {"node-b"}

    def b_in(epoch: int) -> None:
        el.cache.put(parse_lease(node_body("node-b", "node-b", epoch)))

    b_in(0)
    assert el.settled_nodes(live) == set()  # b first seen now
    now[0] = hold - 0.1
    assert el.settled_nodes(live) == set()
    b_in(1)  # restarted: a new epoch, first seen at hold - 0.1
    assert el.settled_nodes(live) == set()
    now[0] = hold + 1.0
    assert el.settled_nodes(live) == set(), "a restarted node kept its earlier settle time"
    now[0] = 2 * hold - 0.2
    assert el.settled_nodes(live) == set()
    now[0] = 2 * hold - 0.1
    assert el.settled_nodes(live) == {"node-b"}


class _NamespaceCheck(SimApi):
    """Fails the test on any Lease call outside the elector's namespace (the simulated server keeps
    one namespace, so a wrong one would pass there and 404 on a real API server)."""

    wrong: list[str] = []

    def _check(self, what: str, namespace: object) -> None:
        if namespace != NS:
            self.wrong.append(f"{self.incarnation} {what} in namespace {namespace!r}")

    async def get(self, namespace: str, name: str, limit: float | None = None) -> Any:
        self._check(f"get {name}", namespace)
        return await super().get(namespace, name, limit)

    async def create(self, body: dict[str, Any], limit: float | None = None) -> Any:
        self._check(f"create {body['metadata']['name']}", body["metadata"].get("namespace"))
        return await super().create(body, limit)

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> Any:
        self._check(f"replace {body['metadata']['name']}", body["metadata"].get("namespace"))
        return await super().replace(body, limit)

    async def delete(self, namespace: str, name: str, resource_version: str,
                     limit: float | None = None) -> None:
        self._check(f"delete {name}", namespace)
        await super().delete(namespace, name, resource_version, limit)


@pytest.mark.parametrize("seed", range(3))
def test_every_lease_call_goes_to_the_elector_s_namespace(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a failover, a foreign write, a restart under the same name and a removed unit (claims,
    liveness renewals, peers marked expired, re-reads after a conflict, deletes)."""
    monkeypatch.setattr(sim, "SimApi", _NamespaceCheck)
    monkeypatch.setattr(_NamespaceCheck, "wrong", [])
    units = (UNIT, "vip:198.18.0.2")

    async def main() -> None:
        faults = [Fault(sim.FOREIGN, "node-a", 4.0, 4.0, UNIT), Fault(sim.RESTART, "node-b", 6.0, 6.0),
                  Fault(sim.WATCH_DELAY, "node-c", 5.0, 9.0)]
        server = SimServer(random.Random(seed), faults)
        fleet = Fleet("scalable", NODES, units, server)
        for n in NODES:
            fleet.start(n)
        injector = asyncio.get_running_loop().create_task(fleet.inject(faults))
        await asyncio.sleep(14.0)  # virtual
        for el in _electors(fleet):
            el.set_units({UNIT: None})
        await asyncio.sleep(14.0)  # the removed unit's claim collected (GC_AFTER lease durations)
        assert server.get(claim_lease_name("vip:198.18.0.2")) is None
        assert not fleet.rec.violations
        injector.cancel()
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)
    assert _NamespaceCheck.wrong == []


@pytest.mark.parametrize("seed", range(3))
def test_a_process_restarted_under_the_same_name_never_trusts_its_predecessor_s_claim(seed: int) -> None:
    """The new process of a node (a new liveness epoch) must claim again: a claim its frozen
    predecessor wrote is valid for nobody (peers see its epoch gone), so starting on it means holding a
    unit that any node made eligible next would claim and start too. Units only node-a may hold, so
    no peer takes them over meanwhile."""

    async def main() -> None:
        server = SimServer(random.Random(seed))
        units = tuple(f"vip:198.18.0.{i}" for i in range(1, 4))
        only_a: dict[str, list[str] | None] = {u: ["node-a"] for u in units}
        fleet = Fleet("scalable", ("node-a", "node-b"), units, server)
        for n in fleet.nodes:
            fleet.start(n)
        for el in _electors(fleet):
            el.set_units(only_a)
        await asyncio.sleep(3.0)  # virtual: settled
        old = fleet.incarnation("node-a")
        assert all(fleet.rec.holders(u) == {old} for u in units)
        loop = asyncio.get_running_loop()
        restart = loop.create_task(fleet.freeze_and_restart("node-a", Timings().lease_duration + 1.0))
        await asyncio.sleep(0)  # the new process is created
        new = fleet.incarnation("node-a")
        assert new != old
        for el in _electors_of(fleet, "node-a"):
            el.set_units(only_a)
        await asyncio.sleep(12.0)
        assert not fleet.rec.violations, fleet.rec.violations
        for unit in units:
            assert fleet.rec.holders(unit) == {new}
            claim = server.get(claim_lease_name(unit))
            writers = [w.writer for w in server.writes if claim is not None and w.name == claim.name]
            assert writers[-1] == new, f"{new} holds {unit} on a claim it never wrote"
        await restart
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_the_units_of_a_node_that_dies_for_good_are_held_again_within_the_bound() -> None:
    """A node that is gone for good (no restart, unlike the simulator's faults): once its liveness
    expired its claims are invalid for every peer, and each of its units is held again."""

    async def main() -> None:
        server = SimServer(random.Random(7))
        units = tuple(f"vip:198.18.0.{i}" for i in range(1, 9))
        fleet = await _settled(server, units)
        dead = fleet.incarnation(_holder(fleet, units[0]) or "")
        alive = [n for n in NODES if fleet.incarnation(n) != dead]
        server.frozen.add(dead)  # SIGKILL: nothing it sends arrives any more
        died = server.now()
        await asyncio.sleep(3 * Timings().lease_duration + 4 * Timings().retry_period + 0.5)
        for unit in units:
            (holder,) = fleet.rec.holders(unit) - {dead}
            assert holder.split("#")[0] in alive, f"{unit} not held again after {died}"
        assert not fleet.rec.violations
        await fleet._kill(dead)
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_live_holder_whose_liveness_lease_is_deleted_keeps_its_units_until_it_fenced() -> None:
    """Someone deletes a live node's liveness Lease (by hand, a cleanup script): its claims are then
    neither valid nor provably stale, so peers wait a lease duration of absence before they take them;
    the holder meanwhile fails its next renewal and fences. Never two holders."""

    async def main() -> None:
        server = SimServer(random.Random(8))
        units = tuple(f"vip:198.18.0.{i}" for i in range(1, 7))
        fleet = await _settled(server, units)
        # past every node's restart grace: a starting node would leave the units to the victim anyway
        await asyncio.sleep(RESTART_GRACE * Timings().lease_duration)
        victim = _holder(fleet, units[0])
        assert victim is not None
        live = server.get(node_lease_name(victim))
        assert live is not None
        server.delete(live.name, live.resource_version, "someone")
        await asyncio.sleep(6.0)
        assert not fleet.rec.violations, fleet.rec.violations
        for unit in units:
            assert len(fleet.rec.holders(unit)) == 1, f"{unit} not held again"
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_queued_claim_is_sent_only_while_the_unit_is_still_ours_among_the_live_nodes() -> None:
    """Restart of every agent: the first node up judges every unit its own and queues a claim for each
    (CLAIM_CONCURRENCY at a time). The others come up while those claims wait; a claim whose unit now
    goes to one of them by the rendezvous must not be sent (bench/agent.py: the first node kept claiming
    the others' units for tens of seconds, and they lost their claims to it)."""
    # Enough units that node-a's claims, CLAIM_CONCURRENCY at a time, are still going when the others come.
    units = tuple(f"vip:198.18.{i // 250}.{i % 250}" for i in range(30 * CLAIM_CONCURRENCY))

    async def main() -> None:
        server = SimServer(random.Random(7))
        fleet = Fleet("scalable", NODES, units, server)
        fleet.start("node-a")
        (first,) = _electors_of(fleet, "node-a")
        late: list[str] = []
        sent: list[str] = []
        for verb in ("create", "replace"):
            real = getattr(first.api, verb)

            async def judged(body: dict[str, Any], limit: float | None = None, real: Any = real) -> Any:
                unit = body["metadata"].get("annotations", {}).get("kubevip.io/unit")
                if unit is not None and body["spec"].get("holderIdentity") == "node-a":
                    sent.append(unit)
                    live = first.live_nodes()
                    if choose_holder(unit, None, live) != "node-a":
                        late.append(f"{unit} (live: {sorted(live)})")
                return await real(body, limit)

            setattr(first.api, verb, judged)
        await asyncio.sleep(0.15)  # node-a live, its claims under way
        fleet.start("node-b")
        fleet.start("node-c")
        await asyncio.sleep(4.0)
        assert late == [], f"node-a sent {len(late)} claims for units no longer its own: {late[:3]}"
        assert len(sent) < len(units), "node-a claimed every unit: the others came up too late to tell"
        holders = {u: _holder(fleet, u) for u in units}
        assert None not in holders.values(), "every unit held"
        assert {"node-b", "node-c"} <= set(holders.values())
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_every_node_names_the_holder_of_every_unit_and_none_for_a_dead_one() -> None:
    """`current_holder` is what status, vipHost and `kubevip status` report (agent/leadership.py): every
    node names the node that holds each unit, its own and its peers' (not only whether it holds one
    itself); once a holder's liveness Lease names it in another epoch (it restarted), its old claims
    name nobody until they are claimed again."""

    async def main() -> None:
        server = SimServer(random.Random(8))
        units = tuple(f"vip:198.18.0.{i}" for i in range(1, 7))
        fleet = await _settled(server, units)
        holders = {u: _holder(fleet, u) for u in units}
        assert len(set(holders.values())) > 1, holders  # peers' claims as well as its own
        for el in _electors(fleet):
            seen = {u: el.current_holder(u) for u in units}
            assert seen == holders, f"{el.node} sees {seen}, the claims say {holders}"
        # A peer's liveness Lease in a new epoch: its claims of the old one are nobody's.
        victim = holders[units[0]]
        assert victim is not None
        watcher = next(el for el in _electors(fleet) if el.node != victim)
        live = watcher.cache.records[node_lease_name(victim)]
        watcher.cache.put(dataclasses.replace(live, transitions=live.transitions + 1))
        for u in units:
            want = None if holders[u] == victim else holders[u]
            assert watcher.current_holder(u) == want, f"{u}: {watcher.current_holder(u)}"
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_node_that_does_not_want_a_unit_never_deletes_a_live_peer_s_claim_of_it() -> None:
    """Garbage collection deletes claims of units no Service wants here, but never one whose holder is
    live in its epoch: the holder's view may still want the unit (a Service this node has not seen
    yet, placement), and deleting its claim would pull the unit from under a live holder. The node
    that does not want the units is the rendezvous pick of some of them (it came up last: the others
    keep what they hold), so only the liveness check protects those claims."""

    async def main() -> None:
        server = SimServer(random.Random(9))
        units = tuple(f"vip:198.18.0.{i}" for i in range(1, 13))
        fleet = Fleet("scalable", NODES, units, server)
        late = "node-a"
        for n in NODES:
            if n != late:
                fleet.start(n)
        await asyncio.sleep(3.0)  # virtual
        fleet.start(late)
        await asyncio.sleep(3.0)
        holders = {u: _holder(fleet, u) for u in units}
        exposed = [u for u in units if holders[u] != late
                   and choose_holder(u, None, frozenset(NODES), None) == late]
        assert exposed, f"no unit whose rendezvous pick is {late} held by another node: {holders}"
        claims = {u: server.get(claim_lease_name(u)) for u in units}
        for el in _electors_of(fleet, late):
            el.set_units({u: None for u in units if holders[u] == late})
        await asyncio.sleep((GC_AFTER + 2) * Timings().lease_duration)
        for u in units:
            rec, before = server.get(claim_lease_name(u)), claims[u]
            assert rec is not None and before is not None, f"the claim of {u} was deleted"
            assert (rec.holder, rec.resource_version) == (before.holder, before.resource_version), u
            assert _holder(fleet, u) == holders[u], u
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_claims_left_by_a_dead_node_of_units_nobody_wants_are_deleted() -> None:
    """A node dies holding claims, and their units are removed meanwhile (the Services deleted): no
    live node holds or wants them, so once the dead node's liveness has expired and the claims sat
    GC_AFTER lease durations, one live node deletes them (else every Service ever created would leave
    a Lease behind); the claims of units still wanted stay."""

    async def main() -> None:
        server = SimServer(random.Random(10))
        units = tuple(f"vip:198.18.0.{i}" for i in range(1, 10))
        fleet = await _settled(server, units)
        holders = {u: _holder(fleet, u) for u in units}
        dead = fleet.incarnation(holders[units[0]] or "")
        gone = [u for u in units if holders[u] == dead.split("#")[0]]
        kept = [u for u in units if u not in gone]
        assert kept, holders
        server.frozen.add(dead)  # SIGKILL: nothing it sends arrives any more
        for node in NODES:
            if fleet.incarnation(node) != dead:
                for el in _electors_of(fleet, node):
                    el.set_units({u: None for u in kept})
        lease = Timings().lease_duration
        await asyncio.sleep((GC_AFTER + 4) * lease)
        left = [u for u in gone if server.get(claim_lease_name(u)) is not None]
        assert not left, f"claims of removed units still there: {left}"
        for u in kept:
            rec = server.get(claim_lease_name(u))
            assert rec is not None and rec.holder == holders[u], u
        assert not fleet.rec.violations
        await fleet._kill(dead)
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_every_start_and_stop_reaches_the_observer_and_moves_the_generation() -> None:
    """The observer is how `is_leader` and the transition metric follow the election
    (agent/leadership.py), and `held_changes` is part of the generation the agent compares to know
    that what this node holds changed: each start and each stop reaches both, with its unit."""

    async def main() -> None:
        server = SimServer(random.Random(11))
        seen: list[tuple[str, bool]] = []
        api = SimApi(server, "node-a", "node-a#0")

        async def nothing(unit: str) -> None:
            return None

        el = ScalableElector(api, NS, "node-a", Timings(), nothing, nothing,
                             observer=lambda u, h: seen.append((u, h)),
                             clock=asyncio.get_running_loop().time)
        feed_cache_from(el.cache, api)
        el.set_units({UNIT: None})
        task = asyncio.get_running_loop().create_task(el.run())
        await asyncio.sleep(3.0)  # virtual
        assert el.holds(UNIT) and seen == [(UNIT, True)], seen
        assert (el.held_changes, el.transitions) == (1, 1)
        el.set_units({})
        await asyncio.sleep(1.0)
        assert not el.holds(UNIT) and seen == [(UNIT, True), (UNIT, False)], seen
        assert (el.held_changes, el.transitions) == (2, 1)
        el.set_units({UNIT: None})  # wanted again: a second start counts on from the first
        await asyncio.sleep(3.0)
        assert el.holds(UNIT) and seen[2:] == [(UNIT, True)], seen
        assert (el.held_changes, el.transitions) == (3, 2)
        await el.release()
        # A release ends the running elector (else it would go on claiming) after withdrawing.
        assert task.done() and not el.holds(UNIT) and seen[3:] == [(UNIT, False)], seen
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.drain()

    run_sim(main)


def test_a_unit_its_rendezvous_pick_does_not_claim_is_taken_after_one_lease_duration() -> None:
    """The rescue for a live pick that never claims (its view lacks the unit: a Service it has not seen
    yet, or placement it evaluates differently): after one lease duration of orphanhood another node
    that may hold the unit claims it, and not before (the pick gets its chance first)."""

    async def main() -> None:
        server = SimServer(random.Random(12))
        nodes = ("node-a", "node-b")
        unit = next(f"vip:198.18.1.{i}" for i in range(1, 200)
                    if choose_holder(f"vip:198.18.1.{i}", None, frozenset(nodes), None) == "node-b")
        fleet = Fleet("scalable", nodes, (unit,), server)
        for n in nodes:
            fleet.start(n)
        for el in _electors_of(fleet, "node-b"):
            el.set_units({})  # the pick does not know the unit
        for el in _electors_of(fleet, "node-a"):
            el.set_units({unit: list(nodes)})  # node-a may hold it (placement names both)
        started = server.now()
        lease = Timings().lease_duration
        await asyncio.sleep(lease - 0.3)
        assert _holder(fleet, unit) is None, "taken before its pick had a lease duration to claim it"
        await asyncio.sleep(1.5)
        assert _holder(fleet, unit) == "node-a", f"{unit} not rescued {server.now() - started:.2f}s on"
        (span,) = [s for s in fleet.rec.spans if s.unit == unit]
        # node-a sees the orphan ~0.3 s after the start (its liveness first), then waits one lease
        # duration, and claims in the pass at that instant or the next.
        t = Timings()
        assert lease <= span.start - started <= lease + 2 * t.retry_period, span.start - started
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_lease_names_are_stable_across_versions_and_within_the_object_name_limit() -> None:
    """Claim and liveness Lease names live in the cluster: agents of two versions in one fleet (a rolling
    upgrade) must name the same unit's claim and the same node's liveness Lease alike, so the names are
    pinned here, including the hashing of node names that would exceed 253 characters."""
    assert claim_lease_name("vip:198.18.0.1") == "kubevip-claim-bc313e5df8064c986a44"
    assert node_lease_name("node-a") == "kubevip-node-node-a"
    longest = "n" * (253 - len("kubevip-node-"))
    assert node_lease_name(longest) == f"kubevip-node-{longest}"  # exactly 253: kept
    hashed = node_lease_name(longest + "x")
    assert hashed == "kubevip-node-" + hashlib.blake2b((longest + "x").encode(), digest_size=10).hexdigest()
    assert len(hashed) == len("kubevip-node-") + 20 and hashed != node_lease_name(longest + "y")


async def _restart_every_agent(fleet: Fleet, back: tuple[str, ...], stagger: float) -> None:
    """SIGTERM to every node at once, then new processes on `back` only, `stagger` s apart (virtual):
    a DaemonSet rolled all at once, the first agent up well before the last."""
    await asyncio.gather(*(fleet.release(n) for n in NODES))
    for i, n in enumerate(back):
        if i:
            await asyncio.sleep(stagger)
        fleet.start(n)


def test_a_restart_of_every_agent_gives_each_node_back_what_it_held() -> None:
    """Each node takes back the units its previous process held (choose_holder's `previous`), and a
    node that is up first leaves the others' units to them while it starts. Before, the first node up
    judged every unit its own among the live nodes it saw, and whatever it claimed before the others
    came up moved (bench/agent.py: 395 of 1000 Services, 4312 of 5000)."""

    async def main() -> None:
        server = SimServer(random.Random(21))
        units = tuple(f"vip:198.18.2.{i}" for i in range(1, 31))
        fleet = await _settled(server, units)
        before = {u: _holder(fleet, u) for u in units}
        assert set(before.values()) == set(NODES), before  # every node holds some
        await _restart_every_agent(fleet, NODES, stagger=0.4)
        await asyncio.sleep(3.0)
        after = {u: _holder(fleet, u) for u in units}
        assert after == before, {u: (before[u], after[u]) for u in units if before[u] != after[u]}
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_the_units_of_a_node_that_does_not_come_back_are_taken_within_two_lease_durations() -> None:
    """A starting node waits for a previous holder only until the orphan race (a lease duration after
    it first judged the unit): units of a node that stays away are held again, by the others."""

    async def main() -> None:
        server = SimServer(random.Random(22))
        units = tuple(f"vip:198.18.3.{i}" for i in range(1, 31))
        fleet = await _settled(server, units)
        gone = NODES[-1]
        its = [u for u in units if _holder(fleet, u) == gone]
        assert its
        await _restart_every_agent(fleet, NODES[:-1], stagger=0.1)
        await asyncio.sleep(2 * Timings().lease_duration + 1.0)  # virtual
        held = {u: _holder(fleet, u) for u in units}
        assert all(held[u] in NODES[:-1] for u in units), {u: held[u] for u in its}
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_peer_that_stops_alone_is_replaced_at_once_not_waited_for() -> None:
    """Only a starting node waits for a previous holder: when one node stops (SIGTERM) while the others
    run, they take its units right away (the per-Service hand-over row: 0.5 s p95)."""

    async def main() -> None:
        server = SimServer(random.Random(23))
        units = tuple(f"vip:198.18.4.{i}" for i in range(1, 31))
        fleet = await _settled(server, units)
        await asyncio.sleep(Timings().lease_duration)  # every node well past its start
        gone = NODES[0]
        its = [u for u in units if _holder(fleet, u) == gone]
        assert its
        t0 = asyncio.get_running_loop().time()
        await fleet.release(gone)
        await asyncio.sleep(2.0)  # virtual
        taken = {sp.unit: sp.start - t0 for sp in fleet.rec.changes_after(t0)
                 if sp.unit in its and not sp.incarnation.startswith(gone)}
        assert set(taken) == set(its), taken
        took = max(taken.values())
        assert took < Timings().lease_duration / 2, took
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


_VERSIONS = itertools.count(1000)


@pytest.mark.parametrize(("known", "claim_epoch", "stealable"), [
    (("node-c", 0), 1, False),  # the claim is newer than the liveness Lease we know: our view is behind
    (("", 0), 1, False),  # marked expired in epoch 0, claimed again in epoch 1: the same
    (("", 1), 1, True),  # marked expired in the claim's own epoch: invalid
    (("node-c", 1), 0, True),  # the holder is live in a later epoch than the claim: invalid
    (("node-c", 1), 1, False),  # valid
])
def test_a_claim_from_an_epoch_newer_than_its_holder_s_known_liveness_is_not_stolen(
        known: tuple[str, int], claim_epoch: int, stealable: bool) -> None:
    """A restarted holder claims in its new epoch; a peer whose watch is late may read that claim (after
    a lost race) before the liveness Lease that makes it valid. Taking the claim then as invalid made
    two holders for 7 ms in the election simulator (scalable mode, seed 736 of 800)."""

    async def main() -> None:
        server = SimServer(random.Random(24))
        el = _elector(server, "node-b", [])
        holder, epoch = known
        for body in (node_body("node-c", holder, epoch), claim_body(UNIT, "node-c", claim_epoch)):
            # A version of its own per record, as the API server gives (parsed claims are memoised by
            # name and version).
            body["metadata"]["resourceVersion"] = str(next(_VERSIONS))
            el.cache.put(parse_lease(body))
        assert el._stealable(UNIT) is stealable

    run_sim(main)


@pytest.mark.parametrize("mode", ["scalable", "lease"])
def test_agents_stopping_together_take_nothing_from_each_other(mode: str) -> None:
    """SIGTERM reaches every agent at once, but each releases only after withdrawing its VIPs, at its
    own pace. The ones still withdrawing must not take what the first released: every unit then ended
    on the last agent to stop, which took them all back after the restart (bench/agent.py: 100-300 of
    1000 Services moved in scalable mode; in lease mode the global Lease went to the last one)."""

    async def main() -> None:
        server = SimServer(random.Random(25))
        units = tuple(f"vip:198.18.5.{i}" for i in range(1, 31)) if mode == "scalable" else ("svc-lock",)
        fleet = Fleet(mode, NODES, units, server)
        for n in NODES:
            fleet.start(n)
        await asyncio.sleep(3.0 + RESTART_GRACE * Timings().lease_duration)
        before = {u: _holder(fleet, u) for u in units}
        t0 = asyncio.get_running_loop().time()
        for n in NODES:
            fleet.stop_taking(n)
        for n in NODES:  # one after another, 0.3 s apart (withdrawing takes its time)
            await asyncio.sleep(0.3)
            await fleet.release(n)
        taken = [s for s in fleet.rec.changes_after(t0) if s.start > t0]
        assert not taken, f"taken while stopping: {taken}"
        for n in NODES:
            fleet.start(n)
        await asyncio.sleep(3.0)
        if mode == "scalable":
            assert {u: _holder(fleet, u) for u in units} == before
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


class _SlowNodeServer(SimServer):
    """The simulated API server, `slow` seconds each way for every request of the nodes in `slow_nodes`
    (a node whose claims queue behind each other: CLAIM_CONCURRENCY at a time)."""

    def __init__(self, rnd: random.Random, slow: float) -> None:
        super().__init__(rnd)
        self.slow = slow
        self.slow_nodes: set[str] = set()

    def _latency(self, node: str) -> float:
        return self.slow if node in self.slow_nodes else super()._latency(node)


def _restart_with_a_slow_node(seed: int, patience_leases: float) -> None:
    """Every agent restarts while one node's requests take 0.2 s each way: it re-claims its units
    CLAIM_CONCURRENCY at a time for longer than `patience_leases` lease durations; nothing may move."""

    async def main() -> None:
        server = _SlowNodeServer(random.Random(seed), slow=0.2)
        units = tuple(f"vip:198.18.{6 + i // 200}.{i % 200 + 1}" for i in range(360))
        fleet = await _settled(server, units)
        before = {u: _holder(fleet, u) for u in units}
        slow = NODES[-1]
        its = [u for u in units if before[u] == slow]
        lease = Timings().lease_duration
        # Its claims alone (0.4 s each, 8 at a time) take longer than the patience.
        assert len(its) / CLAIM_CONCURRENCY * 2 * server.slow > patience_leases * lease + 1.0, len(its)
        server.slow_nodes.add(slow)
        await _restart_every_agent(fleet, NODES, stagger=0.0)
        await asyncio.sleep(len(its) / CLAIM_CONCURRENCY * 2 * server.slow + 2 * lease)
        after = {u: _holder(fleet, u) for u in units}
        moved = {u: (before[u], after[u]) for u in units if before[u] != after[u]}
        assert not moved, f"{len(moved)} units moved: {moved}"
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def test_a_restarted_node_still_claiming_its_units_back_keeps_them_past_the_restart_grace() -> None:
    """After a restart of every agent a node re-claims each unit it held, CLAIM_CONCURRENCY at a time;
    with many units that outlasts the restart grace. Peers used to race it for the units it had not
    reached yet (bench/agent.py: 278-417 of 1000 Services moved, each move a vipHost write and an Event,
    on the API server the claims wait on). While its claims keep arriving it is busy, not gone: nothing
    it held moves. Once it stops claiming, the race is back (the next test)."""
    _restart_with_a_slow_node(26, RESTART_GRACE)


def test_a_node_claiming_back_for_longer_than_busy_patience_keeps_its_units(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same past BUSY_PATIENCE (cut to one lease duration here: 360 units would not outlast ten): at
    5000 Services a node re-claims its units for twice BUSY_PATIENCE, and once that ran out the race moved
    171 VIPs (bench/agent.py, session 27). The pick is waited for until it has sent as many claims as it
    had units left to claim then."""
    monkeypatch.setattr(scalable, "BUSY_PATIENCE", 1)
    _restart_with_a_slow_node(29, max(RESTART_GRACE, 1))


def test_a_busy_pick_that_lacks_a_unit_is_raced_once_it_stops_claiming() -> None:
    """The patience with a busy pick ends with its claims: a node back from a restart that re-claims
    many units but never one of them (its view lacks it) loses that one to the race one lease duration
    after its claims stop arriving, never while they still arrive."""

    async def main() -> None:
        server = _SlowNodeServer(random.Random(27), slow=0.2)
        nodes = ("node-a", "node-b")
        units = tuple(f"vip:198.18.{8 + i // 200}.{i % 200 + 1}" for i in range(240))
        fleet = Fleet("scalable", nodes, units, server)
        for n in nodes:
            fleet.start(n)
        await asyncio.sleep(3.0)
        its = [u for u in units if _holder(fleet, u) == "node-b"]
        lacking = its[0]
        server.slow_nodes.add("node-b")  # its claims queue: 0.4 s each, CLAIM_CONCURRENCY at a time
        await asyncio.gather(*(fleet.release(n) for n in nodes))
        t0 = server.now()
        for n in nodes:
            fleet.start(n)
        for el in _electors_of(fleet, "node-b"):
            el.set_units({u: None for u in units if u != lacking})
        lease = Timings().lease_duration
        busy_for = (len(its) - 1) / CLAIM_CONCURRENCY * 2 * server.slow
        assert busy_for > (RESTART_GRACE + 1) * lease, busy_for  # longer than the plain patience
        await asyncio.sleep(busy_for + 3 * lease)
        spans = fleet.rec.changes_after(t0)
        last_b = max(s.start for s in spans if s.incarnation.startswith("node-b"))
        (taken,) = [s for s in spans if s.unit == lacking]
        assert taken.incarnation.startswith("node-a")
        t = Timings()
        assert last_b < taken.start <= last_b + lease + 2 * t.retry_period + 2 * server.slow, \
            (taken.start, last_b)
        assert {u for u in its if _holder(fleet, u) == "node-b"} == set(its) - {lacking}
        assert not fleet.rec.violations
        assert not await fleet.stop()
        await server.drain()

    run_sim(main)


def _clocked_elector(seed: int) -> tuple[ScalableElector, list[float], float]:
    """node-a's elector on a clock the test moves (`now[0]`, from 100 s), and the lease duration."""
    el = _elector(SimServer(random.Random(seed)), "node-a", [])
    now = [100.0]
    el._clock = lambda: now[0]
    return el, now, el.timings.lease_duration


def test_the_patience_with_a_busy_pick_ends_after_busy_patience_lease_durations() -> None:
    """A pick that keeps claiming without end (a bug, or a flapping unit) and has no unit left to claim
    in this node's view holds an orphan back for at most BUSY_PATIENCE lease durations from when this
    node first saw it orphaned (with a backlog: the next test)."""

    async def main() -> None:
        el, now, lease = _clocked_elector(28)
        assert not el._winner_busy("node-b", UNIT)  # never seen claiming
        assert not el._winner_busy(None, UNIT)
        el._orphan_since[UNIT] = now[0]
        el._claiming_at["node-b"] = now[0]
        assert el._winner_busy("node-b", UNIT)
        now[0] += lease  # a lease duration without a claim of its: not busy
        assert not el._winner_busy("node-b", UNIT)
        for _ in range(BUSY_PATIENCE):  # claiming all along
            el._claiming_at["node-b"] = now[0]
            assert el._winner_busy("node-b", UNIT) is (now[0] - 100.0 < BUSY_PATIENCE * lease)
            now[0] += lease
        el._claiming_at["node-b"] = now[0]
        assert not el._winner_busy("node-b", UNIT)

    run_sim(main)


def test_past_busy_patience_a_claiming_pick_is_waited_for_until_it_claimed_its_backlog() -> None:
    """Once BUSY_PATIENCE ran out, a pick that still claims keeps the race off until it has sent as many
    claims as it had units to claim then (its backlog: the orphans this node judges it should claim);
    then the unit is raced (the pick's view lacks it), even while it goes on claiming others."""

    async def main() -> None:
        el, now, lease = _clocked_elector(30)
        el._orphan_since[UNIT] = now[0]
        el._unsettled.update({UNIT: "node-b", "vip:198.18.9.1": "node-b", "vip:198.18.9.2": "node-b",
                                "vip:198.18.9.3": "node-c"})
        now[0] += BUSY_PATIENCE * lease  # the plain patience is over
        el._claiming_at["node-b"] = now[0]
        el._claims_seen["node-b"] = 50
        assert el._winner_busy("node-b", UNIT), "its backlog then: three units"
        for _ in range(2):
            now[0] += 0.1
            el._claims_seen["node-b"] += 1
            el._claiming_at["node-b"] = now[0]
            assert el._winner_busy("node-b", UNIT)
        now[0] += 0.1
        el._claims_seen["node-b"] += 1
        el._claiming_at["node-b"] = now[0]
        assert not el._winner_busy("node-b", UNIT), "three claims sent, none of them this unit"
        # Its claims stopping ends the wait as before, backlog or not.
        el._busy_mark.clear()
        el._claims_seen["node-b"] = 0
        now[0] += lease
        assert not el._winner_busy("node-b", UNIT)

    run_sim(main)
