"""kube/ on the real control plane, with the kube-vip token (exactly the RBAC `kubevip manifest rbac` grants):
watches resume and relist, writers set status (ipMode VIP), vipHost and Events once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Backoff, Reflector
from kubevip.kube.writers import ANNOTATION_VIP_HOST, COMPONENT, Writer
from kubevip.lab import versions
from kubevip.lab.controlplane import ControlPlane
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster


def lb_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": "PreferDualStack",
            "ports": [{"port": 80, "protocol": "TCP"}],
        },
    }


async def test_reflector_lists_watches_and_survives_apiserver_restart(
    control_plane: ControlPlane,
    kube_admin: client.ApiClient,
    rest_kubevip: RestClient,
    kube_namespace: str,
) -> None:
    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    await core.create_namespaced_service(ns, lb_service("before"))
    seen: dict[str, dict[str, Any]] = {}
    replaced: list[int] = []

    def on_replace(listed: Iterable[dict[str, Any]]) -> None:
        items = list(listed)
        replaced.append(len(items))
        seen.clear()
        seen.update({i["metadata"]["name"]: i for i in items})

    def on_event(kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            seen.pop(obj["metadata"]["name"], None)
        else:
            seen[obj["metadata"]["name"]] = obj

    r = Reflector(
        "services",
        rest_kubevip,
        f"/api/v1/namespaces/{ns}/services",
        on_replace,
        on_event,
        backoff=Backoff(first=0.05, cap=0.5),
        request_timeout=3.0,
        idle_timeout=5.0,
        watch_timeout=2,
    )
    guard = TaskGroupGuard("test")
    spawn(guard, "reflector", r.run())
    try:
        await eventually(lambda: "before" in seen, "initial list")
        await core.create_namespaced_service(ns, lb_service("during"))
        await eventually(lambda: "during" in seen, "watch event ADDED")
        # Watch timeouts end the stream (watch_timeout=2): the reflector resumes from its resourceVersion.
        watches = r.watches
        await eventually(lambda: r.watches > watches + 1, "watch resumed after its timeout")
        assert len(replaced) == 1, "a normal watch end must resume, not relist"
        assert r.failures == 0, "a watch the server ended on time is not a failure"
        control_plane.stop_apiserver()
        control_plane.start_apiserver()
        await core.delete_namespaced_service("before", ns)
        await eventually(lambda: "before" not in seen, "DELETED seen after the API server came back")
        assert not guard.crashed
    finally:
        await guard.close()


async def test_reflector_relists_on_gone(
    kube_admin: client.ApiClient, rest_admin: RestClient, kube_namespace: str
) -> None:
    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    await core.create_namespaced_service(ns, lb_service("a"))
    items: list[list[str]] = []
    restarts: list[str] = []
    r = Reflector(
        "services",
        rest_admin,
        f"/api/v1/namespaces/{ns}/services",
        lambda its: items.append([i["metadata"]["name"] for i in its]),
        lambda k, o: None,
        backoff=Backoff(first=0.05, cap=0.2),
        on_restart=restarts.append,
        resource_version="1",  # watch first, from far too old a version: the API server answers 410 Gone
    )
    guard = TaskGroupGuard("test")
    spawn(guard, "reflector", r.run())
    try:
        got = await eventually(lambda: items, "relist after 410")
        assert got[0] == ["a"]
        assert restarts == ["gone"] and r.lists == 1
    finally:
        await guard.close()


async def test_writers_with_kube_vip_rbac(
    kube_admin: client.ApiClient, rest_kubevip: RestClient, kube_namespace: str,
    control_plane: ControlPlane,
) -> None:
    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    await core.create_namespaced_service(ns, lb_service("web"))
    w = Writer(rest_kubevip, "node-a")
    await w.service_status(ns, "web", ("198.18.0.200", "fd6b:7669:7000::c8"))
    await w.vip_host(ns, "web", "node-a")
    svc = await core.read_namespaced_service("web", ns)
    mode = "VIP" if versions.keeps_ip_mode(control_plane.server_version()) else None  # 1.29 drops it
    assert [(i.ip, i.ip_mode) for i in svc.status.load_balancer.ingress] == [
        ("198.18.0.200", mode),
        ("fd6b:7669:7000::c8", mode),
    ]
    assert svc.metadata.annotations[ANNOTATION_VIP_HOST] == "node-a"
    await w.service_status(ns, "web", ())
    await w.vip_host(ns, "web", None)
    svc = await core.read_namespaced_service("web", ns)
    assert not (svc.status.load_balancer.ingress or [])
    assert ANNOTATION_VIP_HOST not in (svc.metadata.annotations or {})
    uid = svc.metadata.uid
    assert await w.event(ns, "web", uid, "web.kubevip-test", "Warning", "not-an-ip", "bad")
    assert not await w.event(ns, "web", uid, "web.kubevip-test", "Warning", "not-an-ip", "bad")
    evs = await core.list_namespaced_event(ns)
    # The API server's own controllers may add Events (e.g. ClusterIPNotAllocated): count only ours.
    ours = [e for e in evs.items if e.reporting_component == COMPONENT]
    assert [(e.reason, e.type) for e in ours] == [("not-an-ip", "Warning")]


async def test_report_lease_with_kube_vip_rbac_create_replace_and_conflict(
    kube_admin: client.ApiClient, rest_kubevip: RestClient,
) -> None:
    """The report Lease `kubevip status` reads (agent/presence.py): created, then replaced with PUT on the
    version last written (the agent's RBAC grants no Lease patch); a stale version re-reads, not fails."""
    import secrets

    from kubevip.core.report import REPORT_LABEL, report_lease_name

    coord = client.CoordinationV1Api(kube_admin)
    ns, node = "kube-system", f"kvt-{secrets.token_hex(3)}"
    name = report_lease_name(node)
    w = Writer(rest_kubevip, node)
    try:
        v1 = await w.agent_report(ns, name, {REPORT_LABEL: "true"}, {"kubevip.io/vips": "[]"}, node, 30)
        v2 = await w.agent_report(ns, name, {REPORT_LABEL: "true"}, {"kubevip.io/vips": "[1]"}, node, 30, v1)
        assert v1 and v2 and v1 != v2
        # Someone else (a previous process of this node) wrote meanwhile: our version is stale.
        await coord.patch_namespaced_lease(name, ns, {"metadata": {"annotations": {"x": "y"}}})
        v3 = await w.agent_report(ns, name, {REPORT_LABEL: "true"}, {"kubevip.io/vips": "[2]"}, "", 30, v2)
        lease = await coord.read_namespaced_lease(name, ns)
        assert lease.metadata.resource_version == v3
        assert lease.metadata.annotations["kubevip.io/vips"] == "[2]"
        assert lease.metadata.labels[REPORT_LABEL] == "true" and not lease.spec.holder_identity
    finally:
        await coord.delete_namespaced_lease(name, ns)
