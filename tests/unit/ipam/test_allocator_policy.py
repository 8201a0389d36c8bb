"""IPAM and the address policy: a refused address is never handed out, and one of ours that becomes
refused (a Node took it) moves; the agents and IPAM ask the same question (kubevip.core.policy)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core.policy import AddressPolicy, refusal
from kubevip.core.views import IPFamily
from kubevip.ipam.allocator import ADDRESS_REFUSED, Allocator, Request
from kubevip.ipam.pools import parse_configmap

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
ip = ipaddress.ip_address
POOL = {"cidr-global": "10.0.0.0/28,fd00::/124", "allow-share-global": "false"}
v4_in_pool = st.integers(0, 15).map(lambda n: ipaddress.IPv4Address(0x0A000000 + n))
v6_in_pool = st.integers(0, 15).map(lambda n: ipaddress.IPv6Address((0xFD00 << 112) + n))


@settings(max_examples=100)
@given(st.frozensets(st.one_of(v4_in_pool, v6_in_pool), max_size=12), st.integers(1, 20),
       st.booleans())
def test_never_allocates_a_refused_address(nodes: frozenset, n: int, desc: bool) -> None:  # type: ignore[type-arg]
    cfg = dict(POOL, **({"search-order": "desc"} if desc else {}))
    alloc = Allocator(parse_configmap(cfg))
    policy = AddressPolicy(node_addresses=nodes, service_cidrs=(ipaddress.ip_network("10.0.0.8/30"),))
    alloc.set_policy(policy)
    for i in range(n):
        out = alloc.ensure(Request("ns", f"s{i}", (V4, V6), ports=frozenset({("TCP", 80)})))
        for a in out.addresses:
            assert refusal(policy, a, "ns") is None
            assert a not in nodes


def test_ours_moves_when_the_policy_refuses_it() -> None:
    alloc = Allocator(parse_configmap(POOL))
    req = Request("ns", "web", (V4,))
    first = alloc.ensure(req).addresses[0]
    alloc.set_policy(AddressPolicy(node_addresses=frozenset({first})))
    out = alloc.ensure(req)
    assert out.addresses and out.addresses[0] != first
    assert out.released == (first,)
    assert [p.reason for p in out.problems] == [ADDRESS_REFUSED]
    assert "node-address" in out.problems[0].message


def test_allow_list_restricts_the_pool() -> None:
    alloc = Allocator(parse_configmap(POOL))
    alloc.set_policy(AddressPolicy(allowed=(ipaddress.ip_network("10.0.0.12/30"),
                                            ipaddress.ip_network("fd00::/64"))))
    got = [alloc.ensure(Request("ns", f"s{i}", (V4,))).addresses for i in range(4)]
    # only .12-.15 are allowed; then the pool is exhausted for this namespace
    assert [a[0] for a in got if a] == [ip("10.0.0.12"), ip("10.0.0.13"), ip("10.0.0.14"), ip("10.0.0.15")]
    assert alloc.ensure(Request("ns", "s9", (V4,))).addresses == ()
