"""Normal Events on the real API server (kube-vip's RBAC, create only): three nodes see the same VIPs
of 20 Services come, go and come back; the API server ends up with one Started and one Stopped Event
per Service, with counts, all from the holder, written through its token bucket (issue 24)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip.agent.reporter import Reporter
from kubevip.core.conditions import STARTED, STOPPED
from kubevip.core.events import BURST
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Changes, Row
from kubevip.core.selection import ClassFilter
from kubevip.core.world import SERVICE, World, apply_event, snapshot
from kubevip.kube.rest import RestClient
from kubevip.kube.writers import COMPONENT, Writer
from kubevip.metrics import Metrics
from kubevip.tasks import TaskGroupGuard
from tests.fixtures.waiting import eventually
from tests.unit.objects import service

pytestmark = pytest.mark.cluster
SERVICES = 20


class Holder:
    """The election's answer (not under test here): n1 holds every unit."""

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        return "n1"

    def generation(self) -> object:
        return "n1"


async def test_normal_events_one_per_service_and_reason_with_counts(
    kube_admin: client.ApiClient, rest_kubevip: RestClient, kube_namespace: str,
) -> None:
    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    world = World()
    for i in range(SERVICES):
        body = service(f"s{i}", f"198.51.100.{i + 1}", ns=ns)
        body["metadata"].pop("uid", None)
        body["metadata"].pop("resourceVersion", None)
        body["spec"].pop("clusterIP", None)
        body["spec"].pop("clusterIPs", None)
        body.pop("status", None)
        created = await core.create_namespaced_service(ns, body)
        obj: dict[str, Any] = kube_admin.sanitize_for_serialization(created)
        apply_event(world, SERVICE, False, service_from_dict(obj))
    snap = snapshot(world, ClassFilter(), False)
    assert len(snap.plans) == SERVICES
    rows = tuple(Row(p.address, "eth0") for p in snap.plans)
    guard = TaskGroupGuard("test")
    reporters = [
        Reporter(me, Writer(rest_kubevip, me), world, Holder(), Metrics(me), guard)  # type: ignore[arg-type]
        for me in ("n1", "n2", "n3")
    ]
    loops = [asyncio.get_running_loop().create_task(r.events_loop()) for r in reporters]
    try:
        for r in reporters:  # every node sees the VIPs come, go and come back
            r.node_events(Changes(rows, ()), snap, None)
            r.node_events(Changes((), rows), snap, None)
            r.node_events(Changes(rows, ()), snap, None)
        n1 = reporters[0]
        # 2 x SERVICES Events, more than the burst: the rest wait for tokens (5/s).
        assert 2 * SERVICES > BURST

        async def ours() -> list[Any]:
            evs = await core.list_namespaced_event(ns)
            return [e for e in evs.items if e.reporting_component == COMPONENT]

        await eventually(lambda: not n1.pending and n1.events_written == 2 * SERVICES, "n1's Events sent", 60)
        evs = await ours()
    finally:
        for t in loops:
            t.cancel()
        await guard.close()
    assert {e.reporting_instance for e in evs} == {"n1"}
    per = Counter((e.involved_object.name, e.reason) for e in evs)
    assert per == Counter({(f"s{i}", r): 1 for i in range(SERVICES) for r in (STARTED, STOPPED)})
    counts = {(e.involved_object.name, e.reason): e.count for e in evs}
    assert all(counts[(f"s{i}", STARTED)] == 2 and counts[(f"s{i}", STOPPED)] == 1 for i in range(SERVICES))
    assert all(e.type == "Normal" and "node n1" in e.message for e in evs)
    assert not reporters[1].pending and not reporters[2].pending and reporters[1].events_written == 0
