"""Interface choice against a real kernel: the default route's interface per family, or an error naming it."""

from __future__ import annotations

import pytest

from kubevip.errors import InterfaceNotFoundError, NetworkError
from kubevip.lab.network import LabNetwork
from kubevip.net.interfaces import default_route_interfaces, link, resolve_interface
from kubevip.net.namespace import Netns

pytestmark = pytest.mark.net


def test_default_route_interface_per_family(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    assert default_route_interfaces(ns) == {}  # the lab has no default routes
    with pytest.raises(InterfaceNotFoundError, match="IPv4"):
        resolve_interface(4, for_service=True, ns=ns)
    router4 = lab.topo.subnet_v4.network_address + 1
    lab.run(node.netns, ["ip", "route", "add", "default", "via", str(router4), "dev", node.interface])
    assert default_route_interfaces(ns) == {4: node.interface}
    assert resolve_interface(4, for_service=True, ns=ns) == node.interface
    with pytest.raises(InterfaceNotFoundError, match="IPv6"):
        resolve_interface(6, for_service=True, ns=ns)
    # An explicit setting needs no route at all.
    assert resolve_interface(6, for_service=True, services_interface="lo", ns=ns) == "lo"


def test_link_facts(lab: LabNetwork) -> None:
    node = lab.nodes[1]
    ln = link(node.interface, Netns(node.netns))
    assert ln.name == node.interface and ln.mac == bytes.fromhex(node.mac.replace(":", ""))
    assert link(ln.index, Netns(node.netns)) == ln
    with pytest.raises(NetworkError, match="nosuch0"):
        link("nosuch0", Netns(node.netns))


def test_auto_interface_is_the_one_whose_subnet_holds_the_vip(lab: LabNetwork) -> None:
    """kube-vip's `auto` (serviceInterface / vip_servicesinterface) against the kernel's addresses."""
    from kubevip.net.interfaces import subnet_interfaces

    node = lab.nodes[0]
    ns = Netns(node.netns)
    in4 = lab.topo.subnet_v4.network_address + 200
    in6 = lab.topo.subnet_v6.network_address + 200
    got = subnet_interfaces([in4, in6], ns)
    assert got == {in4: node.interface, in6: node.interface}
    import ipaddress

    outside = ipaddress.ip_address("198.51.100.7")
    assert subnet_interfaces([outside], ns) == {}  # no subnet holds it: the agent falls back


def test_vip_subnet_auto_takes_the_interfaces_prefix(lab: LabNetwork) -> None:
    """vip_subnet=auto applied: the prefix of the interface subnet holding the VIP, else /32 and /128."""
    import ipaddress

    from kubevip.net.settings import parse_subnet

    node = lab.nodes[0]
    ns = Netns(node.netns)
    auto = parse_subnet("auto")
    nets = auto.networks(node.interface, ns)
    vip4 = lab.topo.subnet_v4.network_address + 201
    vip6 = lab.topo.subnet_v6.network_address + 201
    assert auto.prefixlen(vip4, nets) == lab.topo.subnet_v4.prefixlen
    assert auto.prefixlen(vip6, nets) == lab.topo.subnet_v6.prefixlen
    assert auto.prefixlen(ipaddress.ip_address("198.51.100.7"), nets) == 32
    assert parse_subnet("").networks(node.interface, ns) == ()  # fixed masks need no lookup
    assert auto.networks("nosuch0", ns) == ()  # a missing interface: a warning, not an error


def test_default_routes_read_from_the_kernel(lab: LabNetwork) -> None:
    """The lowest metric of the main table wins, a multipath route counts by its first hop, other tables
    do not count; the address policy's gateways are every hop's (net/rtnl_batch.py reads the dumps)."""
    from kubevip.net.hostfacts import host_facts

    node = lab.nodes[-1]
    ns = Netns(node.netns)
    net4, net6 = lab.topo.subnet_v4, lab.topo.subnet_v6
    gw = [str(net4.network_address + i) for i in (1, 2, 3)]
    gw6 = str(net6.network_address + 1)
    run = lambda *args: lab.run(node.netns, ["ip", *args])  # noqa: E731
    try:
        run("route", "add", "default", "via", gw[0], "dev", "lo", "table", "100", "onlink")
        assert default_route_interfaces(ns) == {}  # another table's default route is not this node's
        run("route", "add", "default", "via", gw[0], "dev", "lo", "metric", "200", "onlink")
        run("route", "add", "default", "metric", "100",
            "nexthop", "via", gw[1], "dev", node.interface, "nexthop", "via", gw[2], "dev", node.interface)
        run("-6", "route", "add", "default", "via", gw6, "dev", node.interface, "metric", "50")
        assert default_route_interfaces(ns) == {4: node.interface, 6: node.interface}
        assert {str(g) for g in host_facts(ns).gateways} == {*gw, gw6}
        run("route", "del", "default", "metric", "100")
        assert default_route_interfaces(ns) == {4: "lo", 6: node.interface}
    finally:
        for args in (("route", "flush", "table", "100"), ("route", "del", "default"),
                     ("route", "del", "default"), ("-6", "route", "del", "default")):
            lab.run(node.netns, ["ip", *args], check=False)
