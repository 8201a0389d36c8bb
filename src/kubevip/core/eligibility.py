"""Which nodes may hold a VIP (docs/placement.md). Pure: same plans, Services and Nodes, same answer.

A node is refused a VIP, with one stable reason, when it is
  1. labelled `node.kubernetes.io/exclude-from-external-load-balancers` (always);
  2. cordoned (`spec.unschedulable`) and `vip_drain_on_cordon=true`;
  3. not matched by the global `vip_node_selector`;
  4. not matched by the Service's `kube-vip.io/node-selector`;
  5. in layer-2 mode: lacking the Service's `kube-vip.io/serviceInterface`, or, when some node has an
     interface on the VIP's subnet (its own per-family interface), not being one of those nodes.
Nodes that published no network are never refused by rule 5 (nothing is known against them).

The election then runs among the eligible nodes only: `place` narrows each plan's `eligible` set, and
every election mode already honours that set (a holder that drops out hands over gracefully).

A DHCP VIP follows the same rules through its `DhcpWant` (elected before any address is leased, so
every node judges it alike): rules 1-4 and 5a (its `serviceInterface`, the macvlan's parent); rule 5b
needs the address and does not apply. Its leased plan takes the want's eligibility unchanged, so the
holder (which alone knows the lease) and the other nodes agree on the unit.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from kubevip.core import labelselector
from kubevip.core.claims import DhcpWant, VipPlan, plans_by_service
from kubevip.core.conditions import WARNING, Condition
from kubevip.core.interface import ANNOTATION_SERVICE_INTERFACE
from kubevip.core.nodes import NodeView
from kubevip.core.reasons import Reason
from kubevip.core.views import IPAddress, IPFamily, NodeName, ServiceKey, ServiceView, UnitId
from kubevip.core.world import Snapshot
from kubevip.errors import InputError

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
ANNOTATION_NODE_SELECTOR = "kube-vip.io/node-selector"
ANNOTATION_PREFERRED_NODES = "kube-vip.io/preferred-nodes"
MAX_NAMED = 10  # nodes named in one Warning; the rest are counted
MAX_PREFERRED = 32


@dataclass(frozen=True)
class Rules:
    """The node-wide settings of placement."""

    drain_on_cordon: bool = False
    node_selector: labelselector.Selector = field(default_factory=labelselector.Selector)
    layer2: bool = False


@dataclass(frozen=True, order=True)
class Refusal:
    reason: Reason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class ServiceRules:
    """What a Service's annotations add: its selector (or why it does not parse) and preference."""

    selector: labelselector.Selector | None = None
    selector_error: str = ""
    preferred: tuple[str, ...] = ()


def service_rules(service: ServiceView | None) -> ServiceRules:
    if service is None:
        return ServiceRules()
    raw = service.annotation(ANNOTATION_NODE_SELECTOR)
    sel: labelselector.Selector | None = None
    error = ""
    if raw is not None:
        try:
            sel = labelselector.parse(raw)
        except InputError as exc:
            error = f"annotation {ANNOTATION_NODE_SELECTOR}={raw[:200]!r} does not parse: {exc}"
    return ServiceRules(sel, error, parse_preferred(service.annotation(ANNOTATION_PREFERRED_NODES) or ""))


def parse_preferred(text: str) -> tuple[str, ...]:
    """`a,b,c` -> ("a","b","c"), first most preferred; blanks and repeats dropped, at most MAX_PREFERRED."""
    out: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name and name not in out:
            out.append(name)
    return tuple(out[:MAX_PREFERRED])


def refusal(
    node: NodeView, address: IPAddress, interface: str, svc: ServiceRules, rules: Rules,
    subnet_nodes: frozenset[str] | None,
) -> Refusal | None:
    """Why `node` may not hold `address` (None: it may). `subnet_nodes`: the nodes with an interface on
    the VIP's subnet when rule 5 applies by subnet, else None."""
    labels = node.label_map
    if EXCLUDE_LABEL in labels:
        return Refusal(Reason.NODE_EXCLUDED, f"node {node.name} is labelled {EXCLUDE_LABEL}")
    if rules.drain_on_cordon and node.unschedulable:
        return Refusal(Reason.NODE_CORDONED, f"node {node.name} is cordoned (vip_drain_on_cordon=true)")
    failing = rules.node_selector.failing(labels)
    if failing:
        return Refusal(Reason.NODE_SELECTOR_GLOBAL,
                       f"node {node.name} does not match vip_node_selector ({failing[0]})")
    if svc.selector_error:
        return Refusal(Reason.NODE_SELECTOR_INVALID, svc.selector_error)
    if svc.selector is not None:
        failing = svc.selector.failing(labels)
        if failing:
            return Refusal(Reason.NODE_SELECTOR_SERVICE,
                           f"node {node.name} does not match {ANNOTATION_NODE_SELECTOR} ({failing[0]})")
    if rules.layer2 and node.network is not None:
        if interface:
            if node.network.links_complete and interface not in node.network.links:
                return Refusal(Reason.NODE_LACKS_INTERFACE,
                               f"node {node.name} has no interface {interface!r} "
                               f"({ANNOTATION_SERVICE_INTERFACE})")
        elif subnet_nodes is not None and node.name not in subnet_nodes:
            return Refusal(Reason.NODE_OFF_SUBNET,
                           f"node {node.name} has no interface on the subnet of {address}")
    return None


@dataclass(frozen=True)
class Placement:
    """`place`'s answer: plans with their eligible nodes narrowed, and why each refused node was refused."""

    plans: tuple[VipPlan, ...]
    # VIP -> refused node -> why.
    refusals: Mapping[IPAddress, Mapping[str, Refusal]]
    # Units restricted here whose Services did not restrict them (externalTrafficPolicy Cluster): still
    # one elected holder among the eligible nodes, also in BGP mode (where a restricted set otherwise
    # means "every eligible node announces", the ETP Local rule).
    elected: frozenset[str]
    # unit -> preferred nodes, most preferred first (kube-vip.io/preferred-nodes of its first Service).
    preferred: Mapping[str, tuple[str, ...]]
    warnings: Mapping[str, frozenset[Condition]]
    # The DHCP wants with their eligible nodes narrowed like the plans', and why nodes were refused each
    # (Service, family) that asks DHCP.
    dhcp: tuple[DhcpWant, ...] = ()
    dhcp_refusals: Mapping[tuple[ServiceKey, IPFamily], Mapping[str, Refusal]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Placed:
    """One plan's placement: the plan narrowed, the nodes refused and why, whether placement made its
    unit an elected one, and the Warnings it raised (Service -> Condition)."""

    plan: VipPlan
    refused: Mapping[str, Refusal]
    elected: bool
    warns: tuple[tuple[str, Condition], ...]


@dataclass
class PlacementMemo:
    """`place`'s answers per plan, kept from one call to the next while the nodes and the rules stay
    equal: a plan's placement depends only on the plan, its first Service's rules, the nodes and the
    rules. A restart of every agent at 1000 Services recomputed the same 2000 placements for each of
    its snapshots, most of an agent's CPU then (py-spy, docs/performance-history.md). Entries not used
    by a call are dropped, so it never holds more than the plans of the last call. Not thread-safe: one
    caller."""

    nodes: Mapping[str, NodeView] | None = None
    rules: Rules | None = None
    # By the plan object (`core.claims.resolve` hands back the same VipPlan for a claim that did not
    # change): id -> (the plan, its first Service's rules, the answer). Looked up by identity, since
    # hashing 2000 plans (addresses hash in Python) cost more than the rest of a call.
    plans: dict[int, tuple[VipPlan, ServiceRules, _Placed]] = field(default_factory=dict)
    # A Service's rules (its parsed selector and preference), kept while its view is the same object.
    service_rules: dict[str, tuple[ServiceView | None, ServiceRules]] = field(default_factory=dict)
    hits: int = 0


def _narrow(
    unit: UnitId, eligible: frozenset[NodeName] | None, refused: Mapping[str, Refusal],
    keys: Iterable[str], what: str, svc: ServiceRules, owner: str, nodes: Mapping[str, NodeView],
) -> tuple[frozenset[NodeName] | None, bool, list[tuple[str, Condition]]]:
    """The one narrowing of an election unit's nodes: the nodes left, whether placement made the unit an
    elected one, and its Warnings."""
    if not refused:
        return eligible, False, []
    warns: list[tuple[str, Condition]] = []
    allowed = frozenset(NodeName(n) for n in nodes if n not in refused)
    narrowed = allowed if eligible is None else eligible & allowed
    if not narrowed and (eligible is None or eligible):  # empty already: no local endpoints
        warns.extend((key, no_eligible_node(key, what, refused)) for key in keys)
    if svc.selector_error:
        warns.append((owner, Condition(owner, WARNING, Reason.NODE_SELECTOR_INVALID, svc.selector_error)))
    return narrowed, eligible is None, warns


# Kept by every placement that refuses nobody (most of them; 2000 at 1000 dual-stack Services): one.
_NOBODY_REFUSED: Mapping[str, Refusal] = MappingProxyType({})


def _place_plan(p: VipPlan, svc: ServiceRules, nodes: Mapping[str, NodeView], rules: Rules) -> _Placed:
    """Placement of one plan that is not a DHCP lease, with at least one Node known."""
    subnet_nodes: frozenset[str] | None = None
    if rules.layer2 and not p.interface:
        on = frozenset(
            n.name for n in nodes.values() if n.network is not None and n.network.on_subnet(p.address)
        )
        subnet_nodes = on or None  # nobody on the VIP's subnet: the rule refuses nobody
    refused = _judge(nodes, p.address, p.interface, svc, rules, subnet_nodes)
    if not refused:
        return _Placed(p, _NOBODY_REFUSED, False, ())
    narrowed, elected, warns = _narrow(
        p.unit, p.eligible, refused, p.services, str(p.address), svc, p.services[0], nodes
    )
    return _Placed(replace(p, eligible=narrowed), refused, elected, tuple(warns))


def place(
    plans: Iterable[VipPlan], services: Mapping[str, ServiceView], nodes: Mapping[str, NodeView],
    rules: Rules, wants: Iterable[DhcpWant] = (), memo: PlacementMemo | None = None,
) -> Placement:
    """Narrow every plan, and every DHCP want, to the nodes placement allows.

    A VIP shared by several Services follows the earliest Service's selector and preference (as it
    follows its `serviceInterface`). With no Node known the plans stay as they are. When a rule refuses
    some known node, only known nodes can be eligible (a node without a Node object is not judged).
    `memo`: answers of earlier calls, reused for equal plans while nodes and rules are equal (the result
    is the same with or without it)."""
    refusals: dict[IPAddress, Mapping[str, Refusal]] = {}
    elected: set[str] = set()
    preferred: dict[str, tuple[str, ...]] = {}
    warns: dict[str, set[Condition]] = {}
    cache: dict[str, ServiceRules] = {}
    known_rules = memo.service_rules if memo is not None else {}
    used_rules: dict[str, tuple[ServiceView | None, ServiceRules]] = {}

    def rules_of(owner: str) -> ServiceRules:
        svc = cache.get(owner)
        if svc is None:
            view = services.get(owner)
            kept = known_rules.get(owner)
            svc = kept[1] if kept is not None and kept[0] is view else service_rules(view)
            cache[owner] = svc
            used_rules[owner] = (view, svc)
        return svc

    def narrow(
        unit: UnitId, eligible: frozenset[NodeName] | None, refused: Mapping[str, Refusal],
        keys: Iterable[str], what: str, svc: ServiceRules, owner: str,
    ) -> frozenset[NodeName] | None:
        narrowed, made_elected, raised = _narrow(unit, eligible, refused, keys, what, svc, owner, nodes)
        if made_elected:
            elected.add(unit)
        for key, cond in raised:
            warns.setdefault(key, set()).add(cond)
        return narrowed

    # DHCP wants: judged without an address (unknown until leased), so rule 5b does not apply.
    dhcp_out: list[DhcpWant] = []
    dhcp_refused: dict[tuple[ServiceKey, IPFamily], dict[str, Refusal]] = {}
    leased: dict[tuple[ServiceKey, IPFamily], DhcpWant] = {}
    for w in wants:
        key = (w.service, w.request.family)
        svc = rules_of(w.service)
        if svc.preferred:
            preferred.setdefault(w.unit, svc.preferred)
        if nodes:
            unspecified = ipaddress.ip_address("0.0.0.0" if w.request.family == IPFamily.IPV4 else "::")
            refused = _judge(nodes, unspecified, w.parent, svc, rules, None)
            if refused:
                dhcp_refused[key] = refused
                what = f"the DHCP {w.request.family.value} VIP of {w.service}"
                narrowed = narrow(w.unit, w.eligible, refused, (w.service,), what, svc, w.service)
                w = replace(w, eligible=narrowed)
        leased[key] = w
        dhcp_out.append(w)

    known: Mapping[int, tuple[VipPlan, ServiceRules, _Placed]] = {}
    if memo is not None and memo.nodes == nodes and memo.rules == rules:
        known = memo.plans
    used: dict[int, tuple[VipPlan, ServiceRules, _Placed]] = {}
    out: list[VipPlan] = []
    for p in plans:
        owner = p.services[0]
        svc = rules_of(owner)
        if svc.preferred:
            preferred.setdefault(p.unit, svc.preferred)
        if not nodes:
            out.append(p)
            continue
        if p.macvlan:
            # A leased plan exists on its holder alone: it takes its want's eligibility, so every node
            # (with or without the lease) elects the unit among the same nodes.
            want = leased.get((owner, p.family))
            if want is not None and (owner, p.family) in dhcp_refused:
                refusals[p.address] = dhcp_refused[(owner, p.family)]
                out.append(replace(p, eligible=want.eligible))
            else:
                out.append(p)
            continue
        entry = known.get(id(p))
        if entry is not None and entry[0] is p and entry[1] == svc:
            placed = entry[2]
            if memo is not None:
                memo.hits += 1
        else:
            placed = _place_plan(p, svc, nodes, rules)
        used[id(p)] = (p, svc, placed)
        out.append(placed.plan)
        if placed.refused:
            refusals[p.address] = placed.refused
        if placed.elected:
            elected.add(p.unit)
        for wkey, cond in placed.warns:
            warns.setdefault(wkey, set()).add(cond)
    if memo is not None:
        memo.nodes, memo.rules, memo.plans, memo.service_rules = nodes, rules, used, used_rules
    return Placement(tuple(out), refusals, frozenset(elected), preferred,
                     {k: frozenset(v) for k, v in warns.items()}, tuple(dhcp_out), dhcp_refused)


def _judge(
    nodes: Mapping[str, NodeView], address: IPAddress, interface: str, svc: ServiceRules, rules: Rules,
    subnet_nodes: frozenset[str] | None,
) -> dict[str, Refusal]:
    """Every known node `refusal` refuses, with why."""
    refused: dict[str, Refusal] = {}
    for name in sorted(nodes):
        r = refusal(nodes[name], address, interface, svc, rules, subnet_nodes)
        if r is not None:
            refused[name] = r
    return refused


def no_eligible_node(service: str, what: str, refused: Mapping[str, Refusal]) -> Condition:
    """The Warning of a VIP (`what`: its address, or which DHCP VIP) no node may hold, naming why each node
    was refused (the first MAX_NAMED)."""
    names = sorted(refused)
    parts = [f"{n}: {refused[n]}" for n in names[:MAX_NAMED]]
    if len(names) > MAX_NAMED:
        parts.append(f"and {len(names) - MAX_NAMED} more")
    return Condition(
        service, WARNING, Reason.NO_ELIGIBLE_NODE,
        f"no node may hold {what}; refused: " + "; ".join(parts),
    )


def placed_snapshot(
    snap: Snapshot, services: Mapping[str, ServiceView], nodes: Mapping[str, NodeView], rules: Rules,
    memo: PlacementMemo | None = None,
) -> tuple[Snapshot, Placement]:
    """`snap` with its plans narrowed by `place`, and placement's Warnings added to the Services'.

    Units elected in advance (`snap.standby`, any node eligible) are dropped wherever placement could
    narrow them (a node-wide selector or drain-on-cordon, or the Service's own selector or preference):
    elected without their plans, they could land on a node placement refuses and would have to move once
    the Service has endpoints. Such Services elect when their endpoints come, as before."""
    standby = snap.standby
    if standby:
        narrowing = bool(rules.node_selector.requirements) or rules.drain_on_cordon
        kept = {k: u for k, u in standby.items()
                if not narrowing and service_rules(services.get(k)) == ServiceRules()}
        if kept != standby:
            snap = replace(snap, standby=kept)
    pl = place(snap.plans, services, nodes, rules, snap.dhcp, memo)
    if not pl.refusals and not pl.warnings and not pl.dhcp_refusals:
        return snap, pl
    warns = dict(snap.warnings)
    for key, conds in pl.warnings.items():
        warns[key] = warns.get(key, frozenset()) | conds
    return replace(snap, plans=pl.plans, granted=plans_by_service(pl.plans), warnings=warns, dhcp=pl.dhcp), pl
