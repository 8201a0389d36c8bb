"""IPAM end to end: a dual-stack Service created without any VIP gets one address per family from the
lab's IPAM pool (the upper half of each VIP pool), and the client reaches both."""

from __future__ import annotations

import ipaddress

import pytest

from kubevip.ipam.controller import IpamController, IpamSettings
from kubevip.ipam.service import ANNOTATION_IPS
from kubevip.kube.rest import RestClient
from kubevip.lab.ipam import configmap, ipam_pool
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def test_service_without_vip_gets_pool_addresses_and_answers(e2e: E2E, rest_admin: RestClient) -> None:
    pool = ipam_pool(e2e.lab.vip_pool)
    # The pool serves this test's namespace only, so no other test's Service is touched.
    data = {f"range-{e2e.ns}": configmap(pool)["data"]["range-global"]}  # type: ignore[index]
    await e2e.core.create_namespaced_config_map(
        e2e.ns, {"metadata": {"name": "kvt-ipam", "namespace": e2e.ns}, "data": data}
    )
    ctl = IpamController(rest_admin, IpamSettings(configmap="kvt-ipam", namespace=e2e.ns, retry_seconds=0.5))
    await ctl.start()
    try:
        await e2e.pod("web", e2e.nodes[0].name)
        await e2e.service("web", "", families=("IPv6", "IPv4"), policy="PreferDualStack", selector="web")
        e2e.start_agents()

        async def allocated() -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] | None:
            svc = await e2e.core.read_namespaced_service("web", e2e.ns)
            text = (svc.metadata.annotations or {}).get(ANNOTATION_IPS) or ""
            addrs = tuple(ipaddress.ip_address(x) for x in text.split(",") if x)
            return addrs if len(addrs) == 2 else None

        v6, v4 = await e2e.eventually(allocated, "IPAM writes one address per family")
        assert v6.version == 6 and v4.version == 4  # ipFamilies order: IPv6 first
        for a in (v4, v6):
            first, last = pool[a.version]
            assert first <= a <= last, f"{a} outside the IPAM pool {first}-{last}"
        assert await e2e.eventually(lambda: e2e.reach(v4), "client reaches the allocated IPv4 VIP")
        assert await e2e.eventually(lambda: e2e.reach(v6), "client reaches the allocated IPv6 VIP")
    finally:
        await ctl.close()
    assert not ctl.crashed
