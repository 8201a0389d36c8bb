"""Dual-stack policies end to end: PreferDualStack with two VIPs, RequireDualStack with one, IPv6-primary."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def test_prefer_dual_stack_two_vips_both_reachable(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("dual", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents()
    assert await e2e.eventually(lambda: e2e.reach(v4), "IPv4 VIP answers")
    assert await e2e.eventually(lambda: e2e.reach(v6), "IPv6 VIP answers")
    assert await e2e.eventually(
        lambda: _equal(e2e.ingress("dual"), [(str(v4), "VIP"), (str(v6), "VIP")]), "status lists both VIPs"
    )
    h4, h6 = await e2e.holders(v4), await e2e.holders(v6)
    assert len(h4) == len(h6) == 1, f"each VIP on exactly one node: {h4} {h6}"
    # vipHost names the node announcing the primary family's VIP.
    assert await e2e.eventually(lambda: _equal(e2e.vip_host("dual"), next(iter(h4))), "vipHost")


async def test_require_dual_stack_with_one_vip_announces_nothing(e2e: E2E) -> None:
    v4 = e2e.vip(4)
    ok = e2e.vip(4)
    await e2e.service("req", [v4], families=("IPv4", "IPv6"), policy="RequireDualStack")
    await e2e.service("ok", [ok])  # a healthy neighbour shows the agents are working
    e2e.start_agents()
    await e2e.eventually(lambda: e2e.reach(ok), "the healthy Service answers")
    events = await e2e.eventually(lambda: _warnings(e2e, "req"), "a Warning for RequireDualStack")
    assert [r for _, r, _ in events] == ["require-dual-stack-unmet"], events
    assert not any(v4 in addrs for addrs in (await e2e.owned()).values())
    assert await e2e.ingress("req") == []
    assert await e2e.reach(v4, wait=0.5) is None


async def test_ipv6_primary_keeps_order(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("v6first", [v4, v6], families=("IPv6", "IPv4"), policy="PreferDualStack")
    e2e.start_agents()
    # Status follows the Service's own family order: IPv6 first.
    assert await e2e.eventually(
        lambda: _equal(e2e.ingress("v6first"), [(str(v6), "VIP"), (str(v4), "VIP")]),
        "status lists IPv6 first",
    )
    assert await e2e.eventually(lambda: e2e.reach(v6), "IPv6 VIP answers")
    assert await e2e.eventually(lambda: e2e.reach(v4), "IPv4 VIP answers")


async def _equal(value: object, expected: object) -> bool:
    return await value == expected  # type: ignore[misc]


async def _warnings(e2e: E2E, name: str) -> list[tuple[str, str, str]]:
    return [e for e in await e2e.events(name) if e[0] == "Warning"]
