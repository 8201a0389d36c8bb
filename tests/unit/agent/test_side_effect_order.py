"""The agent's side effects in their promised order, without root: the kernel and the announcer are a
recording sink behind the real `net.VipSet` (its netlink part replaced), the rest is the real agent.

Promises (docs/architecture.md): an address is in the kernel before the first announcement names it;
announcements stop before the address goes; on shutdown every VIP is withdrawn before the Leases are
released (a peer that takes over must never find the address still here).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

from kubevip.agent.reconciler import Agent
from kubevip.bgp.advertisement import Advertisement, NextHops
from kubevip.config import AgentConfig
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Changes, Row
from kubevip.core.views import IPFamily
from kubevip.core.world import SERVICE, apply_event
from kubevip.ip import IPAddress
from kubevip.net.settings import NetSettings
from kubevip.net.vipset import VipSet
from tests.unit.objects import service

Events = list[tuple[str, str]]


class RecordingAnnouncer:
    """The announcer's interface (start / start_many / stop / close), recording instead of sending."""

    def __init__(self, events: Events) -> None:
        self.events = events

    async def start(self, ip: IPAddress, ifname: str) -> None:
        self.events.append(("announce", str(ip)))

    async def start_many(self, pairs: Iterable[tuple[IPAddress, str]]) -> list[Exception | None]:
        started: list[Exception | None] = []
        for ip, ifname in pairs:
            await self.start(ip, ifname)
            started.append(None)
        return started

    async def stop(self, ip: IPAddress) -> None:
        self.events.append(("silence", str(ip)))

    async def close(self) -> None:
        self.events.append(("close", ""))


class RecordingVips(VipSet):
    """The real VipSet (ordering, bookkeeping) over a kernel that records instead of calling netlink."""

    def __init__(self, events: Events) -> None:
        super().__init__(NetSettings(interface="eth0"), label="node n1")
        self.events = events
        self.announcer = RecordingAnnouncer(events)  # type: ignore[assignment]

    def owned_rows(self, ifnames: object = None) -> frozenset[Row]:
        return frozenset()

    def detect_ownership(self, what: str, lifetime_marker: bool) -> None:
        pass

    def change(
        self, changes: Changes, lifetimes: Mapping[Row, int | None] | None = None,
        not_after: float | None = None,
    ) -> tuple[set[Row], set[Row]]:
        self.events.extend(("remove", str(r.address)) for r in changes.remove)
        self.events.extend(("add", str(r.address)) for r in changes.add)
        return set(), set(changes.add)


def _agent(events: Events) -> Agent:
    cfg = AgentConfig.load({
        "vip_nodename": "n1", "svc_enable": "true", "vip_interface": "eth0", "vip_arp": "true",
        "vip_leaderelection": "false",
    })
    agent = Agent(cfg, None, vips=RecordingVips(events))
    agent._ifaces = dict.fromkeys(IPFamily, "eth0")  # no interfaces to look up without root
    release = agent.leadership.release

    async def recorded_release() -> None:
        events.append(("release", ""))
        await release()

    agent.leadership.release = recorded_release  # type: ignore[method-assign]
    return agent


def _web() -> dict[str, object]:
    return service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")


def _index(events: Events, what: str, ip: str) -> int:
    return events.index((what, ip))


async def test_added_before_announced_and_silenced_before_removed() -> None:
    events: Events = []
    agent = _agent(events)
    svc = service_from_dict(_web())
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    agent.leadership.set_units({"default/web": None})
    await agent.converge()
    vips = ("192.0.2.10", "2001:db8::10")
    for ip in vips:
        assert _index(events, "add", ip) < _index(events, "announce", ip), events
    assert agent.held == {Row(ip, "eth0") for ip in map(ipaddress.ip_address, vips)}
    events.clear()
    agent.touched(apply_event(agent.world, SERVICE, True, svc))
    await agent.converge()
    for ip in vips:
        assert _index(events, "silence", ip) < _index(events, "remove", ip), events
    assert not agent.held


async def test_shutdown_withdraws_before_it_releases() -> None:
    events: Events = []
    agent = _agent(events)
    agent.touched(apply_event(agent.world, SERVICE, False, service_from_dict(_web())))
    agent.leadership.set_units({"default/web": None})
    await agent.converge()
    events.clear()
    await agent.shutdown()
    release = _index(events, "release", "")
    for ip in ("192.0.2.10", "2001:db8::10"):
        assert _index(events, "silence", ip) < _index(events, "remove", ip) < release, events
    assert not agent.held


class RecordingSpeaker:
    """The BGP speaker's interface, recording each prefix when it first appears in what it must announce."""

    def __init__(self, events: Events) -> None:
        self.events = events
        self.announced: set[str] = set()

    @property
    def next_hops(self) -> NextHops:
        return NextHops(ipaddress.IPv4Address("198.18.1.11"), ipaddress.IPv6Address("fd00::11"))

    @property
    def peer_states(self) -> dict[IPAddress, str]:
        return {}

    async def start(self) -> None:
        pass

    async def converge(self, desired: AbstractSet[Advertisement]) -> None:
        now = {str(a.prefix.network_address) for a in desired}
        self.events.extend(("route", ip) for ip in sorted(now - self.announced))
        self.events.extend(("unroute", ip) for ip in sorted(self.announced - now))
        self.announced = now

    async def close(self) -> None:
        pass


class AbortingVips(RecordingVips):
    """Records the connection aborts too (the VIP arriving on this node)."""

    def __init__(self, events: Events) -> None:
        super().__init__(events)
        self.announcer = None
        self.abort = True

    def _abort_all(self, ips: Iterable[IPAddress], arrived: bool) -> None:
        self.events.extend(("abort" if arrived else "abort-leaving", str(ip)) for ip in ips)


async def test_bgp_route_leaves_right_after_the_kernel_add_before_the_aborts() -> None:
    """BGP mode: the route is what clients wait for; aborting the connections the arriving VIP kills
    (a worker-thread hop per pass) and the Events come after it, never between the add and the route."""
    events: Events = []
    cfg = AgentConfig.load({
        "vip_nodename": "n1", "svc_enable": "true", "vip_interface": "lo", "vip_leaderelection": "false",
        "bgp_enable": "true", "bgp_as": "65001", "bgp_peers": "198.18.1.1:65000",
    })
    agent = Agent(cfg, None, vips=AbortingVips(events), bgp_speaker=RecordingSpeaker(events))
    agent._ifaces = dict.fromkeys(IPFamily, "lo")
    svc = service_from_dict(_web())
    agent.touched(apply_event(agent.world, SERVICE, False, svc))
    agent.leadership.set_units({"default/web": None})
    await agent.converge()
    for ip in ("192.0.2.10", "2001:db8::10"):
        assert _index(events, "add", ip) < _index(events, "route", ip) < _index(events, "abort", ip), events
    assert [e for e in events if e[0] == "route"] == [("route", "192.0.2.10"), ("route", "2001:db8::10")]
    events.clear()
    agent.touched(apply_event(agent.world, SERVICE, True, svc))
    await agent.converge()
    for ip in ("192.0.2.10", "2001:db8::10"):
        assert _index(events, "unroute", ip) < _index(events, "remove", ip), events
