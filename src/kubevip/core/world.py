"""The agent's picture of the cluster (latest object per key) and the pure plan derived from it."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubevip.core.claims import (
    Claim,
    Clash,
    DhcpWant,
    InterfaceConflict,
    PlanMemo,
    VipPlan,
    claims_of,
    dhcp_wants,
    interface_conflicts,
    plans_by_service,
    resolve,
    standby_units,
)
from kubevip.core.conditions import Condition, warnings
from kubevip.core.egress import egress_warnings
from kubevip.core.plan import ServiceDecision, decide
from kubevip.core.policy import DEFAULT_POLICY, AddressPolicy
from kubevip.core.rows import unit_eligibility
from kubevip.core.selection import ClassFilter, class_reason
from kubevip.core.views import (
    EndpointSliceView,
    IPAddress,
    IPFamily,
    LegacyEndpointsView,
    NodeName,
    ServiceView,
    UnitId,
)


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """A Service and its creationTimestamp (the earlier Service keeps a shared address)."""

    view: ServiceView
    created: str = ""


@dataclass
class World:
    """Latest Services, EndpointSlices (by Service, then slice key) and legacy Endpoints, keyed ns/name."""

    services: dict[str, ServiceRecord] = field(default_factory=dict)
    slices: dict[str, dict[str, EndpointSliceView]] = field(default_factory=dict)
    legacy: dict[str, LegacyEndpointsView] = field(default_factory=dict)
    # slice key -> the Service it is filed under, so a relabelled slice is found without a scan
    slice_owner: dict[str, str] = field(default_factory=dict)
    # Service key -> the addresses this node's DHCP clients hold for it, per family (core/dhcp.py): a
    # fact of this node, not of the cluster; whoever changes it touches the Service.
    leased: dict[str, Mapping[IPFamily, IPAddress]] = field(default_factory=dict)

    def copy(self) -> World:
        """A copy another thread may read while events keep arriving here (the views are immutable)."""
        return World(
            dict(self.services),
            {k: dict(v) for k, v in self.slices.items()},
            dict(self.legacy),
            dict(self.slice_owner),
            dict(self.leased),
        )


@dataclass(frozen=True, slots=True)
class Decided:
    """A Service's decision and the VIPs it claims: reused while the Service's inputs stand still."""

    decision: ServiceDecision
    claims: tuple[Claim, ...]
    dhcp: tuple[DhcpWant, ...] = ()
    # The Warnings that depend on the Service alone (all but address clashes and interface conflicts,
    # which depend on the other Services): computed with the decision, not again in every snapshot.
    warnings: frozenset[Condition] = frozenset()
    # Units elected before the Service has endpoints (`core.claims.standby_units`); () unless asked.
    standby: tuple[UnitId, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """Everything derived from one World: decisions, granted VIPs, clashes and warnings."""

    decisions: Mapping[str, ServiceDecision]
    plans: tuple[VipPlan, ...]
    clashes: tuple[Clash, ...]
    granted: Mapping[str, tuple[VipPlan, ...]]
    warnings: Mapping[str, frozenset[Condition]]
    handled: frozenset[str]
    interface_conflicts: tuple[InterfaceConflict, ...] = ()
    decided: Mapping[str, Decided] = field(default_factory=dict)
    # Services' families asking DHCP: their units are elected even before any address is leased.
    dhcp: tuple[DhcpWant, ...] = ()
    # Per Service, units elected before it has endpoints (any node eligible): no plan, so no row.
    standby: Mapping[str, tuple[UnitId, ...]] = field(default_factory=dict)

    # Derived once per snapshot: every pass and every report round ask for them.
    @functools.cached_property
    def by_address(self) -> Mapping[IPAddress, VipPlan]:
        """Each granted VIP's plan."""
        return {p.address: p for p in self.plans}

    @functools.cached_property
    def units(self) -> Mapping[UnitId, frozenset[NodeName] | None]:
        """Eligible nodes per election unit (`unit_eligibility`), DHCP units included."""
        units = dict(unit_eligibility(self.plans))
        for w in self.dhcp:
            if w.unit not in units:
                units[w.unit] = w.eligible
            elif w.eligible is not None:
                cur = units[w.unit]
                units[w.unit] = w.eligible if cur is None else cur & w.eligible
        for standby in self.standby.values():
            for unit in standby:
                units.setdefault(unit, None)  # a unit with a plan keeps the plan's eligibility
        return units

    @functools.cached_property
    def single_units(self) -> frozenset[UnitId]:
        """Election units with an egress VIP: held by their leader alone, in every mode."""
        return frozenset(p.unit for p in self.plans if p.single)

    @functools.cached_property
    def names_interfaces(self) -> bool:
        """True when some VIP's Service names its own interface (`kube-vip.io/serviceInterface`)."""
        return any(p.interface or p.macvlan for p in self.plans)


def decide_one(
    world: World, key: str, use_legacy: bool, policy: AddressPolicy = DEFAULT_POLICY,
    dhcp_layer2: bool = True,
) -> ServiceDecision:
    """The core decision for one Service of the World."""
    rec = world.services[key]
    return decide(
        rec.view, tuple(world.slices.get(key, {}).values()), world.legacy.get(key), use_legacy, policy,
        world.leased.get(key), dhcp_layer2,
    )


def snapshot(
    world: World, classes: ClassFilter, use_legacy: bool,
    cache: Mapping[str, Decided] | None = None,
    per_address: bool = False,
    service_interfaces: bool = True,
    policy: AddressPolicy = DEFAULT_POLICY,
    cross_namespace: bool = False,
    dhcp_layer2: bool = True,
    plan_memo: PlanMemo | None = None,
    standby: bool = False,
) -> Snapshot:
    """Decide every handled Service, then resolve shared addresses cluster-wide.

    `cache` holds decisions still valid (their inputs, `policy` included, did not change); the result is
    the same without it. `service_interfaces=False` (BGP mode) ignores `kube-vip.io/serviceInterface`:
    plans carry no interface. `cross_namespace` lets Services of different namespaces share an address
    without consent (`svc_cross_namespace_sharing`). `dhcp_layer2=False` (BGP mode) refuses `0.0.0.0`
    (`dhcp-needs-layer2`, docs/dhcp.md). `plan_memo`: `core.claims.resolve`'s memo (one caller).
    `standby` (per-Service Leases): Cluster Services without endpoints name their future units
    (`core.claims.standby_units`), elected in advance.
    """
    decisions: dict[str, ServiceDecision] = {}
    decided: dict[str, Decided] = {}
    claims: list[Claim] = []
    wants: list[DhcpWant] = []
    handled: set[str] = set()
    for key in sorted(world.services):
        rec = world.services[key]
        if class_reason(rec.view, classes):
            continue
        handled.add(key)
        done = cache.get(key) if cache is not None else None
        if done is None:
            d = decide_one(world, key, use_legacy, policy, dhcp_layer2)
            done = Decided(d, claims_of(rec.view, rec.created, d, service_interfaces),
                           dhcp_wants(rec.view, rec.created, d, per_address, service_interfaces),
                           warnings(d, (), (), rec.view) | egress_warnings(rec.view),
                           standby_units(rec.view, rec.created, d, per_address, service_interfaces)
                           if standby else ())
        decided[key] = done
        decisions[key] = done.decision
        claims.extend(done.claims)
        wants.extend(done.dhcp)
    plans, clashes = resolve(claims, per_address, cross_namespace, plan_memo)
    conflicts = interface_conflicts(claims, plans)
    warns = {k: done.warnings for k, done in decided.items()}
    for k in {c.service for c in clashes} | {c.service for c in conflicts}:
        warns[k] = warns[k] | warnings(decisions[k], clashes, conflicts, world.services[k].view)
    return Snapshot(
        decisions, plans, clashes, plans_by_service(plans), warns, frozenset(handled), conflicts, decided,
        tuple(wants), {k: d.standby for k, d in decided.items() if d.standby},
    )


def same_decision_inputs(a: ServiceView, b: ServiceView, written_back: frozenset[str]) -> bool:
    """True when `a` and `b` differ only in what agents write back (status, the `written_back`
    annotations, resourceVersion): such an update changes no decision, so it need not cost a pass.
    """

    def inputs(v: ServiceView) -> ServiceView:
        kept = tuple((k, val) for k, val in v.annotations if k not in written_back)
        return dataclasses.replace(
            v, resource_version="", status_ingress=(), status_conditions=(), annotations=kept
        )

    return inputs(a) == inputs(b)


SERVICE = "Service"
ENDPOINT_SLICE = "EndpointSlice"
ENDPOINTS = "Endpoints"


def apply_event(world: World, kind: str, deleted: bool, obj: object, created: str = "") -> set[str]:
    """Record one watch event (the view of the object, or its deletion); returns the Service keys touched.

    Objects of one key arrive in order (Kubernetes watch semantics); keys may interleave in any order.
    """
    if kind == SERVICE:
        assert isinstance(obj, ServiceView)
        if deleted:
            world.services.pop(obj.key, None)
        else:
            world.services[obj.key] = ServiceRecord(obj, created)
        return {obj.key}
    if kind == ENDPOINT_SLICE:
        assert isinstance(obj, EndpointSliceView)
        # A slice may have been relabelled (to another Service or to none): drop it from where it was.
        previous = world.slice_owner.pop(obj.key, None)
        touched: set[str] = set()
        if previous is not None:
            per = world.slices.get(previous, {})
            per.pop(obj.key, None)
            if not per:
                world.slices.pop(previous, None)
            touched.add(previous)
        if not obj.service_name:
            return touched
        svc = f"{obj.namespace}/{obj.service_name}"
        touched.add(svc)
        if not deleted:
            world.slices.setdefault(svc, {})[obj.key] = obj
            world.slice_owner[obj.key] = svc
        return touched
    if kind == ENDPOINTS:
        assert isinstance(obj, LegacyEndpointsView)
        if deleted:
            world.legacy.pop(obj.key, None)
        else:
            world.legacy[obj.key] = obj
        return {obj.key}
    raise ValueError(kind)
