"""Agents in BGP mode against a real router (gobgpd, bird2, FRR) in the lab: the router's RIB holds exactly
the expected host routes with the expected next hops (ECMP over exactly the nodes with local endpoints for
externalTrafficPolicy Local), follows pods and deletions, loses a killed agent's routes, regains them on
restart; a client behind the router reaches the VIPs (for daemons that program the kernel)."""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubevip.core.dhcp import MACVLAN_PREFIX
from kubevip.errors import BgpError
from kubevip.lab import pods
from kubevip.lab.agents import RESPONDER_PORT
from kubevip.lab.bgp import LabBgp
from kubevip.lab.network import LabNetwork
from kubevip.lab.routers import DAEMONS, Rib
from kubevip.lab.topology import Endpoint
from kubevip.net.addresses import AddressManager
from kubevip.net.macvlan import macvlans
from kubevip.net.namespace import Netns
from tests.e2e.conftest import E2E
from tests.net.test_bgp_speaker import _require_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.bgp]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# What is under test is BGP, not election speed: Leases that survive a loaded machine (CI runs many
# control planes on two cores) so that a Cluster VIP does not lapse while the RIB is being compared.
TIMINGS = {"vip_leaseduration": "6", "vip_renewdeadline": "4", "vip_retryperiod": "0.5"}


@pytest.fixture(params=DAEMONS)
def lab_router(request: pytest.FixtureRequest, lab_network: LabNetwork, tmp_path: Path) -> Iterator[LabBgp]:
    daemon: str = request.param
    _require_daemon(daemon)
    state = tmp_path / "bgp"
    state.mkdir()
    bgp = LabBgp(lab_network, state)
    try:
        bgp.up(daemon)
        yield bgp
    finally:
        bgp.down()


class Bgp:
    """One test's router view next to its E2E harness."""

    def __init__(self, e2e: E2E, router: LabBgp) -> None:
        self.e2e = e2e
        self.router = router
        reader = router.reader()
        assert reader is not None
        self.reader = reader
        self.by_name = {n.name: n for n in e2e.nodes}

    def start_agents(self) -> None:
        self.e2e.start_agents(**self.router.agent_env(), **TIMINGS)

    async def rib(self) -> Rib:
        try:
            return {**await self.reader.rib(4), **await self.reader.rib(6)}
        except BgpError:  # the daemon's CLI may be busy starting
            return {}

    def hop(self, node: str, version: int) -> IPAddress:
        n = self.by_name[node]
        return n.ipv4 if version == 4 else n.ipv6

    async def eventually_rib(self, want: dict[IPAddress, set[str]], what: str, within: float = 45) -> None:
        """Until the RIB is exactly `want` (VIP -> node names; next hops of the VIP's family)."""
        expected = {
            ipaddress.ip_network(v): frozenset(self.hop(n, v.version) for n in names)
            for v, names in want.items()
        }
        deadline = time.monotonic() + within
        got: Rib = {}
        while time.monotonic() < deadline:
            got = await self.rib()
            if got == expected:
                return
            await asyncio.sleep(0.1)
        pytest.fail(f"{what}: router RIB is {got}, expected {expected}\n{self.e2e.fleet.logs()}")

    async def reach(self, vip: IPAddress) -> str:
        return await asyncio.to_thread(self.router.probe, vip, RESPONDER_PORT)

    def cleanup(self) -> None:
        self.e2e.fleet.stop()
        for n in self.e2e.nodes:
            AddressManager("lo", Netns(n.netns)).cleanup_stale([])


@pytest.fixture
async def bgp(e2e: E2E, lab_router: LabBgp) -> AsyncIterator[Bgp]:
    b = Bgp(e2e, lab_router)
    try:
        yield b
    finally:
        await asyncio.to_thread(b.cleanup)


def _on_lo(node: Endpoint) -> set[IPAddress]:
    return {a for a, _ in AddressManager("lo", Netns(node.netns)).owned()}


async def _single_holders(e2e: E2E, vips: tuple[IPAddress, ...]) -> dict[IPAddress, str] | None:
    """VIP -> the one node whose lo holds it; None while any VIP is on no node or on several."""
    on = {n.name: await asyncio.to_thread(_on_lo, n) for n in e2e.nodes}
    out: dict[IPAddress, str] = {}
    for vip in vips:
        nodes = [name for name, addrs in on.items() if vip in addrs]
        if len(nodes) != 1:
            return None
        out[vip] = nodes[0]
    return out


async def test_cluster_from_the_holder_local_ecmp_over_nodes_with_endpoints(bgp: Bgp) -> None:
    e2e = bgp.e2e
    n1, n2, n3 = (n.name for n in e2e.nodes)
    c4, c6, l4, l6 = e2e.vip(4), e2e.vip(6), e2e.vip(4), e2e.vip(6)
    await e2e.pod("loc", n1, families=(4, 6), name="loc-a")
    await e2e.pod("loc", n2, families=(4,), name="loc-b")  # an IPv4 endpoint only: n2 serves IPv4 only
    await e2e.service("clu", [c4, c6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    await e2e.service("loc", [l4, l6], families=("IPv4", "IPv6"), policy="PreferDualStack", etp="Local")
    bgp.start_agents()
    await e2e.eventually(lambda: e2e.vip_host("clu"), "clu has a vipHost")
    # Each Cluster VIP has one holder (in scalable election each address is its own unit).
    holder = await e2e.eventually(lambda: _single_holders(e2e, (c4, c6)), "one holder per Cluster VIP")
    want: dict[IPAddress, set[str]] = {c4: {holder[c4]}, c6: {holder[c6]}, l4: {n1, n2}, l6: {n1}}
    await bgp.eventually_rib(want, "Cluster from the holder, Local ECMP per family")
    # The VIPs are on lo of exactly the announcing nodes (the node accepts the routed traffic).
    for node in e2e.nodes:
        expect = {v for v, names in want.items() if node.name in names}
        assert await asyncio.to_thread(_on_lo, node) == expect, node.name

    async def ingress() -> bool:
        return await e2e.ingress("loc") == [(str(l4), "VIP"), (str(l6), "VIP")]

    await e2e.eventually(ingress, "status lists both Local VIPs")
    if bgp.reader.installs_routes:
        for vip in (c4, c6):
            got = await e2e.eventually(lambda vip=vip: bgp.reach(vip), f"bgp_client reaches {vip}")
            assert got == holder[vip]
        assert await e2e.eventually(lambda: bgp.reach(l6), "bgp_client reaches the Local IPv6 VIP") == n1

    await pods.move_pod(e2e.api, e2e.ns, "loc-b", n3)
    want[l4] = {n1, n3}
    await bgp.eventually_rib(want, "the ECMP set follows the pod from n2 to n3")

    await e2e.delete_service("clu")
    del want[c4], want[c6]
    await bgp.eventually_rib(want, "a deleted Service is withdrawn")
    await pods.delete_pod(e2e.api, e2e.ns, "loc-a")
    del want[l6]
    want[l4] = {n3}
    await bgp.eventually_rib(want, "endpoints gone from n1: n1 withdraws both families")


async def test_sigkill_drops_the_session_restart_restores_graceful_stop_withdraws(bgp: Bgp) -> None:
    e2e = bgp.e2e
    n1 = e2e.nodes[0].name
    c4, l4 = e2e.vip(4), e2e.vip(4)
    await e2e.pod("solo", n1, families=(4,), name="solo-0")
    await e2e.service("solo", [l4], etp="Local")
    await e2e.service("ha", [c4])
    bgp.start_agents()
    holder = await e2e.eventually(lambda: e2e.vip_host("ha"), "ha has a vipHost")
    await bgp.eventually_rib({l4: {n1}, c4: {holder}}, "both announced")

    e2e.fleet.agents[n1].signal(signal.SIGKILL)
    e2e.fleet.agents[n1].kill()
    # n1's session goes down with its agent: its Local route is gone (no other node has an endpoint),
    # and a Cluster VIP it held moves to another node.
    want_down: dict[IPAddress, set[str]] = {}
    if holder != n1:
        want_down[c4] = {holder}
        await bgp.eventually_rib(want_down, "SIGKILL: the killed agent's routes are gone")
    else:

        async def moved() -> bool:
            rib = await bgp.rib()
            hops = rib.get(ipaddress.ip_network(c4), frozenset())
            return ipaddress.ip_network(l4) not in rib and len(hops) == 1 and bgp.hop(n1, 4) not in hops

        await e2e.eventually(moved, "SIGKILL: routes of n1 gone, the Cluster VIP taken over")
    e2e.fleet.agents[n1].start(e2e.lab)

    async def restored() -> bool:
        # n1's Local route is back; the Cluster VIP has exactly one announcer (whoever the election
        # picked; vipHost may still name the killed node for a moment, so it is not consulted).
        rib = await bgp.rib()
        net_l, net_c = ipaddress.ip_network(l4), ipaddress.ip_network(c4)
        return set(rib) == {net_l, net_c} and rib[net_l] == {bgp.hop(n1, 4)} and len(rib[net_c]) == 1

    await e2e.eventually(restored, "restart restores n1's routes", within=45)

    e2e.fleet.stop()  # SIGTERM: staged shutdown withdraws and closes the sessions
    await bgp.eventually_rib({}, "every agent stopped: nothing announced")
    for node in e2e.nodes:
        assert not await asyncio.to_thread(_on_lo, node), f"VIP left on lo of {node.name}"


async def test_bad_bgp_annotation_warns_and_costs_no_other_service(bgp: Bgp) -> None:
    e2e = bgp.e2e
    good, bad = e2e.vip(4), e2e.vip(6)
    await e2e.service("good", [good], annotations={"kube-vip.io/bgp-communities": "65000:100"})
    await e2e.service(
        "bad", [bad], families=("IPv6",), annotations={"kube-vip.io/bgp-communities": "65000:700000"}
    )
    # DHCP VIPs are layer 2 (docs/dhcp.md): refused in BGP mode, naming the setting, no client anywhere.
    await e2e.service("dhcp", "0.0.0.0")
    bgp.start_agents()
    holder = await e2e.eventually(lambda: e2e.vip_host("good"), "good has a vipHost")
    await bgp.eventually_rib({good: {holder}}, "only the good Service is announced")

    async def refused_dhcp() -> bool:
        return any(t == "Warning" and r == "dhcp-needs-layer2" and "bgp_enable=true" in m
                   for t, r, m in await e2e.events("dhcp"))

    await e2e.eventually(refused_dhcp, "a Warning Event names bgp_enable for the DHCP Service")
    assert await e2e.ingress("dhcp") == []
    for node in e2e.nodes:
        assert not await asyncio.to_thread(macvlans, MACVLAN_PREFIX, Netns(node.netns)), "no DHCP macvlan"
        assert "DHCP for" not in e2e.fleet.agents[node.name].log_path.read_text(errors="replace")

    async def warned() -> bool:
        return any(
            t == "Warning" and r == "bgp-bad-annotation" and "65000:700000" in m
            for t, r, m in await e2e.events("bad")
        )

    await e2e.eventually(warned, "a Warning Event names the bad annotation")
    assert not [ev for ev in await e2e.events("good") if ev[0] == "Warning"]
    router_ip = bgp.router.agent_env()["bgp_peers"].split(":")[0]
    up = f'kube_vip_manager_bgp_session_info{{peer="{router_ip}",state="up"}} 1.0'
    for node in e2e.nodes:
        await e2e.eventually(lambda node=node: up in _metrics(node), f"{node.name} exports its session up")


def _metrics(node: Endpoint) -> str:
    url = "http://127.0.0.1:2112/metrics"
    code = f"import urllib.request;print(urllib.request.urlopen({url!r},timeout=5).read().decode())"
    res = subprocess.run(
        ["ip", "netns", "exec", node.netns, "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return res.stdout


async def test_egress_vip_has_one_next_hop_among_the_nodes_with_endpoints(bgp: Bgp) -> None:
    """ETP Local alone is ECMP over every node with an endpoint; with egress the pods' traffic leaves with
    the VIP, so replies must reach the node that translated it: one next hop, from those nodes."""
    e2e = bgp.e2e
    n1, n2, _ = (n.name for n in e2e.nodes)
    v4 = e2e.vip(4)
    await e2e.pod("egr", n1, families=(4,), name="egr-a")
    await e2e.pod("egr", n2, families=(4,), name="egr-b")
    await e2e.service("egr", [v4], etp="Local", annotations={"kube-vip.io/egress": "true"})
    bgp.start_agents()
    holder = await e2e.eventually(lambda: _single_holders(e2e, (v4,)), "one holder of the egress VIP")
    assert holder[v4] in {n1, n2}
    await bgp.eventually_rib({v4: {holder[v4]}}, "the egress VIP from its holder alone")
