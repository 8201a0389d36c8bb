"""Which nodes may hold a VIP (core/eligibility.py): the rules one by one, and properties over random
clusters."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import labelselector
from kubevip.core.claims import DhcpWant, VipPlan
from kubevip.core.conditions import WARNING, Condition
from kubevip.core.dhcp import DhcpRequest
from kubevip.core.eligibility import (
    ANNOTATION_NODE_SELECTOR,
    ANNOTATION_PREFERRED_NODES,
    EXCLUDE_LABEL,
    MAX_NAMED,
    PlacementMemo,
    Refusal,
    Rules,
    ServiceRules,
    no_eligible_node,
    parse_preferred,
    place,
    placed_snapshot,
    refusal,
    service_rules,
)
from kubevip.core.nodes import FamilyNetwork, NodeNetwork, NodeView
from kubevip.core.parse import service_from_dict
from kubevip.core.reasons import Reason
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily, ServiceView
from kubevip.core.world import ServiceRecord, World, snapshot
from tests.unit.objects import service

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
VIP4 = ipaddress.ip_address("192.0.2.10")
VIP6 = ipaddress.ip_address("2001:db8::10")


def net(
    v4: str | None = "192.0.2.0/24", v6: str | None = None, links: tuple[str, ...] = ("eth0",)
) -> NodeNetwork:
    fams = []
    if v4:
        fams.append((V4, FamilyNetwork("eth0", (ipaddress.ip_network(v4),))))
    if v6:
        fams.append((V6, FamilyNetwork("eth0", (ipaddress.ip_network(v6),))))
    return NodeNetwork(tuple(fams), frozenset(links))


def node(name: str, labels: dict[str, str] | None = None, *, cordoned: bool = False,
         network: NodeNetwork | None = None) -> NodeView:
    return NodeView(name, tuple(sorted((labels or {}).items())), (), cordoned, True, network)


def plan(addr: ipaddress.IPv4Address | ipaddress.IPv6Address = VIP4, svc: str = "default/web",
         eligible: frozenset[str] | None = None, interface: str = "") -> VipPlan:
    return VipPlan(addr, IPFamily.of(addr), svc, (svc,), eligible, interface)


def svc(name: str = "web", **annotations: str) -> ServiceView:
    return service_from_dict(service(name, "192.0.2.10", annotations=annotations))


def nodes(*ns: NodeView) -> dict[str, NodeView]:
    return {n.name: n for n in ns}


def test_no_nodes_known_changes_nothing() -> None:
    p = plan()
    pl = place([p], {}, {}, Rules(drain_on_cordon=True, layer2=True))
    assert pl.plans == (p,) and not pl.refusals and not pl.warnings


def test_excluded_label_always_refuses() -> None:
    pl = place([plan()], {}, nodes(node("a", {EXCLUDE_LABEL: ""}), node("b")), Rules())
    assert pl.plans[0].eligible == frozenset({"b"})
    assert pl.refusals[VIP4]["a"].reason == Reason.NODE_EXCLUDED
    assert pl.elected == frozenset({"default/web"})  # Cluster Service: still one elected holder


def test_all_eligible_keeps_any_node() -> None:
    """Nothing refused: the plan keeps `eligible=None` (Lease mode keeps its one global Lease)."""
    pl = place([plan()], {}, nodes(node("a"), node("b")), Rules(drain_on_cordon=True))
    assert pl.plans[0].eligible is None and not pl.elected


def test_cordon_refuses_only_with_drain_on_cordon() -> None:
    ns = nodes(node("a", cordoned=True), node("b"))
    assert place([plan()], {}, ns, Rules()).plans[0].eligible is None
    pl = place([plan()], {}, ns, Rules(drain_on_cordon=True))
    assert pl.plans[0].eligible == frozenset({"b"})
    assert pl.refusals[VIP4]["a"].reason == Reason.NODE_CORDONED


def test_global_and_service_selectors() -> None:
    ns = nodes(
        node("a", {"rack": "r1", "lb": ""}), node("b", {"rack": "r2", "lb": ""}), node("c", {"rack": "r1"})
    )
    rules = Rules(node_selector=labelselector.parse("lb"))
    services = {"default/web": svc(**{ANNOTATION_NODE_SELECTOR: "rack in (r1)"})}
    pl = place([plan()], services, ns, rules)
    assert pl.plans[0].eligible == frozenset({"a"})
    assert pl.refusals[VIP4]["b"].reason == Reason.NODE_SELECTOR_SERVICE
    assert pl.refusals[VIP4]["c"].reason == Reason.NODE_SELECTOR_GLOBAL
    assert "rack in (r1)" in pl.refusals[VIP4]["b"].detail


def test_invalid_service_selector_refuses_its_vips_and_warns() -> None:
    services = {"default/web": svc(**{ANNOTATION_NODE_SELECTOR: "rack in (r1"})}
    pl = place([plan(), plan(ipaddress.ip_address("192.0.2.11"), "default/other")], services,
               nodes(node("a")), Rules())
    assert pl.plans[0].eligible == frozenset()
    assert pl.plans[1].eligible is None  # costs no other Service anything
    reasons = {c.reason for c in pl.warnings["default/web"]}
    assert reasons == {Reason.NODE_SELECTOR_INVALID, Reason.NO_ELIGIBLE_NODE}
    assert "default/other" not in pl.warnings


def test_no_eligible_node_warning_names_each_node_and_why() -> None:
    ns = nodes(node("a", {EXCLUDE_LABEL: "true"}), node("b", cordoned=True))
    pl = place([plan()], {}, ns, Rules(drain_on_cordon=True))
    (cond,) = pl.warnings["default/web"]
    assert cond.reason == Reason.NO_ELIGIBLE_NODE and cond.type == "Warning"
    assert "a: node-excluded" in cond.message and "b: node-cordoned" in cond.message


def test_local_plan_with_no_endpoints_gets_no_placement_warning() -> None:
    pl = place([plan(eligible=frozenset())], {}, nodes(node("a", {EXCLUDE_LABEL: ""})), Rules())
    assert not pl.warnings and pl.plans[0].eligible == frozenset()


def test_local_plan_is_narrowed_not_elected() -> None:
    pl = place([plan(eligible=frozenset({"a", "b"}))], {}, nodes(node("a", {EXCLUDE_LABEL: ""}), node("b")),
               Rules())
    assert pl.plans[0].eligible == frozenset({"b"}) and not pl.elected


def test_layer2_subnet_rule_per_family() -> None:
    ns = nodes(
        node("a", network=net("192.0.2.0/24", "2001:db8:1::/64")),
        node("b", network=net("198.51.100.0/24", "2001:db8::/64")),
        node("c"),  # published nothing: never refused by the subnet rule
    )
    pl = place([plan(VIP4), plan(VIP6, "default/web6")], {}, ns, Rules(layer2=True))
    assert pl.plans[0].eligible == frozenset({"a", "c"})
    assert pl.plans[1].eligible == frozenset({"b", "c"})
    assert pl.refusals[VIP4]["b"].reason == Reason.NODE_OFF_SUBNET
    # Not in layer-2 mode (BGP, routing table): the subnet says nothing.
    assert place([plan(VIP4)], {}, ns, Rules()).plans[0].eligible is None


def test_subnet_rule_refuses_nobody_when_nobody_is_on_the_subnet() -> None:
    ns = nodes(node("a", network=net("198.51.100.0/24")), node("b", network=net("203.0.113.0/24")))
    assert place([plan(VIP4)], {}, ns, Rules(layer2=True)).plans[0].eligible is None


def test_layer2_service_interface_rule() -> None:
    ns = nodes(node("a", network=net(links=("eth0", "vlan10"))), node("b", network=net()))
    pl = place([plan(interface="vlan10")], {}, ns, Rules(layer2=True))
    assert pl.plans[0].eligible == frozenset({"a"})
    assert pl.refusals[VIP4]["b"].reason == Reason.NODE_LACKS_INTERFACE


def test_shared_vip_follows_the_earliest_service() -> None:
    p = VipPlan(VIP4, V4, "default/first", ("default/first", "default/second"), None)
    services = {
        "default/first": svc("first", **{ANNOTATION_NODE_SELECTOR: "rack=r1"}),
        "default/second": svc("second", **{ANNOTATION_NODE_SELECTOR: "rack=r2"}),
    }
    pl = place([p], services, nodes(node("a", {"rack": "r1"}), node("b", {"rack": "r2"})), Rules())
    assert pl.plans[0].eligible == frozenset({"a"})


def test_preferred_nodes_parse_and_per_unit() -> None:
    assert parse_preferred(" b, a ,,b, c ") == ("b", "a", "c")
    services = {"default/web": svc(**{ANNOTATION_PREFERRED_NODES: "n2,n1"})}
    assert place([plan()], services, {}, Rules()).preferred == {"default/web": ("n2", "n1")}


def test_placed_snapshot_adds_warnings_and_regrants() -> None:
    w = World()
    v = service_from_dict(service("web", "192.0.2.10"))
    w.services[v.key] = ServiceRecord(v, "2026-01-01T00:00:00Z")
    snap = snapshot(w, ClassFilter(), False)
    new, _ = placed_snapshot(snap, {v.key: v}, nodes(node("a", {EXCLUDE_LABEL: ""})), Rules())
    (unit,) = snap.units  # the Service's unit (kube-vip's Lease name: core/leases.py)
    assert new.units == {unit: frozenset()}
    assert new.granted["default/web"][0].eligible == frozenset()
    assert {c.reason for c in new.warnings["default/web"]} == {Reason.NO_ELIGIBLE_NODE}
    assert snap.units == {unit: None}  # the original is untouched


# -- cases found by mutation testing (hack/mutation, docs/testing.md) --------------------------------


def test_plain_service_adds_no_rule() -> None:
    """No annotation: no selector, no error, no preferred node (not a node named by a default)."""
    assert service_rules(svc()) == ServiceRules() == service_rules(None)


def test_invalid_selector_message_quotes_at_most_200_characters() -> None:
    raw = "rack in (" + "r" * 300
    rules = service_rules(svc(**{ANNOTATION_NODE_SELECTOR: raw}))
    assert rules.selector is None and f"{raw[:200]!r}" in rules.selector_error


def test_every_refusal_names_the_node_and_the_rule() -> None:
    """The detail of each refusal reaches Events and explain: it names the node and what refused it."""
    bad = service_rules(svc(**{ANNOTATION_NODE_SELECTOR: "rack in (r1"}))
    sel = service_rules(svc(**{ANNOTATION_NODE_SELECTOR: "rack=r1"}))
    ns = nodes(
        node("excl", {EXCLUDE_LABEL: ""}), node("cord", cordoned=True), node("glob"),
        node("svcsel", {"lb": "x"}), node("noif", {"lb": "x", "rack": "r1"}, network=net(links=("eth0",))),
        node("offnet", {"lb": "x", "rack": "r1"}, network=net("198.51.100.0/24")),
    )
    glob = Rules(drain_on_cordon=True, node_selector=labelselector.parse("lb"), layer2=True)
    cases = [
        ("excl", ServiceRules(), "", None, Reason.NODE_EXCLUDED, EXCLUDE_LABEL),
        ("cord", ServiceRules(), "", None, Reason.NODE_CORDONED, "cordoned"),
        ("glob", ServiceRules(), "", None, Reason.NODE_SELECTOR_GLOBAL, "vip_node_selector (lb)"),
        ("svcsel", sel, "", None, Reason.NODE_SELECTOR_SERVICE, ANNOTATION_NODE_SELECTOR),
        ("noif", sel, "vlan10", None, Reason.NODE_LACKS_INTERFACE, "'vlan10'"),
        ("offnet", sel, "", frozenset({"other"}), Reason.NODE_OFF_SUBNET, f"subnet of {VIP4}"),
    ]
    for name, rules, iface, subnet_nodes, reason, words in cases:
        r = refusal(ns[name], VIP4, iface, rules, glob, subnet_nodes)
        assert r is not None and r.reason == reason, (name, r)
        assert f"node {name} " in r.detail and words in r.detail, (name, r.detail)
    r = refusal(ns["svcsel"], VIP4, "", bad, glob, None)
    assert r == Refusal(Reason.NODE_SELECTOR_INVALID, bad.selector_error)


def test_invalid_selector_warns_even_when_nothing_else_does() -> None:
    """A Local plan without endpoints gets no "no eligible node" Warning, but a selector that does not
    parse is still reported, on the Service that carries it, as a Warning."""
    services = {"default/web": svc(**{ANNOTATION_NODE_SELECTOR: "rack in (r1"})}
    pl = place([plan(eligible=frozenset())], services, nodes(node("a")), Rules())
    error = service_rules(services["default/web"]).selector_error
    assert pl.warnings == {"default/web": frozenset({
        Condition("default/web", WARNING, Reason.NODE_SELECTOR_INVALID, error),
    })}


def test_no_eligible_node_warning_is_the_services_and_counts_the_rest() -> None:
    shared = VipPlan(VIP4, V4, "default/a", ("default/a", "default/b"), None)
    ns = nodes(*(node(f"n{i:02}", {EXCLUDE_LABEL: ""}) for i in range(MAX_NAMED)))
    pl = place([shared], {}, ns, Rules())
    assert set(pl.warnings) == {"default/a", "default/b"}
    for key, conds in pl.warnings.items():
        (c,) = conds
        assert (c.service, c.type, c.reason) == (key, WARNING, Reason.NO_ELIGIBLE_NODE)
        # "...hold X; refused: n00...; n01...": one "; " before the list, one between each two nodes
        assert "more" not in c.message and c.message.count("; ") == MAX_NAMED
    excluded = [node(f"n{i:02}", {EXCLUDE_LABEL: ""}) for i in range(MAX_NAMED + 3)]
    refused = {n.name: refusal(n, VIP4, "", ServiceRules(), Rules(), None) for n in excluded}
    c = no_eligible_node("default/a", str(shared.address), refused)  # type: ignore[arg-type]
    assert c.message.endswith("; and 3 more") and f"n{MAX_NAMED + 2:02}" not in c.message


def test_placed_snapshot_narrows_plans_even_without_a_warning() -> None:
    """One node refused, another still eligible: no Warning, but the plans must be narrowed all the
    same (an excluded node must not hold the VIP)."""
    w = World()
    v = service_from_dict(service("web", "192.0.2.10"))
    w.services[v.key] = ServiceRecord(v, "2026-01-01T00:00:00Z")
    snap = snapshot(w, ClassFilter(), False)
    new, pl = placed_snapshot(snap, {v.key: v}, nodes(node("a", {EXCLUDE_LABEL: ""}), node("b")), Rules())
    assert not pl.warnings and pl.refusals
    assert new.granted["default/web"][0].eligible == frozenset({"b"})
    assert set(new.units.values()) == {frozenset({"b"})}


def test_placed_snapshot_keeps_the_services_earlier_warnings() -> None:
    w = World()
    v = service_from_dict(service("web", "192.0.2.10"))
    w.services[v.key] = ServiceRecord(v, "2026-01-01T00:00:00Z")
    earlier = Condition(v.key, WARNING, Reason.NO_ELIGIBLE_NODE, "an earlier warning")
    snap = replace(snapshot(w, ClassFilter(), False), warnings={v.key: frozenset({earlier})})
    new, _ = placed_snapshot(snap, {v.key: v}, nodes(node("a", {EXCLUDE_LABEL: ""})), Rules())
    assert earlier in new.warnings[v.key] and len(new.warnings[v.key]) == 2


# -- properties ---------------------------------------------------------------------------------------

NAMES = ["n0", "n1", "n2", "n3", "n4"]
LABEL_SETS = st.dictionaries(st.sampled_from([EXCLUDE_LABEL, "rack", "lb"]), st.sampled_from(["r1", "r2"]),
                             max_size=3)
NETS = st.one_of(st.none(), st.sampled_from([net("192.0.2.0/24"), net("198.51.100.0/24"),
                                             net(None, "2001:db8::/64"), net(links=("eth0", "vlan10"))]))
NODES = st.lists(
    st.builds(node, st.sampled_from(NAMES), LABEL_SETS, cordoned=st.booleans(), network=NETS),
    unique_by=lambda n: n.name, max_size=5,
)
PLANS = st.lists(
    st.builds(plan, st.sampled_from([VIP4, VIP6, ipaddress.ip_address("198.51.100.7")]),
              st.sampled_from(["default/a", "default/b"]),
              st.one_of(st.none(), st.frozensets(st.sampled_from(NAMES))),
              st.sampled_from(["", "vlan10"])),
    unique_by=lambda p: p.address, max_size=3,
)
SELECTOR_VALUES = [labelselector.parse(s) for s in ("", "rack", "rack notin (r2)")]
RULES = st.builds(Rules, st.booleans(), st.sampled_from(SELECTOR_VALUES), st.booleans())
SELECTORS = st.sampled_from(["", "rack=r1", "lb", "!lb", "rack in (r1,r2)", "broken in ("])


def _services(sel: str) -> dict[str, ServiceView]:
    ann = {ANNOTATION_NODE_SELECTOR: sel} if sel else {}
    return {"default/a": svc("a", **ann), "default/b": svc("b")}


@given(PLANS, NODES, RULES, SELECTORS)
def test_placement_properties(plans: list[VipPlan], ns: list[NodeView], rules: Rules, sel: str) -> None:
    services = _services(sel)
    pl = place(plans, services, {n.name: n for n in ns}, rules)
    known = {n.name for n in ns}
    for before, after in zip(plans, pl.plans, strict=True):
        assert (before.address, before.unit, before.services) == (after.address, after.unit, after.services)
        refused = pl.refusals.get(before.address, {})
        # An excluded node is never eligible; a refused node never either.
        for n in ns:
            if EXCLUDE_LABEL in n.label_map:
                assert before.address in pl.refusals and n.name in refused
        if after.eligible is not None:
            assert not (after.eligible & set(refused))
        # Eligibility only narrows; None stays None exactly when nothing was refused.
        if before.eligible is not None:
            assert after.eligible is not None and after.eligible <= before.eligible
        else:
            assert (after.eligible is None) == (not refused)
            if after.eligible is not None:
                assert after.eligible | set(refused) == known
                assert after.unit in pl.elected
        # Without a network, the layer-2 rules say nothing about a node.
        for n in ns:
            if n.network is None and n.name in refused:
                assert refused[n.name].reason not in (Reason.NODE_OFF_SUBNET, Reason.NODE_LACKS_INTERFACE)
        # A Warning for each Service of a VIP that placement left without a node.
        emptied = after.eligible == frozenset() and before.eligible != frozenset()
        for key in after.services:
            has = any(c.reason == Reason.NO_ELIGIBLE_NODE and str(after.address) in c.message
                      for c in pl.warnings.get(key, ()))
            assert has == emptied


@given(PLANS, NODES, RULES, SELECTORS, st.randoms())
def test_placement_is_order_independent(
    plans: list[VipPlan], ns: list[NodeView], rules: Rules, sel: str, rnd: object
) -> None:
    services = _services(sel)
    shuffled = list(ns)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a = place(plans, services, {n.name: n for n in ns}, rules)
    b = place(plans, services, {n.name: n for n in shuffled}, rules)
    assert a == b


CHANGES = st.lists(
    st.one_of(st.tuples(st.just(0), PLANS), st.tuples(st.just(1), NODES), st.tuples(st.just(2), RULES),
              st.tuples(st.just(3), SELECTORS), st.tuples(st.just(4), st.none())),
    min_size=1, max_size=8,
)


@given(PLANS, NODES, RULES, SELECTORS, CHANGES)
def test_a_memo_never_changes_the_answer(
    plans: list[VipPlan], ns: list[NodeView], rules: Rules, sel: str, changes: list[tuple[int, object]]
) -> None:
    """One memo carried through a sequence of calls, each changing one input (the plans, the nodes, the
    rules, a Service's selector) or none, answers every call exactly as a call without it; a call with
    the inputs of the one before is answered from the memo, plan by plan; the memo keeps no plan the
    last call did not have."""
    memo = PlacementMemo()
    state: list[object] = [plans, ns, rules, sel]
    for i, (which, value) in enumerate([(4, None), *changes]):
        if which < 4:
            state[which] = value
        plans, ns, rules, sel = state  # type: ignore[assignment]
        nodes = {n.name: n for n in ns}
        hits = memo.hits
        fresh = place(plans, _services(sel), nodes, rules)
        assert place(plans, _services(sel), nodes, rules, memo=memo) == fresh
        if nodes:
            assert {e[0] for e in memo.plans.values()} == set(plans)
            if which == 4 and i > 0:
                assert memo.hits - hits == len(plans)  # nothing changed: every plan from the memo


def test_a_memo_is_not_used_once_a_node_changed() -> None:
    """A node's labels change between calls: the memo's answers are not used (the node is now refused)."""
    memo = PlacementMemo()
    p = plan(VIP4)
    before = {"n0": node("n0"), "n1": node("n1")}
    assert place([p], {}, before, Rules(), memo=memo).plans == (p,)
    after = {"n0": node("n0", {EXCLUDE_LABEL: ""}), "n1": node("n1")}
    pl = place([p], {}, after, Rules(), memo=memo)
    assert pl.plans[0].eligible == frozenset({"n1"}) and "n0" in pl.refusals[VIP4]
    assert memo.hits == 0


# -- DHCP VIPs (docs/dhcp.md): the same rules, through the want elected before any lease ---------------

LEASED = ipaddress.ip_address("192.0.2.77")


@given(NODES, RULES, SELECTORS, st.sampled_from(["", "vlan10"]), st.sampled_from(["", "n1,n0"]))
def test_dhcp_vips_obey_the_same_placement(
    ns: list[NodeView], rules: Rules, sel: str, iface: str, pref: str,
) -> None:
    """A Service asking DHCP is judged by `refusal`, the rule of every VIP (rule 5b needs an address, so
    it never applies), before any lease; the holder, which alone sees the lease, elects the unit among
    exactly the nodes every other node does; preferred nodes reach the unit before the lease."""
    ann = {k: v for k, v in ((ANNOTATION_NODE_SELECTOR, sel), ("kube-vip.io/serviceInterface", iface),
                              (ANNOTATION_PREFERRED_NODES, pref)) if v}
    s = service_from_dict(service("web", "0.0.0.0", annotations=ann))
    w = World()
    w.services[s.key] = ServiceRecord(s, "t0")
    known = {n.name: n for n in ns}
    others, pl = placed_snapshot(snapshot(w, ClassFilter(), False), {s.key: s}, known, rules)
    w.leased[s.key] = {V4: LEASED}
    holder, hpl = placed_snapshot(snapshot(w, ClassFilter(), False), {s.key: s}, known, rules)
    (want,) = others.dhcp
    allowed = {n.name for n in ns
               if refusal(n, ipaddress.ip_address("0.0.0.0"), iface, service_rules(s), rules, None) is None}
    if len(allowed) == len(ns):
        assert want.eligible is None and not pl.dhcp_refusals
    else:
        assert want.eligible == allowed
        assert want.unit in pl.elected
        refused = pl.dhcp_refusals[(s.key, V4)]
        assert set(refused) == set(known) - allowed
        assert all(r.reason != Reason.NODE_OFF_SUBNET for r in refused.values())
    assert holder.units == others.units == {want.unit: want.eligible}
    (leased,) = holder.plans
    assert leased.address == LEASED and leased.eligible == want.eligible
    assert holder.dhcp == others.dhcp
    assert hpl.refusals.get(LEASED, {}) == pl.dhcp_refusals.get((s.key, V4), {})  # explain's view of it
    assert pl.preferred.get(want.unit) == (parse_preferred(pref) or None)
    emptied = want.eligible == frozenset()
    warned = [c for c in others.warnings.get(s.key, ()) if c.reason == Reason.NO_ELIGIBLE_NODE]
    assert bool(warned) == emptied
    assert all("DHCP IPv4 VIP of default/web" in c.message for c in warned)


def test_dhcp_want_refused_by_the_service_selector_names_each_node() -> None:
    s = service_from_dict(service("web", "0.0.0.0", annotations={ANNOTATION_NODE_SELECTOR: "rack=r1"}))
    w = World()
    w.services[s.key] = ServiceRecord(s, "t0")
    snap, pl = placed_snapshot(snapshot(w, ClassFilter(), False), {s.key: s},
                               nodes(node("a", {"rack": "r1"}), node("b", {"rack": "r2"})), Rules())
    (want,) = snap.dhcp
    assert want.eligible == {"a"}
    assert pl.dhcp_refusals[(s.key, V4)]["b"].reason == Reason.NODE_SELECTOR_SERVICE
    assert snap.units[want.unit] == {"a"}


def _want(eligible: frozenset[str] | None, svc: str = "default/web") -> DhcpWant:
    req = DhcpRequest(svc, V4, "02:00:00:00:00:01", "vip-web", None, "")
    return DhcpWant(req, f"{svc}-dhcp", eligible)


def test_a_restricted_dhcp_want_is_narrowed_within_its_own_nodes() -> None:
    """A DHCP want of a Local Service (eligible: the nodes with its endpoints) loses the refused nodes
    and gains none: a node without endpoints must not run the client (nor hold the leased VIP), and the
    unit stays a Local one (not made elected)."""
    want = _want(frozenset({"a", "b"}))
    pl = place([], {}, nodes(node("a"), node("b", {EXCLUDE_LABEL: ""}), node("c")), Rules(), [want])
    (narrowed,) = pl.dhcp
    assert narrowed.eligible == frozenset({"a"}) and want.unit not in pl.elected
    assert set(pl.dhcp_refusals[("default/web", V4)]) == {"b"}


def test_an_invalid_selector_on_a_dhcp_service_warns_that_service() -> None:
    s = svc(**{ANNOTATION_NODE_SELECTOR: "a in (("})
    pl = place([], {s.key: s}, nodes(node("a"), node("b")), Rules(), [_want(None, s.key)])
    assert Reason.NODE_SELECTOR_INVALID in {c.reason for c in pl.warnings[s.key]}
    assert None not in pl.warnings  # type: ignore[comparison-overlap]


def test_a_leased_vip_does_not_stop_the_placement_of_the_next_ones() -> None:
    """A leased (macvlan) plan without DHCP refusals is kept as it is, and every plan after it is still
    placed (its refused nodes taken out)."""
    leased = replace(plan(LEASED, "default/dhcp"), macvlan="vip-dhcp")
    later = plan(VIP4, "default/web")
    pl = place([leased, later], {}, nodes(node("a"), node("b", {EXCLUDE_LABEL: ""})), Rules())
    assert pl.plans == (leased, replace(later, eligible=frozenset({"a"})))
    assert set(pl.refusals[VIP4]) == {"b"}


def test_the_subnet_refusal_through_place_names_the_vip() -> None:
    ns = nodes(node("a", network=net("192.0.2.0/24")), node("b", network=net("198.51.100.0/24")))
    pl = place([plan(VIP4)], {}, ns, Rules(layer2=True))
    want = Refusal(Reason.NODE_OFF_SUBNET, f"node b has no interface on the subnet of {VIP4}")
    assert pl.refusals[VIP4]["b"] == want


def test_units_elected_in_advance_are_kept_only_where_placement_cannot_narrow_them() -> None:
    """A Cluster Service without endpoints is elected in advance on any node; where placement could
    narrow its unit (node-wide or its own selector, preference, drain-on-cordon) it waits as before."""
    def dark(**annotations: str) -> tuple[ServiceView, World]:
        raw = service("dark", "192.0.2.10", annotations=annotations, allow_no_endpoints=False)
        v = service_from_dict(raw)
        w = World()
        w.services[v.key] = ServiceRecord(v, "2026-01-01T00:00:00Z")
        return v, w

    known = nodes(node("a", {"rack": "r1"}), node("b"))
    v, w = dark()
    snap = snapshot(w, ClassFilter(), False, standby=True)
    assert snap.standby and snap.units == {"default/kubevip-dark": None}
    kept, _ = placed_snapshot(snap, {v.key: v}, known, Rules())
    assert kept.standby == snap.standby and kept.units == snap.units
    for rules in (Rules(node_selector=labelselector.parse("rack=r1")), Rules(drain_on_cordon=True)):
        dropped, _ = placed_snapshot(snap, {v.key: v}, known, rules)
        assert dropped.standby == {} and dropped.units == {}
    for ann in ({ANNOTATION_NODE_SELECTOR: "rack=r1"}, {"kube-vip.io/preferred-nodes": "a"}):
        v, w = dark(**ann)
        snap = snapshot(w, ClassFilter(), False, standby=True)
        dropped, _ = placed_snapshot(snap, {v.key: v}, known, Rules())
        assert snap.standby and dropped.standby == {} and dropped.units == {}
