"""BGP mode's pure decisions: who announces, and which advertisements a node wants for what it holds."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.agent.bgp_wants import BAD_ANNOTATION, NO_NEXT_HOP, announces, wanted
from kubevip.bgp.advertisement import NextHops
from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.config import AgentConfig
from kubevip.core.bgp import ANNOTATION_COMMUNITIES, ANNOTATION_LARGE_COMMUNITIES
from kubevip.core.claims import VipPlan
from kubevip.core.communities import parse_communities
from kubevip.core.views import IPFamily
from kubevip.errors import ConfigError

NH = NextHops(ipaddress.IPv4Address("198.18.1.11"), ipaddress.IPv6Address("fd00::11"))
SETTINGS = BgpSettings(enabled=True, peers=(Peer(ipaddress.IPv4Address("198.18.1.1"), 65000),))
V4 = ipaddress.IPv4Address("198.18.1.200")
V6 = ipaddress.IPv6Address("fd00::200")


def plan(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, *services: str) -> VipPlan:
    return VipPlan(addr, IPFamily.of(addr), services[0], services, None)


nodes = st.sampled_from(["n1", "n2", "n3"])


@given(me=nodes, eligible=st.none() | st.frozensets(nodes), leads=st.booleans())
def test_local_ignores_the_election_cluster_follows_it(
    me: str, eligible: frozenset[str] | None, leads: bool
) -> None:
    got = announces(me, eligible, leads)
    assert got == (leads if eligible is None else me in eligible)


@given(
    held=st.lists(st.integers(200, 210), unique=True),
    planned=st.lists(st.integers(200, 210), unique=True),
    six=st.booleans(),
)
def test_exactly_held_and_planned_vips_are_announced_as_host_routes(
    held: list[int], planned: list[int], six: bool
) -> None:
    mk = (lambda n: ipaddress.IPv6Address(f"fd00::{n}")) if six else (
        lambda n: ipaddress.IPv4Address(f"198.18.1.{n}")
    )
    plans = [plan(mk(n), f"ns/s{n}") for n in planned]
    w = wanted([mk(n) for n in held], plans, {}, SETTINGS, NH)
    assert {a.prefix.network_address for a in w.advertisements} == {mk(n) for n in set(held) & set(planned)}
    for a in w.advertisements:
        assert a.prefix.prefixlen == a.prefix.max_prefixlen
        assert a.next_hop == NH.for_family(a.prefix.version)
    assert not w.problems
    # Same inputs in another order: same answer.
    assert wanted([mk(n) for n in reversed(held)], plans[::-1], {}, SETTINGS, NH) == w


def test_bad_annotation_costs_only_its_service() -> None:
    good = plan(V4, "ns/good")
    bad = plan(V6, "ns/bad")
    shared = plan(ipaddress.IPv4Address("198.18.1.201"), "ns/tcp", "ns/udp")
    ann = {
        "ns/good": {ANNOTATION_COMMUNITIES: "65000:1"},
        "ns/bad": {ANNOTATION_COMMUNITIES: "65000:70000"},
        "ns/tcp": {ANNOTATION_LARGE_COMMUNITIES: "not-a-community"},
        "ns/udp": {ANNOTATION_COMMUNITIES: "65000:2"},
    }
    w = wanted([V4, V6, shared.address], [good, bad, shared], ann, SETTINGS, NH)
    by = {a.prefix.network_address: a for a in w.advertisements}
    assert set(by) == {V4, shared.address}  # the VIP of only a bad Service is not announced
    assert by[V4].communities == tuple(parse_communities("65000:1"))
    assert by[shared.address].communities == tuple(parse_communities("65000:2"))  # the good one's only
    problems = {(p.service, p.reason) for p in w.problems}
    assert problems == {("ns/bad", BAD_ANNOTATION), ("ns/tcp", BAD_ANNOTATION)}
    assert all("kube-vip.io/bgp-" in p.message for p in w.problems)


def test_communities_are_the_union_of_global_and_every_service() -> None:
    s = BgpSettings(enabled=True, peers=SETTINGS.peers, communities=tuple(parse_communities("no-export")))
    p = plan(V4, "ns/a", "ns/b")
    ann = {"ns/a": {ANNOTATION_COMMUNITIES: "65000:1"}, "ns/b": {ANNOTATION_COMMUNITIES: "65000:2,65000:1"}}
    (adv,) = wanted([V4], [p], ann, s, NH).advertisements
    assert adv.communities == tuple(sorted(parse_communities("no-export,65000:1,65000:2")))


def test_no_next_hop_of_the_family_is_a_problem_not_a_wrong_family_route() -> None:
    w = wanted([V4, V6], [plan(V4, "ns/a"), plan(V6, "ns/b")], {}, SETTINGS, NextHops(NH.ipv4, None))
    assert {a.prefix.network_address for a in w.advertisements} == {V4}
    assert {(p.service, p.reason) for p in w.problems} == {("ns/b", NO_NEXT_HOP)}


def test_bgp_and_arp_together_are_refused() -> None:
    env = {"vip_nodename": "n", "vip_arp": "true", "bgp_enable": "true", "bgp_peeraddress": "198.18.1.1"}
    with pytest.raises(ConfigError) as exc:
        AgentConfig.load(env)
    assert exc.value.name == "bgp_enable" and "vip_arp" in str(exc.value)


def test_bgp_settings_are_read_only_in_bgp_mode() -> None:
    base = {"vip_nodename": "n", "bgp_peers": "198.18.1.1:65000,[fd00::1]:65000", "bgp_as": "65001"}
    assert AgentConfig.load(base).bgp_settings is None
    cfg = AgentConfig.load({**base, "bgp_enable": "true"})
    assert cfg.bgp_settings is not None and cfg.mode == "bgp"
    assert cfg.bgp_settings.local_as == 65001 and len(cfg.bgp_settings.peers) == 2
    with pytest.raises(ConfigError) as exc:
        AgentConfig.load({"vip_nodename": "n", "bgp_enable": "true"})
    assert exc.value.name == "bgp_peers"
    with pytest.raises(ConfigError) as exc:
        AgentConfig.load({**base, "bgp_enable": "true", "bgp_communities": "1:99999"})
    assert exc.value.name == "bgp_communities"
