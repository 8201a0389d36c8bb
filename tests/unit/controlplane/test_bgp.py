"""The control-plane VIP over BGP (controlplane.agent + controlplane.bgp) against in-memory edges: ECMP
from every healthy node without a Lease, single holder through plndr-cp-lock, withdraw-before-remove and
announce-after-add ordering, and a node of one family without next hop still announcing the other."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet

import pytest

from kubevip.bgp.advertisement import Advertisement, NextHops
from kubevip.bgp.settings import BgpSettings
from kubevip.controlplane.agent import ControlPlaneVip
from kubevip.controlplane.bgp import CpAnnouncer
from kubevip.core.cpbgp import ECMP, SINGLE
from kubevip.envparse import Settings
from kubevip.ip import IPAddress
from tests.unit.controlplane.fakes import FakeKernel, FakeLeaseApi, World
from tests.unit.controlplane.test_agent import ELECTION, V4, V6, settings, wait_until

BGP = BgpSettings.from_env(Settings({"bgp_as": "65001", "bgp_peers": "192.0.2.1:65000"}))


class FakeSpeaker:
    """Records each desired set; checks that nothing is announced that is not on the node's kernel."""

    def __init__(self, kernel: FakeKernel, next_hops: NextHops) -> None:
        self.kernel = kernel
        self.next_hops = next_hops
        self.announced: frozenset[Advertisement] = frozenset()
        self.violations: list[str] = []
        self.closed = False

    async def start(self) -> None:
        pass

    async def converge(self, desired: AbstractSet[Advertisement]) -> None:
        on_node = {r.address for r in self.kernel.held}
        for adv in desired:
            if adv.prefix.network_address not in on_node:
                self.violations.append(f"{adv.prefix} announced while not on the node")
        self.announced = frozenset(desired)

    async def close(self) -> None:
        self.closed = True
        self.announced = frozenset()

    def prefixes(self) -> set[IPAddress]:
        return {a.prefix.network_address for a in self.announced}


class Nodes:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.api = FakeLeaseApi()
        self.healthy: dict[str, bool] = {}
        self.runners: dict[str, ControlPlaneVip] = {}
        self.speakers: dict[str, FakeSpeaker] = {}

    async def add(self, node: str, next_hops: NextHops | None = None) -> ControlPlaneVip:
        self.healthy[node] = True
        kernel = FakeKernel(node, World())  # one world per node: ECMP means several holders, on purpose
        host = 10 + len(self.runners)
        hops = next_hops or NextHops(ipaddress.IPv4Address(f"198.18.1.{host}"),
                                     ipaddress.IPv6Address(f"fd6b:7669:7000:1::{host}"))
        speaker = self.speakers[node] = FakeSpeaker(kernel, hops)

        async def probe() -> bool:
            return self.healthy[node]

        r = ControlPlaneVip(settings(), ELECTION, node, self.api.view(node), probe, kernel,
                            bgp=CpAnnouncer(BGP, speaker=speaker), mode=self.mode)  # type: ignore[arg-type]
        self.runners[node] = r
        await r.start()
        return r

    def announcing(self) -> set[str]:
        return {n for n, s in self.speakers.items() if s.prefixes() == {V4, V6}}


@pytest.fixture
async def ecmp() -> AsyncIterator[Nodes]:
    n = Nodes(ECMP)
    yield n
    for r in n.runners.values():
        await r.shutdown()
    assert not [v for s in n.speakers.values() for v in s.violations]


@pytest.fixture
async def single() -> AsyncIterator[Nodes]:
    n = Nodes(SINGLE)
    yield n
    for r in n.runners.values():
        await r.shutdown()
    assert not [v for s in n.speakers.values() for v in s.violations]


async def test_ecmp_every_healthy_node_announces_without_a_lease(ecmp: Nodes) -> None:
    for n in ("a", "b", "c"):
        await ecmp.add(n)
    await wait_until(lambda: ecmp.announcing() == {"a", "b", "c"}, what="every node announcing")
    assert not ecmp.api.store  # no election in ECMP mode
    adv = {a.prefix: a.next_hop for a in ecmp.speakers["b"].announced}
    assert adv == {ipaddress.ip_network(V4): ipaddress.ip_address("198.18.1.11"),
                   ipaddress.ip_network(V6): ipaddress.ip_address("fd6b:7669:7000:1::11")}


async def test_ecmp_unhealthy_node_withdraws_then_returns(ecmp: Nodes) -> None:
    a = await ecmp.add("a")
    await ecmp.add("b")
    await wait_until(lambda: ecmp.announcing() == {"a", "b"})
    ecmp.healthy["a"] = False
    await wait_until(lambda: ecmp.announcing() == {"b"}, what="a withdrawn")
    await wait_until(lambda: not a.kernel.held, what="a's addresses removed")
    assert not ecmp.speakers["a"].announced
    ecmp.healthy["a"] = True
    await wait_until(lambda: ecmp.announcing() == {"a", "b"}, what="a back")


async def test_ecmp_waits_for_the_first_healthy_check(ecmp: Nodes) -> None:
    ecmp.healthy["a"] = False
    a = await ecmp.add("a")
    ecmp.healthy["a"] = False
    await wait_until(lambda: a.health.checks >= 10)
    assert not ecmp.speakers["a"].announced and not a.kernel.held


async def test_shutdown_withdraws_removes_and_stops_the_speaker(ecmp: Nodes) -> None:
    a = await ecmp.add("a")
    await wait_until(lambda: ecmp.announcing() == {"a"})
    await a.shutdown()
    assert not a.kernel.held and ecmp.speakers["a"].closed and not ecmp.speakers["a"].announced
    del ecmp.runners["a"]


async def test_a_family_without_next_hop_is_not_announced_the_other_is(ecmp: Nodes) -> None:
    await ecmp.add("a", NextHops(ipaddress.IPv4Address("198.18.1.10"), None))
    await wait_until(lambda: ecmp.speakers["a"].prefixes() == {V4}, what="the IPv4 VIP only")


async def test_single_holder_only_the_lease_holder_announces_and_it_moves(single: Nodes) -> None:
    for n in ("a", "b"):
        await single.add(n)
    await wait_until(lambda: len(single.announcing()) == 1 and single.api.holder() in single.announcing(),
                     what="the Lease holder alone announcing")
    first = single.api.holder()
    assert first is not None
    single.healthy[first] = False
    await wait_until(lambda: single.announcing() == {"a", "b"} - {first}, what="the other node announcing")
    assert not single.speakers[first].announced and not single.runners[first].kernel.held
