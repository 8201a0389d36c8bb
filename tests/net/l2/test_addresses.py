"""VIP addresses on a node's interface, seen from a client on the same bridge, both families."""

from __future__ import annotations

import ipaddress

import pytest

from kubevip.lab.network import LabNetwork
from kubevip.net.addresses import ADDRESS_PROTO, AddressManager
from kubevip.net.namespace import Netns
from tests.fixtures.waiting import wait_until
from tests.net.l2.helpers import addresses, ping

pytestmark = pytest.mark.net
FAMILIES = [4, 6]


def manager(lab: LabNetwork, node: int = 0, **kw: object) -> AddressManager:
    n = lab.nodes[node]
    return AddressManager(n.interface, ns=Netns(n.netns), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("family", FAMILIES)
def test_client_reaches_vip_on_node1(lab: LabNetwork, family: int) -> None:
    vip = lab.vip(family)
    assert not ping(lab, lab.client.netns, vip)  # nobody holds it yet
    assert manager(lab).add(vip) is True
    wait_until(lambda: ping(lab, lab.client.netns, vip), f"client pings {vip}", 5.0, interval=0.01)


@pytest.mark.parametrize("family", FAMILIES)
def test_add_and_remove_are_idempotent_and_leave_nothing(lab: LabNetwork, family: int) -> None:
    node = lab.nodes[0]
    before = addresses(lab, node.netns, node.interface)
    m = manager(lab)
    vip = lab.vip(family)
    assert m.add(vip) is True
    assert m.add(vip) is False
    assert m.owned() == {(vip, vip.max_prefixlen)}
    assert addresses(lab, node.netns, node.interface) == before | {f"{vip}/{vip.max_prefixlen}"}
    assert m.remove(vip) is True
    assert m.remove(vip) is False
    assert m.owned() == set()
    assert addresses(lab, node.netns, node.interface) == before


def test_ipv6_vip_is_usable_at_once(lab: LabNetwork) -> None:
    """DAD is on for the node interface (conftest); the VIP must still not be tentative, not even briefly."""
    node = lab.nodes[0]
    vip = lab.vip(6)
    manager(lab).add(vip)
    out = lab.run(node.netns, ["ip", "-6", "addr", "show", "dev", node.interface]).stdout
    line = next(ln for ln in out.splitlines() if f"{vip}/128" in ln)
    assert "tentative" not in line and "nodad" in line
    # The first ping, sent right away, is answered: nothing waits for DAD.
    assert ping(lab, lab.client.netns, vip, wait_s=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_vip_subnet_prefix_is_used(lab: LabNetwork, family: int) -> None:
    node = lab.nodes[0]
    vip = lab.vip(family, 3)
    plen = 28 if family == 4 else 120
    m = manager(lab)
    m.ensure({(vip, plen)})
    assert f"{vip}/{plen}" in addresses(lab, node.netns, node.interface)
    # Changing the prefix replaces our address; it never leaves two.
    m.ensure({(vip, vip.max_prefixlen)})
    mine = {a for a in addresses(lab, node.netns, node.interface) if a.startswith(f"{vip}/")}
    assert mine == {f"{vip}/{vip.max_prefixlen}"}


def test_restarted_owner_cleans_stale_vips_and_keeps_foreign_ones(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    keep4, stale4, foreign4 = lab.vip(4, 0), lab.vip(4, 1), lab.vip(4, 2)
    keep6, stale6, foreign6 = lab.vip(6, 0), lab.vip(6, 1), lab.vip(6, 2)
    first = manager(lab)
    first.ensure({keep4, stale4, keep6, stale6})
    # Someone else (an operator, another tool) adds addresses by hand.
    lab.run(node.netns, ["ip", "addr", "add", f"{foreign4}/32", "dev", node.interface])
    lab.run(node.netns, ["ip", "addr", "add", f"{foreign6}/128", "dev", node.interface, "nodad"])
    before = addresses(lab, node.netns, node.interface)

    restarted = manager(lab)  # a new process knows nothing but what the kernel tells it
    assert restarted.owned() == {(keep4, 32), (stale4, 32), (keep6, 128), (stale6, 128)}
    removed = restarted.cleanup_stale({keep4, keep6})
    assert removed == {(stale4, 32), (stale6, 128)}
    assert addresses(lab, node.netns, node.interface) == before - {f"{stale4}/32", f"{stale6}/128"}

    # Desiring a foreign address does not adopt it, and not desiring it does not remove it.
    changes = restarted.ensure({keep4, keep6, foreign4})
    assert changes.foreign == {(foreign4, 32)} and not changes.added
    restarted.ensure(set())
    left = addresses(lab, node.netns, node.interface)
    assert {f"{foreign4}/32", f"{foreign6}/128"} <= left
    assert not {f"{keep4}/32", f"{keep6}/128"} & left


def test_ownership_marker_is_visible_to_other_tools(lab: LabNetwork) -> None:
    vip = lab.vip(4)
    manager(lab).add(vip)
    with Netns(lab.nodes[0].netns).iproute() as ipr:
        protos = {
            ipaddress.ip_address(a.get_attr("IFA_ADDRESS")): a.get_attr("IFA_PROTO") for a in ipr.get_addr()
        }
    assert protos[vip] == ADDRESS_PROTO
    assert protos[lab.nodes[0].ipv4] != ADDRESS_PROTO


def test_state_file_tracks_what_we_added(lab: LabNetwork, tmp_path: object) -> None:
    import json
    from pathlib import Path

    state = Path(str(tmp_path)) / "state" / "addresses.json"
    m = manager(lab, state_file=state)
    vip4, vip6 = lab.vip(4), lab.vip(6)
    m.ensure({vip4, vip6})
    assert json.loads(state.read_text()) == {"eth0": sorted([f"{vip4}/32", f"{vip6}/128"])}
    m.ensure(set())
    assert json.loads(state.read_text()) == {}


def test_missing_interface_is_named(lab: LabNetwork) -> None:
    from kubevip.errors import NetworkError

    m = AddressManager("nosuch0", ns=Netns(lab.nodes[0].netns))
    with pytest.raises(NetworkError, match="nosuch0"):
        m.add(lab.vip(4))


def test_batches_add_and_remove_many_and_keep_foreign(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    before = addresses(lab, node.netns, node.interface)
    m = manager(lab)
    base4, base6 = lab.vip(4), lab.vip(6)
    vips = [base4 + i for i in range(20)] + [base6 + i for i in range(20)]
    assert m.add_many((v, None) for v in vips) == {}
    assert m.owned() == {(v, v.max_prefixlen) for v in vips}
    foreign = base4 + 100
    lab.run(node.netns, ["ip", "addr", "add", f"{foreign}/32", "dev", node.interface])
    try:
        assert m.remove_many([*vips[:30], foreign]) == {}
        assert m.owned() == {(v, v.max_prefixlen) for v in vips[30:]}
        assert f"{foreign}/32" in addresses(lab, node.netns, node.interface)
        assert m.remove_many(vips[30:]) == {}
    finally:
        lab.run(node.netns, ["ip", "addr", "del", f"{foreign}/32", "dev", node.interface])
    assert addresses(lab, node.netns, node.interface) == before
    gone = AddressManager("kvt-nope0", ns=Netns(node.netns))
    errors = gone.remove_many([base4])
    assert list(errors) == [base4] and "kvt-nope0" in str(errors[base4])


def test_one_refused_vip_in_a_batch_costs_the_others_nothing(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    m = manager(lab)
    good = [lab.vip(4) + 200, lab.vip(6) + 200]
    invalid = lab.vip(4) + 201
    refused = ipaddress.ip_address("ff0e::1234")  # multicast: the kernel refuses it (EADDRNOTAVAIL)
    errors = m.add_many([(good[0], None), (invalid, 33), (refused, None), (good[1], None)])
    try:
        assert set(errors) == {invalid, refused}
        assert "33" in str(errors[invalid])
        assert "ff0e::1234/128" in str(errors[refused]) and node.interface in str(errors[refused])
        assert m.owned() >= {(v, v.max_prefixlen) for v in good}
        assert m.add_many((v, None) for v in good) == {}, "present already is no error"
    finally:
        assert m.remove_many(good) == {}
    assert not {v for v, _ in m.owned()} & set(good)


def test_owned_and_others_split_one_dump(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    m = manager(lab)
    vips = [lab.vip(4), lab.vip(6)]
    for v in vips:
        m.add(v)
    owned, others = m.owned_and_others()
    assert owned == m.owned() == {(v, v.max_prefixlen) for v in vips}
    assert not owned & set(others)
    assert set(others) | owned == m.present()
    assert {node.ipv4, node.ipv6} <= {ip for ip, _ in others}
