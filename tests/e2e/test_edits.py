"""Service edits end to end: a VIP edit moves the address, `kube-vip.io/ignore` and a foreign
loadBalancerClass withdraw it, a type change away from LoadBalancer withdraws it and clears status."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def test_vip_edit_ignore_class_and_type_change(e2e: E2E) -> None:
    a, b = e2e.vip(4), e2e.vip(4)
    await e2e.service("edit", [a])
    e2e.start_agents()
    await e2e.eventually(lambda: e2e.reach(a), "first VIP answers")

    await _annotate(e2e, {"kube-vip.io/loadbalancerIPs": str(b)})
    await e2e.eventually(lambda: e2e.reach(b), "edited VIP answers")
    await e2e.eventually(lambda: _nowhere(e2e, a), "old VIP removed everywhere")
    await e2e.eventually(lambda: _ingress_is(e2e, [str(b)]), "status follows the edit")

    await _annotate(e2e, {"kube-vip.io/ignore": "true"})
    await e2e.eventually(lambda: _nowhere(e2e, b), "ignored Service withdrawn")
    await _annotate(e2e, {"kube-vip.io/ignore": None})
    await e2e.eventually(lambda: e2e.reach(b), "announced again once not ignored")

    await e2e.core.patch_namespaced_service("edit", e2e.ns, {"spec": {"type": "ClusterIP"}})
    await e2e.eventually(lambda: _nowhere(e2e, b), "ClusterIP Service withdrawn")
    await e2e.eventually(lambda: _ingress_is(e2e, []), "status cleared")


async def test_foreign_load_balancer_class_is_left_alone(e2e: E2E) -> None:
    ours, theirs, mine = e2e.vip(4), e2e.vip(4), e2e.vip(4)
    await e2e.service("ours", [ours])
    await e2e.service("theirs", [theirs], lb_class="example.com/other")
    await e2e.service("classed", [mine], lb_class="kube-vip.io/kube-vip-class")
    e2e.start_agents()
    await e2e.eventually(lambda: e2e.reach(ours), "a Service without class answers")
    await e2e.eventually(lambda: e2e.reach(mine), "a Service of our class answers")
    assert await _nowhere(e2e, theirs)
    assert await e2e.ingress("theirs") == []


async def _annotate(e2e: E2E, ann: dict[str, str | None]) -> None:
    await e2e.core.patch_namespaced_service("edit", e2e.ns, {"metadata": {"annotations": ann}})


async def _nowhere(e2e: E2E, vip: object) -> bool:
    return not any(vip in addrs for addrs in (await e2e.owned()).values())


async def _ingress_is(e2e: E2E, ips: list[str]) -> bool:
    return [ip for ip, _ in await e2e.ingress("edit")] == ips
