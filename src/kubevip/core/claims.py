"""From per-Service decisions to cluster-wide VIPs: shared addresses, port clashes, election units.

Pure: the same Services in any order give the same answer.
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.core import reasons
from kubevip.core.dhcp import SOURCE_DHCP, DhcpRequest
from kubevip.core.leases import service_lease
from kubevip.core.plan import ServiceDecision, egress_enabled, endpoint_bound, node_share
from kubevip.core.views import IPAddress, IPFamily, NodeName, ServiceKey, ServiceView, UnitId

# MetalLB's convention: Services carrying the same value consent to share an address across namespaces.
ANNOTATION_ALLOW_SHARED_IP = "kube-vip.io/allow-shared-ip"
# Warning reason when a Service claims an address another, earlier Service holds with an overlapping port.
PORT_CLASH = reasons.Reason.VIP_PORT_CLASH


@dataclass(frozen=True, slots=True)
class Claim:
    """One Service wanting one VIP; `order` (creationTimestamp, key) decides who was first."""

    order: tuple[str, ServiceKey]
    address: IPAddress
    family: IPFamily
    ports: frozenset[tuple[str, int]]
    group: str
    local: bool
    # Nodes allowed to announce (ETP Local: nodes with a usable endpoint of the family); None means any.
    eligible: frozenset[NodeName] | None
    # The Service's `kube-vip.io/serviceInterface` ("" = the node's own choice).
    interface: str = ""
    # The Service's `kube-vip.io/allow-shared-ip` ("" = no consent to share across namespaces).
    share: str = ""
    # Egress: the pods' traffic leaves with this VIP, so exactly one node may hold it, even where
    # eligible nodes would otherwise all announce it (BGP ECMP for ETP Local).
    single: bool = False
    # `group` came from `kube-vip.io/leaseName` (else it is the Service's own Lease, kubevip-<name>).
    explicit: bool = False
    # The Service serves two families and this is the second one (its Local unit gets a family suffix).
    secondary: bool = False
    # The address was leased from DHCP (core/dhcp.py): its unit must not depend on the address, which
    # is unknown until the unit's holder leases it.
    dhcp: bool = False
    # The DHCP macvlan the leased address lives on ("" for every other VIP).
    macvlan: str = ""

    @property
    def service(self) -> ServiceKey:
        return self.order[1]

    @property
    def namespace(self) -> str:
        return self.order[1].split("/", 1)[0]

    def consents(self, other: Claim) -> bool:
        """Whether this claim may share its address with `other`'s Service without an operator setting:
        same namespace, or both carry the same non-empty `kube-vip.io/allow-shared-ip` value."""
        return self.namespace == other.namespace or (bool(self.share) and self.share == other.share)

    def sort_key(self) -> tuple[object, ...]:
        """Total order: who came first, then every other field, so ties never depend on input order."""
        elig = (0, ()) if self.eligible is None else (1, tuple(sorted(self.eligible)))
        return (
            self.order, tuple(sorted(self.ports)), self.group, self.local, elig, self.interface, self.share,
            self.single, self.explicit, self.secondary, self.dhcp, self.macvlan,
        )


@dataclass(frozen=True, slots=True)
class VipPlan:
    """A VIP cluster-wide: its Services (earliest first), election unit, and nodes that may hold it."""

    address: IPAddress
    family: IPFamily
    unit: UnitId
    services: tuple[ServiceKey, ...]
    eligible: frozenset[NodeName] | None
    # The interface the earliest Service asks for ("" = the node's own choice per family).
    interface: str = ""
    # Some Service on it uses egress: one holder, never several (`Claim.single`).
    single: bool = False
    # Leased from DHCP: the macvlan that carries it (core/dhcp.py); "" otherwise.
    macvlan: str = ""


@dataclass(frozen=True)
class DhcpWant:
    """A family of a Service asking DHCP: elected like its VIP will be (same unit); the holder runs the
    client on a macvlan child of `parent` ("" = the node's interface of the family)."""

    request: DhcpRequest
    unit: UnitId
    eligible: frozenset[NodeName] | None
    parent: str = ""

    @property
    def service(self) -> ServiceKey:
        return self.request.service


@dataclass(frozen=True)
class Clash:
    """`service` lost `address` to the earlier `winner`: their ports overlap (PORT_CLASH), or they are
    in different namespaces without consent (reasons.CROSS_NAMESPACE_SHARING)."""

    service: ServiceKey
    address: IPAddress
    winner: ServiceKey
    reason: str = PORT_CLASH


@dataclass(frozen=True)
class InterfaceConflict:
    """`service` shares `address` with the earlier `winner`, whose interface `used` ("" = the node's own
    choice) carries it instead of the `wanted` one."""

    service: ServiceKey
    address: IPAddress
    winner: ServiceKey
    wanted: str
    used: str


def eligible_nodes(
    decision: ServiceDecision, service: ServiceView, family: IPFamily, leasing: bool = False,
) -> frozenset[NodeName] | None:
    """Nodes that may announce this family: None (any) for Cluster; for Local the nodes core allows.
    `leasing` (a DHCP want): the nodes that will announce the family once its VIP is leased; without it
    a Local Service's DHCP client had no eligible node, so it never leased an address."""
    if not endpoint_bound(service):
        return None
    candidates: set[NodeName] = set()
    for eps in decision.endpoints.values():
        candidates.update(NodeName(e.node) for e in eps if e.node)
    return frozenset(n for n in candidates if node_share(decision, service, n, leasing)[family].announce)


def claims_of(
    service: ServiceView, created: str, decision: ServiceDecision, interfaces: bool = True
) -> tuple[Claim, ...]:
    """The VIPs an announced Service wants; nothing for a Service that is not announced.

    `interfaces=False` (BGP mode) drops the Service's `kube-vip.io/serviceInterface`."""
    if not decision.announce or decision.reason != reasons.ANNOUNCED:
        return ()
    ports = frozenset((p.protocol or "TCP", p.port) for p in service.ports)
    lease = service_lease(service)  # decide() refused the Service if its leaseName is invalid
    local = endpoint_bound(service)
    elig = {f: eligible_nodes(decision, service, f) for f in decision.families}
    ifname = decision.interface if interfaces else ""
    second = decision.families[1] if len(decision.families) > 1 else None
    share = (service.annotation(ANNOTATION_ALLOW_SHARED_IP) or "").strip()
    single = egress_enabled(service)
    macvlans = {r.family: r.interface for r in decision.dhcp}
    return tuple(
        Claim((created, service.key), v.address, v.family, ports, str(lease), local, elig[v.family], ifname,
              share, single, lease.explicit, v.family == second, v.source == SOURCE_DHCP,
              macvlans[v.family] if v.source == SOURCE_DHCP else "")
        for v in decision.vips
    )


def standby_units(
    service: ServiceView, created: str, decision: ServiceDecision, per_address: bool = False,
    interfaces: bool = True,
) -> tuple[UnitId, ...]:
    """The election units an `externalTrafficPolicy: Cluster` Service without endpoints will have once it
    has one, to be elected in advance; () for any other Service.

    Electing only once the first EndpointSlice arrives (as kube-vip does) puts a Lease round trip between
    that slice and the announcement (BGP create -> route: 22 against kube-vip's 16 ms, issue 21). Nothing
    is announced early: these units have no plan, so no row, until the Service has an endpoint (or
    `allow-reconcile-without-endpoints`). Eligibility is any node, as for the Service's claims once they
    exist (Cluster). A deliberate difference from kube-vip (docs/migration.md)."""
    if decision.reason != reasons.NO_ENDPOINTS or endpoint_bound(service):
        return ()
    ready = dataclasses.replace(decision, announce=True, reason=reasons.ANNOUNCED)
    return tuple(dict.fromkeys(_unit(c, per_address) for c in claims_of(service, created, ready, interfaces)))


def dhcp_wants(
    service: ServiceView, created: str, decision: ServiceDecision, per_address: bool = False,
    interfaces: bool = True,
) -> tuple[DhcpWant, ...]:
    """The DHCP clients an announced Service needs, each with the election unit its leased VIP will have
    (`_unit` of a DHCP claim does not read the address), so the same node leases and holds it."""
    if not decision.announce or not decision.dhcp:
        return ()
    lease = service_lease(service)
    local = endpoint_bound(service)
    second = decision.families[1] if len(decision.families) > 1 else None
    parent = decision.interface if interfaces else ""
    out = []
    for req in decision.dhcp:
        probe = Claim((created, service.key), _UNSPECIFIED[req.family], req.family, frozenset(), str(lease),
                      local, None, "", "", False, lease.explicit, req.family == second, True, req.interface)
        out.append(DhcpWant(req, _unit(probe, per_address),
                            eligible_nodes(decision, service, req.family, leasing=True), parent))
    return tuple(out)


_UNSPECIFIED: Mapping[IPFamily, IPAddress] = {
    IPFamily.IPV4: ipaddress.IPv4Address(0), IPFamily.IPV6: ipaddress.IPv6Address(0),
}


def _unit(first: Claim, per_address: bool) -> UnitId:
    """Election unit of a VIP: in Lease mode the "namespace/name" of its Lease (kube-vip's name, so both
    implementations elect on one Lease), plus "/<family>" for the second family of a dual-stack Local
    Service (its endpoints, so its eligible nodes, differ per family: a deliberate difference, see
    docs/migration.md). In scalable mode (`per_address`) per address unless `kube-vip.io/leaseName` groups
    it (the unit outlives any one of the Services sharing it, so it never moves when one goes), and per
    family when Local."""
    if per_address:
        if first.dhcp and not first.explicit:
            return UnitId(f"dhcp:{first.service}/{first.family.value}")
        if not first.explicit:
            return _address_unit(first.address)
        return UnitId(f"{first.group}/{first.family.value}" if first.local else first.group)
    return UnitId(f"{first.group}/{first.family.value}" if first.local and first.secondary else first.group)


@functools.lru_cache(maxsize=65536)  # formatting an IPv6 address is slow, and asked every snapshot
def _address_unit(address: IPAddress) -> UnitId:
    return UnitId(f"vip:{address}")


PlanMemo = dict[int, tuple[Claim, bool, VipPlan]]


def resolve(
    claims: Iterable[Claim], per_address: bool = False, cross_namespace: bool = False,
    memo: PlanMemo | None = None,
) -> tuple[tuple[VipPlan, ...], tuple[Clash, ...]]:
    """Group claims by address; the earliest claim keeps it, later claims with overlapping ports lose it,
    and so do later claims from another namespace without consent (unless `cross_namespace`, kube-vip's
    behaviour: `svc_cross_namespace_sharing=true`). "Earliest" is (creationTimestamp, namespace/name),
    so every node reaches the same answer whatever order the Services arrived in.

    `memo` (one caller, carried from call to call; the answer is the same without it): the plan of an
    address that one claim alone asks for, by the claim object (a Service whose decision was reused
    hands in the same claims), so such a plan is the same object as in the last call and placement
    (`core.eligibility.PlacementMemo`) finds its answer by identity. Keeps only this call's entries."""
    by_addr: dict[IPAddress, list[Claim]] = {}
    for c in claims:
        by_addr.setdefault(c.address, []).append(c)
    plans: list[VipPlan] = []
    clashes: list[Clash] = []
    known: PlanMemo = memo if memo is not None else {}
    used: PlanMemo = {}
    for addr in sorted(by_addr, key=lambda a: (a.version, int(a))):
        group = by_addr[addr]
        if len(group) == 1:  # the common case, kept cheap: one Service per address
            first = group[0]
            entry = known.get(id(first))
            if entry is not None and entry[0] is first and entry[1] == per_address:
                plan = entry[2]
            else:
                plan = VipPlan(addr, first.family, _unit(first, per_address), (first.service,),
                               first.eligible, first.interface, first.single, first.macvlan)
            used[id(first)] = (first, per_address, plan)
            plans.append(plan)
            continue
        kept: list[Claim] = []
        for c in sorted(set(group), key=Claim.sort_key):
            if any(k.service == c.service for k in kept):
                continue
            if not cross_namespace:
                refuser = next((k for k in kept if not c.consents(k)), None)
                if refuser is not None:
                    clashes.append(Clash(c.service, addr, refuser.service, reasons.CROSS_NAMESPACE_SHARING))
                    continue
            winner = next((k for k in kept if k.ports & c.ports), None)
            if winner is not None:
                clashes.append(Clash(c.service, addr, winner.service))
                continue
            kept.append(c)
        first = kept[0]
        eligible: frozenset[NodeName] | None = None
        for k in kept:
            if k.eligible is not None:
                eligible = k.eligible if eligible is None else eligible & k.eligible
        if eligible is not None and not eligible and first.eligible is not None:
            eligible = first.eligible  # no node serves them all: follow the earliest Service
        unit = _unit(first, per_address)
        plans.append(VipPlan(addr, first.family, unit, tuple(k.service for k in kept), eligible,
                             first.interface, any(k.single for k in kept), first.macvlan))
    if memo is not None:
        memo.clear()
        memo.update(used)
    return tuple(plans), tuple(sorted(clashes, key=lambda x: (x.service, str(x.address), x.reason)))


def interface_conflicts(
    claims: Iterable[Claim], plans: Iterable[VipPlan]
) -> tuple[InterfaceConflict, ...]:
    """Services granted a shared address that asked for another interface than the one it gets (the
    earliest Service's). A Service without the annotation asks for nothing, so it never conflicts."""
    shared = [p for p in plans if len(p.services) > 1]
    if not shared:  # the common case: no address shared, so nothing to look up (every snapshot asks)
        return ()
    addresses = {p.address for p in shared}
    wanted = {(c.service, c.address): c.interface for c in claims if c.address in addresses}
    out: set[InterfaceConflict] = set()
    for p in shared:
        for s in p.services[1:]:
            want = wanted.get((s, p.address), "")
            if want and want != p.interface:
                out.add(InterfaceConflict(s, p.address, p.services[0], want, p.interface))
    return tuple(sorted(out, key=lambda c: (c.service, c.address.version, int(c.address))))


def plans_by_service(plans: Iterable[VipPlan]) -> Mapping[str, tuple[VipPlan, ...]]:
    """The VIPs granted to each Service."""
    out: dict[str, list[VipPlan]] = {}
    for p in plans:
        for s in p.services:
            out.setdefault(s, []).append(p)
    return {k: tuple(v) for k, v in out.items()}
