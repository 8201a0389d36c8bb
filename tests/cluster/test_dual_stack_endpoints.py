"""On the real control plane: what the EndpointSlice and Endpoints controllers publish for dual-stack pods,
and that `kubevip explain` on the objects read back from the cluster gives the core's answer."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip import cli
from kubevip.lab import podnet, pods
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Pod addresses inside the cluster CIDRs of the lab control plane (data only, never routed).
POD_IPS: tuple[tuple[IPAddress, IPAddress], ...] = (
    (ipaddress.IPv4Address("10.244.1.5"), ipaddress.IPv6Address("fd00:10:244:1::5")),
    (ipaddress.IPv4Address("10.244.2.6"), ipaddress.IPv6Address("fd00:10:244:2::6")),
)
VIP4 = "192.0.2.10"
VIP6 = "2001:db8::10"


async def make_backends(api: client.ApiClient, ns: str, ready: tuple[bool, ...] = (True, True)) -> list[str]:
    """Two nodes (named after the namespace) with one dual-stack pod each; returns the node names."""
    nodes = [f"{ns}-n{i}" for i in (1, 2)]
    for node in nodes:
        await pods.create_node(api, node)
    await seen_by_controllers(api, nodes)
    for i, (node, (v4, v6)) in enumerate(zip(nodes, POD_IPS, strict=True)):
        await pods.create_pod(api, ns, f"web-{i}", node, {"app": "web"}, [v4, v6], ready=ready[i])
    return nodes


async def seen_by_controllers(api: client.ApiClient, nodes: list[str]) -> None:
    """Wait until the controller-manager's informers have the Nodes (its node IPAM gave each its pod
    CIDRs). The EndpointSlice controller skips a pod whose Node it has not seen yet and retries the
    Service with a backoff that doubles from 1 s: on a busy run, where its informers lagged by seconds,
    that made one wait below take 35 s where it takes 2 s alone."""
    for node in nodes:
        await podnet.node_pod_cidrs(api, node)


def service_body(name: str, policy: str, families: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "ipFamilyPolicy": policy,
        "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
    }
    if families is not None:
        spec["ipFamilies"] = families
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "annotations": {"kube-vip.io/loadbalancerIPs": f"{VIP4},{VIP6}"}},
        "spec": spec,
    }


async def read_back(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    """Service, its EndpointSlices and Endpoints as plain JSON dicts, as the cluster stores them."""
    core, disc = client.CoreV1Api(api), client.DiscoveryV1Api(api)
    svc = await core.read_namespaced_service(name, ns)
    slices = await disc.list_namespaced_endpoint_slice(
        ns, label_selector=f"kubernetes.io/service-name={name}"
    )
    try:
        legacy: Any = await core.read_namespaced_endpoints(name, ns)
    except client.ApiException as exc:
        if exc.status != 404:
            raise
        legacy = None
    return {
        "service": pods.api_dict(api, svc),
        "slices": [pods.api_dict(api, s) for s in slices.items],
        "endpoints": pods.api_dict(api, legacy) if legacy is not None else None,
    }


def slice_addresses(objs: dict[str, Any]) -> dict[str, set[str]]:
    """addressType -> all endpoint addresses of the Service's slices."""
    out: dict[str, set[str]] = {}
    for s in objs["slices"]:
        for ep in s.get("endpoints") or []:
            out.setdefault(s["addressType"], set()).update(ep["addresses"])
    return out


def legacy_addresses(objs: dict[str, Any]) -> set[str]:
    eps = objs["endpoints"] or {}
    return {a["ip"] for sub in eps.get("subsets") or [] for a in (sub.get("addresses") or [])}


async def published(
    api: client.ApiClient, ns: str, name: str, want_slices: dict[str, set[str]], want_legacy: set[str]
) -> dict[str, Any]:
    """Wait until both controllers have published exactly the wanted addresses; return the objects."""

    async def probe() -> dict[str, Any] | None:
        objs = await read_back(api, ns, name)
        ok = slice_addresses(objs) == want_slices and legacy_addresses(objs) == want_legacy
        return objs if ok else None

    # The controllers batch their writes and, on a loaded 2-core machine, took over 30 s: a deadline only.
    return await eventually(
        probe, f"endpoints of {ns}/{name} == {want_slices} / legacy {want_legacy}", within=120.0
    )


def explain(objs: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """Run `kubevip explain -o json` on the objects written to a file as one kind: List."""
    items = [objs["service"], *objs["slices"]]
    if objs["endpoints"] is not None:
        items.append(objs["endpoints"])
    for kind, obj in zip(
        ("Service", *["EndpointSlice"] * len(objs["slices"]), "Endpoints"), items, strict=False
    ):
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", "discovery.k8s.io/v1" if kind == "EndpointSlice" else "v1")
    path = tmp_path / "objects.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    capsys.readouterr()
    assert cli.main(["explain", "-f", str(path), "-o", "json"]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def v4s() -> set[str]:
    return {str(v4) for v4, _ in POD_IPS}


def v6s() -> set[str]:
    return {str(v6) for _, v6 in POD_IPS}


async def test_single_stack_ipv4_over_dual_stack_pods_publishes_only_ipv4(
    kube_admin: client.ApiClient, kube_namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = kube_namespace
    await make_backends(kube_admin, ns)
    await client.CoreV1Api(kube_admin).create_namespaced_service(
        ns, service_body("v4only", "SingleStack", ["IPv4"])
    )
    objs = await published(kube_admin, ns, "v4only", {"IPv4": v4s()}, v4s())
    assert objs["service"]["spec"]["ipFamilies"] == ["IPv4"]
    assert all(ipaddress.ip_address(ip).version == 4 for ip in objs["service"]["spec"]["clusterIPs"])

    doc = explain(objs, tmp_path, capsys)
    assert doc["families"] == ["IPv4"]
    assert [(v["address"], v["family"]) for v in doc["vips"]] == [(VIP4, "IPv4")]
    assert doc["rejected"] == [{"address": VIP6, "reason": "family-not-served"}]
    assert doc["announce"] is True
    assert set(doc["endpoints"]) == {"IPv4"}
    assert {e["address"] for e in doc["endpoints"]["IPv4"]} == v4s()


async def test_require_dual_stack_publishes_both_families_and_legacy_only_the_primary(
    kube_admin: client.ApiClient, kube_namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = kube_namespace
    await make_backends(kube_admin, ns)
    await client.CoreV1Api(kube_admin).create_namespaced_service(
        ns, service_body("dual", "RequireDualStack", None)
    )
    objs = await published(kube_admin, ns, "dual", {"IPv4": v4s(), "IPv6": v6s()}, v4s())
    # The API server fills in the cluster's primary family first.
    assert objs["service"]["spec"]["ipFamilies"] == ["IPv4", "IPv6"]

    doc = explain(objs, tmp_path, capsys)
    assert doc["families"] == ["IPv4", "IPv6"]
    assert [(v["address"], v["family"]) for v in doc["vips"]] == [(VIP4, "IPv4"), (VIP6, "IPv6")]
    assert doc["rejected"] == [] and doc["announce"] is True
    assert {e["address"] for e in doc["endpoints"]["IPv4"]} == v4s()
    assert {e["address"] for e in doc["endpoints"]["IPv6"]} == v6s()


async def test_ipv6_primary_service_keeps_its_order(
    kube_admin: client.ApiClient, kube_namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = kube_namespace
    await make_backends(kube_admin, ns)
    body = service_body("v6first", "PreferDualStack", ["IPv6", "IPv4"])
    await client.CoreV1Api(kube_admin).create_namespaced_service(ns, body)
    # Legacy Endpoints carry only the Service's primary family: IPv6 here.
    objs = await published(kube_admin, ns, "v6first", {"IPv4": v4s(), "IPv6": v6s()}, v6s())
    spec = objs["service"]["spec"]
    assert spec["ipFamilies"] == ["IPv6", "IPv4"]
    assert [ipaddress.ip_address(ip).version for ip in spec["clusterIPs"]] == [6, 4]

    doc = explain(objs, tmp_path, capsys)
    assert doc["families"] == ["IPv6", "IPv4"]
    assert list(doc["endpoints"]) == ["IPv6", "IPv4"]
    assert [v["family"] for v in doc["vips"]] == ["IPv6", "IPv4"]


async def test_not_ready_pod_leaves_usable_endpoints_and_comes_back(
    kube_admin: client.ApiClient, kube_namespace: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = kube_namespace
    await make_backends(kube_admin, ns, ready=(True, False))
    await client.CoreV1Api(kube_admin).create_namespaced_service(
        ns, service_body("half", "RequireDualStack", None)
    )
    ready4, ready6 = (str(a) for a in POD_IPS[0])

    async def ready_flags() -> tuple[dict[str, Any], set[tuple[str, bool]]]:
        objs = await read_back(kube_admin, ns, "half")
        flags = {
            (a, bool(ep["conditions"].get("ready")))
            for s in objs["slices"]
            for ep in s.get("endpoints") or []
            for a in ep["addresses"]
        }
        return objs, flags

    async def slices_with_ready_flags() -> dict[str, Any] | None:
        objs, flags = await ready_flags()
        return objs if len(flags) == 4 else None

    objs = await eventually(slices_with_ready_flags, "slices list all four addresses")
    doc = explain(objs, tmp_path, capsys)
    assert {e["address"] for e in doc["endpoints"]["IPv4"]} == {ready4}
    assert {e["address"] for e in doc["endpoints"]["IPv6"]} == {ready6}

    await pods.set_pod_ready(kube_admin, ns, "web-1", True)
    await published(kube_admin, ns, "half", {"IPv4": v4s(), "IPv6": v6s()}, v4s())

    # The slices listed web-1 all along (not ready); the legacy Endpoints may flip to ready before the
    # EndpointSlice controller writes the new condition, so wait for the slices' flags themselves.
    async def all_ready() -> dict[str, Any] | None:
        objs, flags = await ready_flags()
        return objs if len(flags) == 4 and all(ready for _, ready in flags) else None

    objs = await eventually(all_ready, "slices mark all four addresses ready", within=120.0)
    doc = explain(objs, tmp_path, capsys)
    assert {e["address"] for e in doc["endpoints"]["IPv4"]} == v4s()


async def test_moved_pod_is_published_on_its_new_node(
    kube_admin: client.ApiClient, kube_namespace: str
) -> None:
    ns = kube_namespace
    n1, n2 = await make_backends(kube_admin, ns)
    await client.CoreV1Api(kube_admin).create_namespaced_service(
        ns, service_body("mv", "SingleStack", ["IPv4"])
    )
    await pods.move_pod(kube_admin, ns, "web-0", n2)

    async def on_n2() -> bool:
        objs = await read_back(kube_admin, ns, "mv")
        nodes = {ep.get("nodeName") for s in objs["slices"] for ep in s.get("endpoints") or []}
        return nodes == {n2} and slice_addresses(objs) == {"IPv4": v4s()}

    await eventually(on_n2, f"both endpoints on {n2} (web-0 moved from {n1})")
