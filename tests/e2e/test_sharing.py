"""A TCP and a UDP Service share one VIP: announced from one node, kept until the last one goes;
a third Service with a clashing port gets a Warning and the earlier keeps the address."""

from __future__ import annotations

import pytest

from kubevip.lab.agents import RESPONDER_PORT
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def test_tcp_and_udp_share_a_vip_until_the_last_goes(e2e: E2E) -> None:
    vip = e2e.vip(4)
    await e2e.service("dns-tcp", [vip], ports=(("TCP", RESPONDER_PORT),))
    await e2e.service("dns-udp", [vip], ports=(("UDP", RESPONDER_PORT),))
    e2e.start_agents()
    tcp = await e2e.eventually(lambda: e2e.reach(vip, "TCP"), "TCP answers on the shared VIP")
    udp = await e2e.eventually(lambda: e2e.reach(vip, "UDP"), "UDP answers on the shared VIP")
    assert tcp == udp, "both Services are announced from the same node"
    assert await e2e.eventually(lambda: _has(e2e, "dns-udp", str(vip)), "UDP Service status")
    assert await e2e.eventually(lambda: _has(e2e, "dns-tcp", str(vip)), "TCP Service status")
    for name in ("dns-tcp", "dns-udp"):
        await e2e.eventually(lambda name=name: _host_is(e2e, name, tcp), f"vipHost of {name}")

    await e2e.delete_service("dns-tcp")
    # The VIP stays while dns-udp uses it: it must keep answering throughout.
    for _ in range(20):
        assert await e2e.holders(vip) == {tcp}
        assert await e2e.reach(vip, "UDP") == tcp
    await e2e.delete_service("dns-udp")
    await e2e.eventually(lambda: _none(e2e, vip), "VIP gone after the last Service")


async def test_clashing_ports_earlier_keeps_the_vip(e2e: E2E) -> None:
    vip = e2e.vip(4)
    await e2e.service("first", [vip])
    e2e.start_agents()
    await e2e.eventually(lambda: _has(e2e, "first", str(vip)), "first Service announced")
    await e2e.service("second", [vip])  # same TCP port
    events = await e2e.eventually(lambda: _warnings(e2e, "second"), "a Warning for the clash")
    assert any(r == "vip-port-clash" and "first" in m for _, r, m in events), events
    assert await e2e.ingress("second") == []
    assert (await e2e.ingress("first")) == [(str(vip), "VIP")]


async def _has(e2e: E2E, name: str, ip: str) -> bool:
    return [i for i, _ in await e2e.ingress(name)] == [ip]


async def _host_is(e2e: E2E, name: str, node: str) -> bool:
    return await e2e.vip_host(name) == node


async def _none(e2e: E2E, vip: object) -> bool:
    return not await e2e.holders(vip)  # type: ignore[arg-type]


async def _warnings(e2e: E2E, name: str) -> list[tuple[str, str, str]]:
    return [e for e in await e2e.events(name) if e[0] == "Warning"]
