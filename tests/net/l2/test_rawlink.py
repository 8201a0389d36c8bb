"""The raw link socket both announcers share: the error names the protocol, interface and namespace."""

from __future__ import annotations

import pytest

from kubevip.errors import NetworkError
from kubevip.lab.network import LabNetwork
from kubevip.net.arp import ArpSender
from kubevip.net.namespace import Netns
from kubevip.net.ndp import NdpSender

pytestmark = pytest.mark.net

MAC = b"\x02\x00\x00\x00\x00\x01"


@pytest.mark.parametrize(("sender", "protocol"), [(ArpSender, "ARP"), (NdpSender, "NDP")])
def test_missing_interface_names_protocol_interface_and_namespace(
    lab: LabNetwork, sender: type[ArpSender | NdpSender], protocol: str
) -> None:
    node = lab.nodes[0]
    with pytest.raises(NetworkError, match=f"raw {protocol} socket on kvt-missing0 in {node.netns}"):
        sender("kvt-missing0", MAC, Netns(node.netns))


def test_opens_on_a_real_interface_and_closes(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    s = ArpSender(node.interface, MAC, Netns(node.netns))
    assert (s.ifname, s.mac) == (node.interface, MAC)
    s.close()
