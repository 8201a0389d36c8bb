"""This node's desired VIP rows, their diff against what the kernel holds, and each Service's status.

Pure functions over frozen values: the reconciler applies their answers and decides nothing itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.core.claims import VipPlan
from kubevip.core.interface import AUTO
from kubevip.core.views import IPAddress, IPFamily, NodeName, UnitId
from kubevip.ip import text

# The election's outcome as data: unit -> the node that holds it (None, or absent: nobody, or unknown).
# The agent builds it once per pass from its elector; the row functions never call back into it.
Holdings = Mapping[UnitId, "NodeName | None"]


def addr_key(a: IPAddress) -> tuple[int, int]:
    """Total order over both families (IPv4Address and IPv6Address do not compare with each other)."""
    return (a.version, int(a))


@dataclass(frozen=True)
class Row:
    """One VIP on one interface of this node."""

    address: IPAddress
    interface: str

    @property
    def family(self) -> IPFamily:
        return IPFamily.of(self.address)

    def sort_key(self) -> tuple[tuple[int, int], str]:
        return (addr_key(self.address), self.interface)


@dataclass(frozen=True)
class Changes:
    """What to do to converge: rows to add and to remove, in a stable order."""

    add: tuple[Row, ...]
    remove: tuple[Row, ...]

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def unit_eligibility(plans: Iterable[VipPlan]) -> Mapping[UnitId, frozenset[NodeName] | None]:
    """Eligible nodes per election unit: the intersection over its VIPs (None means any node)."""
    out: dict[UnitId, frozenset[NodeName] | None] = {}
    for p in plans:
        if p.unit not in out:
            out[p.unit] = p.eligible
        elif p.eligible is not None:
            cur = out[p.unit]
            out[p.unit] = p.eligible if cur is None else cur & p.eligible
    return out


def held_plans(plans: Iterable[VipPlan], holdings: Holdings, me: str) -> tuple[VipPlan, ...]:
    """The VIPs whose unit this node leads."""
    return tuple(p for p in plans if holdings.get(p.unit) == me)


def placement(
    plan: VipPlan, interface_of: Mapping[IPFamily, str], links: frozenset[str],
    by_subnet: Mapping[IPAddress, str] | None = None, services_auto: bool = False,
) -> str | None:
    """The interface for a VIP: its Service's when that exists on this node (never another one instead),
    else the one chosen for its family (vip_servicesinterface, vip_interface, default route); None: none.

    `auto` (the Service's annotation, or `services_auto` for vip_servicesinterface=auto) is the interface
    whose subnet holds the VIP (`by_subnet`, looked up by the agent), else the family's choice, as in
    kube-vip."""
    if plan.macvlan:  # a DHCP VIP lives on its macvlan, or nowhere (the lease belongs to that MAC)
        return plan.macvlan if plan.macvlan in links else None
    if plan.interface == AUTO or (not plan.interface and services_auto):
        return (by_subnet or {}).get(plan.address) or interface_of.get(plan.family) or None
    if plan.interface:
        return plan.interface if plan.interface in links else None
    return interface_of.get(plan.family) or None


def needs_subnet_lookup(plan: VipPlan, services_auto: bool) -> bool:
    """Whether `placement` of this VIP asks which interface's subnet holds it."""
    return not plan.macvlan and (plan.interface == AUTO or (not plan.interface and services_auto))


def desired_rows(
    plans: Iterable[VipPlan],
    holdings: Holdings,
    me: str,
    interface_of: Mapping[IPFamily, str],
    links: frozenset[str] = frozenset(),
    by_subnet: Mapping[IPAddress, str] | None = None,
    services_auto: bool = False,
) -> frozenset[Row]:
    """The VIPs this node holds, each on its `placement`; `links` are the Services' interfaces that exist
    here (the others' VIPs get no row: see `missing_interfaces`)."""
    out: set[Row] = set()
    for p in held_plans(plans, holdings, me):
        ifname = placement(p, interface_of, links, by_subnet, services_auto)
        if ifname:
            out.add(Row(p.address, ifname))
    return frozenset(out)


def missing_interfaces(held: Iterable[VipPlan], links: frozenset[str]) -> tuple[VipPlan, ...]:
    """Of the VIPs this node holds (`held_plans`), those it cannot carry: their Service's interface does
    not exist here."""
    return tuple(p for p in held if p.interface and p.interface != AUTO and p.interface not in links)


def diff(desired: Iterable[Row], actual: Iterable[Row]) -> Changes:
    """Add what is desired and missing, remove what is held and not desired (a moved interface is both)."""
    d, a = frozenset(desired), frozenset(actual)
    return Changes(
        add=tuple(sorted(d - a, key=Row.sort_key)),
        remove=tuple(sorted(a - d, key=Row.sort_key)),
    )


def apply(actual: Iterable[Row], changes: Changes) -> frozenset[Row]:
    """The rows after `changes` were performed (what the kernel would hold)."""
    return (frozenset(actual) - frozenset(changes.remove)) | frozenset(changes.add)


@dataclass(frozen=True)
class ServiceStatus:
    """What a Service's status and `kube-vip.io/vipHost` should say; `writer` is the node that writes it."""

    ingress: tuple[str, ...]
    host: str | None

    @property
    def writer(self) -> str | None:
        return self.host


def service_status(
    vip_order: Iterable[IPAddress], plans: Iterable[VipPlan], holdings: Holdings
) -> ServiceStatus:
    """Ingress: exactly the granted VIPs that have a holder, in the Service's own VIP order."""
    by_addr = {p.address: p for p in plans}
    ingress: list[str] = []
    host: str | None = None
    for addr in vip_order:
        p = by_addr.get(addr)
        if p is None:
            continue
        holder = holdings.get(p.unit)
        if holder is None:
            continue
        ingress.append(text(addr))
        host = host or holder
    return ServiceStatus(tuple(ingress), host)


def should_write(
    wanted: ServiceStatus, current_ingress: tuple[str, ...], current_host: str | None, me: str
) -> bool:
    """The announcing node keeps status true; when nobody announces, the node named in vipHost clears it."""
    if wanted.writer == me:
        return (tuple(current_ingress), current_host) != (wanted.ingress, wanted.host)
    if wanted.writer is None and current_host == me:
        return bool(current_ingress) or current_host is not None
    return False
