"""A VIP moves from node1 to node2: with an announcement the client's neighbour entry follows at once."""

from __future__ import annotations

import asyncio

import pytest

from kubevip.lab.network import LabNetwork
from kubevip.net.addresses import AddressManager
from kubevip.net.announcer import Announcer
from kubevip.net.namespace import Netns
from tests.fixtures.waiting import eventually
from tests.net.l2.helpers import neighbour_mac, ping

pytestmark = pytest.mark.net

# Without an announcement the client keeps the old entry for many seconds (REACHABLE, then STALE ->
# DELAY 5 s -> PROBE); 2 s is far below that, so only the announcement can make these tests pass.
FOLLOW_WITHIN = 2.0
POLL = 0.01  # seconds between probes: fine enough to see the entry follow well inside FOLLOW_WITHIN


@pytest.mark.parametrize("family", [4, 6])
async def test_vip_moves_to_node2_and_client_follows(lab: LabNetwork, family: int) -> None:
    n1, n2 = lab.nodes
    vip = lab.vip(family)
    m1 = AddressManager(n1.interface, ns=Netns(n1.netns))
    m2 = AddressManager(n2.interface, ns=Netns(n2.netns))
    a1 = Announcer(ns=Netns(n1.netns), rate_ms=3000)
    a2 = Announcer(ns=Netns(n2.netns), rate_ms=3000)
    try:
        await asyncio.to_thread(m1.add, vip)
        await a1.start(vip, n1.interface)
        await eventually(
            lambda: asyncio.to_thread(ping, lab, lab.client.netns, vip),
            "client reaches the VIP on node1",
            5.0,
            interval=POLL,
        )
        assert await asyncio.to_thread(neighbour_mac, lab.client.netns, vip) == n1.mac

        # Takeover: node1 lets go, node2 adds and announces.
        await a1.stop(vip)
        await asyncio.to_thread(m1.remove, vip)
        await asyncio.to_thread(m2.add, vip)
        await a2.start(vip, n2.interface)
        await eventually(
            lambda: asyncio.to_thread(lambda: neighbour_mac(lab.client.netns, vip) == n2.mac),
            f"client neighbour entry for {vip} -> node2 {n2.mac}",
            FOLLOW_WITHIN,
            interval=POLL,
        )
        assert await asyncio.to_thread(ping, lab, lab.client.netns, vip)
    finally:
        await a1.close()
        await a2.close()


@pytest.mark.parametrize("family", [4, 6])
async def test_announcement_creates_a_missing_neighbour_entry(lab: LabNetwork, family: int) -> None:
    """A neighbour that never talked to the VIP learns it from the announcement. IPv4: arp_accept=1 (the
    lab sets it). IPv6: Linux creates an entry from an unsolicited NA only on a router (forwarding=1 with
    accept_untracked_na=1, RFC 9131), so the client plays the router here; hosts learn on first use."""
    if family == 6:
        lab.run(lab.client.netns, ["sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"])
    n1 = lab.nodes[0]
    vip = lab.vip(family, 5)
    await asyncio.to_thread(AddressManager(n1.interface, ns=Netns(n1.netns)).add, vip)
    assert await asyncio.to_thread(neighbour_mac, lab.client.netns, vip) is None
    ann = Announcer(ns=Netns(n1.netns))
    try:
        await ann.start(vip, n1.interface)
        await eventually(
            lambda: asyncio.to_thread(lambda: neighbour_mac(lab.client.netns, vip) == n1.mac),
            "neighbour entry created by the announcement",
            FOLLOW_WITHIN,
            interval=POLL,
        )
    finally:
        await ann.close()
