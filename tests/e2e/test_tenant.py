"""A namespace user (a ServiceAccount bound to `edit` in its own namespace, nothing else) tries to steal
addresses and to join another namespace's VIP; the lab's agents (address policy: the lab's VIP pool)
refuse with Warnings and every other Service keeps working (docs/security.md)."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client

from kubevip.lab.client import api_client
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e

SHARE = "kube-vip.io/allow-shared-ip"


async def tenant_client(e2e: E2E, namespace: str) -> client.ApiClient:
    """A client acting as `system:serviceaccount:<namespace>:tenant` with namespace-edit rights in
    `namespace` only (impersonated by the admin, so the API server applies exactly the tenant's RBAC).
    The Role spells out what the built-in `edit` grants on these resources: the lab's controller manager
    does not run the ClusterRole aggregation that fills `edit` in."""
    core = client.CoreV1Api(e2e.api)
    rbac = client.RbacAuthorizationV1Api(e2e.api)
    await core.create_namespaced_service_account(namespace, {"metadata": {"name": "tenant"}})
    write = ["create", "delete", "deletecollection", "patch", "update", "get", "list", "watch"]
    await rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "namespace-edit"},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "pods", "endpoints", "configmaps"], "verbs": write},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": write},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        ],
    })
    await rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "tenant-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "namespace-edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": namespace}],
    })
    api = await api_client(e2e.cp.admin_kubeconfig)
    api.set_default_header("Impersonate-User", f"system:serviceaccount:{namespace}:tenant")
    api.set_default_header("Impersonate-Group", "system:serviceaccounts")
    return api


@pytest.fixture
async def tenant(e2e: E2E) -> AsyncIterator[client.ApiClient]:
    api = await tenant_client(e2e, e2e.ns)
    try:
        yield api
    finally:
        await api.close()


def lb(name: str, vips: str, port: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        # Responders stand in for pods (no EndpointSlices): kube-vip's opt-in announces the Service anyway.
        "metadata": {
            "name": name, "annotations": {"kube-vip.io/loadbalancerIPs": vips,
                                          "kube-vip.io/allow-reconcile-without-endpoints": "true",
                                          **(annotations or {})},
        },
        "spec": {
            "type": "LoadBalancer", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "selector": {"app": name}, "allocateLoadBalancerNodePorts": False,
            "ports": [{"name": "p", "protocol": "TCP", "port": port, "targetPort": port}],
        },
    }


async def test_a_tenant_cannot_steal_an_address(e2e: E2E, tenant: client.ApiClient) -> None:
    core = client.CoreV1Api(tenant)
    # The tenant really has only namespace rights: it cannot even read the Nodes it attacks.
    with pytest.raises(client.ApiException) as denied:
        await core.list_node()
    assert denied.value.status == 403

    node = e2e.nodes[1]
    admin = client.CoreV1Api(e2e.api)
    cluster_ip = (await admin.read_namespaced_service("kubernetes", "default")).spec.cluster_ip
    good = e2e.vip(4)
    outside = ipaddress.ip_address(int(e2e.vip(4)) + 256)  # the next /24: outside the lab's pool
    stolen = {
        str(node.ipv4): "node-address",
        cluster_ip: "service-cidr",
        "255.255.255.255": "limited-broadcast",
        "0.0.0.1": "reserved-range",
        "240.0.0.1": "reserved-range",
        str(outside): "not-allowed",
    }
    await core.create_namespaced_service(e2e.ns, lb("thief", ",".join([*stolen, str(good)]), 8080))
    await core.create_namespaced_service(e2e.ns, lb("bystander", str(e2e.vip(4)), 8080))
    await e2e.pod("thief", e2e.nodes[0].name)
    e2e.start_agents()

    assert await e2e.eventually(lambda: e2e.reach(good), "the thief's one allowed VIP answers")
    warnings = await e2e.eventually(
        lambda: _reasons(e2e, "thief", set(stolen.values())), "a Warning for every refused address"
    )
    for addr, reason in stolen.items():
        assert any(r == reason and repr(addr) in m for r, m in warnings), (addr, reason, warnings)
    # One Event per reason, aggregated (the two reserved-range addresses share one, with a count), not
    # one per address per node.
    reasons = [r for r, _ in warnings]
    assert len(reasons) == len(set(reasons)), warnings
    (reserved,) = [m for r, m in warnings if r == "reserved-range"]
    assert reserved.startswith("2 addresses not used: reserved-range"), reserved
    owned = await e2e.owned()
    for addr in stolen:
        assert all(ipaddress.ip_address(addr) not in held for held in owned.values()), (addr, owned)
    bystander = await admin.read_namespaced_service("bystander", e2e.ns)
    assert bystander.metadata.annotations["kube-vip.io/loadbalancerIPs"]
    assert not [e for e in await e2e.events("bystander") if e[0] == "Warning"]


async def _reasons(e2e: E2E, name: str, want: set[str]) -> list[tuple[str, str]] | None:
    got = [(r, m) for t, r, m in await e2e.events(name) if t == "Warning"]
    return got if want <= {r for r, _ in got} else None


async def _unused_vips(e2e: E2E, admin: client.CoreV1Api, n: int) -> list[ipaddress.IPv4Address]:
    """`n` fresh pool addresses that no Service in any namespace names."""
    used: set[str] = set()
    for svc in (await admin.list_service_for_all_namespaces()).items:
        ann = (svc.metadata.annotations or {}).get("kube-vip.io/loadbalancerIPs", "")
        used |= {a.strip() for a in ann.split(",")} | {svc.spec.load_balancer_ip or ""}
    out: list[ipaddress.IPv4Address] = []
    for _ in range(50):  # the pool's size: every address once
        v = e2e.vip(4)
        if str(v) not in used and v not in out:
            out.append(v)  # type: ignore[arg-type]
        if len(out) == n:
            return out
    raise AssertionError(f"no {n} unused pool addresses (used: {sorted(used)})")


async def test_another_namespace_cannot_join_a_vip(e2e: E2E, tenant: client.ApiClient) -> None:
    """Namespace B names A's VIP: refused (the earlier Service keeps it), unless both consent."""
    other = f"{e2e.ns}b"  # not "-b": "-" sorts before "/", and a tie would favour B
    admin = client.CoreV1Api(e2e.api)
    await admin.create_namespace({"metadata": {"name": other}})
    b_api = await tenant_client(e2e, other)
    try:
        # These agents watch every namespace: a Service of an earlier test (its namespace still being
        # deleted) that names the same pool address is the earlier one and would keep it.
        vip, shared = await _unused_vips(e2e, admin, 2)
        await client.CoreV1Api(tenant).create_namespaced_service(e2e.ns, lb("mine", str(vip), 8080))
        key = secrets.token_hex(4)
        await client.CoreV1Api(tenant).create_namespaced_service(
            e2e.ns, lb("open", str(shared), 8080, {SHARE: key}))
        e2e.start_agents(svc_namespace="")  # every namespace (the agents' default)
        await e2e.eventually(lambda: e2e.reach(vip), "A's VIP answers")
        b = client.CoreV1Api(b_api)
        intruder_obj = await b.create_namespaced_service(other, lb("intruder", str(vip), 9090))
        await b.create_namespaced_service(other, lb("partner", str(shared), 9091, {SHARE: key}))
        mine = await admin.read_namespaced_service("mine", e2e.ns)
        # creationTimestamp has one-second resolution and the agents can answer within the same second:
        # the rule is "earlier, then the string namespace/name", and "<ns>/" sorts before "<ns>b/".
        assert (intruder_obj.metadata.creation_timestamp, f"{other}/intruder") > (
            mine.metadata.creation_timestamp, f"{e2e.ns}/mine")

        async def refused() -> list[str] | None:
            evs = await admin.list_namespaced_event(other)
            got = [e.message for e in evs.items if e.involved_object.name == "intruder"
                   and e.reason == "cross-namespace-sharing"]
            return got or None

        (msg, *_) = await e2e.eventually(refused, "a Warning for the intruder")
        assert f"{e2e.ns}/mine" in msg and str(vip) in msg
        intruder = await admin.read_namespaced_service_status("intruder", other)
        assert not intruder.status.load_balancer.ingress, "the intruder is given nothing"
        assert await e2e.reach(vip) is not None, "A's VIP still answers"

        async def partner_status() -> list[str] | None:
            s = await admin.read_namespaced_service_status("partner", other)
            return [i.ip for i in s.status.load_balancer.ingress or []] or None

        assert await e2e.eventually(partner_status, "the consenting partner shares") == [str(shared)]
    finally:
        await b_api.close()
        await admin.delete_namespace(other)


async def test_namespaces_get_exactly_their_ipam_pools(e2e: E2E, tenant: client.ApiClient) -> None:
    """`vip_allowed_from_pools=true`: the agents read the IPAM ConfigMap (with their own RBAC, in the
    lease namespace) and allow each namespace its pools only."""
    mine, other = e2e.vip(4), e2e.vip(4)
    admin = client.CoreV1Api(e2e.api)
    await admin.create_namespaced_config_map(e2e.ns, {
        "metadata": {"name": "kubevip"},
        "data": {f"cidr-{e2e.ns}": f"{mine}/32", "cidr-global": "192.0.2.0/28"},
    })
    core = client.CoreV1Api(tenant)
    await core.create_namespaced_service(e2e.ns, lb("inpool", str(mine), 8080))
    await core.create_namespaced_service(e2e.ns, lb("outside", str(other), 8080))
    e2e.start_agents(vip_allowed_cidrs="", vip_allowed_from_pools="true", KUBEVIP_NAMESPACE=e2e.ns)
    assert await e2e.eventually(lambda: e2e.reach(mine), "the namespace's pool address answers")
    warnings = await e2e.eventually(
        lambda: _reasons(e2e, "outside", {"not-allowed"}), "a Warning for the address outside its pool"
    )
    (msg,) = [m for r, m in warnings if r == "not-allowed"]
    assert repr(str(other)) in msg and f"IPAM pool of namespace {e2e.ns!r}" in msg
    assert all(other not in held for held in (await e2e.owned()).values())
