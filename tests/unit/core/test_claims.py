"""Shared VIPs, port clashes, eligibility and election units (pure)."""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.claims import (
    PORT_CLASH,
    Claim,
    PlanMemo,
    claims_of,
    dhcp_wants,
    interface_conflicts,
    resolve,
)
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.plan import decide
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily
from kubevip.core.world import ServiceRecord, World, snapshot
from tests.unit.core import builders as cb
from tests.unit.objects import service, slice_

V4 = IPFamily.IPV4


def _world(*svcs: dict, slices: tuple[dict, ...] = ()) -> World:  # type: ignore[type-arg]
    w = World()
    for s in svcs:
        v = service_from_dict(s)
        w.services[v.key] = ServiceRecord(v, s["metadata"]["creationTimestamp"])
    for d in slices:
        sv = endpointslice_from_dict(d)
        w.slices.setdefault(f"{sv.namespace}/{sv.service_name}", {})[sv.key] = sv
    return w


def test_tcp_and_udp_share_one_vip() -> None:
    w = _world(
        service("web-tcp", "192.0.2.10", ports=(("TCP", 53),)),
        service("web-udp", "192.0.2.10", ports=(("UDP", 53),), created="2026-01-02T00:00:00Z"),
    )
    snap = snapshot(w, ClassFilter(), False)
    assert len(snap.plans) == 1
    assert snap.plans[0].services == ("default/web-tcp", "default/web-udp")
    assert snap.plans[0].unit == "default/kubevip-web-tcp"  # kube-vip's Lease of the earliest
    assert not snap.clashes


def test_clashing_ports_earlier_keeps_it() -> None:
    w = _world(
        service("late", "192.0.2.10", created="2026-02-01T00:00:00Z"),
        service("early", "192.0.2.10", created="2026-01-01T00:00:00Z"),
    )
    snap = snapshot(w, ClassFilter(), False)
    assert snap.plans[0].services == ("default/early",)
    assert [(c.service, c.winner) for c in snap.clashes] == [("default/late", "default/early")]
    assert any(c.reason == "vip-port-clash" for c in snap.warnings["default/late"])
    assert not snap.warnings["default/early"]


def test_lease_name_groups_services() -> None:
    a = service("a", "192.0.2.1", annotations={"kube-vip.io/leaseName": "shared"})
    b = service("b", "192.0.2.2", annotations={"kube-vip.io/leaseName": "shared"})
    snap = snapshot(_world(a, b), ClassFilter(), False)
    assert {p.unit for p in snap.plans} == {"default/shared"}


def test_local_policy_eligibility_per_family() -> None:
    s = service(
        "l", "192.0.2.1,2001:db8::1", families=("IPv4", "IPv6"), policy="RequireDualStack", etp="Local"
    )
    sl = (slice_("l", "IPv4", [("10.0.0.1", "n1")]), slice_("l", "IPv6", [("fd00::2", "n2")]))
    snap = snapshot(_world(s, slices=sl), ClassFilter(), False)
    by_fam = {p.family: p for p in snap.plans}
    assert by_fam[IPFamily.IPV4].eligible == frozenset({"n1"})
    assert by_fam[IPFamily.IPV6].eligible == frozenset({"n2"})
    assert by_fam[IPFamily.IPV4].unit != by_fam[IPFamily.IPV6].unit
    # The primary family elects on kube-vip's own Lease; the second family on "<lease>-ipv6".
    assert by_fam[IPFamily.IPV4].unit == "default/kubevip-l"
    assert by_fam[IPFamily.IPV6].unit == "default/kubevip-l/IPv6"


def test_seed_scenario_ipv4_only() -> None:
    s = service("seed", "192.0.2.7,2001:db8::7", families=("IPv4",), policy="SingleStack")
    sl = (slice_("seed", "IPv4", [("10.0.0.1", "n1")]),)
    snap = snapshot(_world(s, slices=sl), ClassFilter(), False)
    assert [str(p.address) for p in snap.plans] == ["192.0.2.7"]
    assert any(c.reason == "family-not-served" for c in snap.warnings["default/seed"])


def test_class_filter_skips_other_classes() -> None:
    s = service("x", "192.0.2.1", lb_class="other.io/lb")
    assert not snapshot(_world(s), ClassFilter(), False).plans
    assert snapshot(_world(s), ClassFilter(legacy_handling=False), False).plans
    mine = service("y", "192.0.2.2", lb_class="kube-vip.io/kube-vip-class")
    assert snapshot(_world(mine), ClassFilter(only=True), False).plans
    assert not snapshot(_world(service("z", "192.0.2.3")), ClassFilter(only=True), False).plans


def test_not_announced_service_claims_nothing() -> None:
    s = service("r", "192.0.2.1", families=("IPv4", "IPv6"), policy="RequireDualStack")
    v = service_from_dict(s)
    snap = snapshot(_world(s), ClassFilter(), False)
    assert not snap.plans
    assert any(c.reason == "require-dual-stack-unmet" for c in snap.warnings[v.key])
    assert claims_of(v, "", snap.decisions[v.key]) == ()


addrs = st.sampled_from(
    [ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2")]
)
port_sets = st.frozensets(st.tuples(st.sampled_from(["TCP", "UDP"]), st.sampled_from([53, 80])), max_size=2)
# Services of several namespaces, same names in different namespaces ("ns1/a" and "ns2/a" are strangers).
SERVICE_KEYS = ["ns1/a", "ns1/b", "ns2/a", "ns2/c", "ns3/d"]


@st.composite
def claim_st(draw: st.DrawFn) -> Claim:
    address = draw(addrs)
    return Claim(
        order=(draw(st.sampled_from(["t1", "t2", "t3"])), draw(st.sampled_from(SERVICE_KEYS))),
        address=address,
        family=IPFamily.of(address),  # both families: a claim's family is its address's
        ports=draw(port_sets),
        group=draw(st.sampled_from(["g1", "g2"])),
        local=draw(st.booleans()),
        eligible=draw(st.none() | st.frozensets(st.sampled_from(["n1", "n2", "n3"]), max_size=3)),
        share=draw(st.sampled_from(["", "", "team"])),  # kube-vip.io/allow-shared-ip consent
    )


# One decision per Service: a Service never claims one address twice.
claim_lists = st.lists(claim_st(), max_size=8, unique_by=lambda c: (c.service, c.address))


@given(claim_lists, st.randoms())
def test_resolve_is_order_independent(claims: list[Claim], rnd: object) -> None:
    shuffled = list(claims)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert resolve(claims) == resolve(shuffled)


@given(claim_lists)
def test_granted_services_never_clash(claims: list[Claim]) -> None:
    plans, clashes = resolve(claims)
    by_key = {(c.service, c.address): c for c in claims}
    for p in plans:
        for a, b in itertools.combinations(p.services, 2):
            pa = {c.ports for c in claims if c.service == a and c.address == p.address}
            pb = {c.ports for c in claims if c.service == b and c.address == p.address}
            assert not any(x & y for x in pa for y in pb) or a == b
    for c in clashes:
        assert (c.service, c.address) in by_key
        assert all(c.service not in p.services for p in plans if p.address == c.address)
    # Every claimed address has exactly one plan: the earliest claim always keeps it.
    assert {p.address for p in plans} == {c.address for c in claims}
    assert len(plans) == len({p.address for p in plans})


@given(claim_lists)
def test_every_claim_is_granted_or_told_why(claims: list[Claim]) -> None:
    """Completeness: each claim ends in its address's plan or as a clash naming a granted winner whose
    ports overlap; a plan keeps its address's family and the earliest claimant leads it."""
    plans, clashes = resolve(claims)
    plan_of = {p.address: p for p in plans}
    clashed = {(c.service, c.address): c for c in clashes}
    for c in claims:
        plan = plan_of[c.address]
        assert plan.family == c.family == IPFamily.of(c.address)
        granted = c.service in plan.services
        assert granted != ((c.service, c.address) in clashed), c
        if not granted:
            clash = clashed[(c.service, c.address)]
            assert clash.winner in plan.services
            winners = [w for w in claims if w.service == clash.winner and w.address == c.address]
            if clash.reason == PORT_CLASH:  # told why: the winner's ports overlap
                assert any(w.ports & c.ports for w in winners)
            else:  # or: another namespace, without consent to share
                assert clash.reason == reasons.CROSS_NAMESPACE_SHARING
                assert any(not c.consents(w) for w in winners)
        first = min((k for k in claims if k.address == c.address), key=Claim.sort_key)
        assert plan.services[0] == first.service


def test_per_address_units_survive_the_first_sharer_going() -> None:
    tcp = service("tcp", "192.0.2.10", ports=(("TCP", 53),))
    udp = service("udp", "192.0.2.10", ports=(("UDP", 53),), created="2026-01-02T00:00:00Z")
    both = snapshot(_world(tcp, udp), ClassFilter(), False, per_address=True)
    only_udp = snapshot(_world(udp), ClassFilter(), False, per_address=True)
    assert both.plans[0].unit == only_udp.plans[0].unit == "vip:192.0.2.10"
    lease = service("l", "192.0.2.11", annotations={"kube-vip.io/leaseName": "grp"})
    assert snapshot(_world(lease), ClassFilter(), False, per_address=True).plans[0].unit == "default/grp"


# -- cases found by mutation testing (hack/mutation, docs/testing.md) --------------------------------


def test_a_port_without_protocol_is_tcp_and_clashes_with_tcp() -> None:
    """Kubernetes defaults a port's protocol to TCP: unset and "TCP" on one port of a shared VIP clash."""
    bare = service("bare", "192.0.2.10", created="2026-01-01T00:00:00Z")
    del bare["spec"]["ports"][0]["protocol"]
    w = _world(bare, service("tcp", "192.0.2.10", created="2026-01-02T00:00:00Z"))
    snap = snapshot(w, ClassFilter(), False)
    assert snap.plans[0].services == ("default/bare",)
    assert [(c.service, c.winner) for c in snap.clashes] == [("default/tcp", "default/bare")]


def test_a_claim_carries_the_service_interface_unless_told_not_to() -> None:
    s = service("web", "192.0.2.10", annotations={"kube-vip.io/serviceInterface": "eth9"})
    v = service_from_dict(s)
    decision = snapshot(_world(s), ClassFilter(), False).decisions[v.key]
    assert [c.interface for c in claims_of(v, "", decision)] == ["eth9"]
    assert [c.interface for c in claims_of(v, "", decision, interfaces=False)] == [""]


@pytest.mark.parametrize("per_address", [False, True])
@pytest.mark.parametrize("lease_name", ["", "grp"])
@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("dual", [False, True])
def test_a_dhcp_want_is_elected_like_its_leased_vip(
    per_address: bool, lease_name: str, local: bool, dual: bool,
) -> None:
    """The node elected to run the DHCP client holds the leased VIP: the want's unit and eligible nodes are
    the plan's, in both modes, with or without a leaseName, ETP Local or not, IPv4 first or second."""
    ann = {"kube-vip.io/leaseName": lease_name} if lease_name else {}
    kw: dict[str, object] = (
        {"lb_ips": "2001:db8::5,0.0.0.0", "families": ["IPv6", "IPv4"], "policy": "RequireDualStack"}
        if dual else {"lb_ip": "0.0.0.0"}
    )
    s = service_from_dict(cb.service(etp="Local" if local else "Cluster", annotations=ann, **kw))  # type: ignore[arg-type]
    slices = [endpointslice_from_dict(cb.endpointslice("web-4", "IPv4", [cb.ep("10.1.0.1", "n1")])),
              endpointslice_from_dict(cb.endpointslice("web-6", "IPv6", [cb.ep("fd00::1", "n2")]))]
    group = f"default/{lease_name}" if lease_name else "default/kubevip-web"
    if per_address:
        unit = (f"{group}/IPv4" if local else group) if lease_name else "dhcp:default/web/IPv4"
    else:
        unit = f"{group}/IPv4" if local and dual else group
    eligible = frozenset({"n1"}) if local else None
    before = decide(s, slices, None, False)
    [want] = dhcp_wants(s, "t0", before, per_address)
    # Local: the client runs where the leased VIP will be announced (the family's endpoint nodes); an
    # empty set here was a real bug: a Local DHCP Service never got an address (mutation run 2).
    assert (want.unit, want.eligible) == (unit, eligible)
    after = decide(s, slices, None, False, leased={IPFamily.IPV4: ipaddress.ip_address("10.0.0.7")})
    plans, _ = resolve(claims_of(s, "t0", after), per_address)
    [plan] = [p for p in plans if p.family == IPFamily.IPV4]
    assert (plan.unit, plan.eligible, plan.macvlan) == (unit, eligible, want.request.interface)


def test_a_service_not_announced_runs_no_dhcp_client() -> None:
    """No endpoints and no opt-in: not announced, so no node leases an address for it."""
    s = service_from_dict(cb.service(lb_ip="0.0.0.0", allow_no_endpoints=False))
    d = decide(s, (), None, False)
    assert not d.announce and d.dhcp
    assert dhcp_wants(s, "t0", d) == dhcp_wants(s, "t0", d, per_address=True) == ()


A = ipaddress.ip_address("192.0.2.10")


def _claim(name: str, port: int, eligible: frozenset[str] | None, **kw: object) -> Claim:
    return Claim((f"t-{name}", f"default/{name}"), A, V4, frozenset({("TCP", port)}),
                 f"default/kubevip-{name}", eligible is not None, eligible, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("first", "second", "want"), [
    ({"n1", "n2"}, {"n2", "n3"}, {"n2"}),  # only nodes serving every sharer
    ({"n1", "n2"}, {"n3"}, {"n1", "n2"}),  # nobody serves both: follow the earliest Service
    (None, {"n2", "n3"}, {"n2", "n3"}),  # a Cluster Service restricts nothing
    ({"n1"}, None, {"n1"}),
    (None, None, None),
])
def test_a_shared_vip_is_held_only_where_its_local_services_are_served(
    first: set[str] | None, second: set[str] | None, want: set[str] | None,
) -> None:
    def fs(x: set[str] | None) -> frozenset[str] | None:
        return None if x is None else frozenset(x)
    for claims in ([_claim("a", 80, fs(first)), _claim("b", 81, fs(second))],
                   [_claim("b", 81, fs(second)), _claim("a", 80, fs(first))]):
        plans, clashes = resolve(claims)
        assert not clashes
        assert [(p.services, p.eligible) for p in plans] == [(("default/a", "default/b"), fs(want))]


def test_a_shared_vip_keeps_the_first_macvlan_and_any_egress() -> None:
    first = _claim("a", 80, None, dhcp=True, macvlan="kv-mv0")
    plans, _ = resolve([first, _claim("b", 81, None, single=True)])
    assert [(p.macvlan, p.single) for p in plans] == [("kv-mv0", True)]


def test_a_service_claiming_an_address_twice_loses_no_later_sharer() -> None:
    """A leased address equal to one the Service also names literally: kept once, and the Services after
    it are still granted or told why."""
    a, a_dhcp = _claim("a", 80, None), _claim("a", 80, None, dhcp=True, macvlan="kv-mv0")
    plans, clashes = resolve([a, a_dhcp, _claim("b", 81, None), _claim("c", 80, None)])
    assert [p.services for p in plans] == [("default/a", "default/b")]
    assert [(c.service, c.winner) for c in clashes] == [("default/c", "default/a")]


def test_interface_conflicts_are_listed_per_service() -> None:
    claims = [_claim("a", 80, None, interface="eth1"), _claim("c", 82, None, interface="eth3"),
              _claim("b", 81, None, interface="eth2"), _claim("d", 83, None)]
    plans, _ = resolve(claims)
    got = interface_conflicts(claims, plans)
    assert [(c.service, c.winner, c.wanted, c.used) for c in got] == [
        ("default/b", "default/a", "eth2", "eth1"), ("default/c", "default/a", "eth3", "eth1")]


@given(st.lists(st.tuples(claim_lists, st.booleans(), st.booleans()), min_size=1, max_size=5))
def test_a_plan_memo_never_changes_the_answer(calls: list[tuple[list[Claim], bool, bool]]) -> None:
    """One memo carried through calls with other claims (some kept as the same objects), per-address
    units on or off and cross-namespace sharing on or off answers each call exactly as a call without it;
    an address one unchanged claim alone asks for gets the very plan object of the call before; the
    memo keeps only the last call's single claims."""
    memo: PlanMemo = {}
    before: PlanMemo = {}
    kept: list[Claim] = []
    for fresh, per_address, cross in calls:
        claims = kept[: len(kept) // 2] + fresh  # half of the last call's claim objects come back
        claims = list({(c.service, c.address): c for c in claims}.values())
        plans, clashes = resolve(claims, per_address, cross, memo)
        assert (plans, clashes) == resolve(claims, per_address, cross)
        singles = {c.address: c for c in claims if sum(d.address == c.address for d in claims) == 1}
        by_addr = {p.address: p for p in plans}
        for addr, c in singles.items():
            e = before.get(id(c))
            if e is not None and e[0] is c and e[1] == per_address:
                assert by_addr[addr] is e[2]
        assert {id(c) for c in singles.values()} == set(memo)
        before = dict(memo)  # holds the claims: no id is reused while it is looked up
        kept = claims


def test_the_same_claims_again_give_the_same_plan_objects() -> None:
    six = ipaddress.ip_address("2001:db8::1")
    claims = [_claim("a", 80, None),
              Claim(("t-b", "default/b"), six, IPFamily.IPV6, frozenset({("TCP", 80)}), "default/kubevip-b",
                    False, None)]
    memo: PlanMemo = {}
    first, _ = resolve(claims, True, False, memo)
    again, _ = resolve(list(reversed(claims)), True, False, memo)
    assert all(a is b for a, b in zip(first, again, strict=True))
    other, _ = resolve(claims, False, False, memo)  # another unit rule: built again
    assert not any(a is b for a, b in zip(first, other, strict=True))
