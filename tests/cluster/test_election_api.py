"""Election objects on the real API server with kube-vip's RBAC: Lease round-trips, in-process electors."""

from __future__ import annotations

import asyncio
import time

import pytest
from kubernetes_asyncio import client

from kubevip.election.elector import LeaseElector
from kubevip.election.leaseapi import Conflict, LeaseApi
from kubevip.election.record import lease_body
from kubevip.election.scalable import (
    ROLE_CLAIM,
    ROLE_LABEL,
    ScalableElector,
    claim_lease_name,
    node_lease_name,
)
from kubevip.election.timings import Timings
from kubevip.tasks import TaskGroupGuard, spawn

pytestmark = pytest.mark.cluster


async def until(cond, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_precise_duration_survives_the_api_server(kube_kubevip: client.ApiClient, kube_namespace: str):
    api = LeaseApi(kube_kubevip)
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


async def test_lease_elector_with_kube_vip_rbac(kube_kubevip: client.ApiClient, kube_namespace: str):
    seen: list[tuple[str, bool]] = []
    events: list[str] = []

    async def started() -> None:
        events.append("started")

    async def stopped() -> None:
        events.append("stopped")

    el = LeaseElector(
        kube_kubevip,
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
        await until(lambda: el.is_leader, 10, "leadership")
        assert el.leader == "node-a" and el.transitions == 1
        await el.release()
        assert events == ["started", "stopped"]
        assert seen == [("plndr-cp-lock", True), ("plndr-cp-lock", False)]
        rec = await LeaseApi(kube_kubevip).get(kube_namespace, "plndr-cp-lock")
        assert rec is not None and rec.holder is None
    finally:
        await guard.close()
    assert not guard.crashed


async def test_scalable_elector_with_kube_vip_rbac(kube_kubevip: client.ApiClient, kube_namespace: str):
    held: set[str] = set()

    async def started(unit: str) -> None:
        held.add(unit)

    async def stopped(unit: str) -> None:
        held.discard(unit)

    el = ScalableElector(kube_kubevip, kube_namespace, "node-a", Timings(), started, stopped)
    el.set_units({"default/a": None, "default/b": {"node-a"}, "default/c": {"node-z"}})
    guard = TaskGroupGuard("test")
    spawn(guard, "scalable", el.run())
    try:
        await until(lambda: held == {"default/a", "default/b"}, 10, "units held")
        assert el.holder_of("default/a") == "node-a" and el.holder_of("default/c", {"node-z"}) is None
        assert el.live_nodes() == {"node-a"}
        claim = await el.api.get(kube_namespace, claim_lease_name("default/a"))
        assert claim is not None and claim.holder == "node-a" and claim.labels[ROLE_LABEL] == ROLE_CLAIM
        # A unit no longer wanted is withdrawn and its claim emptied.
        el.set_units({"default/a": None})
        await until(lambda: held == {"default/a"}, 10, "default/b given up")
        await until(
            lambda: el.cache.records[claim_lease_name("default/b")].holder is None, 10, "claim emptied"
        )
        await el.release()
        assert held == set()
        live = await el.api.get(kube_namespace, node_lease_name("node-a"))
        assert live is not None and live.holder is None
    finally:
        await guard.close()
    assert not guard.crashed
