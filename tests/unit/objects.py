"""Kubernetes-shaped dicts for agent unit tests (the shapes a real dual-stack API server returns)."""

from __future__ import annotations

from typing import Any


def service(
    name: str,
    vips: str = "",
    *,
    ns: str = "default",
    families: tuple[str, ...] = ("IPv4",),
    policy: str = "SingleStack",
    etp: str = "Cluster",
    ports: tuple[tuple[str, int], ...] = (("TCP", 80),),
    type_: str = "LoadBalancer",
    created: str = "2026-01-01T00:00:00Z",
    annotations: dict[str, str] | None = None,
    lb_class: str | None = None,
) -> dict[str, Any]:
    ann = dict(annotations or {})
    if vips:
        ann["kube-vip.io/loadbalancerIPs"] = vips
    cips = {"IPv4": "10.96.0.10", "IPv6": "fd00:96::10"}
    spec: dict[str, Any] = {
        "type": type_,
        "ipFamilies": list(families),
        "ipFamilyPolicy": policy,
        "clusterIPs": [cips[f] for f in families],
        "externalTrafficPolicy": etp,
        "ports": [{"name": f"p{i}", "protocol": p, "port": n} for i, (p, n) in enumerate(ports)],
    }
    if lb_class:
        spec["loadBalancerClass"] = lb_class
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{ns}-{name}",
            "resourceVersion": "1",
            "creationTimestamp": created,
            "annotations": ann,
        },
        "spec": spec,
    }


def slice_(
    svc: str,
    family: str,
    eps: list[tuple[str, str]],
    *,
    ns: str = "default",
    suffix: str = "a",
    ready: bool = True,
) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{svc}-{family.lower()}-{suffix}",
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": svc},
        },
        "addressType": family,
        "endpoints": [{"addresses": [a], "nodeName": n, "conditions": {"ready": ready}} for a, n in eps],
    }


def holdings(plans: Any, rule: Any) -> dict[str, str | None]:
    """The election's outcome as data (unit -> holder) from a rule `(unit, eligible nodes) -> holder`."""
    from kubevip.core.rows import unit_eligibility

    return {u: rule(u, e) for u, e in unit_eligibility(plans).items()}
