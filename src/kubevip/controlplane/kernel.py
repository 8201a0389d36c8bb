"""Control-plane VIPs in the kernel: addresses (their own IFA_PROTO), optional routes, announcements.

The control-plane VIPs carry IFA_PROTO `CONTROL_PLANE_PROTO` (249), not the Services' 248: the Service
reconciler adopts and cleans up every 248 address on its interfaces, so one mark for both would let each
part delete the other's VIPs. With two marks the two parts of one process cannot touch each other's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from kubevip.errors import KubevipError
from kubevip.ip import IPAddress
from kubevip.net.addresses import AddressManager, Ownership, detect_ownership
from kubevip.net.announcer import Announcer, Sender, raw_sender
from kubevip.net.connections import abort_connections
from kubevip.net.interfaces import resolve_interface
from kubevip.net.namespace import OWN, Netns
from kubevip.net.routes import RoutingTable
from kubevip.net.settings import NetSettings

log = logging.getLogger(__name__)

CONTROL_PLANE_PROTO = 249


@dataclass(frozen=True)
class Placement:
    """One control-plane VIP on one interface."""

    ifname: str
    address: IPAddress

    def key(self) -> tuple[str, int, int]:
        """Sort key (IPv4 before IPv6: addresses of different families do not compare)."""
        return self.ifname, self.address.version, int(self.address)


def placements(vips: Iterable[IPAddress], interfaces: dict[int, str]) -> frozenset[Placement]:
    """Where each VIP goes: the interface of its family (a family without interface gets nothing)."""
    return frozenset(Placement(interfaces[ip.version], ip) for ip in vips if ip.version in interfaces)


class KernelVips:
    """Adds / removes the control-plane VIPs and their announcements; `held` is what is in place now."""

    def __init__(self, net: NetSettings, ns: Netns = OWN, announcer: Announcer | None = None) -> None:
        self.net = net
        self.ns = ns
        self._ready: dict[tuple[str, int], Sender] = {}
        self.announcer = announcer if announcer is not None else (
            Announcer(rate_ms=net.arp_rate_ms, ns=ns, sender_factory=self._sender) if net.arp else None
        )
        self.held: frozenset[Placement] = frozenset()
        self.ownership = Ownership()  # the runner probes IFA_PROTO at start-up
        # Placements whose address this process added (or found ours): only those get lifetimes extended.
        self._ours: set[Placement] = set()
        self._interfaces: dict[int, str] = {}
        self._abort_warned = False

    def prepare(self) -> None:
        """Blocking: open the announcement sockets of each family's interface ahead of any takeover.

        Opening one reads the interface over netlink; on a loaded node that took 0.2-0.5 s, spent
        between adding the VIPs and the first announcement, i.e. on every failover's critical path.
        """
        if self.announcer is None:
            return
        for version, ifname in self.interfaces().items():
            if (ifname, version) not in self._ready:
                try:
                    self._ready[(ifname, version)] = raw_sender(ifname, version, self.ns)
                except (OSError, KubevipError) as exc:
                    log.warning("control-plane VIP: cannot prepare announcements on %s: %s", ifname, exc)

    def _sender(self, ifname: str, version: int, ns: Netns) -> Sender:
        """The announcer's sender factory: the socket `prepare` opened, else a new one."""
        ready = self._ready.pop((ifname, version), None)
        return ready if ready is not None else raw_sender(ifname, version, ns)

    def known_interfaces(self) -> dict[int, str] | None:
        """`interfaces()` without blocking when both families are resolved already, else None."""
        return dict(self._interfaces) if len(self._interfaces) == 2 else None

    def interfaces(self) -> dict[int, str]:
        """Interface per family: vip_interface, else that family's default-route interface (blocking)."""
        for family in (4, 6):
            if family in self._interfaces:
                continue
            try:
                self._interfaces[family] = resolve_interface(
                    family, for_service=False, vip_interface=self.net.interface, ns=self.ns
                )
            except KubevipError as exc:
                log.warning("control-plane VIP: %s", exc)
        return dict(self._interfaces)

    def detect_ownership(self, node: str, lifetime_marker: bool) -> None:
        """Blocking: probe IFA_PROTO (or take the forced fallback) once, before any address is read."""
        n = self.net
        self.ownership = detect_ownership(
            self.ns, force_fallback=n.ownership == "statefile", state_dir=n.state_dir,
            lifetime_marker=lifetime_marker, what=f"node {node}'s control-plane VIPs",
        )

    def _manager(self, ifname: str) -> AddressManager:
        return self.ownership.manager(ifname, self.ns, proto=CONTROL_PLANE_PROTO)

    def _table(self, ifname: str) -> RoutingTable:
        n = self.net
        return RoutingTable(ifname, self.ns, table=n.routing_table_id, protocol=n.routing_protocol,
                            route_type=n.routing_table_type)

    def remove_leftovers(self) -> set[Placement]:
        """Blocking: remove control-plane VIPs a previous process left (it may be a peer's VIP by now)."""
        gone: set[Placement] = set()
        for ifname in set(self.interfaces().values()):
            try:
                for ip, _plen in self._manager(ifname).owned():
                    self._abort(ip, arrived=False)  # while the address is up: peers' clients get a RST
                for ip, _plen in self._manager(ifname).cleanup_stale(()):
                    gone.add(Placement(ifname, ip))
                    if self.net.routing_table:
                        self._table(ifname).remove(ip)
                    self._abort(ip, arrived=False)
            except KubevipError as exc:
                log.error("control-plane VIP: cannot clean up %s: %s", ifname, exc)
        for p in sorted(gone, key=Placement.key):
            log.info("removed control-plane VIP %s from %s (left by a previous run)", p.address, p.ifname)
        return gone

    def _abort(self, ip: IPAddress, arrived: bool) -> None:
        """Blocking: abort the TCP connections that `ip` arriving on / leaving this node kills.

        Clients that reached the VIP (here: the Service part of this very process, kubelet; elsewhere:
        peers' clients served here) would hang silently otherwise, watches for minutes
        (see kubevip.net.connections).
        """
        try:
            n = abort_connections(ip, arrived, self.ns)
        except KubevipError as exc:
            if not self._abort_warned:
                self._abort_warned = True
                log.warning("control-plane VIP: %s", exc)
            return
        if n:
            log.info("aborted %d TCP connection(s) of control-plane VIP %s (it %s this node)", n, ip,
                     "arrived on" if arrived else "leaves")

    def _abort_moved(self, ips: Iterable[IPAddress], arrived: bool) -> None:
        for ip in ips:
            self._abort(ip, arrived)

    def _change(
        self, add: Iterable[Placement], remove: Iterable[Placement], lifetime: int | None = None
    ) -> tuple[set[Placement], set[Placement]]:
        """Blocking netlink part; returns (added, removed) that succeeded."""
        with self.ns.iproute():  # one netlink socket for all the calls below, not one per call
            return self._change_in(add, remove, lifetime)

    def _change_in(
        self, add: Iterable[Placement], remove: Iterable[Placement], lifetime: int | None = None
    ) -> tuple[set[Placement], set[Placement]]:
        added: set[Placement] = set()
        removed: set[Placement] = set()
        for p in remove:
            try:
                # Once before the address goes, so the RSTs still leave with it as source: remote clients
                # (a watch only waits) learn at once instead of at their idle timeout; once after, for
                # what connected meanwhile and for local clients.
                self._abort(p.address, arrived=False)
                self._manager(p.ifname).remove(p.address)
                if self.net.routing_table:
                    self._table(p.ifname).remove(p.address)
                removed.add(p)
                self._abort(p.address, arrived=False)
            except KubevipError as exc:
                log.error("control-plane VIP: cannot remove %s from %s: %s", p.address, p.ifname, exc)
        for p in add:
            try:
                nets = self.net.subnet.networks(p.ifname, self.ns)  # vip_subnet=auto: the interface's subnets
                mine, errors = self._manager(p.ifname).add_many_owned(
                    [(p.address, self.net.subnet.prefixlen(p.address, nets))], lifetime=lifetime
                )
                if p.address in errors:
                    raise errors[p.address]
                if p.address in mine:
                    self._ours.add(p)
                if self.net.routing_table:
                    self._table(p.ifname).add(p.address)
                added.add(p)
            except KubevipError as exc:
                log.error("control-plane VIP: cannot add %s to %s: %s", p.address, p.ifname, exc)
        return added, removed

    def extend(self, lifetime: int) -> float:
        """Blocking: set `lifetime` seconds on every held VIP of ours (re-creating one the kernel removed);
        returns the instant the last batch returned."""
        per_if: dict[str, dict[tuple[IPAddress, int], int]] = {}
        for p in self.held & self._ours:
            per_if.setdefault(p.ifname, {})[(p.address, self.net.subnet.prefixlen(p.address))] = lifetime
        for ifname, batch in sorted(per_if.items()):
            for exc in self._manager(ifname).extend(batch).values():
                log.error("control-plane VIP: %s", exc)
        return time.monotonic()

    async def converge(self, want: frozenset[Placement], lifetime: int | None = None) -> None:
        """Make `held` equal `want`: stop announcing first, change addresses, then announce the new ones
        (added with `lifetime` seconds, else permanent)."""
        add = want - self.held
        remove = self.held - want
        if not add and not remove:
            return
        ann = self.announcer
        if ann is not None:
            await asyncio.gather(*(ann.stop(p.address) for p in remove))
        added, removed = await asyncio.to_thread(
            self._change, sorted(add, key=Placement.key), sorted(remove, key=Placement.key), lifetime
        )
        self.held = (self.held - removed) | added
        self._ours -= removed
        if ann is not None:
            # Both families at once: opening a family's raw socket takes a netlink round trip or more,
            # and the second family's first announcement must not wait for the first family's.
            results = await asyncio.gather(
                *(ann.start(p.address, p.ifname) for p in sorted(added, key=Placement.key)),
                return_exceptions=True,
            )
            for p, res in zip(sorted(added, key=Placement.key), results, strict=True):
                if isinstance(res, KubevipError):
                    log.error("control-plane VIP: cannot announce %s on %s: %s", p.address, p.ifname, res)
                elif isinstance(res, BaseException):
                    raise res
        for p in sorted(added, key=Placement.key):
            log.info("control-plane VIP %s up on %s", p.address, p.ifname)
        if added:  # after the first announcements: the hand-over is what clients wait for
            await asyncio.to_thread(self._abort_moved, [p.address for p in added], True)
        for p in sorted(removed, key=Placement.key):
            log.info("control-plane VIP %s withdrawn from %s", p.address, p.ifname)

    async def close(self) -> None:
        if self.announcer is not None:
            await self.announcer.close()
        for sender in self._ready.values():
            sender.close()
        self._ready.clear()
