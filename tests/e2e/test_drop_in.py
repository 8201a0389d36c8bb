"""kube-vip's names and rules in the lab (issue 15): `kube-vip.io/leaseName: X` is Lease X in the
Service's namespace, shared by the Services naming it; a leaseName of another namespace is refused with a
Warning and no Lease; a Cluster Service without endpoints is elected in advance but waits for kube-vip's
opt-in to be announced; an unsupported kube-vip annotation (UPnP) gets one `UnsupportedAnnotation`
Warning."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def _holder(e2e: E2E, name: str, ns: str | None = None) -> str | None:
    try:
        lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(name, ns or e2e.ns)
    except ApiException:
        return None
    return lease.spec.holder_identity or None


async def _leases(e2e: E2E) -> set[str]:
    out = await client.CoordinationV1Api(e2e.api).list_namespaced_lease(e2e.ns)
    return {lease.metadata.name for lease in out.items}


async def test_kube_vip_lease_names_and_rules(e2e: E2E) -> None:
    a4, b4, bad4, dark4, odd4 = (e2e.vip(4) for _ in range(5))
    shared = {"kube-vip.io/leaseName": "shared"}
    await e2e.service("a", [a4], annotations=shared)
    await e2e.service("b", [b4], annotations={"kube-vip.io/leaseName": f"{e2e.ns}/shared"})
    await e2e.service("bad", [bad4], annotations={"kube-vip.io/leaseName": "kube-node-lease/node-1"})
    await e2e.service("dark", [dark4], allow_no_endpoints=False)
    await e2e.service("odd", [odd4], annotations={"kube-vip.io/forwardUPNP": "true"})
    e2e.start_agents(vip_electionmode="lease", svc_election="true")

    holder = await e2e.eventually(lambda: _holder(e2e, "shared"), "Lease `shared` (kube-vip's name) held")
    assert await e2e.eventually(lambda: e2e.reach(a4), "a answered") == holder
    assert await e2e.eventually(lambda: e2e.reach(b4), "b answered") == holder  # one Lease, one holder

    async def refused() -> bool:
        return any(r == "invalid-lease-name" and "kube-node-lease/node-1" in m
                   for _, r, m in await e2e.events("bad"))

    await e2e.eventually(refused, "an invalid-lease-name Warning for `bad`")

    async def unsupported() -> list[str]:
        return [m for t, r, m in await e2e.events("odd") if (t, r) == ("Warning", "UnsupportedAnnotation")]

    [msg] = await e2e.eventually(unsupported, "one UnsupportedAnnotation Warning for `odd`")
    assert "kube-vip.io/forwardUPNP" in msg
    assert await e2e.eventually(lambda: e2e.reach(odd4), "odd still announced")

    # The endpoint-less Cluster Service is elected in advance on its Lease (kube-vip's name; kube-vip
    # would wait for endpoints, docs/migration.md) but not announced; the refused one has neither.
    early = await e2e.eventually(lambda: _holder(e2e, "kubevip-dark"), "kubevip-dark elected in advance")
    leases = await _leases(e2e)
    assert "kubevip-bad" not in leases and "node-1" not in leases
    assert await _holder(e2e, "node-1", "kube-node-lease") is None
    assert await e2e.holders(bad4) == set() and await e2e.holders(dark4) == set()

    # kube-vip's opt-in announces the endpoint-less Cluster Service, from the node elected in advance.
    await e2e.core.patch_namespaced_service("dark", e2e.ns, {"metadata": {"annotations": {
        "kube-vip.io/allow-reconcile-without-endpoints": "true"}}})
    assert await e2e.eventually(lambda: e2e.reach(dark4), "dark announced after the opt-in") == early
    assert await _holder(e2e, "kubevip-dark") == early
