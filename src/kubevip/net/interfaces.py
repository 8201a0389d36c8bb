"""Which interface carries a VIP: per-Service override, vip_servicesinterface, vip_interface, or per family
the interface of the default route; plus link facts (index, MAC) that the announcers need."""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from kubevip.errors import InterfaceNotFoundError, KubevipError, NetworkError
from kubevip.ip import IPFamily
from kubevip.net.namespace import OWN, Netns
from kubevip.net.rtnl_batch import DumpedAddress, address_dump, default_routes, get_link, link_dump

log = logging.getLogger(__name__)

Family = Literal[4, 6]
AUTO = ("", "auto")


@dataclass(frozen=True)
class Link:
    """One interface: kernel index, name and hardware address."""

    index: int
    name: str
    mac: bytes


def choose_interface(
    family: Family,
    *,
    for_service: bool,
    vip_interface: str = "",
    services_interface: str = "",
    override: str = "",
    default_route: Mapping[int, str] | None = None,
    present: Collection[int] | None = None,
) -> str:
    """Pick the interface for a VIP of `family` (pure): the first of override (annotation),
    `vip_servicesinterface` (Service VIPs only), `vip_interface`, then the family's default-route one.

    `present`: the families this node has any address of (None: not looked up). A named interface is
    refused for a family the node has no address of at all (a single-stack node): the kernel refuses an
    IPv6 address where IPv6 is disabled, and a VIP of a family no neighbour speaks reaches nobody."""
    candidates = [override]
    if for_service:
        candidates.append(services_interface)
    candidates.append(vip_interface)
    for name in candidates:
        if name and name not in AUTO:
            if present is not None and family not in present:
                raise InterfaceNotFoundError(
                    f"no interface for IPv{family} VIPs: this node has no IPv{family} address at all "
                    f"(single-stack), so {name} cannot carry IPv{family} VIPs"
                )
            return name
    found = (default_route or {}).get(family)
    if found:
        return found
    setting = "vip_servicesinterface or vip_interface" if for_service else "vip_interface"
    raise InterfaceNotFoundError(
        f"no interface for IPv{family} VIPs: there is no IPv{family} default route on this node; "
        f"set {setting} to the interface that should carry IPv{family} VIPs"
    )


def default_route_interfaces(ns: Netns = OWN) -> dict[int, str]:
    """Per family (4, 6), the interface of the main table's default route with the lowest metric (for a
    multipath route, its first hop's). Our own dumps (net/rtnl_batch.py), not pyroute2's: see there."""
    result: dict[int, str] = {}
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        names = {index: name for index, name, _ in link_dump(sock, f"listing interfaces in {ns}")}
        for family, af in ((4, socket.AF_INET), (6, socket.AF_INET6)):
            routes = default_routes(sock, af, f"listing IPv{family} default routes in {ns}")
            best = min(((r.priority, i, names[r.oif]) for i, r in enumerate(routes) if r.oif in names),
                       default=None)
            if best is not None:
                result[family] = best[2]
    return result


def resolve_interface(
    family: Family,
    *,
    for_service: bool,
    vip_interface: str = "",
    services_interface: str = "",
    override: str = "",
    ns: Netns = OWN,
) -> str:
    """`choose_interface` with the kernel's default routes looked up only when they are needed."""
    needs_lookup = all(
        (not n or n in AUTO)
        for n in (override, services_interface if for_service else "", vip_interface)
    )
    routes = default_route_interfaces(ns) if needs_lookup else {}
    return choose_interface(
        family,
        for_service=for_service,
        vip_interface=vip_interface,
        services_interface=services_interface,
        override=override,
        default_route=routes,
        present=None if needs_lookup else address_families(ns),
    )


# Seconds between lookups of a family's interface that failed (single-stack nodes: never found).
IFACE_RETRY = 30.0


def lookup_due(failed_at: float | None, now: float, retry: float = IFACE_RETRY) -> bool:
    """A family never looked up (`failed_at` None), or one whose last lookup failed `retry` s ago or more."""
    return failed_at is None or now - failed_at >= retry


class FamilyInterfaces:
    """Interface per family, for the Service agent and the control-plane VIPs alike (one rule).

    A family found is kept. A family not found (a single-stack node has no default route, often no
    address, of the other family) is looked up again only every IFACE_RETRY seconds, and its warning is
    logged once per distinct message, not on every pass; `what` names the VIPs in that warning."""

    def __init__(
        self, lookup: Callable[[IPFamily], str], what: str, retry: float = IFACE_RETRY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lookup = lookup
        self.what = what
        self.retry = retry
        self.clock = clock
        self.found: dict[IPFamily, str] = {}
        self._failed: dict[IPFamily, tuple[float, str]] = {}

    def due(self, fam: IPFamily) -> bool:
        """`fam` is to be looked up now: not found yet, and never tried or its retry is due."""
        if fam in self.found:
            return False
        failed = self._failed.get(fam)
        return lookup_due(None if failed is None else failed[0], self.clock(), self.retry)

    def pending(self) -> bool:
        """Some family is to be looked up now (`resolve` would block on the kernel)."""
        return any(self.due(fam) for fam in IPFamily)

    def resolve(self) -> dict[IPFamily, str]:
        """Blocking: look up every family that is due; returns the families found so far."""
        for fam in IPFamily:
            if not self.due(fam):
                continue
            try:
                self.found[fam] = self.lookup(fam)
                if self._failed.pop(fam, None) is not None:
                    log.info("%s %s go on %s now", fam, self.what, self.found[fam])
            except KubevipError as exc:
                last = self._failed.get(fam)
                if last is None or last[1] != str(exc):
                    log.warning("%s (%s %s are not announced from this node; looked up again every %.0f s)",
                                exc, fam, self.what, self.retry)
                self._failed[fam] = (self.clock(), str(exc))
        return dict(self.found)


def address_families(ns: Netns = OWN) -> frozenset[int]:
    """The families (4, 6) of which this node has any address besides loopback's (an IPv6 link-local
    address counts: IPv6 is enabled on a link)."""
    return frozenset(a.ip.version for a in dump_addresses(ns) if not a.ip.is_loopback)


def dump_addresses(ns: Netns = OWN, index: int | None = None, what: str = "") -> list[DumpedAddress]:
    """Every address of interface `index` (None: of every interface) in the namespace, from one dump
    (`what` names it in errors). Our own parser (net/rtnl_batch.py), not pyroute2's get_addr: with
    thousands of VIPs on a node its parsed messages were most of the agent's garbage-collection pauses."""
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        return address_dump(sock, index, what or f"listing addresses in {ns}")


def link(ifname: str | int, ns: Netns = OWN) -> Link:
    """Index, name and MAC of an interface given by name or index; NetworkError names it when missing.
    One RTM_GETLINK (net/rtnl_batch.py), not pyroute2's lookup: every address batch starts here."""
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        found = get_link(sock, ifname, f"looking up interface {ifname!r} in {ns}")
    if found is None:
        raise NetworkError(f"interface {ifname!r} does not exist in {ns}; check vip_interface")
    index, name, mac = found
    return Link(index=index, name=name, mac=mac or bytes(6))  # a device without one: zeros, as before


def _links(ns: Netns) -> list[tuple[int, str, bytes]]:
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        return link_dump(sock, f"listing interfaces in {ns}")


def link_names(ns: Netns = OWN) -> frozenset[str]:
    """Every interface name in the namespace (one netlink dump)."""
    return frozenset(name for _, name, _ in _links(ns))


def existing_links(names: Iterable[str], ns: Netns = OWN) -> frozenset[str]:
    """Those of `names` that are interfaces in the namespace (one lookup each, no dump of all links)."""
    names = frozenset(names)
    if not names:
        return frozenset()
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        return frozenset(n for n in names if get_link(sock, n, f"looking up interface {n!r} in {ns}"))


def interface_networks(
    ifname: str | int, ns: Netns = OWN
) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """Every address/prefix configured on the interface (used by `vip_subnet=auto`)."""
    ln = link(ifname, ns)
    return [ipaddress.ip_interface((a.ip, a.prefixlen)) for a in dump_addresses(ns, ln.index)]


def subnet_interfaces(
    addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address], ns: Netns = OWN
) -> dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str]:
    """`auto` interfaces: for each address, the interface whose subnet holds it (one dump of all
    addresses; addresses no subnet holds are left out). Blocking: call from a worker thread."""
    from kubevip.core.interface import interface_by_subnet

    wanted = list(addresses)
    if not wanted:
        return {}
    names = {index: name for index, name, _ in _links(ns)}
    nets = [(names.get(a.index, ""), ipaddress.ip_interface((a.ip, a.prefixlen))) for a in dump_addresses(ns)]
    out = {}
    for address in wanted:
        found = interface_by_subnet(address, [(n, i) for n, i in nets if n])
        if found:
            out[address] = found
    return out
