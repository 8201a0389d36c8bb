"""The seed scenario end to end: a SingleStack IPv4 Service over pods with IPv4 and IPv6 addresses gets
its IPv4 VIP on exactly one node, announced and in status, and nothing IPv6 anywhere."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.mark.parametrize("endpoints", ["slices", "legacy"])
async def test_seed_single_stack_ipv4_over_dual_stack_pods(e2e: E2E, endpoints: str) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    n2 = e2e.nodes[1].name
    await e2e.pod("seed", n2)  # dual-stack pod on node 2 only
    # The VIP list names both families (as a user might); the Service serves IPv4 only.
    await e2e.service("seed", [v4, v6], families=("IPv4",), policy="SingleStack", etp="Local")
    e2e.start_agents(enable_endpoints="true" if endpoints == "legacy" else "false")

    await e2e.eventually(lambda: _is(e2e.holders(v4), {n2}), f"{v4} on {n2} only (its local IPv4 endpoint)")
    assert await e2e.eventually(lambda: e2e.reach(v4), "client reaches the IPv4 VIP") == n2
    assert await e2e.eventually(lambda: e2e.ingress("seed"), "status lists the IPv4 VIP") == [
        (str(v4), "VIP")
    ]
    await e2e.eventually(lambda: _is(e2e.vip_host("seed"), n2), "vipHost names the announcing node")
    # Nothing IPv6 anywhere: no IPv6 VIP on any node, not answering, not in status.
    owned = await e2e.owned()
    assert all(a.version == 4 for addrs in owned.values() for a in addrs), owned
    assert await e2e.reach(v6, wait=0.5) is None
    assert all(ipaddress.ip_address(ip).version == 4 for ip, _ in await e2e.ingress("seed"))
    warnings = await e2e.eventually(
        lambda: _warnings(e2e, "seed"), "a Warning for the IPv6 VIP of an IPv4-only Service"
    )
    assert any(r == "family-not-served" and str(v6) in m for _, r, m in warnings)


async def _warnings(e2e: E2E, name: str) -> list[tuple[str, str, str]]:
    return [e for e in await e2e.events(name) if e[0] == "Warning"]


async def _is(value: Awaitable[T], expected: T) -> bool:
    return await value == expected
