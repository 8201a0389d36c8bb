"""The VIPs one part of this process keeps in the kernel: addresses (ownership, kernel lifetimes, netlink
batches), optional routes, announcements and connection aborts.

Rule: side effects only, in a fixed order; what to hold is decided above and arrives as rows (`Row`:
address + interface). Shared by the Service agent (`agent/reconciler.py`, IFA_PROTO 248) and the
control-plane VIP (`controlplane/kernel.py`, 249), so both keep the same promises:

- withdraw before release: announcements of a VIP stop before its address goes;
- add before announce: the first frame naming a VIP leaves after the kernel answers for it;
- only addresses this process added (or adopted as its own at start-up) get their lifetime extended: a
  replace on a foreign address would make it ours and the kernel would later remove it;
- every blocking netlink call runs in a worker thread (`apply`, or the caller's `to_thread`), one batch
  per interface and direction, never one request per VIP.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from kubevip.core.rows import Changes, Row, apply
from kubevip.errors import KubevipError, NetworkError
from kubevip.ip import IPAddress
from kubevip.listing import brief
from kubevip.net.addresses import ADDRESS_PROTO, AddressManager, NotExtended, Ownership, detect_ownership
from kubevip.net.announcer import Announcer
from kubevip.net.connections import abort_connections
from kubevip.net.interfaces import existing_links, link_names
from kubevip.net.namespace import OWN, Netns
from kubevip.net.routes import RoutingTable
from kubevip.net.settings import NetSettings
from kubevip.tasks import run_here

log = logging.getLogger(__name__)


class VipSet:
    """Converges the kernel to rows; `held` is what is in place now, `ours` what we may extend.

    `label` starts every log line ("node n1", "control-plane VIP"); `abort` aborts the TCP connections a
    VIP arriving or leaving kills (the control-plane VIP: watches would otherwise hang for minutes).
    """

    def __init__(
        self, net: NetSettings, ns: Netns = OWN, *, proto: int = ADDRESS_PROTO,
        announcer: Announcer | None = None, label: str = "VIPs", abort: bool = False,
    ) -> None:
        self.net = net
        self.ns = ns
        self.proto = proto
        self.announcer = announcer
        self.label = label
        self.abort = abort
        self.held: frozenset[Row] = frozenset()
        self.ours: set[Row] = set()
        # Per row of ours, the instant before which the kernel cannot have removed it (the request left
        # after it was computed; inf: permanent): lifetime rounds extend only rows that come due
        # (election/lifetime.py). No entry: unknown (adopted at start-up).
        self.expires: dict[Row, float] = {}
        self.ownership = Ownership()  # probed at start-up (detect_ownership)
        self._mgrs: dict[str, AddressManager] = {}
        self._abort_warned = False

    # -- start-up -------------------------------------------------------------------------------------

    def detect_ownership(self, what: str, lifetime_marker: bool) -> None:
        """Blocking: probe IFA_PROTO (or take the forced fallback) once, before any address is read."""
        n = self.net
        self.ownership = detect_ownership(
            self.ns, force_fallback=n.ownership == "statefile", state_dir=n.state_dir,
            lifetime_marker=lifetime_marker, what=what,
        )
        self._mgrs.clear()

    def manager(self, ifname: str) -> AddressManager:
        """One manager per interface for the process's life: it keeps its precomputed extension requests."""
        m = self._mgrs.get(ifname)
        if m is None:
            m = self._mgrs[ifname] = self.ownership.manager(ifname, self.ns, proto=self.proto)
        return m

    def owned_rows(self, ifnames: Iterable[str] | None = None) -> frozenset[Row]:
        """Blocking: the VIPs of ours on `ifnames` (default: every interface of the node; a previous run may
        have used an interface no Service names any more)."""
        out: set[Row] = set()
        with self.ns.shared():  # at most one pyroute2 socket for the whole scan
            names = sorted(link_names(self.ns) if ifnames is None else set(ifnames))
            for ifname in names:
                try:
                    for ip, _plen in self.manager(ifname).owned():
                        out.add(Row(ip, ifname))
                except NetworkError as exc:
                    log.warning("%s: cannot read addresses of %s: %s", self.label, ifname, exc)
        return frozenset(out)

    def adopt(self, rows: frozenset[Row]) -> None:
        """Start from what a previous run left: held and ours, lifetimes unknown until the first round."""
        self.held = rows
        self.ours = set(rows)
        self.expires.clear()

    # -- converging -----------------------------------------------------------------------------------

    async def apply(
        self, changes: Changes, lifetimes: Mapping[Row, int | None] | None = None,
        not_after: float | None = None, after_kernel: Callable[[], Awaitable[None]] | None = None,
    ) -> Changes:
        """Withdraw announcements, change the kernel (adds get `lifetimes[row]` seconds, else permanent;
        none is sent from `not_after`, the holders' fencing deadline, on), then announce what was added;
        returns what succeeded (`held` follows it). `after_kernel` runs as soon as the kernel has the
        addresses and `held` says so, before anything else here (BGP mode: the route is the announcement
        clients wait for, and the connection aborts and layer-2 announcers must not delay it)."""
        ann = self.announcer
        if ann is not None:
            await asyncio.gather(*(ann.stop(r.address) for r in changes.remove))
        lifetimes = lifetimes or {}
        sent = time.monotonic()
        run = run_here if self._inline(changes) else asyncio.to_thread
        failed, ours = await run(self.change, changes, lifetimes, not_after)
        done = Changes(
            add=tuple(r for r in changes.add if r not in failed),
            remove=tuple(r for r in changes.remove if r not in failed),
        )
        self.held = apply(self.held, done)
        self.ours.difference_update(done.remove)
        for r in done.remove:
            self.expires.pop(r, None)
        self.ours |= ours
        for r in ours:
            seconds = lifetimes.get(r)
            self.expires[r] = math.inf if seconds is None else sent + seconds
        if after_kernel is not None and done.add:
            await after_kernel()
        if ann is not None:
            # Together: no task per VIP, the first frames in the announcer's batches.
            started = await ann.start_many([(r.address, r.interface) for r in done.add])
            for r, res in zip(done.add, started, strict=True):
                if isinstance(res, KubevipError):
                    log.error("%s: cannot announce %s on %s: %s", self.label, r.address, r.interface, res)
                elif isinstance(res, BaseException):
                    raise res
        # One line per direction: a line per VIP cost more than the VIPs when 2000 moved.
        if done.add:
            log.info("%s: announcing %d VIPs: %s", self.label, len(done.add),
                     brief(f"{r.address} on {r.interface}" for r in done.add))
            if self.abort:  # after the first announcements: the hand-over is what clients wait for
                # Always a thread: it dumps every TCP socket of the node, however few VIPs arrived.
                await asyncio.to_thread(self._abort_all, [r.address for r in done.add], True)
        if done.remove:
            log.info("%s: withdrew %d VIPs: %s", self.label, len(done.remove),
                     brief(f"{r.address} from {r.interface}" for r in done.remove))
        return done

    def _inline(self, changes: Changes) -> bool:
        """True when `change` may run on the event loop: a few VIPs over our own netlink code only. Routes
        (routing-table mode) go through pyroute2, which refuses a thread that runs a loop; removals
        abort connections, a dump of every TCP socket of the node however few VIPs leave, and find
        what is ours in a dump of the interface's addresses, which grows with the VIPs held (2000:
        17 ms of parsing on the loop, 0.5 s of wall time in a busy 1000-Service restart)."""
        if len(changes.add) + len(changes.remove) > INLINE_CHANGES or self.net.routing_table:
            return False
        return not (changes.remove and (self.abort or len(self.held) > INLINE_DUMP))

    def change(
        self, changes: Changes, lifetimes: Mapping[Row, int | None] | None = None,
        not_after: float | None = None,
    ) -> tuple[set[Row], set[Row]]:
        """Blocking: the address (and route) changes; returns the rows that failed and the added rows whose
        address is ours. One interface lookup and address dump per interface and direction, not per VIP:
        a pass that moves hundreds of VIPs otherwise spends seconds parsing netlink dumps (holding the GIL).
        """
        with self.ns.shared():  # at most one pyroute2 socket for all the calls below
            return self._change(changes, lifetimes or {}, not_after)

    def _change(
        self, changes: Changes, lifetimes: Mapping[Row, int | None], not_after: float | None = None,
    ) -> tuple[set[Row], set[Row]]:
        failed: set[Row] = set()
        ours: set[Row] = set()
        mgrs = {r.interface: self.manager(r.interface) for r in (*changes.add, *changes.remove)}
        n = self.net
        tables = {
            i: RoutingTable(i, self.ns, table=n.routing_table_id, protocol=n.routing_protocol,
                            route_type=n.routing_table_type)
            for i in mgrs
        } if n.routing_table else {}
        if self.abort:
            # Before the addresses go, so the RSTs still leave with them as source: remote clients (a
            # watch only waits) learn at once instead of at their idle timeout; again after, below.
            self._abort_all((r.address for r in changes.remove), False)
        removed_errors = {
            i: mgrs[i].remove_many(r.address for r in changes.remove if r.interface == i) for i in mgrs
        }
        for r in changes.remove:
            exc: KubevipError | None = removed_errors[r.interface].get(r.address)
            if exc is None and tables:
                try:
                    tables[r.interface].remove(r.address)
                except KubevipError as err:
                    exc = err
            if exc is None:
                continue
            if not existing_links([r.interface], self.ns):
                # The interface is gone (a Service's own interface deleted): so are its addresses.
                log.info("%s: %s left with its interface %s", self.label, r.address, r.interface)
                continue
            log.error("%s: %s", self.label, exc)
            failed.add(r)
        if self.abort:  # for what connected meanwhile, and for local clients
            self._abort_all((r.address for r in changes.remove if r not in failed), False)
        subnet = n.subnet
        added_errors: dict[str, dict[IPAddress, NetworkError]] = {i: {} for i in mgrs}
        groups: dict[tuple[str, int | None], list[Row]] = {}
        for r in changes.add:
            groups.setdefault((r.interface, lifetimes.get(r)), []).append(r)
        nets = {i: subnet.networks(i, self.ns) for i, _ in groups}  # vip_subnet=auto: the interface's subnets
        for (i, seconds), rows in sorted(groups.items(), key=lambda g: (g[0][0], g[0][1] or 0)):
            mine, errs = mgrs[i].add_many_owned(
                ((r.address, subnet.prefixlen(r.address, nets[i])) for r in rows), lifetime=seconds,
                not_after=not_after)
            added_errors[i].update(errs)
            ours.update(r for r in rows if r.address in mine)
        late: list[Row] = []
        for r in changes.add:
            exc = added_errors[r.interface].get(r.address)
            if exc is None and tables:
                try:
                    tables[r.interface].add(r.address)
                except KubevipError as err:
                    exc = err
            if isinstance(exc, NotExtended):
                late.append(r)
                failed.add(r)
            elif exc is not None:
                log.error("%s: %s", self.label, exc)
                failed.add(r)
        if late:
            # A stalled process woke up past its fencing deadline: it fences next. One line for the whole
            # pass (a pass adding 2000 VIPs logged 2000 lines, each of them several times a second).
            log.info("%s: %d VIPs not added, past the fencing deadline: %s", self.label, len(late),
                     brief(f"{r.address} to {r.interface}" for r in late))
        return failed, ours

    def extend(self, lifetimes: Mapping[Row, int | None], not_after: float | None = None) -> float:
        """Blocking: set each row's lifetime (seconds; None: permanent) in one batch per interface,
        re-creating an address the kernel removed; returns the instant the last batch returned (every
        kernel timestamp of the round is earlier). Rows not of ours are skipped. Nothing is sent from
        `not_after` (monotonic: the holder's fencing deadline) on, checked next to each send
        (rtnl_batch.run)."""
        prefixlen = self.net.subnet.prefixlen
        now = time.monotonic()
        per_if: dict[str, dict[tuple[IPAddress, int], Row]] = {}
        for r in lifetimes:
            if r in self.ours:
                per_if.setdefault(r.interface, {})[(r.address, prefixlen(r.address))] = r
        with self.ns.shared():  # one netlink socket for the round (a named namespace forks for each)
            return self._extend(per_if, lifetimes, now, not_after)

    def _extend(
        self, per_if: dict[str, dict[tuple[IPAddress, int], Row]], lifetimes: Mapping[Row, int | None],
        now: float, not_after: float | None,
    ) -> float:
        for ifname, rows in sorted(per_if.items()):
            errors = self.manager(ifname).extend({a: lifetimes[r] for a, r in rows.items()}, not_after)
            for a, r in rows.items():
                if a[0] not in errors:
                    seconds = lifetimes[r]
                    self.expires[r] = math.inf if seconds is None else now + seconds
            late = [a for a, e in errors.items() if isinstance(e, NotExtended)]
            if late:
                # A stalled process, or a round slower than the renewal it rests on allows (under load at
                # 5000 Services): a round on a newer renewal extends them, else the node fences.
                log.info("%s: %d VIP lifetimes on %s not extended: past the fencing deadline of the renewal "
                         "they rest on (a newer renewal's round extends them, else the node fences)",
                         self.label, len(late), ifname)
            failed = {a: e for a, e in errors.items() if not isinstance(e, NotExtended)}
            if failed:
                log.error("%s: cannot extend %d VIP lifetimes on %s: %s", self.label, len(failed), ifname,
                          brief(str(e) for e in failed.values()))
        return time.monotonic()

    # -- connection aborts ----------------------------------------------------------------------------

    def _abort_all(self, ips: Iterable[IPAddress], arrived: bool) -> None:
        """Blocking: abort the TCP connections that each address arriving on / leaving this node kills."""
        for ip in ips:
            try:
                n = abort_connections(ip, arrived, self.ns)
            except KubevipError as exc:
                if not self._abort_warned:
                    self._abort_warned = True
                    log.warning("%s: %s", self.label, exc)
                continue
            if n:
                log.info("%s: aborted %d TCP connection(s) of %s (it %s this node)", self.label, n, ip,
                         "arrived on" if arrived else "leaves")

    async def close(self) -> None:
        if self.announcer is not None:
            await self.announcer.close()


# Kernel changes of at most this many VIPs run on the loop (a 2-VIP add is 0.2 ms of netlink); a worker
# thread cost the BGP create path 3 ms, waiting for the GIL while the loop ran the rest of the pass.
INLINE_CHANGES = 8
# ... and a removal only while this node holds at most this many VIPs: its ownership dump of the
# interface then parses well under a millisecond (about 8 us an address).
INLINE_DUMP = 64
