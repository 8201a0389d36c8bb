"""The network an agent publishes for its node, read from a real kernel: the interface's own prefixes,
never those of addresses kubevip added (whatever their prefix length)."""

from __future__ import annotations

import ipaddress

import pytest

from kubevip.agent import nodes
from kubevip.ip import IPFamily
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from tests.fixtures.netns import ip_in

pytestmark = pytest.mark.net


def test_own_network_leaves_out_kubevips_addresses(eth0_netns: Netns) -> None:
    assert eth0_netns.name is not None
    ip_in(eth0_netns.name, "addr", "add", "203.0.113.5/28", "dev", "eth0")  # a second subnet of the node's
    m = AddressManager("eth0", eth0_netns)
    m.add(ipaddress.ip_address("198.51.100.7"), 24)  # ours, with a subnet's prefix: still not the node's
    m.add(ipaddress.ip_address("fd00:77::7"), 64)
    net = nodes.own_network({IPFamily.IPV4: "eth0", IPFamily.IPV6: "eth0"}, eth0_netns)
    v4, v6 = net.family(IPFamily.IPV4), net.family(IPFamily.IPV6)
    assert v4 is not None and v6 is not None
    assert set(v4.prefixes) == {ipaddress.ip_network("10.9.0.0/24"), ipaddress.ip_network("203.0.113.0/28")}
    assert set(v6.prefixes) == {ipaddress.ip_network("fd00:9::/64")}
    assert {"eth0", "eth0p", "lo"} <= net.links
