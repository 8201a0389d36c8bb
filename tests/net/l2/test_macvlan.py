"""net/macvlan.py in a real kernel: the DHCP macvlan (MAC, idempotence, re-creation, refusal to touch other
kinds, removal) and the ARP guard (only the macvlan answers ARP for its VIP, docs/dhcp.md)."""

from __future__ import annotations

import pytest

from kubevip.core.dhcp import derive_mac
from kubevip.errors import NetworkError
from kubevip.lab.network import LabNetwork
from kubevip.net.macvlan import (
    ARP_TABLE,
    apply_arp_guard,
    arp_guard_script,
    delete_macvlan,
    ensure_macvlan,
    macvlans,
)
from kubevip.net.namespace import Netns

pytestmark = pytest.mark.net


def _mac_of(lab: LabNetwork, netns: str, ifname: str) -> str:
    out = lab.run(netns, ["cat", f"/sys/class/net/{ifname}/address"])
    return out.stdout.strip()


def test_macvlan_lifecycle(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    ns = Netns(node.netns)
    mac = derive_mac("default/web")
    index = ensure_macvlan("kvdtest0", node.interface, mac, ns)
    assert _mac_of(lab, node.netns, "kvdtest0") == mac
    assert ensure_macvlan("kvdtest0", node.interface, mac, ns) == index, "idempotent"
    # No IPv6 on it, even where /proc/sys cannot be written (named namespace here: netlink only).
    assert lab.run(node.netns, ["ip", "-6", "-o", "addr", "show", "dev", "kvdtest0"]).stdout.strip() == ""
    assert "addrgenmode none" in lab.run(node.netns, ["ip", "-d", "link", "show", "kvdtest0"]).stdout
    other = derive_mac("default/other")
    ensure_macvlan("kvdtest0", node.interface, other, ns)
    assert _mac_of(lab, node.netns, "kvdtest0") == other, "a changed MAC re-creates the macvlan"
    assert macvlans("kvd", ns) == frozenset({"kvdtest0"})
    lab.run(node.netns, ["ip", "link", "add", "kvdbr0", "type", "bridge"])  # our prefix, another kind
    try:
        assert macvlans("kvd", ns) == frozenset({"kvdtest0"}) and macvlans("other", ns) == frozenset()
    finally:
        lab.run(node.netns, ["ip", "link", "del", "kvdbr0"])
    with pytest.raises(NetworkError, match="not a macvlan"):
        ensure_macvlan("lo", node.interface, mac, ns)
    with pytest.raises(NetworkError, match="does not exist"):
        ensure_macvlan("kvdtest1", "nosuchif", mac, ns)
    assert not delete_macvlan(node.interface, ns), "never removes an interface of another kind"
    assert delete_macvlan("kvdtest0", ns)
    assert not delete_macvlan("kvdtest0", ns)
    assert macvlans("kvd", ns) == frozenset()


def test_only_the_macvlan_answers_arp_for_its_vip(lab: LabNetwork) -> None:
    node, client = lab.nodes[0], lab.client
    ns = Netns(node.netns)
    vip = lab.vip(4, 49)
    mac = derive_mac("default/arp")
    ensure_macvlan("kvdarp", node.interface, mac, ns)
    lab.run(node.netns, ["ip", "addr", "add", f"{vip}/32", "dev", "kvdarp"])
    apply_arp_guard({str(vip): "kvdarp"}, ns)
    # The node knows the client already: its replies must not ARP with the VIP as sender (a request
    # teaches the client the parent's MAC; that is the reply path, not the guard's business).
    lab.run(node.netns, ["ip", "neigh", "replace", str(client.ipv4), "lladdr", client.mac, "dev",
                         node.interface, "nud", "permanent"])
    try:
        for _ in range(3):  # each round a fresh resolution: the parent must never win
            lab.run(client.netns, ["ip", "neigh", "flush", "to", str(vip)], check=False)
            lab.run(client.netns, ["ping", "-c", "1", "-W", "3", str(vip)])
            neigh = lab.run(client.netns, ["ip", "neigh", "show", "to", str(vip)]).stdout
            assert mac in neigh, neigh
    finally:
        apply_arp_guard({}, ns)
        delete_macvlan("kvdarp", ns)
    listing = lab.run(node.netns, ["nft", "list", "tables"], check=False).stdout
    assert ARP_TABLE not in listing, "an empty guard removes both tables"


def test_guard_script_names_each_vip_and_its_macvlan() -> None:
    script = arp_guard_script({"10.0.0.7": "kvdaaa", "10.0.0.8": "kvdbbb"})
    assert 'arp daddr ip 10.0.0.7 iifname != "kvdaaa" drop' in script
    assert 'arp daddr ip 10.0.0.8 iifname != "kvdbbb" drop' in script
    assert arp_guard_script({}).count("add table") == 2  # created and deleted: nothing left
    assert "ip daddr 10.0.0.7 udp dport 68 drop" in script
    with pytest.raises(ValueError):
        arp_guard_script({"not-an-ip; flush ruleset": "x"})
