"""`kube-vip.io/serviceInterface` end to end: every node gets a second interface on the lab bridge; an
annotated dual-stack Service is announced there and answers the client, a plain Service stays on eth0, a
Service naming a missing interface is announced nowhere (a Warning says why), and removing the
annotation moves the VIPs back to eth0."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import pytest

from kubevip.core.interface import ANNOTATION_SERVICE_INTERFACE
from kubevip.errors import NetworkError
from kubevip.lab.network import LabNetwork
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from tests.e2e.conftest import E2E, IPAddress

pytestmark = pytest.mark.e2e

SECOND = "eth1"


def _second_interfaces(lab: LabNetwork, tag: str) -> list[str]:
    """A veth per node: `eth1` in the node, its peer a port of the lab bridge; returns the bridge ports."""
    assert lab.topology is not None
    br = lab.topology.bridge_netns
    ports: list[str] = []
    for i, node in enumerate(lab.nodes):
        port = f"kvtsi{tag}{i}"
        lab.run(br, ["ip", "link", "add", port, "type", "veth", "peer", "name", SECOND, "netns", node.netns])
        ports.append(port)
        # Like eth0: no DAD (an IPv6 VIP must answer at once), no router advertisements.
        lab.run(node.netns, ["sysctl", "-qw", f"net.ipv6.conf.{SECOND}.accept_dad=0",
                             f"net.ipv6.conf.{SECOND}.accept_ra=0"])
        lab.run(node.netns, ["ip", "link", "set", SECOND, "up"])
        lab.run(br, ["ip", "link", "set", port, "master", "br0", "up"])
    return ports


def _remove(lab: LabNetwork, ports: list[str]) -> None:
    assert lab.topology is not None
    for port in ports:  # deleting one end of a veth deletes both, and the VIPs on them
        lab.run(lab.topology.bridge_netns, ["ip", "link", "del", port], check=False)


@pytest.fixture
async def second(e2e: E2E) -> AsyncIterator[str]:
    tag = secrets.token_hex(2)
    ports: list[str] = []
    try:
        ports = await asyncio.to_thread(_second_interfaces, e2e.lab, tag)
        yield SECOND
    finally:
        await asyncio.to_thread(_remove, e2e.lab, ports)


def _where(e2e: E2E, vip: IPAddress) -> set[str]:
    """`node/interface` for every node interface on which kubevip owns `vip`."""
    out: set[str] = set()
    for n in e2e.nodes:
        for ifname in (n.interface, SECOND):
            try:
                if vip in {a for a, _ in AddressManager(ifname, Netns(n.netns)).owned()}:
                    out.add(f"{n.name}/{ifname}")
            except NetworkError:  # the interface may be gone during teardown
                continue
    return out


async def where(e2e: E2E, vip: IPAddress) -> set[str]:
    return await asyncio.to_thread(_where, e2e, vip)


async def test_service_interface_annotation(e2e: E2E, second: str) -> None:
    v4, v6, plain, lost = e2e.vip(4), e2e.vip(6), e2e.vip(4), e2e.vip(4)
    await e2e.service("onif", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack",
                      annotations={ANNOTATION_SERVICE_INTERFACE: second})
    await e2e.service("plain", [plain])
    await e2e.service("lost", [lost], annotations={ANNOTATION_SERVICE_INTERFACE: "eth9"})
    # The annotation is honoured only for interfaces the operator allows (docs/security.md).
    e2e.start_agents(vip_allowed_interfaces=f"{second},eth9")

    async def on_second(vip: IPAddress) -> str | None:
        places = await where(e2e, vip)
        if len(places) != 1 or not next(iter(places)).endswith(f"/{second}"):
            return None
        node = next(iter(places)).split("/")[0]
        return node if await e2e.reach(vip) == node else None

    n4 = await e2e.eventually(lambda: on_second(v4), f"IPv4 VIP only on {second}, answering")
    n6 = await e2e.eventually(lambda: on_second(v6), f"IPv6 VIP only on {second}, answering")
    assert n4 and n6
    host = await e2e.eventually(lambda: e2e.reach(plain), "the plain Service answers")
    assert await where(e2e, plain) == {f"{host}/eth0"}, "a Service without the annotation stays on eth0"

    # No node has eth9: once the agents published their links, placement refuses every node for it
    # (docs/placement.md) and one Warning names each node's reason. (An agent elected before the links
    # were published may also have said service-interface-missing meanwhile.)
    events = await e2e.eventually(lambda: _warnings(e2e, "lost", "no-eligible-node"),
                                  "a Warning: no node has the interface")
    (_, _, msg) = events[0]
    for n in e2e.nodes:
        assert f"{n.name}: node-lacks-interface" in msg, msg
    assert ANNOTATION_SERVICE_INTERFACE in msg and "'eth9'" in msg, msg
    assert await where(e2e, lost) == set(), "not announced on another interface"
    assert await e2e.reach(lost, wait=0.5) is None

    await e2e.core.patch_namespaced_service(
        "onif", e2e.ns, {"metadata": {"annotations": {ANNOTATION_SERVICE_INTERFACE: None}}}
    )

    async def back_on_eth0(vip: IPAddress) -> bool:
        places = await where(e2e, vip)
        return len(places) == 1 and next(iter(places)).endswith("/eth0") and await e2e.reach(vip) is not None

    await e2e.eventually(lambda: back_on_eth0(v4), "IPv4 VIP moved back to eth0")
    await e2e.eventually(lambda: back_on_eth0(v6), "IPv6 VIP moved back to eth0")


async def _warnings(e2e: E2E, name: str, reason: str | None = None) -> list[tuple[str, str, str]]:
    return [e for e in await e2e.events(name) if e[0] == "Warning" and reason in (None, e[1])]
