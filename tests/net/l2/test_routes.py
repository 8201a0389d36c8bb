"""Routing-table mode: exactly our routes in table 198 (proto 248), repaired after the kernel drops them."""

from __future__ import annotations

import json

import pytest

from kubevip.lab.network import LabNetwork
from kubevip.net.namespace import Netns
from kubevip.net.routes import RoutingTable

pytestmark = pytest.mark.net


def table(lab: LabNetwork, netns: str, table_id: int = 198) -> set[tuple[str, str, str, str]]:
    """(dst, dev, protocol, type) of every route in the table, both families, from iproute2."""
    rows: set[tuple[str, str, str, str]] = set()
    for fam in ("-4", "-6"):
        # An IPv6 table with no route "does not exist" for iproute2: that is an empty table here.
        res = lab.run(netns, ["ip", "-j", fam, "route", "show", "table", str(table_id)], check=False)
        if res.returncode != 0:
            assert "does not exist" in res.stderr, res.stderr
            continue
        for r in json.loads(res.stdout or "[]"):
            # iproute2 leaves out the default protocol ("boot") and type ("unicast").
            rows.add((r["dst"], r.get("dev", ""), str(r.get("protocol", "boot")), r.get("type", "unicast")))
    return rows


def test_routes_put_and_removed_exactly(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    v4, v6 = lab.vip(4), lab.vip(6)
    rt = RoutingTable(node.interface, ns=Netns(node.netns))
    # A route someone else put in the same table must survive everything we do.
    lab.run(node.netns, ["ip", "route", "add", "192.0.2.0/24", "dev", node.interface, "table", "198"])
    foreign = ("192.0.2.0/24", node.interface, "boot", "unicast")
    assert table(lab, node.netns) == {foreign}

    changes = rt.ensure({v4, v6})
    assert changes.added == {(v4, 32), (v6, 128)}
    ours = {(str(v4), node.interface, "248", "unicast"), (str(v6), node.interface, "248", "unicast")}
    assert table(lab, node.netns) == ours | {foreign}
    assert rt.ensure({v4, v6}).added == frozenset()  # idempotent

    rt.ensure({v6})
    assert table(lab, node.netns) == {(str(v6), node.interface, "248", "unicast"), foreign}
    rt.ensure(set())
    assert table(lab, node.netns) == {foreign}


def test_reensure_survives_removal_of_the_last_ipv4_address(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    v4, v6 = lab.vip(4), lab.vip(6)
    rt = RoutingTable(node.interface, ns=Netns(node.netns))
    rt.ensure({v4, v6})
    # The kernel flushes every IPv4 route of the interface, in all tables, with its last IPv4 address.
    lab.run(node.netns, ["ip", "addr", "del", f"{node.ipv4}/24", "dev", node.interface])
    assert rt.routes() == {(v6, 128)}
    assert rt.ensure({v4, v6}).added == {(v4, 32)}
    assert rt.routes() == {(v4, 32), (v6, 128)}


def test_clear_removes_only_our_protocol(lab: LabNetwork) -> None:
    node = lab.nodes[0]
    rt = RoutingTable(node.interface, ns=Netns(node.netns), table=1234, protocol=77)
    rt.ensure({lab.vip(4), lab.vip(6)})
    lab.run(node.netns, ["ip", "route", "add", "192.0.2.0/24", "dev", node.interface, "table", "1234"])
    assert len(rt.clear()) == 2
    assert table(lab, node.netns, 1234) == {("192.0.2.0/24", node.interface, "boot", "unicast")}


@pytest.mark.parametrize("route_type", ["local", "blackhole"])
def test_other_route_types(lab: LabNetwork, route_type: str) -> None:
    node = lab.nodes[0]
    v4, v6 = lab.vip(4), lab.vip(6)
    rt = RoutingTable(node.interface, ns=Netns(node.netns), route_type=route_type)
    rt.ensure({v4, v6})
    assert {(d, t) for d, _, _, t in table(lab, node.netns)} == {(str(v4), route_type), (str(v6), route_type)}
    rt.ensure(set())
    assert table(lab, node.netns) == set()
