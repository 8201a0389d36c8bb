"""The agent's Sources (Services + EndpointSlices reflectors -> World) on the real API server: a Service
whose watch event is longer than aiohttp's line reader allows (512 KiB with aiohttp 3.14) reaches the
World and the watch lives on (it used to kill the Service watch task, and /healthz turned 503 on every
agent)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client

from kubevip.agent.sources import Sources
from kubevip.core.world import World
from kubevip.kube.client import connect
from kubevip.kube.rest import RestClient
from kubevip.lab.controlplane import ControlPlane
from kubevip.metrics import Metrics
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster


@pytest.fixture
async def api(control_plane: ControlPlane) -> AsyncIterator[RestClient]:
    async with await connect(control_plane.kubevip_kubeconfig) as c:  # kube-vip's RBAC, as the agent
        yield c


def lb(name: str, annotations: dict[str, str] | None = None,
       labels: dict[str, str] | None = None) -> dict[str, object]:
    return {"metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}


async def test_a_service_event_above_512_kib_reaches_the_world(
    api: RestClient, kube_admin: client.ApiClient, kube_namespace: str
) -> None:
    ns, world, touched = kube_namespace, World(), set[str]()
    broken: list[tuple[str, str, str]] = []
    sources = Sources(api, world, ns, False, touched.update, Metrics("node-x"),
                      lambda *a: broken.append(a))
    guard = TaskGroupGuard("sources")
    for r in sources.reflectors:
        spawn(guard, r.name, r.run())
    try:
        await eventually(lambda: sources.synced, "Services and EndpointSlices listed")
        core = client.CoreV1Api(kube_admin)
        # Annotations are capped at 256 KiB, labels are not counted: 3000 labels (also listed in
        # managedFields) take the object, and its watch event, past 512 KiB.
        labels = {f"example.com/l{i:04d}-{'k' * 50}": "v" * 63 for i in range(3000)}
        await core.create_namespaced_service(ns, lb("big", {"example.com/blob": "x" * 250_000}, labels))
        await core.create_namespaced_service(ns, lb("small"))
        await eventually(lambda: {f"{ns}/big", f"{ns}/small"} <= set(world.services),
                         "both Services in the World", detail=lambda: f"broken {broken}")
        assert {f"{ns}/big", f"{ns}/small"} <= touched
        assert all(r.lists == 1 and r.failures == 0 for r in sources.reflectors)  # no restart at all
        assert not guard.crashed and len(guard.tasks) == len(sources.reflectors)
    finally:
        await guard.close()
