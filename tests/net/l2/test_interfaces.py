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
