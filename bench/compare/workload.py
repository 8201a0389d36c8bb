"""Services, pods and VIPs the scenarios create, and reads of what the agents did with them."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from compare.kubeapi import ApiError, Kube
from kubevip.lab import pods as labpods

NS = "kvbench"
APP = "kvbench-app"
FAMILIES = ("ipv4", "ipv6")
# Off-link VIPs for the scale runs (the lab's on-link pool has 50 per family): private space used only
# on interfaces inside the lab's node namespaces, never routed anywhere.
SCALE_V4 = ipaddress.IPv4Network("10.201.0.0/16")
SCALE_V6 = ipaddress.IPv6Network("fd6b:7669:7001::/64")


def family_of(addr: str) -> str:
    return "ipv6" if ipaddress.ip_address(addr).version == 6 else "ipv4"


def scale_vips(i: int) -> dict[str, str]:
    return {"ipv4": str(SCALE_V4.network_address + 1 + i), "ipv6": str(SCALE_V6.network_address + 1 + i)}


def service_body(
    name: str,
    vips: dict[str, str],
    families: Sequence[str] = FAMILIES,
    policy: str = "RequireDualStack",
    selector: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A LoadBalancer Service whose VIPs come from kube-vip's `loadbalancerIPs` annotation."""
    fam = {"ipv4": "IPv4", "ipv6": "IPv6"}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": NS,
            "annotations": {"kube-vip.io/loadbalancerIPs": ",".join(vips[f] for f in families if f in vips)},
        },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": policy,
            "ipFamilies": [fam[f] for f in families],
            "selector": selector or {"app": APP},
            "ports": [{"name": "udp", "port": 17007, "protocol": "UDP", "targetPort": 17007}],
            "externalTrafficPolicy": "Cluster",
        },
    }


def create_pods(kube: Kube, nodes: Sequence[str], app: str = APP, prefix: str = "p") -> None:
    """One Running, Ready pod per node with an IPv4 and an IPv6 address (IPv4 first), as a kubelet reports."""
    for i, node in enumerate(nodes):
        name = f"{prefix}-{app}-{i}"
        ips = [
            ipaddress.ip_address(f"10.244.{100 + i}.10"),
            ipaddress.ip_address(f"fd00:10:244:{100 + i:x}::10"),
        ]
        try:
            kube.create(f"/api/v1/namespaces/{NS}/pods", labpods.pod_body(NS, name, node, {"app": app}))
        except ApiError as exc:
            if exc.status != 409:
                raise
        status = {"status": labpods.pod_status(ips, True)}
        kube.merge_patch(f"/api/v1/namespaces/{NS}/pods/{name}/status", status)


def svc_path(name: str) -> str:
    return f"/api/v1/namespaces/{NS}/services/{name}"


def create_service(kube: Kube, body: dict[str, Any]) -> None:
    kube.create(f"/api/v1/namespaces/{NS}/services", body)


def delete_services(kube: Kube, names: Iterable[str]) -> None:
    for n in names:
        kube.delete(svc_path(n))


def delete_all_services(kube: Kube) -> None:
    """One DELETE for the whole collection: the API server answers only when every Service is gone,
    which with 1000 Services on a busy machine takes minutes (30 s timed out in every attempt)."""
    kube.request("DELETE", f"/api/v1/namespaces/{NS}/services", timeout=600.0, attempts=2)


def node_addresses(netns: str, interface: str) -> set[str]:
    """Addresses on the node's lab interface now (global scope only)."""
    out = subprocess.run(
        ["ip", "-n", netns, "-j", "addr", "show", "dev", interface],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    addrs: set[str] = set()
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                addrs.add(str(ipaddress.ip_address(a["local"])))
    return addrs


def slices_published(kube: Kube, want: int) -> bool:
    """Whether the workload namespace holds `want` EndpointSlices: one item and the count of the rest (a
    full list of thousands of slices, polled, would load the API server whose catch-up it waits for)."""
    page = kube.get(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices?limit=1")
    rest = int((page.get("metadata") or {}).get("remainingItemCount") or 0)
    return len(page.get("items") or []) + rest >= want


def wait_for(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `check` until true or the deadline; returns whether it became true."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
