"""DHCP VIPs on this node (docs/dhcp.md): a client for every DHCP want whose election unit this node holds.

Every pass hands the driver the snapshot's wants and this node's holdings; the driver starts a client (on
a macvlan child with the Service's MAC) for each want it now holds, stops the ones it no longer holds
(without RELEASE: the next holder rebinds the same lease with the same MAC and client id) and releases
those whose Service is gone or no longer asks. A lease is a fact of this node: it lands in
`World.leased`, the Service is touched, and the next pass places the address like any VIP. The lease's
expiry (core.dhcp.holds_vip) withdraws it, with a Warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubevip.core import dhcp as core
from kubevip.core.claims import DhcpWant
from kubevip.core.conditions import WARNING, Condition
from kubevip.core.reasons import Reason
from kubevip.core.views import IPAddress, IPFamily, ServiceKey
from kubevip.core.world import World
from kubevip.errors import KubevipError, NetworkError
from kubevip.kube.writers import Writer
from kubevip.net.dhcp4 import BOUND, EXPIRED, REBOUND, RENEWED, UNBOUND, Dhcp4Client, LeaseEvent
from kubevip.net.macvlan import apply_arp_guard, delete_macvlan, ensure_macvlan, macvlans
from kubevip.net.namespace import Netns
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)

Key = tuple[ServiceKey, IPFamily]
RETRY = 5.0  # seconds before a client that could not start (no parent, macvlan refused) is tried again


@dataclass
class _Run:
    want: DhcpWant
    parent: str
    client: Dhcp4Client | None = None
    task: asyncio.Task[None] | None = None
    lease: LeaseEvent | None = None
    times: core.LeaseTimes | None = None
    expiry: asyncio.TimerHandle | None = None
    renewals: int = 0
    failed: str = ""
    started: float = field(default_factory=time.monotonic)


def _identity(want: DhcpWant, parent: str) -> tuple[object, ...]:
    """What makes a running client obsolete when it changes (`requested` does not: we write it)."""
    r = want.request
    return (r.mac, r.interface, r.hostname, parent)


class DhcpDriver:
    """Runs this node's DHCP clients; `touched` re-decides a Service after its lease changed."""

    def __init__(
        self, me: str, ns: Netns, world: World, touched: Callable[[Iterable[str]], None],
        writer: Writer | None, guard: TaskGroupGuard,
    ) -> None:
        self.me = me
        self.ns = ns
        self.world = world
        self._touched = touched
        self.writer = writer
        self.guard = guard
        self._runs: dict[Key, _Run] = {}
        # Macvlans of clients that stopped, removed once the reconciler has taken their rows off.
        self._retired: set[str] = set()
        self._warnings: dict[ServiceKey, set[Condition]] = {}
        self._retry_after: dict[Key, float] = {}
        self._swept = False
        # The ARP guard last applied (net/macvlan.py): leased address -> its macvlan; None: unknown.
        self._guard: dict[str, str] | None = None
        self.released = 0
        self.renewals = 0

    @property
    def active(self) -> bool:
        """Clients running, macvlans left to remove or an ARP guard to clear: the pass must call in."""
        return bool(self._runs) or bool(self._retired) or not self._swept or self._guard != {}

    # -- the pass ---------------------------------------------------------------------------------

    async def sync(
        self, wants: Iterable[DhcpWant], holds: Callable[[str], bool],
        family_interfaces: Mapping[IPFamily, str], stopping: bool = False,
    ) -> None:
        """Start and stop clients so that exactly the held wants run (none while stopping)."""
        every = {(w.service, w.request.family): w for w in wants}
        parents = {k: w.parent or family_interfaces.get(k[1], "") for k, w in every.items()}
        changes = core.client_changes(
            {k: _identity(r.want, r.parent) for k, r in self._runs.items()},
            {k: _identity(w, parents[k]) for k, w in every.items()},
            [k for k, w in every.items() if holds(w.unit)],
            stopping,
        )
        for key, run in self._runs.items():
            if key in every and key not in changes.keep and key not in changes.release:
                run.want = every[key]  # same binding; `requested` may have moved (we wrote it)
        for key in changes.release | changes.keep:
            self._stop(key, release=key in changes.release)
        if not self._swept and not stopping:
            self._swept = True
            await self._sweep({every[k].request.interface for k in changes.start})
        now = time.monotonic()
        for key in sorted(changes.start):
            if key in self._runs or self._retry_after.get(key, 0.0) > now:
                continue
            self._start(key, every[key], parents[key])

    def _start(self, key: Key, want: DhcpWant, parent: str) -> None:
        run = _Run(want, parent)
        self._runs[key] = run
        log.info("DHCP for %s %s: client starting on %s (parent %s)", key[0], key[1], want.request.interface,
                 parent or "none")
        self._retired.discard(want.request.interface)
        run.task = spawn(self.guard, f"dhcp:{key[0]}/{key[1]}", self._run(key, run))

    def _stop(self, key: Key, release: bool) -> None:
        run = self._runs.pop(key)
        if run.expiry is not None:
            run.expiry.cancel()
        if run.client is not None:
            run.client.stop(release)
        elif run.task is not None:
            run.task.cancel()
        if release:
            self.released += 1
        self._retired.add(run.want.request.interface)
        self._drop_lease(key)
        log.info("DHCP for %s %s stopped (%s)", key[0], key[1],
                 "released" if release else "kept for the next holder")

    async def _sweep(self, keep: set[str]) -> None:
        """Macvlans of ours left by an earlier run that no held want uses."""
        try:
            stale = await asyncio.to_thread(macvlans, core.MACVLAN_PREFIX, self.ns)
        except NetworkError as exc:
            log.warning("cannot list DHCP macvlans: %s", exc)
            return
        self._retired |= set(stale) - keep

    async def after_pass(self, held_interfaces: Iterable[str]) -> None:
        """Only the macvlan answers ARP for its leased VIP (the ARP guard); remove the macvlans of stopped
        clients that carry no VIP row any more (after their RELEASE)."""
        guard = {str(r.lease.address): r.want.request.interface for r in self._runs.values() if r.lease}
        if guard != self._guard:
            try:
                await asyncio.to_thread(apply_arp_guard, guard, self.ns)
                self._guard = guard
            except NetworkError as exc:
                self._guard = None
                log.warning("DHCP ARP guard not applied (renewals may go unanswered): %s", exc)
        busy = set(held_interfaces) | {r.want.request.interface for r in self._runs.values()}
        for name in sorted(self._retired - busy):
            try:
                await asyncio.to_thread(delete_macvlan, name, self.ns)
            except NetworkError as exc:
                log.warning("cannot remove DHCP macvlan %s: %s", name, exc)
                continue
            self._retired.discard(name)

    async def close(self) -> None:
        """Stop every client (no RELEASE: the next holder keeps the address) and wait for them."""
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for key in list(self._runs):
            self._stop(key, release=False)
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    # -- one client -------------------------------------------------------------------------------

    async def _run(self, key: Key, run: _Run) -> None:
        req = run.want.request
        try:
            if not run.parent:
                raise NetworkError(f"no interface of family {key[1]} to put the DHCP macvlan on")
            await asyncio.to_thread(ensure_macvlan, req.interface, run.parent, req.mac, self.ns)
            requested = str(req.requested) if req.requested is not None else None
            run.client = Dhcp4Client(req.interface, req.client_id, req.hostname, requested,
                                     lambda ev: self._event(key, run, ev))
            if self._runs.get(key) is not run:
                return  # stopped while the macvlan was being made
            self._clear_warning(key[0], Reason.DHCP_FAILED)
            await run.client.run()
        except asyncio.CancelledError:
            raise
        except (KubevipError, OSError, ValueError) as exc:
            why = str(exc)
            log.warning("DHCP for %s %s: %s", key[0], key[1], why)
            self._warn(key[0], Condition(key[0], WARNING, Reason.DHCP_FAILED,
                                         f"node {self.me}: no DHCP client for {key[1]}: {why[:200]}"))
            if self._runs.get(key) is run:
                del self._runs[key]
                self._retry_after[key] = time.monotonic() + RETRY
                self._drop_lease(key)
                asyncio.get_running_loop().call_later(RETRY, self._touched, {key[0]})  # then a pass retries

    def _event(self, key: Key, run: _Run, ev: LeaseEvent) -> None:
        if self._runs.get(key) is not run:
            return
        log.info("DHCP %s for %s %s: %s from %s (lease %ss)", ev.kind, key[0], key[1], ev.address, ev.server,
                 ev.lease_time)
        if ev.kind in (BOUND, RENEWED, REBOUND):
            if ev.kind in (RENEWED, REBOUND):
                run.renewals += 1
                self.renewals += 1
            run.lease = ev
            run.times = core.lease_times(ev.obtained, ev.lease_time, ev.renewal, ev.rebinding)
            self._clear_warning(key[0], Reason.DHCP_LEASE_EXPIRED)
            if run.expiry is not None:
                run.expiry.cancel()
            loop = asyncio.get_running_loop()
            run.expiry = loop.call_later(core.withdraw_in(run.times, time.monotonic()) + 0.05,
                                         self._check_expiry, key, run)
            self._set_lease(key, ev.address)
            spawn(self.guard, f"dhcp-annotate:{key[0]}", self._annotate(run.want.request, ev.address))
        elif ev.kind == EXPIRED:
            self._expire(key, run)
        elif ev.kind == UNBOUND and run.lease is not None:
            # A NAK (the server took the address back) or our own release: the address is no longer ours.
            run.lease = run.times = None
            self._drop_lease(key)

    def _check_expiry(self, key: Key, run: _Run) -> None:
        """The lease's own deadline (core.dhcp.holds_vip), whatever the client library's timers do."""
        if self._runs.get(key) is run and not core.holds_vip(run.times, time.monotonic()):
            self._expire(key, run)

    def _expire(self, key: Key, run: _Run) -> None:
        if run.lease is None:
            return
        address = run.lease.address
        run.lease = run.times = None
        if run.expiry is not None:
            run.expiry.cancel()
            run.expiry = None
        log.warning("DHCP lease of %s for %s expired: VIP withdrawn", address, key[0])
        self._warn(key[0], Condition(
            key[0], WARNING, Reason.DHCP_LEASE_EXPIRED,
            f"node {self.me}: the DHCP lease of {address} expired (no server answered): VIP withdrawn;"
            " still asking",
        ))
        self._drop_lease(key)

    # -- facts and writes -------------------------------------------------------------------------

    def _set_lease(self, key: Key, address: IPAddress) -> None:
        current = dict(self.world.leased.get(key[0], {}))
        if current.get(key[1]) == address:
            return
        current[key[1]] = address
        self.world.leased[key[0]] = current
        self._touched({key[0]})

    def _drop_lease(self, key: Key) -> None:
        current = dict(self.world.leased.get(key[0], {}))
        if current.pop(key[1], None) is None:
            return
        if current:
            self.world.leased[key[0]] = current
        else:
            self.world.leased.pop(key[0], None)
        self._touched({key[0]})

    async def _annotate(self, request: core.DhcpRequest, address: IPAddress) -> None:
        """kube-vip's annotations: the MAC in use and the leased address (asked first by the next holder)."""
        if self.writer is None:
            return
        rec = self.world.services.get(request.service)
        if rec is None:
            return
        current = {k: rec.view.annotation(k) for k in (core.ANNOTATION_HWADDR, core.ANNOTATION_REQUESTED_IP)}
        values = core.annotations_to_write(request, address, current)
        if not values:
            return
        namespace, name = request.service.split("/", 1)
        try:
            await self.writer.annotations(namespace, name, dict(values))
        except KubevipError as exc:
            log.warning("cannot write DHCP annotations of %s: %s", request.service, exc)

    def _warn(self, service: ServiceKey, cond: Condition) -> None:
        self._warnings.setdefault(service, set()).add(cond)
        self._touched({service})

    def _clear_warning(self, service: ServiceKey, reason: str) -> None:
        conds = self._warnings.get(service)
        if conds:
            conds -= {c for c in conds if c.reason == reason}

    def warnings(self) -> dict[ServiceKey, frozenset[Condition]]:
        """Warnings only this node can see, per Service (merged into the pass's node warnings)."""
        return {k: frozenset(v) for k, v in self._warnings.items() if v}

    def forget(self, services: Iterable[ServiceKey]) -> None:
        """Drop warnings of Services that no longer exist."""
        for s in services:
            self._warnings.pop(s, None)

    def status(self) -> dict[str, object]:
        """What `kubevip status` / tests read: per Service and family, the client's address and phase."""
        now = time.monotonic()
        out: dict[str, object] = {}
        for (svc, fam), run in sorted(self._runs.items()):
            out[f"{svc}/{fam}"] = {
                "address": str(run.lease.address) if run.lease else None,
                "phase": core.phase(run.times, now).value if run.times else None,
                "renewals": run.renewals,
                "interface": run.want.request.interface,
            }
        return out
