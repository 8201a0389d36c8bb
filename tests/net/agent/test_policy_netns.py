"""The address policy against a real kernel: the node's own addresses, its subnets' edges and its default
gateways are read from netlink (kubevip's own VIPs are not the node's), and the agent refuses them."""

from __future__ import annotations

import ipaddress

import pytest

from kubevip.agent.reconciler import Agent
from kubevip.config import AgentConfig
from kubevip.core import reasons
from kubevip.core.parse import service_from_dict
from kubevip.core.world import SERVICE, apply_event
from kubevip.net.addresses import AddressManager
from kubevip.net.hostfacts import host_facts
from kubevip.net.namespace import Netns
from tests.unit.objects import service

pytestmark = pytest.mark.net
ip = ipaddress.ip_address


def test_host_facts(eth0_netns: Netns) -> None:
    AddressManager("eth0", eth0_netns).add(ip("10.9.0.77"))  # a VIP of ours: not the node's own
    facts = host_facts(eth0_netns)
    assert {ip("10.9.0.5"), ip("fd00:9::5")} <= facts.addresses
    assert ip("10.9.0.77") not in facts.addresses
    assert {ip("10.9.0.1"), ip("fd00:9::1")} == facts.gateways
    assert {ipaddress.ip_network("10.9.0.0/24"), ipaddress.ip_network("fd00:9::/64")} <= set(facts.subnets)


async def test_the_agent_refuses_the_nodes_own_addresses(eth0_netns: Netns) -> None:
    cfg = AgentConfig.load({"vip_nodename": "n1", "svc_enable": "true", "vip_interface": "eth0",
                            "vip_leaderelection": "false"})
    agent = Agent(cfg, None, ns=eth0_netns)
    await agent.facts.refresh_host()
    vips = "10.9.0.1,10.9.0.5,10.9.0.0,10.9.0.255,10.9.0.50"
    agent.touched(apply_event(agent.world, SERVICE, False, service_from_dict(service("web", vips))))
    await agent.converge()
    assert {r.address for r in agent.held} == {ip("10.9.0.50")}
    assert agent.snap is not None
    got = {c.reason: c.message for c in agent.snap.warnings["default/web"]}
    assert got.keys() == {reasons.DEFAULT_GATEWAY, reasons.NODE_ADDRESS, reasons.SUBNET_NETWORK_ADDRESS,
                          reasons.SUBNET_BROADCAST_ADDRESS}
    assert "'10.9.0.1'" in got[reasons.DEFAULT_GATEWAY] and "'10.9.0.255'" in got[
        reasons.SUBNET_BROADCAST_ADDRESS]
    await agent.shutdown()
