"""Election objects on the real API server with kube-vip's RBAC: Lease round-trips, in-process electors."""

from __future__ import annotations

import asyncio
import time

import pytest

from kubevip.election.elector import LeaseElector
from kubevip.election.leaseapi import Conflict, LeaseApi
from kubevip.election.record import lease_body, renewed_body
from kubevip.election.rendezvous import choose_holder
from kubevip.election.scalable import (
    EPOCH_ANNOTATION,
    GC_AFTER,
    ROLE_CLAIM,
    ROLE_LABEL,
    ROLE_NODE,
    UNIT_ANNOTATION,
    ScalableElector,
    claim_lease_name,
    node_lease_name,
)
from kubevip.election.timings import Timings
from kubevip.kube.rest import RestClient
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster


async def test_precise_duration_survives_the_api_server(rest_kubevip: RestClient, kube_namespace: str):
    api = LeaseApi(rest_kubevip)
    body = lease_body(
        kube_namespace,
        "kvt-precise",
        holder="node-a",
        duration=1.5,
        transitions=0,
        acquire_wall=time.time(),
        renew_wall=time.time(),
    )
    created = await api.create(body)
    assert created.duration == 1.5, created.annotations
    assert (await api.get(kube_namespace, "kvt-precise")) == created
    with pytest.raises(Conflict):
        await api.create(body)
    stale = lease_body(
        kube_namespace,
        "kvt-precise",
        holder="node-b",
        duration=1.5,
        transitions=1,
        acquire_wall=time.time(),
        renew_wall=time.time(),
        resource_version="1",
    )
    with pytest.raises(Conflict):
        await api.replace(stale)


async def test_lease_elector_with_kube_vip_rbac(rest_kubevip: RestClient, kube_namespace: str):
    seen: list[tuple[str, bool]] = []
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def stopped() -> None:
        events.append("stopped")

    el = LeaseElector(
        rest_kubevip,
        kube_namespace,
        "plndr-cp-lock",
        "node-a",
        Timings(),
        started,
        stopped,
        observer=lambda name, leading: seen.append((name, leading)),
    )
    guard = TaskGroupGuard("test")
    spawn(guard, "elector", el.run())
    try:
        await eventually(lambda: el.is_leader, "leadership", 10)
        assert el.leader == "node-a" and el.transitions == 1
        await el.release()
        assert events == ["started", "stopped"]
        assert seen == [("plndr-cp-lock", True), ("plndr-cp-lock", False)]
        rec = await LeaseApi(rest_kubevip).get(kube_namespace, "plndr-cp-lock")
        assert rec is not None and rec.holder is None
    finally:
        await guard.close()
    assert not guard.crashed


async def test_scalable_elector_with_kube_vip_rbac(rest_kubevip: RestClient, kube_namespace: str):
    held: set[str] = set()

    async def started(unit: str) -> None:
        held.add(unit)

    async def stopped(unit: str) -> None:
        held.discard(unit)

    el = ScalableElector(rest_kubevip, kube_namespace, "node-a", Timings(), started, stopped)
    el.set_units({"default/a": None, "default/b": {"node-a"}, "default/c": {"node-z"}})
    guard = TaskGroupGuard("test")
    spawn(guard, "scalable", el.run())
    try:
        await eventually(lambda: held == {"default/a", "default/b"}, "units held", 10)
        assert el.holder_of("default/a") == "node-a" and el.holder_of("default/c", {"node-z"}) is None
        assert el.live_nodes() == {"node-a"}
        claim = await el.api.get(kube_namespace, claim_lease_name("default/a"))
        assert claim is not None and claim.holder == "node-a" and claim.labels[ROLE_LABEL] == ROLE_CLAIM
        # A unit no longer wanted is withdrawn and its claim Lease deleted (no Lease per dead Service).
        el.set_units({"default/a": None})
        await eventually(lambda: held == {"default/a"}, "default/b given up", 10)
        assert await el.api.get(kube_namespace, claim_lease_name("default/b")) is None
        await el.release()
        assert held == set()
        live = await el.api.get(kube_namespace, node_lease_name("node-a"))
        assert live is not None and live.holder is None
    finally:
        await guard.close()
    assert not guard.crashed


async def test_scalable_collects_claims_nobody_can_hold(rest_kubevip: RestClient, kube_namespace: str):
    """Claims of units no node wants are deleted once unheld; a claim a live peer holds is kept."""
    api = LeaseApi(rest_kubevip)
    now = time.time()

    def claim(unit: str, holder: str | None, epoch: int) -> dict[str, object]:
        return lease_body(
            kube_namespace,
            claim_lease_name(unit),
            holder=holder,
            duration=1.5,
            transitions=0,
            acquire_wall=now,
            renew_wall=now,
            labels={ROLE_LABEL: ROLE_CLAIM},
            annotations={UNIT_ANNOTATION: unit, EPOCH_ANNOTATION: str(epoch)},
        )

    def picked_by_a(prefix: str) -> str:
        """A unit whose rendezvous pick among the live nodes is node-a (the one that collects it)."""
        live = {"node-a", "node-z"}
        return next(u for i in range(100) if choose_holder(u := f"{prefix}-{i}", None, live) == "node-a")

    empty, dead = picked_by_a("gone/empty"), picked_by_a("gone/dead")
    await api.create(claim(empty, None, 0))  # a Service deleted long ago, its claim emptied
    await api.create(claim(dead, "node-dead", 7))  # holder crashed, its liveness long gone
    await api.create(claim("kept/peer", "node-z", 0))  # held by a live peer whose view we lack
    peer = await api.create(
        lease_body(
            kube_namespace,
            node_lease_name("node-z"),
            holder="node-z",
            duration=1.5,
            transitions=0,
            acquire_wall=now,
            renew_wall=now,
            labels={ROLE_LABEL: ROLE_NODE},
        )
    )

    async def keep_peer_live() -> None:
        nonlocal peer
        while True:
            await asyncio.sleep(0.25)
            peer = await api.replace(
                lease_body(
                    kube_namespace,
                    peer.name,
                    holder="node-z",
                    duration=1.5,
                    transitions=0,
                    acquire_wall=now,
                    renew_wall=time.time(),
                    resource_version=peer.resource_version,
                    labels={ROLE_LABEL: ROLE_NODE},
                )
            )

    async def noop(unit: str) -> None:
        return None

    el = ScalableElector(rest_kubevip, kube_namespace, "node-a", Timings(), noop, noop)
    el.set_units({})
    guard = TaskGroupGuard("test")
    spawn(guard, "peer", keep_peer_live())
    spawn(guard, "scalable", el.run())
    try:
        gone = {claim_lease_name(empty), claim_lease_name(dead)}
        within = 3 * GC_AFTER * Timings().lease_duration
        await eventually(lambda: el.is_live and not gone & set(el.cache.records), "claims collected", within)
        for name in gone:
            assert await api.get(kube_namespace, name) is None, name
        kept = await api.get(kube_namespace, claim_lease_name("kept/peer"))
        assert kept is not None and kept.holder == "node-z"
        assert "node-z" in el.live_nodes()
        await el.release()
    finally:
        await guard.close()
    assert not guard.crashed


async def test_a_renewal_of_ours_that_landed_unseen_is_adopted(
    rest_kubevip: RestClient, kube_namespace: str
):
    """A renewal whose answer was lost makes the next one conflict: the leader re-reads, sees its own
    holder and acquireTime, and keeps leading instead of flapping.
    """
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def stopped() -> None:
        events.append("stopped")

    el = LeaseElector(rest_kubevip, kube_namespace, "kvt-adopt", "node-a", Timings(), started, stopped)
    api = LeaseApi(rest_kubevip)
    guard = TaskGroupGuard("test")
    spawn(guard, "elector", el.run())
    try:
        await eventually(lambda: el.is_leader, "leadership", 10)
        deadline = time.monotonic() + 10
        while True:  # write "our" renewal behind the elector's back (it may renew in between: retry)
            rec = await api.get(kube_namespace, "kvt-adopt")
            assert rec is not None and rec.holder == "node-a"
            try:
                sneaked = await api.replace(renewed_body(rec, 1.5, time.time()))
                break
            except Conflict:
                assert time.monotonic() < deadline, "could not write between renewals"

        # The elector renews past our version (so it adopted it) without ever stopping.
        def renewed_past() -> bool:
            mine = el._mine
            return mine is not None and int(mine.resource_version) > int(sneaked.resource_version)

        await eventually(renewed_past, "a renewal after the unseen one", 10)
        assert events == ["started"] and el.is_leader
        await el.release()
    finally:
        await guard.close()
    assert not guard.crashed
