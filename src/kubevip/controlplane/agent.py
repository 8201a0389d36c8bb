"""The control-plane VIP runner: ONE Lease for both families, held only while the local API server is healthy.

Lifecycle: remove leftovers of a previous run -> resolve `address` -> probe the local API server; while it
is healthy, campaign on `plndr-cp-lock`; as leader put every family's VIP up (on_started), as ex-leader
take them all down (on_stopped, awaited by the elector's fencing). When the API server stays unhealthy
the runner releases the Lease (withdraw first), so a healthy peer takes over within one retry period.

With BGP (`bgp`, a CpAnnouncer) the VIPs are also announced to the peers, after they are on the node and
withdrawn before they leave it. In ECMP mode (core.cpbgp) there is no campaign: the node holds and
announces while its local API server is healthy, like every healthy peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from kubevip.controlplane.bgp import CpAnnouncer
from kubevip.controlplane.dns import Lookup, resolve, system_lookup
from kubevip.controlplane.health import HealthMonitor, Probe
from kubevip.controlplane.kernel import KernelVips, placements
from kubevip.controlplane.resolve import Resolved
from kubevip.controlplane.settings import ControlPlaneSettings
from kubevip.core.cpbgp import ECMP, SINGLE, CpFacts, announces
from kubevip.core.rows import Row
from kubevip.election.elector import LeaseElector, Observer
from kubevip.election.leaseapi import LeaseApi
from kubevip.election.lifetime import lifetime, may_extend, still_safe
from kubevip.election.timings import ElectionConfig
from kubevip.ip import IPAddress
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Status:
    """What the runner does right now (logs, tests, `kubevip manager` health)."""

    healthy: bool
    leading: bool
    vips: Resolved
    held: frozenset[Row]


class ControlPlaneVip:
    """Runs the control-plane VIP of one node; `start()` then, on SIGTERM, `shutdown()`."""

    def __init__(
        self,
        settings: ControlPlaneSettings,
        election: ElectionConfig,
        node: str,
        lease_api: LeaseApi | Any,
        probe: Probe,
        kernel: KernelVips,
        *,
        lookup: Lookup = system_lookup,
        observer: Observer | None = None,
        bgp: CpAnnouncer | None = None,
        mode: str = SINGLE,
    ) -> None:
        self.settings = settings
        self.election = election
        self.node = node
        self.lease_api = lease_api
        self.kernel = kernel
        self.lookup = lookup
        self.observer = observer
        self.bgp = bgp
        self.mode = mode if bgp is not None else SINGLE  # layer 2 and the routing table always elect
        self.health = HealthMonitor(probe, settings.health, name=f"local kube-apiserver ({node})")
        self.guard = TaskGroupGuard(f"controlplane:{node}")
        self.vips = Resolved()
        self.elector: LeaseElector | None = None
        self.campaigns = 0
        self._leading = False
        self._lock = asyncio.Lock()
        self._have_vips = asyncio.Event()
        self._campaign: asyncio.Task[None] | None = None
        self._stopping = False
        # Kernel lifetimes (docs/election.md): extended after every accepted renewal of the Lease.
        self.lifetimes = kernel.net.kernel_lifetime
        self._renewals = asyncio.Event()

    @property
    def leading(self) -> bool:
        return self.elector is not None and self.elector.is_leader

    def status(self) -> Status:
        return Status(self.health.healthy, self.leading, self.vips, self.kernel.held)

    async def start(self) -> None:
        """Clean up, resolve once, and start the background tasks (health, DNS refresh, campaign)."""
        await asyncio.to_thread(self.kernel.detect_ownership, self.node, self.lifetimes)
        await asyncio.to_thread(self.kernel.remove_leftovers)
        await asyncio.to_thread(self.kernel.prepare)  # a takeover then announces at once
        await self._refresh_vips()
        if self.bgp is not None:
            await self.bgp.start()
        spawn(self.guard, "health", self.health.run())
        if any(e.ip is None for e in self.settings.entries):
            spawn(self.guard, "dns", self._dns_loop())
        loop = self._ecmp_loop() if self.mode == ECMP else self._campaign_loop()
        self._campaign = spawn(self.guard, "campaign", loop)
        if self.lifetimes:
            spawn(self.guard, "lifetimes", self._lifetime_loop())

    async def shutdown(self) -> None:
        """SIGTERM: stop campaigning, withdraw every VIP, hand the Lease back at once, stop tasks."""
        self._stopping = True
        task = self._campaign
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Withdraw while the elector still renews: however long the netlink calls take, no peer can take
        # over meanwhile (and the Lease does not lapse, so the release below hands it over at once).
        await self._converge(False)
        if self.elector is not None:
            await self.elector.release()  # on_stopped is a no-op now; then the Lease is emptied
        await self.guard.close()
        await self.kernel.close()
        if self.bgp is not None:
            await self.bgp.close()  # nothing announced any more; Cease ends the sessions

    # -- VIPs ----------------------------------------------------------------------------------------

    async def _refresh_vips(self) -> bool:
        """Resolve `address` again; returns True if the VIPs changed."""
        vips = await resolve(self.settings.entries, self.settings.dns_mode, self.lookup)
        for p in vips.problems:
            log.warning("control-plane address: %s", p)
        if vips.empty:
            return False
        changed = (vips.v4, vips.v6) != (self.vips.v4, self.vips.v6)
        if changed:
            log.info("control-plane VIPs: %s", ", ".join(map(str, vips.addresses)))
            self.vips = vips
        self._have_vips.set()
        return changed

    async def _dns_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.dns_interval)
            if await self._refresh_vips():
                await self._converge(self._leading)

    def _holds(self, leading: bool) -> bool:
        if self.bgp is None:
            return leading and not self._stopping
        return announces(CpFacts(self.mode, self.health.healthy, leading and self.mode == SINGLE,
                                 self._stopping))

    async def _converge(self, leading: bool) -> None:
        """Both families together: every VIP up while leading (ECMP: while healthy), none otherwise.
        With BGP a VIP is announced only while it is on the node: withdrawn before, announced after."""
        async with self._lock:
            self._leading = self._holds(leading)
            want: frozenset[Row] = frozenset()
            if self._leading:
                interfaces = self.kernel.known_interfaces()
                if interfaces is None:
                    interfaces = await asyncio.to_thread(self.kernel.interfaces)
                want = placements(self.vips.addresses, interfaces)
            if self.bgp is not None:
                await self.bgp.announce(self._announceable(want))
            await self.kernel.converge(want, self._add_lifetime() if self._leading else None,
                                       self._add_deadline() if self._leading else None)
            if self.bgp is not None:
                await self.bgp.announce(self._announceable(want))
        if self._leading and self.lifetimes:
            self._renewals.set()  # check the adds' lifetimes against the instant the kernel stamped them

    def _announceable(self, want: frozenset[Row]) -> set[IPAddress]:
        """VIPs both wanted and on the node now: the only ones the router may send traffic for."""
        return {r.address for r in want & self.kernel.held}

    def _add_lifetime(self) -> int | None:
        if not self.lifetimes:
            return None
        el = self.elector
        renewed = el.renewed_at if el is not None else None
        return 1 if renewed is None else lifetime(self.election.timings, renewed, time.monotonic()).seconds

    def _add_deadline(self) -> float | None:
        """The fencing deadline of the renewal the adds rest on: not sent from then on (docs/election.md)."""
        el = self.elector
        renewed = el.renewed_at if el is not None and self.lifetimes else None
        return None if renewed is None else renewed + self.election.timings.renew_deadline

    def _renewed(self) -> None:
        self._renewals.set()

    async def _lifetime_loop(self) -> None:
        """After each accepted renewal: extend the VIPs' kernel lifetimes from it."""
        while True:
            await self._renewals.wait()
            self._renewals.clear()
            try:
                await self.extend_lifetimes()
            except Exception:
                log.exception("control-plane VIP: kernel lifetime extension failed")

    async def extend_lifetimes(self) -> None:
        async with self._lock:  # an extension re-creates a missing address: never during a removal
            el = self.elector
            renewed = el.renewed_at if el is not None else None
            if renewed is None or not self._leading or not self.kernel.held:
                return
            t = self.election.timings
            for _attempt in range(3):
                now = time.monotonic()
                if not may_extend(t, renewed, now):
                    return  # past this node's own fencing deadline: a stalled loop woke up, it fences
                lt = lifetime(t, renewed, now)
                stamped = await asyncio.to_thread(
                    self.kernel.extend_held, lt.seconds, renewed + t.renew_deadline,
                )
                if not lt.guaranteed or still_safe(t, renewed, lt.seconds, stamped):
                    return

    async def _on_started(self) -> None:
        await self._converge(True)

    async def _on_stopped(self) -> None:
        await self._converge(False)

    # -- election ------------------------------------------------------------------------------------

    def _new_elector(self) -> LeaseElector:
        e = self.election
        return LeaseElector(self.lease_api, e.cp_lease_namespace, e.lease_name, self.node, e.timings,
                            on_started=self._on_started, on_stopped=self._on_stopped, observer=self.observer,
                            on_renewed=self._renewed)

    async def _ecmp_loop(self) -> None:
        """ECMP mode: hold and announce while the local API server is healthy; no Lease, no election."""
        await self._have_vips.wait()
        while True:
            if not self.health.healthy:
                log.info("node %s: waiting for the local API server before announcing the control-plane "
                         "VIPs (BGP, every healthy node)", self.node)
            await self.health.wait_for(True)
            await self._converge(True)
            await self.health.wait_for(False)
            log.warning("node %s: local API server unhealthy: withdrawing the control-plane VIPs", self.node)
            await self._converge(False)

    async def _campaign_loop(self) -> None:
        """Campaign while the local API server is healthy; release the Lease when it stays unhealthy."""
        await self._have_vips.wait()
        while True:
            if not self.health.healthy:
                log.info("node %s: waiting for the local API server before campaigning for %s", self.node,
                         self.election.lease_name)
            await self.health.wait_for(True)
            el = self.elector = self._new_elector()
            self.campaigns += 1
            log.info("node %s: campaigning for %s/%s (VIPs %s)", self.node, self.election.cp_lease_namespace,
                     self.election.lease_name, ", ".join(map(str, self.vips.addresses)))
            election = spawn(self.guard, f"election-{self.campaigns}", el.run())
            unhealthy = asyncio.get_running_loop().create_task(self.health.wait_for(False))
            try:
                await asyncio.wait({election, unhealthy}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                unhealthy.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await unhealthy
            if election.done():  # crashed (logged by the guard): withdraw, pause, campaign afresh
                await el.release()
                await asyncio.sleep(self.election.timings.retry_period)
                continue
            log.warning("node %s: local API server unhealthy: giving up the control-plane VIP", self.node)
            await el.release()
