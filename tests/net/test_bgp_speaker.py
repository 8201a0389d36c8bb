"""The speaker against real routers (gobgpd, bird2, FRR) in namespaces, over IPv4 and IPv6 sessions."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
from collections.abc import AsyncIterator

import pytest

from kubevip.bgp.advertisement import Advertisement
from kubevip.bgp.shared import SharedSpeaker, SpeakerLike
from kubevip.bgp.speaker import Speaker
from kubevip.lab.routers import DAEMONS, FRR_DIR, Rib, Router
from tests.fixtures.prereqs import require, require_binary, require_root_netns
from tests.fixtures.waiting import eventually
from tests.net.bgp_topo import BgpTopology, expected

pytestmark = [pytest.mark.net, pytest.mark.bgp]

VIP4 = ipaddress.IPv4Address("10.99.0.1")
VIP6 = ipaddress.IPv6Address("fd99::1")
DEADLINE = 30.0


def _require_daemon(daemon: str) -> None:
    require_root_netns()
    if daemon == "gobgpd":
        require_binary("gobgpd")
        require_binary("gobgp")
    elif daemon == "bird2":
        require_binary("bird")
        require_binary("birdc")
    else:
        require((FRR_DIR / "bgpd").exists() and (FRR_DIR / "zebra").exists(), "FRR daemons in /usr/lib/frr")
        require_binary("vtysh")


async def rib_is(router: Router, want4: Rib, want6: Rib) -> None:
    last: list[Rib] = []

    async def probe() -> bool:
        last[:] = [await router.rib(4), await router.rib(6)]
        return last == [want4, want6]

    await eventually(
        probe, f"{router.daemon} RIB as expected", DEADLINE,
        detail=lambda: f"RIB is {last}, expected {[want4, want6]}",
    )


def adv(vip: ipaddress.IPv4Address | ipaddress.IPv6Address, topo: BgpTopology, node: int) -> Advertisement:
    return Advertisement(ipaddress.ip_network(vip), topo.nodes[node].ip(vip.version))


@pytest.fixture
async def topo() -> AsyncIterator[BgpTopology]:
    require_root_netns()
    t = BgpTopology(nodes=2)
    try:
        yield t
    finally:
        await t.close()


async def started(topo: BgpTopology, node: int, session: int) -> Speaker:
    sp = topo.speaker(node, topo.settings(session))
    await sp.start()
    async with asyncio.timeout(DEADLINE):
        await sp.wait_connected()
    return sp


@pytest.mark.parametrize("session", [4, 6], ids=["ipv4-session", "ipv6-session"])
@pytest.mark.parametrize("daemon", DAEMONS)
async def test_router_holds_exactly_the_desired_prefixes_with_ecmp_and_withdrawals(
    topo: BgpTopology, daemon: str, session: int
) -> None:
    _require_daemon(daemon)
    router = topo.start_router(daemon, session)
    n0, n1 = topo.nodes
    sp0 = await started(topo, 0, session)
    sp1 = await started(topo, 1, session)

    # Both nodes announce both VIPs (externalTrafficPolicy Local with endpoints on both): ECMP.
    await sp0.converge({adv(VIP4, topo, 0), adv(VIP6, topo, 0)})
    await sp1.converge({adv(VIP4, topo, 1), adv(VIP6, topo, 1)})
    await rib_is(
        router,
        expected([(VIP4, [n0.ipv4, n1.ipv4])]),
        expected([(VIP6, [n0.ipv6, n1.ipv6])]),
    )
    assert sp0.peer_states == {topo.router_ip(session): "up"}
    assert await router.established() == 2  # what bench/compare.py waits for before its runs

    if router.installs_routes:
        for i in (0, 1):
            topo.bind_vip(i, VIP4)
            topo.bind_vip(i, VIP6)
        for vip in (VIP4, VIP6):
            # The RIB above is the BGP table; the router's FIB (zebra, for FRR) follows it a moment
            # later, which under load was later than one ping.
            await eventually(lambda v=vip: asyncio.to_thread(topo.ping_from_client, v),
                             f"client reaches {vip} via {daemon}", within=30.0, interval=0.2)

    # Node 1 loses its IPv4 endpoint: only node 0 is left for the IPv4 VIP.
    await sp1.converge({adv(VIP6, topo, 1)})
    await rib_is(router, expected([(VIP4, [n0.ipv4])]), expected([(VIP6, [n0.ipv6, n1.ipv6])]))

    # Node 0 stops announcing everything; converging twice to the same set changes nothing.
    await sp0.converge(set())
    await sp0.converge(set())
    await rib_is(router, {}, expected([(VIP6, [n1.ipv6])]))

    # Shutdown withdraws.
    await sp1.close()
    await rib_is(router, {}, {})


@pytest.mark.parametrize("session", [4, 6], ids=["ipv4-session", "ipv6-session"])
@pytest.mark.parametrize("daemon", DAEMONS)
async def test_killing_exabgp_withdraws_and_the_supervisor_restores(
    topo: BgpTopology, daemon: str, session: int
) -> None:
    _require_daemon(daemon)
    router = topo.start_router(daemon, session)
    n0 = topo.nodes[0]
    sp = await started(topo, 0, session)
    await sp.converge({adv(VIP4, topo, 0), adv(VIP6, topo, 0)})
    await rib_is(router, expected([(VIP4, [n0.ipv4])]), expected([(VIP6, [n0.ipv6])]))

    pid = sp.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    await rib_is(router, {}, {})  # session down: the router dropped the node's paths

    async def restarted() -> bool:
        return sp.starts >= 2 and sp.connected

    await eventually(restarted, "the supervisor restarted ExaBGP", DEADLINE)
    assert sp.pid != pid
    await rib_is(router, expected([(VIP4, [n0.ipv4])]), expected([(VIP6, [n0.ipv6])]))

    # A change made after the restart still lands: the new child is driven like the first.
    await sp.converge({adv(VIP6, topo, 0)})
    await rib_is(router, {}, expected([(VIP6, [n0.ipv6])]))


async def test_the_config_file_with_passwords_is_private(topo: BgpTopology) -> None:
    sp = await started(topo, 0, 4)
    try:
        assert sp._conf_path.stat().st_mode & 0o777 == 0o600
    finally:
        await sp.close()


async def test_one_speaker_carries_the_control_plane_and_the_services(topo: BgpTopology) -> None:
    """cp_enable + svc_enable + bgp_enable in one process (bgp/shared.py): one session to the router; the
    Services part's withdrawal and shutdown leave the control plane's routes; the last part stops ExaBGP."""
    _require_daemon("gobgpd")
    router = topo.start_router("gobgpd", 4)
    n0 = topo.nodes[0]
    sp = topo.speaker(0, topo.settings(4))

    async def make() -> SpeakerLike:
        return sp

    hub = SharedSpeaker(make)
    services, control_plane = hub.part("services"), hub.part("control-plane")
    await control_plane.start()
    await services.start()
    async with asyncio.timeout(DEADLINE):
        await sp.wait_connected()
    cp_vip = adv(VIP4, topo, 0)
    svc_vip = adv(VIP6, topo, 0)
    await control_plane.converge({cp_vip})
    await services.converge({svc_vip})
    await rib_is(router, expected([(VIP4, [n0.ipv4])]), expected([(VIP6, [n0.ipv6])]))
    await services.close()  # the agent's shutdown comes first (runner.py)
    await rib_is(router, expected([(VIP4, [n0.ipv4])]), expected([]))
    assert sp.pid is not None, "the control plane's session must outlive the Services part"
    await control_plane.close()
    await rib_is(router, expected([]), expected([]))
    assert sp.pid is None
