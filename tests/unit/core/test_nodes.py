"""Node views and the network an agent publishes on its Node."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.nodes import (
    ANNOTATION_NETWORK,
    MAX_LINKS,
    MAX_PREFIXES,
    FamilyNetwork,
    network,
    node_from_dict,
    parse_network,
)
from kubevip.core.views import IPFamily
from kubevip.errors import InputError


def test_network_keeps_subnets_not_vips_nor_link_local() -> None:
    addrs = [ipaddress.ip_interface(a) for a in
             ("192.0.2.5/24", "192.0.2.99/32", "2001:db8::5/64", "fe80::1/64", "2001:db8:9::1/128")]
    n = network({IPFamily.IPV4: ("eth0", addrs), IPFamily.IPV6: ("eth0", addrs)}, ["eth0", "lo"])
    assert n.family(IPFamily.IPV4).prefixes == (ipaddress.ip_network("192.0.2.0/24"),)  # type: ignore[union-attr]
    assert n.family(IPFamily.IPV6).prefixes == (ipaddress.ip_network("2001:db8::/64"),)  # type: ignore[union-attr]
    assert n.on_subnet(ipaddress.ip_address("192.0.2.200"))
    assert not n.on_subnet(ipaddress.ip_address("198.51.100.1"))
    assert parse_network(n.to_json()) == n


def test_many_links_are_capped_and_marked_incomplete() -> None:
    n = network({}, [f"veth{i}" for i in range(MAX_LINKS + 5)])
    assert len(n.links) == MAX_LINKS and not n.links_complete
    assert parse_network(n.to_json()) == n


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(8, 31)), max_size=5),
       st.lists(st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True), max_size=6))
def test_json_round_trip(v4: list[tuple[int, int]], links: list[str]) -> None:
    addrs = [ipaddress.ip_interface(f"{ipaddress.IPv4Address(a)}/{p}") for a, p in v4]
    n = network({IPFamily.IPV4: ("eth0", addrs)}, links)
    assert parse_network(n.to_json()) == n


@pytest.mark.parametrize("text", [
    "nope", "[]", '{"IPv4": {}}', '{"IPv4": {"interface": "e", "prefixes": ["x"]}}',
    '{"IPv4": {"interface": "e", "prefixes": ["2001:db8::/64"]}}', '{"links": [1]}',
])
def test_bad_network_annotation_is_named(text: str) -> None:
    with pytest.raises(InputError, match=ANNOTATION_NETWORK):
        parse_network(text)


def test_node_from_dict() -> None:
    v = node_from_dict({
        "metadata": {"name": "n1", "labels": {"rack": "r1"}, "annotations": {ANNOTATION_NETWORK: "broken"}},
        "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    })
    got = (v.name, v.label_map, v.unschedulable, v.ready, v.network)
    assert got == ("n1", {"rack": "r1"}, True, False, None)
    assert ANNOTATION_NETWORK in v.network_error  # an unreadable network is unknown, not fatal
    with pytest.raises(InputError):
        node_from_dict({"metadata": {}})


def test_the_link_and_prefix_caps_are_exact() -> None:
    """Exactly MAX_LINKS links is still the complete list (the interface rule keeps refusing a node
    without the Service's interface); exactly MAX_PREFIXES prefixes still parse, one more is refused."""
    n = network({}, [f"veth{i}" for i in range(MAX_LINKS)])
    assert n.links_complete and parse_network(n.to_json()).links_complete
    subnets = [ipaddress.ip_interface(f"10.{i}.0.1/24") for i in range(MAX_PREFIXES + 3)]
    n = network({IPFamily.IPV4: ("eth0", subnets)}, ["eth0"])
    assert len(n.family(IPFamily.IPV4).prefixes) == MAX_PREFIXES  # type: ignore[union-attr]
    assert parse_network(n.to_json()) == n
    too_many = json.dumps({"IPv4": {"interface": "eth0", "prefixes": [f"10.{i}.0.0/24" for i in range(33)]}})
    with pytest.raises(InputError, match=f"{ANNOTATION_NETWORK}: IPv4.prefixes must be a short list"):
        parse_network(too_many)
    with pytest.raises(InputError, match="short list"):
        parse_network('{"IPv4": {"interface": "eth0", "prefixes": {"10.0.0.0/8": 1}}}')


def test_an_ipv6_only_node_keeps_its_network() -> None:
    addrs = [ipaddress.ip_interface("2001:db8::5/64")]
    n = network({IPFamily.IPV6: ("eth1", addrs)}, ["eth1"])
    back = parse_network(n.to_json())
    assert back == n and back.on_subnet(ipaddress.ip_address("2001:db8::77"))


def test_a_hand_written_prefix_with_host_bits_names_its_subnet() -> None:
    n = parse_network('{"IPv4": {"interface": "eth0", "prefixes": ["192.0.2.5/24"]}}')
    assert n.family(IPFamily.IPV4) == FamilyNetwork("eth0", (ipaddress.ip_network("192.0.2.0/24"),))
