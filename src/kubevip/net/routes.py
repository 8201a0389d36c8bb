"""Routing-table mode: host routes for VIPs in a dedicated table, for a routing daemon to export.

API (synchronous, like AddressManager):

    rt = RoutingTable("eth0", table=198, protocol=248, route_type="unicast")   # ns=Netns(...) optional
    rt.ensure({(ip_address("10.0.0.9"), 32), (ip_address("fd00::9"), 128)})    # -> RouteChanges
    rt.routes()      # our routes on this interface: {(ip, prefixlen)}
    rt.clear()       # every route with our protocol in the table (vip_cleanroutingtable at start)

Ours = in `table` with protocol `protocol` (and, for types that have a device, via this interface).
`ensure` reads the kernel each time, so it repairs what the kernel removed behind our back: removing the
last IPv4 address of an interface deletes its IPv4 routes in every table, and the next `ensure` puts
them back.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubevip.errors import NetworkError
from kubevip.ip import IPAddress
from kubevip.net.addresses import VipAddress, normalise
from kubevip.net.interfaces import link
from kubevip.net.namespace import OWN, Netns
from kubevip.pyroute2_lazy import submodule

if TYPE_CHECKING:
    from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

DEFAULT_TABLE = 198
DEFAULT_PROTOCOL = 248
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253
RT_SCOPE_HOST = 254
# Route types and whether they name a device; the names are iproute2's (`ip route add <type> ...`).
ROUTE_TYPES: dict[str, bool] = {
    "unicast": True,
    "local": True,
    "anycast": True,
    "blackhole": False,
    "unreachable": False,
    "prohibit": False,
    "throw": False,
}


@dataclass(frozen=True)
class RouteChanges:
    added: frozenset[VipAddress] = frozenset()
    removed: frozenset[VipAddress] = frozenset()


class RoutingTable:
    """Host routes for VIPs in one table, owned by protocol number."""

    def __init__(
        self,
        interface: str | int,
        ns: Netns = OWN,
        *,
        table: int = DEFAULT_TABLE,
        protocol: int = DEFAULT_PROTOCOL,
        route_type: str = "unicast",
    ) -> None:
        if route_type not in ROUTE_TYPES:
            allowed = ", ".join(ROUTE_TYPES)
            raise NetworkError(f"route type {route_type!r} is not supported; use one of {allowed}")
        self.interface = interface
        self.ns = ns
        self.table = table
        self.protocol = protocol
        self.route_type = route_type
        self._has_dev = ROUTE_TYPES[route_type]

    def _dump(self, *, any_interface: bool = False) -> set[VipAddress]:
        index = link(self.interface, self.ns).index if self._has_dev and not any_interface else None
        found: set[VipAddress] = set()
        with self.ns.iproute() as ipr:
            for af in (socket.AF_INET, socket.AF_INET6):
                for r in ipr.get_routes(family=af, table=self.table):
                    table = r.get_attr("RTA_TABLE") or r["table"]
                    if table != self.table or r["proto"] != self.protocol:
                        continue
                    if index is not None and r.get_attr("RTA_OIF") != index:
                        continue
                    dst = r.get_attr("RTA_DST")
                    if dst is None:
                        continue
                    found.add((ipaddress.ip_address(dst), r["dst_len"]))
        return found

    def routes(self) -> set[VipAddress]:
        """Our VIP routes in the table (via this interface for device route types)."""
        with self.ns.shared():
            return self._dump()

    def _route(self, op: str, a: VipAddress, *, any_interface: bool = False) -> bool:
        ip, plen = a
        kwargs: dict[str, Any] = {
            "dst": f"{ip}/{plen}",
            "table": self.table,
            "proto": self.protocol,
            "type": self.route_type,
            "family": socket.AF_INET if ip.version == 4 else socket.AF_INET6,
        }
        if self._has_dev:
            kwargs["scope"] = RT_SCOPE_HOST if self.route_type == "local" else RT_SCOPE_LINK
            if not any_interface:
                kwargs["oif"] = link(self.interface, self.ns).index
        else:
            kwargs["scope"] = RT_SCOPE_UNIVERSE
        netlink_error: type[NetlinkError] = submodule("pyroute2.netlink.exceptions").NetlinkError
        try:
            with self.ns.iproute() as ipr:
                ipr.route(op, **kwargs)
        except netlink_error as exc:
            if op == "add" and exc.code == errno.EEXIST:
                log.warning("route %s/%s already in table %s (not ours): leaving it", ip, plen, self.table)
                return False
            if op == "del" and exc.code in (errno.ESRCH, errno.ENOENT):
                return False
            raise NetworkError(
                f"cannot {op} route {ip}/{plen} in table {self.table} "
                f"via {self.interface} in {self.ns}: {exc}"
            ) from exc
        return True

    def add(self, ip: IPAddress, prefixlen: int | None = None) -> bool:
        (a,) = normalise([(ip, ip.max_prefixlen if prefixlen is None else prefixlen)])
        with self.ns.shared():
            return a not in self.routes() and self._route("add", a)

    def remove(self, ip: IPAddress, prefixlen: int | None = None) -> bool:
        with self.ns.shared():
            mine = [a for a in self.routes() if a[0] == ip and (prefixlen is None or a[1] == prefixlen)]
            return any([self._route("del", a) for a in mine])

    def ensure(self, desired: Iterable[VipAddress | IPAddress]) -> RouteChanges:
        """Make our routes in the table exactly `desired` (idempotent; repairs kernel-side deletions)."""
        want = normalise(desired)
        with self.ns.shared():
            have = self.routes()
            removed = {a for a in have - want if self._route("del", a)}
            added = {a for a in want - have if self._route("add", a)}
        return RouteChanges(frozenset(added), frozenset(removed))

    def clear(self) -> set[VipAddress]:
        """Remove every route with our protocol from the table, whatever its interface."""
        with self.ns.shared():
            return {a for a in self._dump(any_interface=True) if self._route("del", a, any_interface=True)}
