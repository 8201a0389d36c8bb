"""Kubernetes-JSON dict builders for core tests (shapes as the API server returns them)."""

from __future__ import annotations

from typing import Any


def service(
    name: str = "web",
    namespace: str = "default",
    *,
    families: list[str] | None = None,
    policy: str | None = "SingleStack",
    cluster_ips: list[str] | None = None,
    lb_ips: str | None = None,
    lb_ip: str | None = None,
    etp: str = "Cluster",
    svc_type: str = "LoadBalancer",
    annotations: dict[str, str] | None = None,
    allow_no_endpoints: bool = True,
) -> dict[str, Any]:
    """`allow_no_endpoints`: a Cluster Service is announced without endpoints (kube-vip's opt-in
    annotation), so tests about other rules need no EndpointSlices; False to test that rule."""
    ann = dict(annotations or {})
    if allow_no_endpoints and etp == "Cluster":
        ann.setdefault("kube-vip.io/allow-reconcile-without-endpoints", "true")
    if lb_ips is not None:
        ann["kube-vip.io/loadbalancerIPs"] = lb_ips
    spec: dict[str, Any] = {
        "type": svc_type,
        "externalTrafficPolicy": etp,
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
    }
    if families is not None:
        spec["ipFamilies"] = families
    if policy is not None:
        spec["ipFamilyPolicy"] = policy
    if cluster_ips is not None:
        spec["clusterIPs"] = cluster_ips
        spec["clusterIP"] = cluster_ips[0]
    if lb_ip is not None:
        spec["loadBalancerIP"] = lb_ip
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "annotations": ann},
        "spec": spec,
    }


def ep(
    address: str,
    node: str | None = "n1",
    ready: bool | None = True,
    serving: bool | None = None,
    terminating: bool | None = None,
) -> dict[str, Any]:
    cond: dict[str, Any] = {}
    for key, value in (("ready", ready), ("serving", serving), ("terminating", terminating)):
        if value is not None:
            cond[key] = value
    out: dict[str, Any] = {"addresses": [address], "conditions": cond}
    if node is not None:
        out["nodeName"] = node
    return out


def endpointslice(
    name: str,
    address_type: str,
    endpoints: list[dict[str, Any]],
    service_name: str | None = "web",
    namespace: str = "default",
) -> dict[str, Any]:
    labels = {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}
    if service_name is not None:
        labels["kubernetes.io/service-name"] = service_name
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def endpoints(
    ready: list[tuple[str, str]],
    not_ready: list[tuple[str, str]] | None = None,
    name: str = "web",
    namespace: str = "default",
) -> dict[str, Any]:
    subset: dict[str, Any] = {"addresses": [{"ip": ip, "nodeName": node} for ip, node in ready]}
    if not_ready:
        subset["notReadyAddresses"] = [{"ip": ip, "nodeName": node} for ip, node in not_ready]
    subset["ports"] = [{"name": "http", "port": 8080, "protocol": "TCP"}]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": namespace},
        "subsets": [subset],
    }
