"""The address policy: what a namespace user may never make a VIP, and the operator's allow-lists."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.parse import service_from_dict
from kubevip.core.plan import decide
from kubevip.core.policy import (
    DEFAULT_POLICY,
    AddressPolicy,
    interface_allowed,
    parse_cidrs,
    parse_patterns,
    refusal,
    subnet_edge,
)
from kubevip.core.pools import parse_configmap
from kubevip.core.vips import choose
from kubevip.ip import IPAddress, IPFamily
from tests.unit.core import builders as b

ip = ipaddress.ip_address
net = ipaddress.ip_network
V4, V6 = IPFamily.IPV4, IPFamily.IPV6

LAB = AddressPolicy(
    node_addresses=frozenset({ip("10.0.0.11"), ip("10.0.0.12"), ip("fd00::11")}),
    gateways=frozenset({ip("10.0.0.1"), ip("fd00::1")}),
    control_plane=frozenset({ip("10.0.0.100")}),
    service_cidrs=(net("10.96.0.0/16"), net("fd00:96::/112")),
    subnets=(net("10.0.0.0/24"), net("fd00::/64")),
)

v4s = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6s = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
addresses = st.one_of(v4s, v6s)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("255.255.255.255", reasons.LIMITED_BROADCAST),
        ("0.0.0.1", reasons.RESERVED_RANGE),
        ("240.0.0.1", reasons.RESERVED_RANGE),
        ("10.0.0.100", reasons.CONTROL_PLANE_VIP),
        ("10.0.0.11", reasons.NODE_ADDRESS),
        ("fd00::11", reasons.NODE_ADDRESS),
        ("10.0.0.1", reasons.DEFAULT_GATEWAY),
        ("fd00::1", reasons.DEFAULT_GATEWAY),
        ("10.96.0.10", reasons.SERVICE_CIDR),
        ("fd00:96::a", reasons.SERVICE_CIDR),
        ("10.0.0.0", reasons.SUBNET_NETWORK_ADDRESS),
        ("10.0.0.255", reasons.SUBNET_BROADCAST_ADDRESS),
        ("fd00::", reasons.SUBNET_NETWORK_ADDRESS),
        ("10.0.0.50", None),
        ("fd00::50", None),
        ("192.0.2.1", None),
    ],
)
def test_the_denials(text: str, want: str | None) -> None:
    got = refusal(LAB, ip(text), "team-a")
    assert (got.reason if got else None) == want
    if got is not None:
        assert got.rule  # every refusal names its rule in words


@given(addresses)
def test_the_default_policy_refuses_only_what_is_never_unicast(a: IPAddress) -> None:
    got = refusal(DEFAULT_POLICY, a, "ns")
    never = a.version == 4 and (int(a) >> 24 == 0 or int(a) >> 28 == 0xF)
    assert (got is not None) == never


@given(addresses, st.lists(st.one_of(
    st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False), v4s, st.integers(8, 32)),
    st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False), v6s, st.integers(32, 128)),
), max_size=4))
def test_the_allow_list_never_lets_a_denied_address_through(a: IPAddress, allowed: list) -> None:
    """Allowing more only ever removes `not-allowed`; every other denial stands."""
    restricted = AddressPolicy(**{**LAB.__dict__, "allowed": tuple(allowed)})
    open_ = refusal(LAB, a, "ns")
    got = refusal(restricted, a, "ns")
    if open_ is not None:
        assert got == open_
    elif allowed:
        inside = any(a.version == n.version and a in n for n in allowed)
        assert (got is None) == inside
        if got is not None:
            assert got.reason == reasons.NOT_ALLOWED
    else:
        assert got is None


@given(st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False), v4s, st.integers(0, 32)), v4s)
def test_subnet_edges(subnet: ipaddress.IPv4Network, a: ipaddress.IPv4Address) -> None:
    got = subnet_edge(a, subnet)
    if a not in subnet or subnet.prefixlen > 30:
        assert got is None
    elif a == subnet.network_address:
        assert got == reasons.SUBNET_NETWORK_ADDRESS
    elif a == subnet.broadcast_address:
        assert got == reasons.SUBNET_BROADCAST_ADDRESS
    else:
        assert got is None


def test_subnet_edges_at_the_boundaries() -> None:
    """The smallest subnets with edges (/30, /126) have them; the next ones (/31, /127) have none."""
    assert subnet_edge(ip("10.0.0.0"), net("10.0.0.0/30")) == reasons.SUBNET_NETWORK_ADDRESS
    assert subnet_edge(ip("10.0.0.3"), net("10.0.0.0/30")) == reasons.SUBNET_BROADCAST_ADDRESS
    assert subnet_edge(ip("10.0.0.1"), net("10.0.0.0/30")) is None
    assert subnet_edge(ip("10.0.0.0"), net("10.0.0.0/31")) is None
    assert subnet_edge(ip("10.0.0.1"), net("10.0.0.0/31")) is None
    assert subnet_edge(ip("fd00::"), net("fd00::/126")) == reasons.SUBNET_NETWORK_ADDRESS
    assert subnet_edge(ip("fd00::3"), net("fd00::/126")) is None  # IPv6 has no broadcast address
    assert subnet_edge(ip("fd00::"), net("fd00::/127")) is None
    assert subnet_edge(ip("10.0.1.0"), net("10.0.0.0/24")) is None  # not in the subnet
    assert subnet_edge(ip("::"), net("0.0.0.0/0")) is None  # another family


def test_pools_per_namespace() -> None:
    pools = parse_configmap({"cidr-team-a": "192.0.2.0/28", "range-global": "198.51.100.10-198.51.100.20"})
    p = AddressPolicy(from_pools=True, pools=pools)
    assert refusal(p, ip("192.0.2.5"), "team-a") is None
    got = refusal(p, ip("192.0.2.5"), "team-b")  # not team-b's pool: the global one applies there
    assert got is not None and got.reason == reasons.NOT_ALLOWED and "team-b" in got.rule
    assert refusal(p, ip("198.51.100.15"), "team-b") is None
    # team-a has its own IPv4 pool: the global range is not team-a's (kube-vip's lookup order)
    assert refusal(p, ip("198.51.100.15"), "team-a") is not None
    # the allow-list and the pools add up
    both = AddressPolicy(from_pools=True, pools=pools, allowed=(net("203.0.113.0/24"),))
    assert refusal(both, ip("203.0.113.9"), "team-b") is None


def test_settings_parse() -> None:
    assert parse_cidrs(" 10.0.0.0/24, fd00::/64 ,10.0.0.7") == (
        net("10.0.0.0/24"), net("fd00::/64"), net("10.0.0.7/32"),
    )
    # Host bits are allowed (the network is meant); an empty entry does not end the list.
    assert parse_cidrs("10.0.0.7/24,,fd00::1/64") == (net("10.0.0.0/24"), net("fd00::/64"))
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/24'"):
        parse_cidrs("10.0.0.0/24,10.0.0.300/24")
    assert parse_patterns("eth1, vlan*,") == ("eth1", "vlan*")
    p = AddressPolicy(interfaces=parse_patterns("eth1,vlan*"))
    assert interface_allowed(p, "vlan10") and interface_allowed(p, "eth1")
    assert not interface_allowed(p, "eth0") and not interface_allowed(AddressPolicy(interfaces=()), "eth1")


def test_choose_refuses_with_the_rule_and_keeps_the_rest() -> None:
    svc = service_from_dict(b.service(
        "web", "team-a", families=["IPv4", "IPv6"], policy="PreferDualStack",
        lb_ips="10.0.0.1,10.0.0.50,10.96.0.10,fd00::50,10.0.0.11",
    ))
    chosen, rejected = choose(svc, (V4, V6), LAB)
    assert [str(c.address) for c in chosen] == ["10.0.0.50", "fd00::50"]
    assert {(r.address, r.reason) for r in rejected} == {
        ("10.0.0.1", reasons.DEFAULT_GATEWAY), ("10.96.0.10", reasons.SERVICE_CIDR),
        ("10.0.0.11", reasons.NODE_ADDRESS),
    }


def test_a_service_with_only_refused_addresses_is_not_announced() -> None:
    svc = service_from_dict(b.service("web", "team-a", lb_ips="10.0.0.1"))
    d = decide(svc, (), None, False, LAB)
    assert not d.announce and d.reason == reasons.NO_VIP
    assert [r.reason for r in d.rejected] == [reasons.DEFAULT_GATEWAY]


def test_service_interface_only_where_allowed() -> None:
    svc = service_from_dict(b.service(
        "web", lb_ips="192.0.2.1", annotations={"kube-vip.io/serviceInterface": "eth9"}
    ))
    closed = decide(svc, (), None, False, AddressPolicy(interfaces=()))
    assert closed.interface == "" and closed.interface_refused == "eth9" and closed.announce
    opened = decide(svc, (), None, False, AddressPolicy(interfaces=("eth*",)))
    assert opened.interface == "eth9" and opened.interface_refused == ""


def test_each_refusal_names_its_rule() -> None:
    """The rule in words reaches the Service's Event and `kubevip explain`: a literal text per rule, so an
    operator reads which setting or fact refused the address (not the same text for every rule)."""

    def rule(policy: AddressPolicy, text: str, namespace: str = "team-a") -> str:
        got = refusal(policy, ip(text), namespace)
        assert got is not None, text
        return got.rule

    assert rule(LAB, "10.0.0.100") == (
        "the control-plane VIP (or API server address) is never a Service VIP"
    )
    assert rule(LAB, "10.0.0.11") == "a Node's own address is never a VIP"
    assert rule(LAB, "10.0.0.1") == "a node's default gateway is never a VIP"
    assert rule(LAB, "10.0.0.0") == "the network address of the node subnet 10.0.0.0/24"
    assert rule(LAB, "10.0.0.255") == "the broadcast address of the node subnet 10.0.0.0/24"
    assert rule(LAB, "fd00::") == "the network address of the node subnet fd00::/64"
    listed = AddressPolicy(allowed=(net("192.0.2.0/28"), net("fd00:1::/64")))
    assert rule(listed, "192.0.2.77") == "outside vip_allowed_cidrs (192.0.2.0/28, fd00:1::/64)"
    pools = AddressPolicy(from_pools=True, pools=parse_configmap({"cidr-team-a": "192.0.2.0/28"}))
    assert rule(pools, "192.0.2.77") == (
        "outside vip_allowed_cidrs (none); or the IPAM pool of namespace 'team-a'"
    )


def test_choose_asks_the_policy_for_the_services_namespace() -> None:
    """`vip_allowed_from_pools`: the address policy applied to a Service is its own namespace's pool."""
    p = AddressPolicy(from_pools=True, pools=parse_configmap({"cidr-team-a": "192.0.2.0/28"}))
    svc_a = service_from_dict(b.service("web", "team-a", lb_ips="192.0.2.5"))
    svc_b = service_from_dict(b.service("web", "team-b", lb_ips="192.0.2.5"))
    assert [str(c.address) for c in choose(svc_a, (V4,), p)[0]] == ["192.0.2.5"]
    chosen, rejected = choose(svc_b, (V4,), p)
    assert chosen == () and [(r.reason, r.rule) for r in rejected] == [
        (reasons.NOT_ALLOWED, "outside vip_allowed_cidrs (none); or the IPAM pool of namespace 'team-b'"),
    ]
