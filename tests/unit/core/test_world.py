"""same_decision_inputs: the agents' own write-backs never cost a pass; any other edit does."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.claims import PlanMemo
from kubevip.core.conditions import warnings
from kubevip.core.egress import egress_warnings
from kubevip.core.parse import endpoints_from_dict, endpointslice_from_dict, service_from_dict
from kubevip.core.plan import endpoint_bound
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily, LegacyEndpointsView, StatusCondition
from kubevip.core.world import (
    ENDPOINT_SLICE,
    ENDPOINTS,
    SERVICE,
    Decided,
    ServiceRecord,
    Snapshot,
    World,
    apply_event,
    same_decision_inputs,
    snapshot,
)
from kubevip.kube.writers import ANNOTATION_VIP_HOST
from tests.unit.objects import service, slice_

BACK = frozenset({ANNOTATION_VIP_HOST})
BASE = service_from_dict(service("web", "192.0.2.10"))
texts = st.text("abcdefgh0123", min_size=1, max_size=6)


@given(host=texts, rv=texts, ingress=st.lists(st.sampled_from(["192.0.2.10", "2001:db8::1"]), max_size=2))
def test_write_backs_are_not_decision_inputs(host: str, rv: str, ingress: list[str]) -> None:
    after = dataclasses.replace(
        BASE,
        resource_version=rv,
        status_ingress=tuple(ingress),
        annotations=(*BASE.annotations, (ANNOTATION_VIP_HOST, host)),
    )
    assert same_decision_inputs(BASE, after, BACK)
    assert same_decision_inputs(after, BASE, BACK)


@given(key=texts, value=texts, policy=st.sampled_from(["Cluster", "Local"]))
def test_any_other_edit_is(key: str, value: str, policy: str) -> None:
    annotated = dataclasses.replace(BASE, annotations=(*BASE.annotations, (f"kube-vip.io/{key}", value)))
    assert not same_decision_inputs(BASE, annotated, BACK)
    moved = dataclasses.replace(BASE, external_traffic_policy=policy)
    assert same_decision_inputs(BASE, moved, BACK) == (policy == BASE.external_traffic_policy)


def _legacy(svc: str, node: str) -> LegacyEndpointsView:
    return endpoints_from_dict({"metadata": {"name": svc, "namespace": "default"},
                                "subsets": [{"addresses": [{"ip": "10.0.0.9", "nodeName": node}]}]})


def _local_nodes(snap: Snapshot, key: str) -> frozenset[str] | None:
    (plan,) = snap.granted[key]
    return plan.eligible


def test_events_keep_each_services_endpoints_exact_and_name_every_service_touched() -> None:
    """Whatever moves an endpoint (a new, relabelled, updated or deleted slice; legacy Endpoints) is
    filed under exactly the Service it names and touches each Service whose endpoints changed, so a
    node without endpoints of a Local Service stops being eligible for it."""
    w = World()
    for name in ("a", "b"):
        apply_event(w, SERVICE, False, service_from_dict(service(name, f"192.0.2.{ord(name)}", etp="Local")))
    s1 = endpointslice_from_dict(slice_("a", "IPv4", [("10.0.0.1", "n1")], suffix="1"))
    s2 = endpointslice_from_dict(slice_("a", "IPv4", [("10.0.0.2", "n2")], suffix="2"))
    assert apply_event(w, ENDPOINT_SLICE, False, s1) == {"default/a"}
    assert apply_event(w, ENDPOINT_SLICE, False, s2) == {"default/a"}
    assert apply_event(w, ENDPOINT_SLICE, False, s1) == {"default/a"}  # an update keeps the other slice
    assert _local_nodes(snapshot(w, ClassFilter(), False), "default/a") == {"n1", "n2"}
    moved = endpointslice_from_dict(slice_("b", "IPv4", [("10.0.0.1", "n1")], suffix="1"))
    moved = dataclasses.replace(moved, name=s1.name)  # the same slice, relabelled to Service b
    assert moved.key == s1.key
    assert apply_event(w, ENDPOINT_SLICE, False, moved) == {"default/a", "default/b"}
    snap = snapshot(w, ClassFilter(), False)
    assert _local_nodes(snap, "default/a") == {"n2"} and _local_nodes(snap, "default/b") == {"n1"}
    assert apply_event(w, ENDPOINT_SLICE, True, s2) == {"default/a"}
    assert "default/a" not in w.slices
    assert _local_nodes(snapshot(w, ClassFilter(), False), "default/a") == frozenset()
    # legacy Endpoints (use_legacy_endpoints): recorded, replaced and deleted like slices
    assert apply_event(w, ENDPOINTS, False, _legacy("a", "n3")) == {"default/a"}
    assert _local_nodes(snapshot(w, ClassFilter(), True), "default/a") == {"n3"}
    assert apply_event(w, ENDPOINTS, True, _legacy("a", "n3")) == {"default/a"}
    assert _local_nodes(snapshot(w, ClassFilter(), True), "default/a") == frozenset()
    # a deletion of what was never seen (a relist raced the watch) is no error
    assert apply_event(w, ENDPOINTS, True, _legacy("c", "n3")) == {"default/c"}
    gone = service_from_dict(service("c", "192.0.2.99"))
    assert apply_event(w, SERVICE, True, gone) == {"default/c"}


def test_a_snapshot_handles_every_service_of_its_class_and_keeps_each_decision() -> None:
    w = World()
    other = service("a-other", "192.0.2.1")
    other["spec"]["loadBalancerClass"] = "example.com/other"
    for obj in (other, service("b", "192.0.2.2"), service("c", "192.0.2.3")):
        apply_event(w, SERVICE, False, service_from_dict(obj))
    snap = snapshot(w, ClassFilter(), False)
    assert snap.handled == {"default/b", "default/c"}
    assert set(snap.decided) == {"default/b", "default/c"}
    assert {str(p.address) for p in snap.plans} == {"192.0.2.2", "192.0.2.3"}


def test_a_services_interface_reaches_its_plan_only_where_interfaces_are_used() -> None:
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(
        service("a", "192.0.2.1", annotations={"kube-vip.io/serviceInterface": "eth1"})))
    (layer2,) = snapshot(w, ClassFilter(), False, service_interfaces=True).plans
    (bgp,) = snapshot(w, ClassFilter(), False, service_interfaces=False).plans
    assert (layer2.interface, bgp.interface) == ("eth1", "")


def test_a_copy_is_equal_and_independent() -> None:
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(service("a", "192.0.2.1")))
    apply_event(w, ENDPOINT_SLICE, False, endpointslice_from_dict(slice_("a", "IPv4", [("10.0.0.1", "n1")])))
    apply_event(w, ENDPOINTS, False, _legacy("a", "n1"))
    w.leased["default/a"] = {}
    c = w.copy()
    assert c == w
    for d in (c.services, c.slices["default/a"], c.legacy, c.slice_owner, c.leased):
        d.clear()
    assert w.services and w.slices["default/a"] and w.legacy and w.slice_owner and w.leased


def test_status_conditions_are_not_decision_inputs() -> None:
    cond = StatusCondition("KubevipAnnounced", "True", "Announced", "held")
    after = dataclasses.replace(BASE, status_conditions=(cond,))
    assert same_decision_inputs(BASE, after, BACK)


def test_in_scalable_mode_a_dhcp_want_elects_the_unit_of_its_leased_vip() -> None:
    """The node that runs the DHCP client is the one elected for the leased VIP: both have one unit in
    scalable mode (per address) as in Lease mode."""
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(service("d", "0.0.0.0")))
    w.leased["default/d"] = {IPFamily.IPV4: ipaddress.ip_address("192.0.2.77")}
    for per_address in (False, True):
        snap = snapshot(w, ClassFilter(), False, per_address=per_address)
        (want,), (plan,) = snap.dhcp, snap.plans
        assert want.unit == plan.unit


_SHARED_ANNOTATIONS = st.fixed_dictionaries({}, optional={
    "kube-vip.io/serviceInterface": st.sampled_from(["eth0", "eth1"]),
    "kube-vip.io/allow-shared-ip": st.just("team"),
    "kube-vip.io/egress": st.just("true"),
    "kube-vip.io/egress-destination-ports": st.sampled_from(["tcp:80", "junk"]),
    "kube-vip.io/egress-allowed-networks": st.just("not-a-cidr"),
    "kube-vip.io/no-such-thing": st.just("x"),  # an annotation kubevip does not know: a Warning
})
_SERVICES = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["default", "prod"]),
              st.sampled_from(["192.0.2.1", "192.0.2.2", "2001:db8::1", "192.0.2.1,2001:db8::1"]),
              st.sampled_from([80, 53]), _SHARED_ANNOTATIONS),
    max_size=6, unique_by=lambda t: (t[0], t[1]),
)


def _world(items: list[tuple[str, str, str, int, dict[str, str]]]) -> World:
    w = World()
    for i, (name, ns, vips, port, ann) in enumerate(items):
        fams = tuple(sorted({"IPv6" if ":" in v else "IPv4" for v in vips.split(",")}))
        v = service_from_dict(service(name, vips, ns=ns, families=fams,
                                      policy="RequireDualStack" if len(fams) == 2 else "SingleStack",
                                      ports=(("TCP", port),), annotations=ann))
        w.services[v.key] = ServiceRecord(v, f"2026-01-01T00:00:0{i}Z")
    return w


@given(st.lists(_SERVICES, min_size=1, max_size=4), st.booleans())
def test_reused_decisions_and_plans_never_change_a_snapshot(
    worlds: list[list[tuple[str, str, str, int, dict[str, str]]]], per_address: bool,
) -> None:
    """Snapshots carried along (the decisions of Services that did not change, the plan memo) equal a
    snapshot from scratch, Warnings included: a Service's own Warnings are computed with its decision,
    those of clashes and interface conflicts in every snapshot."""
    memo: PlanMemo = {}
    decided: Mapping[str, Decided] = {}
    last: dict[str, ServiceRecord] = {}
    for items in worlds:
        w = _world(items)
        for k, rec in w.services.items():  # an unchanged Service keeps its record, as the watch does
            if k in last and last[k].view == rec.view:
                w.services[k] = last[k]
        cache = {k: d for k, d in decided.items() if k in w.services and w.services[k] is last.get(k)}
        carried = snapshot(w, ClassFilter(), False, cache, per_address=per_address, plan_memo=memo)
        fresh = snapshot(w, ClassFilter(), False, per_address=per_address)
        assert carried == fresh
        for k, d in fresh.decisions.items():
            view = w.services[k].view
            whole = warnings(d, fresh.clashes, fresh.interface_conflicts, view) | egress_warnings(view)
            assert fresh.warnings[k] == whole
        decided, last = carried.decided, dict(w.services)


# Units elected in advance (core.claims.standby_units): a Cluster Service without endpoints names the
# unit it will have once it has one; Local Services and announced ones name none; nothing is planned.
def _dark(name: str = "dark", etp: str = "Cluster", families: tuple[str, ...] = ("IPv4",),
          vips: str = "192.0.2.50", annotations: dict[str, str] | None = None) -> World:
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(service(
        name, vips, families=families, policy="RequireDualStack" if len(families) == 2 else "SingleStack",
        etp=etp, allow_no_endpoints=False, annotations=annotations)))
    return w


def test_a_cluster_service_without_endpoints_is_elected_in_advance_on_the_unit_it_will_have() -> None:
    w = _dark(families=("IPv4", "IPv6"), vips="192.0.2.50,2001:db8::50")
    early = snapshot(w, ClassFilter(), False, standby=True)
    assert early.plans == () and early.decisions["default/dark"].reason == "no-endpoints"
    assert early.standby == {"default/dark": ("default/kubevip-dark",)}  # one Lease for both families
    assert early.units == {"default/kubevip-dark": None}
    assert snapshot(w, ClassFilter(), False).units == {}  # only when asked (per-Service Leases)
    pod = slice_("dark", "IPv4", [("10.0.0.1", "n2")])
    apply_event(w, ENDPOINT_SLICE, False, endpointslice_from_dict(pod))
    ready = snapshot(w, ClassFilter(), False, standby=True)
    assert ready.standby == {} and {p.unit for p in ready.plans} == set(early.units)
    assert ready.units == early.units  # the same Lease: its holder announces without a new election


def test_local_services_announced_ones_and_services_without_a_vip_are_not_elected_in_advance() -> None:
    for w in (_dark(etp="Local"), _dark(vips=""),
              _dark(annotations={"kube-vip.io/allow-reconcile-without-endpoints": "true"})):
        snap = snapshot(w, ClassFilter(), False, standby=True)
        assert snap.standby == {}
        assert snap.units == snapshot(w, ClassFilter(), False).units


def test_a_shared_lease_name_is_elected_in_advance_under_that_name() -> None:
    w = _dark(annotations={"kube-vip.io/leaseName": "shared"})
    snap = snapshot(w, ClassFilter(), False, standby=True)
    assert snap.standby == {"default/dark": ("default/shared",)}


@given(st.lists(_SERVICES, min_size=1, max_size=4), st.booleans(), st.lists(st.booleans(), max_size=6))
def test_electing_in_advance_changes_no_plan_and_keeps_every_units_eligibility(
    worlds: list[list[tuple[str, str, str, int, dict[str, str]]]], per_address: bool, dark: list[bool],
) -> None:
    for items in worlds:
        w = _world(items)
        for (key, rec), off in zip(sorted(w.services.items()), dark, strict=False):
            if off:  # some Services lose kube-vip's opt-in: no endpoints, not announced
                ann = tuple(a for a in rec.view.annotations
                            if a[0] != "kube-vip.io/allow-reconcile-without-endpoints")
                w.services[key] = ServiceRecord(dataclasses.replace(rec.view, annotations=ann), rec.created)
        plain = snapshot(w, ClassFilter(), False, per_address=per_address)
        early = snapshot(w, ClassFilter(), False, per_address=per_address, standby=True)
        assert (early.plans, early.clashes, early.granted, early.warnings) == (
            plain.plans, plain.clashes, plain.granted, plain.warnings)
        assert all(early.units[u] == e for u, e in plain.units.items())
        extra = set(early.units) - set(plain.units)
        assert all(early.units[u] is None for u in extra)
        assert extra <= {u for units in early.standby.values() for u in units}
        assert set(early.standby) == {k for k, d in early.decisions.items() if d.reason == "no-endpoints"
                                      and not endpoint_bound(w.services[k].view)}  # egress binds too
