"""Egress SNAT and Service security decisions (core/egress.py): per family, never an unserved family."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import egress as eg
from kubevip.core.claims import claims_of
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.plan import decide, node_share
from kubevip.core.views import IPFamily, ServiceView
from tests.unit.core import builders as b

NETS = eg.ClusterNetworks(
    pod_cidrs=(ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("fd00:10:244::/56")),
    service_cidrs=(ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("fd00:10:96::/112")),
    api_servers=(ipaddress.ip_address("198.18.1.254"), ipaddress.ip_address("fd6b::254")),
)
V4_VIP, V6_VIP = "198.18.1.200", "fd6b::200"
PODS = [("10.244.1.2", "n1"), ("fd00:10:244:1::2", "n1"), ("10.244.2.2", "n2"), ("fd00:10:244:2::2", "n2")]


def svc(families: list[str], annotations: dict[str, str] | None = None, **kw: Any) -> ServiceView:
    ann = {"kube-vip.io/egress": "true", **(annotations or {})}
    policy = "SingleStack" if len(families) == 1 else "PreferDualStack"
    lb = ",".join(V4_VIP if f == "IPv4" else V6_VIP for f in families)
    return service_from_dict(b.service(families=families, policy=policy, lb_ips=lb, annotations=ann, **kw))


def slices(pods: list[tuple[str, str]] = PODS, ready: bool = True) -> list[Any]:
    v4 = [b.ep(a, n, ready) for a, n in pods if ":" not in a]
    v6 = [b.ep(a, n, ready) for a, n in pods if ":" in a]
    return [endpointslice_from_dict(b.endpointslice("web-4", "IPv4", v4)),
            endpointslice_from_dict(b.endpointslice("web-6", "IPv6", v6))]


HELD = frozenset({ipaddress.ip_address(V4_VIP), ipaddress.ip_address(V6_VIP)})


def rules(view: ServiceView, me: str = "n1", held: frozenset[Any] = HELD, security: bool = False,
          pods: list[tuple[str, str]] = PODS) -> eg.PacketRules:
    d = decide(view, slices(pods), None, False)
    return eg.node_rules([(view, d)], held, me, NETS, security)


def test_seed_case_ipv4_only_service_over_dual_stack_pods_gets_no_ipv6_rule() -> None:
    r = rules(svc(["IPv4"]))
    assert [(x.family, str(x.vip), [str(s) for s in x.sources]) for x in r.snat] == [
        (IPFamily.IPV4, V4_VIP, ["10.244.1.2"])
    ]
    assert [str(n) for n in r.snat[0].exempt] == ["10.96.0.0/16", "10.244.0.0/16"]


def test_dual_stack_service_translates_each_family_with_its_own_vip() -> None:
    r = rules(svc(["IPv6", "IPv4"]))
    assert {(x.family, str(x.vip), tuple(map(str, x.sources))) for x in r.snat} == {
        (IPFamily.IPV4, V4_VIP, ("10.244.1.2",)), (IPFamily.IPV6, V6_VIP, ("fd00:10:244:1::2",)),
    }


def test_single_stack_ipv6() -> None:
    r = rules(svc(["IPv6"]))
    assert [(x.family, str(x.vip)) for x in r.snat] == [(IPFamily.IPV6, V6_VIP)]
    assert [str(n) for n in r.snat[0].exempt] == ["fd00:10:96::/112", "fd00:10:244::/56"]


def test_only_held_vips_and_local_endpoints_count() -> None:
    view = svc(["IPv4", "IPv6"])
    assert rules(view, held=frozenset({ipaddress.ip_address(V6_VIP)})).snat[0].family == IPFamily.IPV6
    assert rules(view, me="n3").snat == ()
    assert rules(view, held=frozenset()).snat == ()


def test_not_ready_endpoints_are_not_translated_while_ready_ones_exist() -> None:
    view = svc(["IPv4"])
    sl = [endpointslice_from_dict(b.endpointslice("web-4", "IPv4", [
        b.ep("10.244.1.2", "n1", True), b.ep("10.244.1.3", "n1", False)]))]
    r = eg.node_rules([(view, decide(view, sl, None, False))], HELD, "n1", NETS, False)
    assert [str(s) for s in r.snat[0].sources] == ["10.244.1.2"]


def test_annotations_shape_the_rule_per_family() -> None:
    view = svc(["IPv4", "IPv6"], {
        "kube-vip.io/egress-destination-ports": "udp:53, 443,tcp:80",
        "kube-vip.io/egress-denied-networks": "192.0.2.0/24,2001:db8::/32",
        "kube-vip.io/egress-allowed-networks": "203.0.113.0/24",
        "kube-vip.io/egress-detect-api-server": "true",
    })
    r = rules(view)
    assert [x.family for x in r.snat] == [IPFamily.IPV4]  # only IPv4 destinations are allowed
    x = r.snat[0]
    assert x.ports == (("tcp", 80), ("tcp", 443), ("udp", 53))
    assert x.allowed == (ipaddress.ip_network("203.0.113.0/24"),)
    assert [str(n) for n in x.exempt] == ["10.96.0.0/16", "10.244.0.0/16", "192.0.2.0/24", "198.18.1.254/32"]


def test_api_server_of_both_families_is_exempt_and_internal_traffic_can_be_translated() -> None:
    view = svc(["IPv6"], {"kube-vip.io/egress-detect-api-server": "true",
                          "kube-vip.io/egress-no-internal-traffic": "true"})
    assert [str(n) for n in rules(view).snat[0].exempt] == ["fd6b::254/128"]


def test_bad_entries_are_named_and_the_rest_applies() -> None:
    spec = eg.egress_spec(svc(["IPv4"], {"kube-vip.io/egress-destination-ports": "tcp:80,icmp:1,99999",
                                         "kube-vip.io/egress-denied-networks": "10.0.0.0/8,nonsense"}))
    assert spec.ports == (("tcp", 80),)
    assert [str(n) for n in spec.denied] == ["10.0.0.0/8"]
    assert any("'icmp:1'" in e for e in spec.errors) and any("'99999'" in e for e in spec.errors)
    assert any("'nonsense'" in e and "egress-denied-networks" in e for e in spec.errors)


def test_a_pod_of_two_egress_services_leaves_with_the_earlier_ones_vip() -> None:
    a, b_ = svc(["IPv4"]), svc(["IPv4"])
    b_ = service_from_dict(b.service("other", families=["IPv4"], lb_ips="198.18.1.201",
                                     annotations={"kube-vip.io/egress": "true"}))
    sl = slices()
    other_sl = [endpointslice_from_dict(b.endpointslice("o-4", "IPv4", [b.ep("10.244.1.2", "n1")], "other"))]
    held = HELD | {ipaddress.ip_address("198.18.1.201")}
    r = eg.node_rules([(a, decide(a, sl, None, False)), (b_, decide(b_, other_sl, None, False))],
                      held, "n1", NETS, False)
    assert [(x.service, str(x.vip)) for x in r.snat] == [("default/web", V4_VIP)]


def test_egress_binds_the_vip_to_nodes_with_an_endpoint_of_its_family() -> None:
    view = svc(["IPv4", "IPv6"])
    pods = [("10.244.1.2", "n1"), ("fd00:10:244:2::2", "n2")]
    d = decide(view, slices(pods), None, False)
    share = node_share(d, view, "n1")
    assert share[IPFamily.IPV4].announce and not share[IPFamily.IPV6].announce
    claims = {c.family: c.eligible for c in claims_of(view, "", d)}
    assert claims == {IPFamily.IPV4: frozenset({"n1"}), IPFamily.IPV6: frozenset({"n2"})}


def test_service_security_guards_held_vips_with_the_services_ports_unless_ignored() -> None:
    plain = service_from_dict(b.service(families=["IPv4", "IPv6"], policy="PreferDualStack",
                                        lb_ips=f"{V4_VIP},{V6_VIP}"))
    d = decide(plain, [], None, False)
    r = eg.node_rules([(plain, d)], frozenset({ipaddress.ip_address(V6_VIP)}), "n1", NETS, True)
    assert r.snat == () and [(str(g.vip), g.ports) for g in r.guards] == [(V6_VIP, (("tcp", 80),))]
    assert eg.node_rules([(plain, d)], HELD, "n1", NETS, False).guards == ()
    ignored = service_from_dict(b.service(families=["IPv4"], lb_ips=V4_VIP,
                                          annotations={"kube-vip.io/ignore-service-security": "true"}))
    assert eg.node_rules([(ignored, decide(ignored, [], None, False))], HELD, "n1", NETS, True).guards == ()


def test_active_endpoint_annotations_per_family() -> None:
    view = svc(["IPv4"])
    d = decide(view, slices(), None, False)
    assert eg.active_endpoints(d, HELD, "n1") == {eg.ANN_ACTIVE_ENDPOINT: "10.244.1.2"}
    assert eg.active_endpoints(d, HELD, "n3") == {eg.ANN_ACTIVE_ENDPOINT: None}
    assert eg.active_endpoints(d, frozenset(), "n1") == {}
    dual = svc(["IPv6", "IPv4"])
    d = decide(dual, slices(), None, False)
    assert eg.active_endpoints(d, frozenset({ipaddress.ip_address(V6_VIP)}), "n2") == {
        eg.ANN_ACTIVE_ENDPOINT_IPV6: "fd00:10:244:2::2"
    }
    # The holder of only the second family's VIP writes that family's key.
    dual = svc(["IPv4", "IPv6"])
    d = decide(dual, slices(), None, False)
    assert eg.active_endpoints(d, frozenset({ipaddress.ip_address(V6_VIP)}), "n1") == {
        eg.ANN_ACTIVE_ENDPOINT_IPV6: "fd00:10:244:1::2"
    }


# -- properties -------------------------------------------------------------------------------------------

ADDRS = ["10.244.1.2", "10.244.1.3", "10.244.2.2", "fd00:10:244:1::2", "fd00:10:244:1::3", "fd00:10:244:2::2"]
pod = st.tuples(st.sampled_from(ADDRS), st.sampled_from(["n1", "n2"]))
families = st.sampled_from([["IPv4"], ["IPv6"], ["IPv4", "IPv6"], ["IPv6", "IPv4"]])
held = st.sets(st.sampled_from([ipaddress.ip_address(V4_VIP), ipaddress.ip_address(V6_VIP)])).map(frozenset)
annotations = st.fixed_dictionaries({}, optional={
    "kube-vip.io/egress-destination-ports": st.sampled_from(["tcp:80", "udp:53,443", "bogus"]),
    "kube-vip.io/egress-allowed-networks": st.sampled_from(["203.0.113.0/24", "2001:db8::/32", "x"]),
    "kube-vip.io/egress-denied-networks": st.sampled_from(["192.0.2.0/24,2001:db8::/32", ""]),
    "kube-vip.io/egress-no-internal-traffic": st.sampled_from(["true", "false"]),
    "kube-vip.io/egress-detect-api-server": st.sampled_from(["true", "false"]),
})


unique_pods = st.lists(pod, max_size=6, unique_by=lambda p: p[0])


@given(families, unique_pods, held, annotations, st.sampled_from(["n1", "n2"]))
def test_every_rule_is_of_one_served_family_and_translates_only_local_endpoints_of_it(
    fams: list[str], pods: list[tuple[str, str]], held_vips: frozenset[Any], ann: dict[str, str], me: str
) -> None:
    view = svc(fams, ann)
    d = decide(view, slices(pods), None, False)
    r = eg.node_rules([(view, d)], held_vips, me, NETS, True)
    served = {IPFamily(f) for f in fams}
    local = {ipaddress.ip_address(a) for a, n in pods if n == me}
    for x in r.snat:
        assert x.family in served
        assert IPFamily.of(x.vip) == x.family and x.vip in held_vips
        assert all(IPFamily.of(s) == x.family and s in local for s in x.sources)
        assert all(n.version == x.vip.version for n in (*x.exempt, *(x.allowed or ())))
    assert len({x.family for x in r.snat}) == len(r.snat)
    # Every served family with a held VIP and a local endpoint is translated (unless allowed-networks
    # names only other families' destinations).
    spec = eg.egress_spec(view)
    for f in served:
        version = 4 if f == IPFamily.IPV4 else 6
        want = any(v.version == version for v in held_vips) and any(a.version == version for a in local)
        if spec.allowed is not None and not any(n.version == version for n in spec.allowed):
            want = False
        assert want == any(x.family == f for x in r.snat)


@given(st.lists(pod, max_size=6), held)
def test_rules_do_not_depend_on_endpoint_order(
    pods: list[tuple[str, str]], held_vips: frozenset[Any]
) -> None:
    view = svc(["IPv4", "IPv6"])
    assert rules(view, held=held_vips, pods=pods) == rules(view, held=held_vips, pods=list(reversed(pods)))


def test_discovered_networks_from_nodes_servicecidrs_and_the_api_servers_slices() -> None:
    nodes = [{"spec": {"podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]}}, {"spec": {}},
             {"spec": {"podCIDRs": ["10.244.2.0/24", "bogus"]}}]
    cidrs = [{"spec": {"cidrs": ["10.96.0.0/16", "fd00:10:96::/112"]}}]
    slices = [{"endpoints": [{"addresses": ["198.18.1.254"]}, {"addresses": ["fd6b::254"]}]}]
    n = eg.discovered_networks(nodes, cidrs, slices, ["[fd6b::1]", "api.example", "198.18.1.254"])
    assert [str(c) for c in n.pod_cidrs] == ["10.244.1.0/24", "10.244.2.0/24", "fd00:10:244:1::/64"]
    assert [str(c) for c in n.service_cidrs] == ["10.96.0.0/16", "fd00:10:96::/112"]
    assert [str(a) for a in n.api_servers] == ["198.18.1.254", "fd6b::1", "fd6b::254"]
    fixed = (ipaddress.ip_network("10.0.0.0/8"),)
    assert eg.discovered_networks(nodes, cidrs, slices, (), fixed, fixed).pod_cidrs == fixed


def test_discovery_exempts_every_network_it_is_given_whatever_comes_before_it() -> None:
    """A node without spec, junk before a good entry, a CIDR written with host bits, a host name before an
    address: none of them costs a later network its exemption (a missing one would translate traffic to
    pods or the API server), and the settings replace discovery for both kinds of network."""
    nodes = [{}, {"spec": None}, {"spec": {"podCIDRs": ["bogus", "10.244.1.1/24"]}}]
    cidrs = [{"spec": {"cidrs": ["nonsense", "fd00:10:96::1/112"]}}]
    n = eg.discovered_networks(nodes, cidrs, [], ["api.example", "198.18.1.9", "[fd6b::9]"])
    assert n.pod_cidrs == (ipaddress.ip_network("10.244.1.0/24"),)
    assert n.service_cidrs == (ipaddress.ip_network("fd00:10:96::/112"),)
    assert n.api_servers == (ipaddress.ip_address("198.18.1.9"), ipaddress.ip_address("fd6b::9"))
    pods, services = (ipaddress.ip_network("10.0.0.0/8"),), (ipaddress.ip_network("10.96.0.0/12"),)
    fixed = eg.discovered_networks(nodes, cidrs, [], (), pods, services)
    assert (fixed.pod_cidrs, fixed.service_cidrs) == (pods, services)


def test_an_egress_vip_is_a_single_holder_unit_even_where_eligible_nodes_would_all_announce() -> None:
    from kubevip.core.selection import ClassFilter
    from kubevip.core.world import World, apply_event, snapshot

    world = World()
    egress = svc(["IPv4"])
    plain = service_from_dict(b.service("plain", families=["IPv4"], lb_ips="198.18.1.201", etp="Local"))
    apply_event(world, "Service", False, egress, "2026-01-01T00:00:00Z")
    apply_event(world, "Service", False, plain, "2026-01-01T00:00:01Z")
    for sl in slices():
        apply_event(world, "EndpointSlice", False, sl)
    snap = snapshot(world, ClassFilter(), False, per_address=True)
    by = {str(p.address): p for p in snap.plans}
    assert by[V4_VIP].single and by[V4_VIP].eligible == frozenset({"n1", "n2"})
    assert not by["198.18.1.201"].single
    assert snap.single_units == frozenset({by[V4_VIP].unit})


def test_bad_entries_become_one_warning_each_through_the_snapshot() -> None:
    from kubevip.core.selection import ClassFilter
    from kubevip.core.world import World, apply_event, snapshot

    world = World()
    bad = svc(["IPv4"], {"kube-vip.io/egress-destination-ports": "tcp:0,udp:53",
                         "kube-vip.io/egress-allowed-networks": "10.0.0.0/8,zz"})
    apply_event(world, "Service", False, bad)
    warns = snapshot(world, ClassFilter(), False).warnings["default/web"]
    assert {w.reason for w in warns} == {"egress-annotation-invalid"}
    assert sorted(w.message for w in warns) == [
        "egress annotation ignored: kube-vip.io/egress-allowed-networks: 'zz' is not an address or CIDR",
        "egress annotation ignored: kube-vip.io/egress-destination-ports: 'tcp:0' is not protocol:port "
        "(tcp, udp, sctp; 1-65535)",
    ]
    assert eg.egress_warnings(svc(["IPv4"])) == frozenset()


# -- mutation testing (docs/testing.md): each case below failed to notice a changed line ---------------


def test_a_service_without_the_egress_annotation_gets_no_snat_rule() -> None:
    """Egress is opt-in: a held, announced VIP with local endpoints translates nothing unless the Service
    says `kube-vip.io/egress: "true"`, whatever its other egress annotations say."""
    for ann in ({}, {"kube-vip.io/egress": "false", "kube-vip.io/egress-allowed-networks": "0.0.0.0/0"}):
        plain = service_from_dict(b.service(families=["IPv4", "IPv6"], policy="PreferDualStack",
                                            lb_ips=f"{V4_VIP},{V6_VIP}", annotations=ann))
        d = decide(plain, slices(), None, False)
        assert d.announce and eg.egress_spec(plain) == eg.EgressSpec(False)
        assert eg.snat_rules(d, eg.egress_spec(plain), HELD, "n1", NETS) == ()
        assert eg.node_rules([(plain, d)], HELD, "n1", NETS, False).empty


def test_a_family_without_allowed_destinations_costs_the_other_family_nothing() -> None:
    view = svc(["IPv4", "IPv6"], {"kube-vip.io/egress-allowed-networks": "2001:db8::/32"})
    assert [(x.family, x.allowed) for x in rules(view).snat] == [
        (IPFamily.IPV6, (ipaddress.ip_network("2001:db8::/32"),))]


def test_every_service_is_translated_and_guarded_whatever_comes_before_it() -> None:
    """Later Services still get their rules after one without security (setting off, opted out, no
    ports): a `continue` that became `break` would leave them untranslated or unguarded."""
    first = svc(["IPv4"], {"kube-vip.io/ignore-service-security": "true"})
    d_raw = b.service("dns", families=["IPv4"], lb_ips="198.18.1.201",
                      annotations={"kube-vip.io/egress": "true"})
    d_raw["spec"]["ports"] = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "h", "port": 80}]
    d = service_from_dict(d_raw)
    other = [endpointslice_from_dict(b.endpointslice("dns-4", "IPv4", [b.ep("10.244.1.9", "n1")], "dns"))]
    held = HELD | {ipaddress.ip_address("198.18.1.201")}
    services = [(first, decide(first, slices(), None, False)), (d, decide(d, other, None, False))]
    for security in (False, True):
        r = eg.node_rules(services, held, "n1", NETS, security)
        assert [(x.service, str(x.vip), [str(s) for s in x.sources]) for x in r.snat] == [
            ("default/dns", "198.18.1.201", ["10.244.1.9"]), ("default/web", V4_VIP, ["10.244.1.2"])]
        want = [("198.18.1.201", (("tcp", 80), ("udp", 53)))] if security else []
        assert [(str(g.vip), g.ports) for g in r.guards] == want


def test_entry_limits_ports_and_host_bits_are_read_as_written() -> None:
    ok = eg.egress_spec(svc(["IPv4"], {
        "kube-vip.io/egress-destination-ports": "1,udp:65535",
        "kube-vip.io/egress-denied-networks": "192.0.2.7/24",
        "kube-vip.io/egress-allowed-networks": ",".join(f"10.0.{i}.1/24" for i in range(eg.MAX_ENTRIES)),
    }))
    assert ok.errors == ()
    assert ok.ports == (("tcp", 1), ("udp", 65535))
    assert ok.denied == (ipaddress.ip_network("192.0.2.0/24"),)
    assert ok.allowed is not None and len(ok.allowed) == eg.MAX_ENTRIES
    too_many = eg.egress_spec(svc(["IPv4"], {
        "kube-vip.io/egress-destination-ports":
            ",".join(str(p) for p in range(1, eg.MAX_ENTRIES + 2)) + ",tcp:65536",
        "kube-vip.io/egress-denied-networks": ",".join(f"10.0.{i}.0/24" for i in range(eg.MAX_ENTRIES + 1)),
    }))
    assert too_many.errors == (
        "kube-vip.io/egress-destination-ports: 66 entries, at most 64",
        "kube-vip.io/egress-denied-networks: 65 entries, at most 64",
    )
    assert [p for _, p in too_many.ports] == list(range(1, eg.MAX_ENTRIES + 1))
    assert len(too_many.denied) == eg.MAX_ENTRIES
    exactly = ",".join(str(p) for p in range(1, eg.MAX_ENTRIES + 1))
    assert eg.egress_spec(svc(["IPv4"], {"kube-vip.io/egress-destination-ports": exactly})).errors == ()
    assert eg.egress_spec(svc(["IPv4"], {"kube-vip.io/egress-destination-ports": "tcp:65536"})).errors == (
        "kube-vip.io/egress-destination-ports: 'tcp:65536' is not protocol:port (tcp, udp, sctp; 1-65535)",)


def test_an_egress_warning_belongs_to_its_service() -> None:
    bad = svc(["IPv4"], {"kube-vip.io/egress-destination-ports": "tcp:0"})
    assert eg.egress_warnings(bad) == frozenset({eg.Condition(
        "default/web", "Warning", "egress-annotation-invalid",
        "egress annotation ignored: kube-vip.io/egress-destination-ports: 'tcp:0' is not protocol:port "
        "(tcp, udp, sctp; 1-65535)")})
