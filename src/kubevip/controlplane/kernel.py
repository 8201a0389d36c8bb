"""Control-plane VIPs in the kernel: `net.VipSet` with their own IFA_PROTO, interface per family and
announcement sockets opened ahead of a takeover.

The control-plane VIPs carry IFA_PROTO `CONTROL_PLANE_PROTO` (249), not the Services' 248: the Service
reconciler adopts and cleans up every 248 address on its interfaces, so one mark for both would let each
part delete the other's VIPs. With two marks the two parts of one process cannot touch each other's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from kubevip.core.rows import Row, diff
from kubevip.errors import KubevipError
from kubevip.ip import IPAddress, IPFamily
from kubevip.net.announcer import Announcer, Sender, raw_sender
from kubevip.net.interfaces import FamilyInterfaces, resolve_interface
from kubevip.net.namespace import OWN, Netns
from kubevip.net.settings import NetSettings
from kubevip.net.vipset import VipSet

log = logging.getLogger(__name__)

CONTROL_PLANE_PROTO = 249

LABEL = "control-plane VIP"


def placements(vips: Iterable[IPAddress], interfaces: dict[int, str]) -> frozenset[Row]:
    """Where each VIP goes: the interface of its family (a family without interface gets nothing)."""
    return frozenset(Row(ip, interfaces[ip.version]) for ip in vips if ip.version in interfaces)


class KernelVips(VipSet):
    """Adds / removes the control-plane VIPs and their announcements; `held` is what is in place now."""

    def __init__(self, net: NetSettings, ns: Netns = OWN, announcer: Announcer | None = None) -> None:
        super().__init__(net, ns, proto=CONTROL_PLANE_PROTO, label=LABEL, abort=True)
        self._ready: dict[tuple[str, int], Sender] = {}
        self.announcer = announcer if announcer is not None else (
            Announcer(rate_ms=net.arp_rate_ms, ns=ns, sender_factory=self._sender) if net.arp else None
        )
        # A family without an interface (a single-stack node) is looked up again only every IFACE_RETRY
        # seconds and warned about once: the Service agent's rule, not a lookup on every converge.
        self._iface = FamilyInterfaces(self._lookup_interface, "control-plane VIPs")

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
                    log.warning("%s: cannot prepare announcements on %s: %s", LABEL, ifname, exc)

    def _sender(self, ifname: str, version: int, ns: Netns) -> Sender:
        """The announcer's sender factory: the socket `prepare` opened, else a new one."""
        ready = self._ready.pop((ifname, version), None)
        return ready if ready is not None else raw_sender(ifname, version, ns)

    def known_interfaces(self) -> dict[int, str] | None:
        """`interfaces()` without blocking when no family is due for a lookup, else None. On a single-stack
        node the missing family is due only every IFACE_RETRY seconds, not on every converge."""
        return None if self._iface.pending() else _by_version(self._iface.found)

    def interfaces(self) -> dict[int, str]:
        """Interface per family: vip_interface, else that family's default-route interface (blocking)."""
        return _by_version(self._iface.resolve())

    def _lookup_interface(self, fam: IPFamily) -> str:
        return resolve_interface(fam.version, for_service=False, vip_interface=self.net.interface, ns=self.ns)

    def remove_leftovers(self) -> set[Row]:
        """Blocking: remove control-plane VIPs a previous process left (it may be a peer's VIP by now)."""
        left = self.owned_rows(set(self.interfaces().values()))
        if not left:
            return set()
        self.adopt(left)
        failed, _ = self.change(diff(frozenset(), left))
        self.adopt(frozenset(failed))  # what could not go stays held: the next converge retries
        gone = set(left - failed)
        for r in sorted(gone, key=Row.sort_key):
            log.info("removed %s %s from %s (left by a previous run)", LABEL, r.address, r.interface)
        return gone

    def extend_held(self, lifetime: int, not_after: float | None = None) -> float:
        """Blocking: set `lifetime` seconds on every held VIP of ours (re-creating one the kernel removed),
        nothing from `not_after` (monotonic: the fencing deadline) on; returns the instant the last batch
        returned."""
        return self.extend(dict.fromkeys(self.held & self.ours, lifetime), not_after)

    async def converge(
        self, want: frozenset[Row], lifetime: int | None = None, not_after: float | None = None,
    ) -> None:
        """Make `held` equal `want`: stop announcing first, change addresses, then announce the new ones
        (added with `lifetime` seconds, else permanent; none sent from `not_after` on)."""
        changes = diff(want, self.held)
        if not changes.empty:
            await self.apply(changes, dict.fromkeys(changes.add, lifetime), not_after)

    async def close(self) -> None:
        await super().close()
        for sender in self._ready.values():
            sender.close()
        self._ready.clear()


def _by_version(found: dict[IPFamily, str]) -> dict[int, str]:
    return {fam.version: ifname for fam, ifname in found.items()}
