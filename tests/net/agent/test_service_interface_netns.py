"""`kube-vip.io/serviceInterface` against a real kernel (private namespace, no cluster): the VIP goes on the
annotated interface and moves off it, a missing interface announces nothing (and a Warning), an interface
that appears later is used, one deleted under a VIP is forgotten, and a restart cleans up what a previous
run left on an interface no Service names any more."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from kubevip.agent.reconciler import Agent
from kubevip.config import AgentConfig
from kubevip.core import reasons
from kubevip.core.interface import ANNOTATION_SERVICE_INTERFACE
from kubevip.core.parse import service_from_dict
from kubevip.core.views import ServiceView
from kubevip.core.world import SERVICE, apply_event
from kubevip.errors import NetworkError
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from tests.fixtures.netns import ip_in, scratch_netns
from tests.unit.objects import service

pytestmark = pytest.mark.net


def _add_link(ns: str, name: str) -> None:
    ip_in(ns, "link", "add", name, "type", "veth", "peer", "name", f"{name}p")
    ip_in(ns, "link", "set", name, "up")
    ip_in(ns, "link", "set", f"{name}p", "up")


@pytest.fixture
def netns() -> Iterator[Netns]:
    with scratch_netns("kvt-svcif") as name:
        for ifname in ("eth0", "eth1"):
            _add_link(name, ifname)
        ip_in(name, "link", "set", "lo", "up")
        # A dual-stack node: an IPv4 address besides IPv6's link-local ones (a node without any address
        # of a family carries no VIP of it on vip_interface).
        ip_in(name, "addr", "add", "203.0.113.2/24", "dev", "eth0")
        yield Netns(name)


def _agent(ns: Netns) -> Agent:
    cfg = AgentConfig.load(
        {
            "vip_nodename": "n1",
            "svc_enable": "true",
            "vip_interface": "eth0",
            "vip_arp": "false",
            "vip_leaderelection": "false",
            "vip_allowed_interfaces": "eth*",  # the annotation counts only where the operator allows it
        }
    )
    return Agent(cfg, None, ns=ns)


def _svc(name: str, vips: str, ifname: str | None) -> ServiceView:
    ann = {} if ifname is None else {ANNOTATION_SERVICE_INTERFACE: ifname}
    fams = ("IPv4", "IPv6") if "," in vips else ("IPv4",)
    return service_from_dict(service(name, vips, families=fams, policy="PreferDualStack", annotations=ann))


async def _owned(ns: Netns) -> dict[str, set[str]]:
    def read() -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for ifname in ("eth0", "eth1", "eth9"):
            try:
                out[ifname] = {str(a) for a, _ in AddressManager(ifname, ns).owned()}
            except NetworkError:  # eth9 comes and goes
                out[ifname] = set()
        return out

    return await asyncio.to_thread(read)


async def test_annotated_interface_carries_the_vip_and_the_vip_moves_off_it(netns: Netns) -> None:
    agent = _agent(netns)
    agent.touched(apply_event(agent.world, SERVICE, False, _svc("web", "192.0.2.10,2001:db8::10", "eth1")))
    agent.touched(apply_event(agent.world, SERVICE, False, _svc("plain", "192.0.2.11", None)))
    await agent.converge()
    got = await _owned(netns)
    assert got["eth1"] == {"192.0.2.10", "2001:db8::10"} and got["eth0"] == {"192.0.2.11"}
    assert (await agent.converge()).empty

    agent.touched(apply_event(agent.world, SERVICE, False, _svc("web", "192.0.2.10,2001:db8::10", "auto")))
    ch = await agent.converge()
    assert {f"{r.address}@{r.interface}" for r in ch.remove} == {"192.0.2.10@eth1", "2001:db8::10@eth1"}
    got = await _owned(netns)
    assert got["eth1"] == set() and got["eth0"] == {"192.0.2.10", "2001:db8::10", "192.0.2.11"}


async def test_missing_interface_then_created_then_deleted(netns: Netns) -> None:
    agent = _agent(netns)
    agent.touched(apply_event(agent.world, SERVICE, False, _svc("web", "192.0.2.20", "eth9")))
    agent.touched(apply_event(agent.world, SERVICE, False, _svc("plain", "192.0.2.21", None)))
    await agent.converge()
    got = await _owned(netns)
    assert got["eth0"] == {"192.0.2.21"} and got["eth1"] == set(), "not announced on another interface"
    (cond,) = agent._node_warnings["default/web"]
    assert cond.reason == reasons.SERVICE_INTERFACE_MISSING and "'eth9'" in cond.message
    assert "default/plain" not in agent._node_warnings

    await asyncio.to_thread(_add_link, netns.name or "", "eth9")
    await agent.converge()  # level-triggered: the next pass sees the new interface
    assert (await _owned(netns))["eth9"] == {"192.0.2.20"}
    assert not agent._node_warnings

    await asyncio.to_thread(ip_in, netns.name or "", "link", "del", "eth9")
    ch = await agent.converge()
    assert [f"{r.address}@{r.interface}" for r in ch.remove] == ["192.0.2.20@eth9"]
    assert "192.0.2.20" not in {str(r.address) for r in agent.held}, "the address left with its interface"
    assert (await agent.converge()).empty, "nothing retried"
    assert agent._node_warnings["default/web"]


async def test_restart_cleans_up_an_interface_no_service_names_any_more(netns: Netns) -> None:
    first = _agent(netns)
    apply_event(first.world, SERVICE, False, _svc("web", "192.0.2.30", "eth1"))
    await first.converge()
    assert (await _owned(netns))["eth1"] == {"192.0.2.30"}

    # A new process; the annotation was removed while no agent ran.
    second = _agent(netns)
    second.held = await second.kernel_rows()
    assert {f"{r.address}@{r.interface}" for r in second.held} == {"192.0.2.30@eth1"}
    second._startup_keep = second.held
    second._startup_until = float("inf")
    apply_event(second.world, SERVICE, False, _svc("web", "192.0.2.30", None))
    await second.converge()
    got = await _owned(netns)
    assert got["eth1"] == set() and got["eth0"] == {"192.0.2.30"}, "moved, not kept on two interfaces"
    second._stopping = True
    await second.converge()
    assert (await _owned(netns)) == {"eth0": set(), "eth1": set(), "eth9": set()}
