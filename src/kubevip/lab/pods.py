"""Nodes and pods without a kubelet: we write what a kubelet would report, the real controllers do the rest.

All functions take a kubernetes_asyncio ApiClient with admin rights (see `controlplane.api_client`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.ip import IPAddress

MERGE_PATCH = "application/merge-patch+json"


def _untyped(api: client.CoreV1Api) -> Any:
    """The generated signatures omit `_content_type`, which the runtime accepts."""
    return api


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def create_node(
    api: client.ApiClient,
    name: str,
    addresses: Sequence[IPAddress] = (),
    labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Create (or keep) a Node with InternalIP addresses in the given order and a Ready condition."""
    core = client.CoreV1Api(api)
    body = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
    }
    try:
        await core.create_node(cast(Any, body))
    except ApiException as exc:
        if exc.status != 409:
            raise
    status = {
        "addresses": [{"type": "InternalIP", "address": str(a)} for a in addresses]
        + [{"type": "Hostname", "address": name}],
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubevip lab",
            "lastHeartbeatTime": _now(), "lastTransitionTime": _now(),
        }],
    }
    # A JSON merge patch replaces lists: a strategic merge would merge two InternalIPs by type.
    resp = await _untyped(core).patch_node_status(name, {"status": status}, _content_type=MERGE_PATCH)
    return api_dict(api, resp)


async def delete_node(api: client.ApiClient, name: str) -> None:
    """Delete a Node (absent is fine)."""
    try:
        await client.CoreV1Api(api).delete_node(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def pod_body(
    namespace: str,
    name: str,
    node: str,
    labels: Mapping[str, str] | None = None,
    ports: Sequence[tuple[str, int, str]] = (("http", 80, "TCP"),),
) -> dict[str, Any]:
    """A minimal Pod bound to `node` (no scheduler runs); ports are (name, containerPort, protocol)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 30,
            "containers": [{
                "name": "app",
                "image": "registry.invalid/kubevip-lab:none",
                "ports": [{"name": n, "containerPort": p, "protocol": proto} for n, p, proto in ports],
            }],
        },
    }


def pod_status(pod_ips: Sequence[IPAddress], ready: bool) -> dict[str, Any]:
    """What a kubelet reports for a running pod: phase, podIP(s) in the given order, Ready condition."""
    cond = "True" if ready else "False"
    return {
        "phase": "Running",
        "podIP": str(pod_ips[0]) if pod_ips else None,
        "podIPs": [{"ip": str(ip)} for ip in pod_ips],
        "startTime": _now(),
        "conditions": [
            {"type": t, "status": s, "lastTransitionTime": _now()}
            for t, s in (("PodScheduled", "True"), ("Initialized", "True"), ("ContainersReady", cond),
                         ("Ready", cond))
        ],
    }


async def create_pod(
    api: client.ApiClient,
    namespace: str,
    name: str,
    node: str,
    labels: Mapping[str, str] | None = None,
    pod_ips: Sequence[IPAddress] = (),
    ready: bool = True,
    ports: Sequence[tuple[str, int, str]] = (("http", 80, "TCP"),),
) -> dict[str, Any]:
    """Create a Pod on `node` and report it Running with `pod_ips` (one per family, primary first)."""
    core = client.CoreV1Api(api)
    await core.create_namespaced_pod(namespace, cast(Any, pod_body(namespace, name, node, labels, ports)))
    return await set_pod_status(api, namespace, name, pod_ips, ready)


async def set_pod_status(
    api: client.ApiClient, namespace: str, name: str, pod_ips: Sequence[IPAddress], ready: bool
) -> dict[str, Any]:
    """Report the pod Running with these IPs and readiness (a kubelet's status update)."""
    core = client.CoreV1Api(api)
    resp = await _untyped(core).patch_namespaced_pod_status(
        name, namespace, {"status": pod_status(pod_ips, ready)}, _content_type=MERGE_PATCH
    )
    result: dict[str, Any] = api_dict(api, resp)
    return result


async def set_pod_ready(api: client.ApiClient, namespace: str, name: str, ready: bool) -> dict[str, Any]:
    """Flip only the Ready / ContainersReady conditions, keeping the pod's IPs."""
    core = client.CoreV1Api(api)
    pod = await core.read_namespaced_pod_status(name, namespace)
    ips = [ipaddress.ip_address(p.ip) for p in (pod.status.pod_ips or [])]
    return await set_pod_status(api, namespace, name, ips, ready)


async def delete_pod(api: client.ApiClient, namespace: str, name: str, grace_seconds: int = 0) -> None:
    """Delete a pod. grace 0 removes it at once; a grace > 0 leaves it terminating (no kubelet confirms),
    which the EndpointSlice controller publishes as `terminating` endpoints."""
    try:
        await client.CoreV1Api(api).delete_namespaced_pod(name, namespace, grace_period_seconds=grace_seconds)
    except ApiException as exc:
        if exc.status != 404:
            raise


async def move_pod(
    api: client.ApiClient, namespace: str, name: str, node: str, pod_ips: Sequence[IPAddress] | None = None
) -> dict[str, Any]:
    """Re-create the pod on another node (spec.nodeName is immutable), keeping labels, ports, readiness
    and, unless new ones are given, its IPs."""
    core = client.CoreV1Api(api)
    pod = await core.read_namespaced_pod(name, namespace)
    ips = pod_ips
    if ips is None:
        ips = [ipaddress.ip_address(p.ip) for p in (pod.status.pod_ips or [])]
    ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
    ports = [(p.name, p.container_port, p.protocol) for p in (pod.spec.containers[0].ports or [])]
    await delete_pod(api, namespace, name)
    return await create_pod(api, namespace, name, node, pod.metadata.labels or {}, ips, ready, ports)


def api_dict(api: client.ApiClient, obj: object) -> dict[str, Any]:
    """A model object as the plain JSON dict the API server sent (camelCase keys)."""
    result: dict[str, Any] = api.sanitize_for_serialization(obj)
    return result
