"""Shared VIPs, port clashes, eligibility and election units (pure)."""

from __future__ import annotations

import ipaddress
import itertools

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.claims import PORT_CLASH, Claim, claims_of, resolve
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily
from kubevip.core.world import ServiceRecord, World, snapshot
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
