"""DHCP VIPs end to end (docs/dhcp.md): a real dnsmasq on the lab segment, agents in the node namespaces.

One Service asking `0.0.0.0` goes through its whole life: allocation (status, kube-vip's annotations,
the host name the server sees, the VIP answering), renewals, failover to another node with the same
address (no RELEASE, the same MAC and client id), and the RELEASE on deletion. A second test, with Kea
(leases of seconds; dnsmasq's shortest is 2 minutes), takes the server away: the VIP stays while its lease
is valid, then goes with a Warning, and comes back with the server."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path

import pytest

from kubevip.core.dhcp import derive_mac, macvlan_name
from kubevip.core.eligibility import ANNOTATION_NODE_SELECTOR
from kubevip.core.views import IPAddress
from kubevip.lab.agents import policy_env
from kubevip.lab.dhcpserver import DhcpServer, KeaServer
from kubevip.lab.network import LabNetwork
from kubevip.net.interfaces import existing_links
from kubevip.net.namespace import Netns
from tests.e2e.conftest import E2E
from tests.fixtures.prereqs import require, require_binary

pytestmark = pytest.mark.e2e


@pytest.fixture
def kea_server(lab_network: LabNetwork, tmp_path: Path) -> Iterator[KeaServer]:
    require_binary("kea-dhcp4")
    require(4 in lab_network.families, "an IPv4 lab network (DHCPv4)")
    server = KeaServer(lab_network, tmp_path / "kea")
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def dhcp_server(lab_network: LabNetwork, tmp_path: Path) -> Iterator[DhcpServer]:
    require_binary("dnsmasq")
    require(4 in lab_network.families, "an IPv4 lab network (DHCPv4)")
    server = DhcpServer(lab_network, tmp_path / "dhcp")
    server.up()
    try:
        yield server
    finally:
        server.down()


def _start(e2e: E2E, server: DhcpServer) -> None:
    allowed = policy_env(e2e.lab)["vip_allowed_cidrs"]
    e2e.start_agents(vip_allowed_cidrs=f"{allowed},{server.cidrs}")


async def _annotations(e2e: E2E, name: str) -> dict[str, str]:
    svc = await e2e.core.read_namespaced_service(name, e2e.ns)
    return dict(svc.metadata.annotations or {})


async def _leased_ingress(e2e: E2E, name: str, server: DhcpServer) -> ipaddress.IPv4Address | None:
    first, last = server.range
    for ip, _mode in await e2e.ingress(name):
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv4Address) and first <= addr <= last:
            return addr
    return None


async def _has_macvlan(e2e: E2E, node: str, name: str) -> bool:
    return bool(await asyncio.to_thread(existing_links, {name}, Netns(e2e.lab.node(node).netns)))


async def test_dhcp_vip_lifecycle(e2e: E2E, dhcp_server: DhcpServer) -> None:
    """Placement applies as to any VIP (docs/placement.md): the Service's node selector leaves one node out,
    which never runs its client, not even when it is the only other node alive after the failover."""
    key = f"{e2e.ns}/web"
    mac = derive_mac(key)
    excluded = e2e.nodes[0].name
    await e2e.service("web", "0.0.0.0", annotations={
        "kube-vip.io/loadbalancerHostname": "web-dhcp",
        ANNOTATION_NODE_SELECTOR: f"kubernetes.io/hostname notin ({excluded})",
    })
    _start(e2e, dhcp_server)

    # Allocation: the status names the leased address, kube-vip's annotations say what was used.
    vip = await e2e.eventually(lambda: _leased_ingress(e2e, "web", dhcp_server), "a leased address in status")
    ann = await e2e.eventually(
        lambda: _ann_if(e2e, "web", lambda a: a.get("kube-vip.io/requestedIP") == str(vip)),
        "requestedIP written")
    assert ann["kube-vip.io/hwaddr"] == mac
    assert dhcp_server.leases()[mac] == (str(vip), "web-dhcp"), "the server leased it to our MAC, by name"
    holder = await e2e.eventually(lambda: e2e.reach(vip), "the leased VIP answers")
    assert holder != excluded
    assert await e2e.holders(vip) == set(), "the VIP is on the macvlan, not on eth0"
    assert await _has_macvlan(e2e, holder, macvlan_name(key))
    await e2e.eventually(lambda: _is(e2e.vip_host("web"), holder), "vipHost names the holder")

    # Renewal (T1 = 3 s): the server acknowledges again, the address stays.
    acks = dhcp_server.count("DHCPACK", mac)
    await e2e.eventually(lambda: dhcp_server.count("DHCPACK", mac) > acks, "a renewal acknowledged")
    assert await e2e.reach(vip) == holder

    # Failover: the holder goes; another node asks the same address with the same MAC, no RELEASE.
    e2e.fleet.agents[holder].signal(signal.SIGTERM)
    await asyncio.to_thread(e2e.fleet.agents[holder].stop)
    other = await e2e.eventually(lambda: _reach_other(e2e, vip, holder), "another node answers the same VIP")
    assert dhcp_server.count("DHCPRELEASE", mac) == 0, "a failover keeps the lease"
    assert dhcp_server.leases()[mac][0] == str(vip)
    await e2e.eventually(lambda: _is(_leased_ingress(e2e, "web", dhcp_server), vip), "the status keeps it")
    await e2e.eventually(lambda: _is(e2e.vip_host("web"), other), "vipHost names the new holder")
    assert not await _has_macvlan(e2e, holder, macvlan_name(key)), "the old holder removed its macvlan"
    assert other != excluded
    # The node the selector refuses never started a client for the Service, nor made its macvlan.
    assert not await _has_macvlan(e2e, excluded, macvlan_name(key))
    started = f"DHCP for {key} IPv4: client starting"
    assert started not in e2e.fleet.agents[excluded].log_path.read_text(errors="replace")
    assert started in e2e.fleet.agents[other].log_path.read_text(errors="replace"), "the log line checked"

    # Deletion: the address goes back to the server and the macvlan goes.
    await e2e.delete_service("web")
    await e2e.eventually(lambda: dhcp_server.count("DHCPRELEASE", mac) >= 1, "DHCPRELEASE on deletion")
    await e2e.eventually(lambda: mac not in dhcp_server.leases(), "the lease is gone from the server")
    await e2e.eventually(lambda: _no_macvlan(e2e, other, macvlan_name(key)), "macvlan removed")


async def test_dhcp_server_away_lease_expires_and_server_returns(e2e: E2E, kea_server: KeaServer) -> None:
    """With Kea (leases of 8 s, T1 2 s, T2 4 s): `::` next to `0.0.0.0` on an IPv4 SingleStack Service
    gives one DHCPv4 lease, a Warning for `::` and no IPv6 on the macvlan. Then the server goes away: the
    VIP stays on its holder until the lease's own end (the server's expiry time of the last lease it
    acknowledged), then leaves, with a `dhcp-lease-expired` Warning; a Service with a fixed VIP keeps its
    VIP and gets no Warning. The server returns: the Service leases an address again."""
    key = f"{e2e.ns}/away"
    mac = derive_mac(key)
    ifname = macvlan_name(key)
    fixed = e2e.vip(4)
    await e2e.service("away", "0.0.0.0,::")
    await e2e.service("fixed", [fixed])
    _start(e2e, kea_server)
    vip = await e2e.eventually(lambda: _leased_ingress(e2e, "away", kea_server), "a leased address")
    holder = await e2e.eventually(lambda: e2e.reach(vip), "the leased VIP answers")
    fixed_holder = await e2e.eventually(lambda: e2e.reach(fixed), "the fixed VIP answers")
    assert [ip for ip, _ in await e2e.ingress("away") if ":" in ip] == []
    # The macvlan carries no IPv6 at all: no link-local address, so no DHCPv6 (nor ND) can leave it.
    assert await _addresses(e2e, holder, ifname, 6) == set()
    assert await e2e.eventually(lambda: _with(e2e, "away", "family-not-served"), "a Warning for `::`")
    acks = kea_server.count("DHCPACK", mac)
    await e2e.eventually(lambda: kea_server.count("DHCPACK", mac) > acks, "a renewal acknowledged", within=30)

    log = e2e.fleet.agents[holder].log_path
    rebinds = log.read_text(errors="replace").count("-> REBINDING")
    kea_server.stop()  # by its PID
    expires = kea_server.expiry(mac)
    assert expires is not None and expires > time.time(), "the last acknowledged lease is still valid"
    # Until the lease's end the VIP stays on the holder's macvlan. Kea writes the expiry in whole seconds,
    # truncated from the acknowledgement's instant, so the client's lease never ends before it; each
    # sample ends 0.2 s before it (the time one `ip addr` read takes on a busy machine).
    samples = 0
    while time.time() < expires - 0.2:
        assert await _addresses(e2e, holder, ifname, 4) == {vip}, (
            f"the VIP left {holder} {expires - time.time():.2f} s before its lease's end")
        samples += 1
        await asyncio.sleep(0.1)  # sampling interval, not a synchronisation
    assert samples > 0
    assert log.read_text(errors="replace").count("-> REBINDING") > rebinds, "the client rebound (T2)"
    # Then it goes, with a Warning; the status no longer names it.
    await e2e.eventually(lambda: _lacks(e2e, holder, ifname, vip), "the VIP leaves the macvlan", within=15)
    assert await e2e.eventually(lambda: _with(e2e, "away", "dhcp-lease-expired"), "a lease-expired Warning")
    await e2e.eventually(lambda: _is(_leased_ingress(e2e, "away", kea_server), None), "status without it")
    assert await e2e.reach(vip) is None, "no node answers the expired VIP"
    # Nobody else paid: the fixed VIP stays where it was, with no Warning.
    assert await e2e.reach(fixed) == fixed_holder
    assert [str(ip) for ip, _ in await e2e.ingress("fixed")] == [str(fixed)]
    assert [e for e in await e2e.events("fixed") if e[0] == "Warning"] == []

    # The server returns: the client, still asking, leases an address again and the VIP answers.
    await asyncio.to_thread(kea_server.start)
    again = await e2e.eventually(lambda: _leased_ingress(e2e, "away", kea_server), "leased again", within=60)
    await e2e.eventually(lambda: e2e.reach(again), "the VIP answers again")


async def _ann_if(e2e: E2E, name: str, cond: object) -> dict[str, str] | None:
    ann = await _annotations(e2e, name)
    return ann if callable(cond) and cond(ann) else None


async def _is(value: Awaitable[object], want: object) -> bool:
    return await value == want


async def _addresses(e2e: E2E, node: str, ifname: str, family: int) -> set[IPAddress]:
    argv = ["ip", f"-{family}", "-o", "addr", "show", "dev", ifname, "scope", "global"]
    out = await e2e.lab.run_async(e2e.lab.node(node).netns, argv)
    return {ipaddress.ip_interface(line.split()[3]).ip for line in out.stdout.splitlines() if line.strip()}


async def _lacks(e2e: E2E, node: str, ifname: str, vip: ipaddress.IPv4Address) -> bool:
    return vip not in await _addresses(e2e, node, ifname, 4)


async def _no_macvlan(e2e: E2E, node: str, name: str) -> bool:
    return not await _has_macvlan(e2e, node, name)


async def _reach_other(e2e: E2E, vip: ipaddress.IPv4Address, old: str) -> str | None:
    got = await e2e.reach(vip)
    return got if got and got != old else None


async def _with(e2e: E2E, name: str, text: str) -> list[tuple[str, str, str]]:
    return [e for e in await e2e.events(name) if text in e[2] or text in e[1].lower()]
