"""The running agent: World -> snapshot -> election -> kernel rows + announcements -> status and Events.

Level-triggered: every pass recomputes the whole desired state from the World and converges to it, so
a pass can be repeated or skipped without harm. Side effects are serialised by one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

import aiohttp

from kubevip.agent import leadership
from kubevip.agent.bgp_sink import DEFAULT_INTERFACE as BGP_DEFAULT_INTERFACE
from kubevip.agent.bgp_sink import BgpSink
from kubevip.agent.bgp_wants import announces
from kubevip.agent.presence import Presence
from kubevip.agent.sources import Sources
from kubevip.config import AgentConfig
from kubevip.core.announced import (
    ANNOTATION_VIP_HOST_IPV6,
    conditions_differ,
    family_conditions,
    ipv6_host,
    with_transitions,
)
from kubevip.core.claims import VipPlan
from kubevip.core.conditions import NORMAL, STARTED, STOPPED, WARNING, Condition, missing_interface
from kubevip.core.interface import valid_interface_name
from kubevip.core.report import HeldVip
from kubevip.core.rows import (
    Changes,
    Row,
    ServiceStatus,
    apply,
    desired_rows,
    diff,
    held_plans,
    missing_interfaces,
    service_status,
    should_write,
)
from kubevip.core.views import IPFamily, StatusCondition
from kubevip.core.world import Decided, Snapshot, World, snapshot
from kubevip.errors import KubevipError, NetworkError
from kubevip.kube.rest import RestClient
from kubevip.kube.writers import ANNOTATION_VIP_HOST, WriteError, Writer
from kubevip.listing import brief
from kubevip.metrics import Metrics
from kubevip.net.addresses import AddressManager
from kubevip.net.announcer import Announcer
from kubevip.net.interfaces import existing_links, link_names, resolve_interface
from kubevip.net.namespace import OWN, Netns
from kubevip.net.routes import RoutingTable
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)

INVALID_OBJECT = "invalid-object"
WRITE_CONCURRENCY = 8
# Errors of one API write that a later pass retries.
WRITE_ERRORS: tuple[type[BaseException], ...] = (
    WriteError, aiohttp.ClientError, asyncio.TimeoutError, OSError,
)


@dataclass
class Reports:
    """What this node already told the API server, so a repeated condition is written once."""

    events: set[str] = field(default_factory=set)
    failed_status: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)


class Agent:
    """One node's agent. `api=None` runs without a cluster (tests feed `world` directly)."""

    def __init__(
        self,
        cfg: AgentConfig,
        api: RestClient | None,
        *,
        ns: Netns = OWN,
        metrics: Metrics | None = None,
        election_api: RestClient | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.ns = ns
        self.me = cfg.node_name
        self.metrics = metrics or Metrics(cfg.node_name)
        self.world = World()
        self.guard = TaskGroupGuard(f"agent:{self.me}")
        # The election gets its own client (own connection pool): a burst of status and Event writes
        # must never queue a Lease renewal behind it, or the node fences itself under load.
        self.leadership = leadership.make(
            election_api or api, cfg.election, self.me, self._unit_started, self._unit_stopped, self.metrics
        )
        self._event_slots = asyncio.Semaphore(WRITE_CONCURRENCY)
        self.announcer = Announcer(rate_ms=cfg.net.arp_rate_ms, ns=ns) if cfg.net.arp else None
        self.writer = Writer(api, self.me) if api is not None else None
        # BGP mode (agent/bgp_sink.py): held VIPs are announced to the peers; no ARP / NDP.
        self.bgp = BgpSink(cfg.bgp_settings, self.metrics) if cfg.bgp_settings is not None else None
        # The report Lease `kubevip status` reads (agent/presence.py): what this node holds, since when.
        self.presence = Presence(
            self.writer, cfg.election.namespace, self.me,
            cfg.election.mode if cfg.election.enabled else "none", "bgp" if self.bgp is not None else "arp",
        ) if self.writer is not None else None
        self._since: dict[Row, str] = {}
        self.sources: Sources | None = None
        self._cache: dict[str, Decided] = {}
        self._lock = asyncio.Lock()
        self._fence_pass: asyncio.Future[None] | None = None
        self._world_version = 0  # bumped by touched(); the snapshot is recomputed only when it moved
        self._touched_during: set[str] | None = None  # keys touched while a snapshot is computed
        self._snap_version = -1
        self._wake = asyncio.Event()
        self._report_wake = asyncio.Event()
        # A pass whose inputs (snapshot, leadership, stopping) equal those of the last pass that left
        # nothing undone has nothing to do: the periodic pass is then free, however many Services.
        self._settled: tuple[object, ...] | None = None
        # Services to look at in the next report round (all of them when more than their objects changed).
        self._report_keys: set[str] = set()
        self._reported: tuple[object, ...] | None = None
        self.held: frozenset[Row] = frozenset()
        self.snap: Snapshot | None = None
        self.reports = Reports()
        self._ifaces: dict[IPFamily, str] = {}
        # Warnings only this node can see (a Service's interface missing here), per Service, last pass.
        self._node_warnings: dict[str, frozenset[Condition]] = {}
        self._startup_keep: frozenset[Row] = frozenset()
        self._startup_until = 0.0
        self._stopping = False
        self.passes = 0
        self.ready = asyncio.Event()
        # Scalable election: one unit per VIP (no Lease per unit, so no kube-vip naming to keep).
        self.per_address_units = cfg.election.enabled and cfg.election.mode == "scalable"

    # -- inputs -----------------------------------------------------------------------------------

    def touched(self, keys: Iterable[str]) -> None:
        """Services whose inputs changed: drop their cached decisions and wake the loop."""
        for k in keys:
            self._cache.pop(k, None)
            self._report_keys.add(k)
            if self._touched_during is not None:
                self._touched_during.add(k)
        self._world_version += 1
        self._wake.set()

    def written_back(self, keys: Iterable[str]) -> None:
        """Services whose status or vipHost changed (no decision did): check what they say."""
        self._report_keys.update(keys)
        self._report_wake.set()

    def _broken(self, kind: str, key: str, why: str) -> None:
        ns, _, name = key.partition("/")
        self.metrics.reconcile_errors.labels(ns, name, INVALID_OBJECT).inc()

    async def _unit_started(self, unit: str) -> None:
        self._wake.set()

    async def _unit_stopped(self, unit: str) -> None:
        """Fencing: withdraw this unit's VIPs before returning (the election waits for it). Units that
        stop together (a node fencing hundreds at once) share one pass instead of one pass each.
        """
        joined = self._fence_pass
        if joined is not None:
            await asyncio.shield(joined)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved even with no joiner
        self._fence_pass = done
        try:
            await asyncio.sleep(0)  # the rest of this fencing burst joins here
            self._fence_pass = None  # later stops need a pass that snapshots after them
            await self.converge(reason=f"stopped holding {unit} (and units stopping with it)")
        except BaseException as exc:
            if self._fence_pass is done:
                self._fence_pass = None
            done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(f"fencing pass: {exc!r}"))
            raise
        done.set_result(None)

    # -- interfaces ---------------------------------------------------------------------------------

    def _resolve_interfaces(self) -> dict[IPFamily, str]:
        """Interface per family (vip_servicesinterface, vip_interface, else the default route's); blocking."""
        out: dict[IPFamily, str] = {}
        for fam, v in ((IPFamily.IPV4, 4), (IPFamily.IPV6, 6)):
            if fam in self._ifaces:
                out[fam] = self._ifaces[fam]
                continue
            try:
                out[fam] = self._ifaces[fam] = resolve_interface(
                    v, for_service=True,  # type: ignore[arg-type]
                    vip_interface=self.cfg.net.interface or (BGP_DEFAULT_INTERFACE if self.bgp else ""),
                    services_interface=self.cfg.net.services_interface, ns=self.ns,
                )
            except KubevipError as exc:
                log.warning("%s", exc)
        return out

    async def interfaces(self) -> dict[IPFamily, str]:
        if len(self._ifaces) == len(IPFamily):
            return dict(self._ifaces)
        return await asyncio.to_thread(self._resolve_interfaces)

    def _annotated_held(self, snap: Snapshot) -> tuple[VipPlan, ...]:
        """The VIPs this node holds whose Service names an interface (nothing to do when none does)."""
        if not snap.names_interfaces:
            return ()
        return tuple(p for p in held_plans(snap.plans, self._holds, self.me) if p.interface)

    async def service_links(self, held: Iterable[VipPlan]) -> frozenset[str]:
        """Which interfaces named by `kube-vip.io/serviceInterface` of the `held` VIPs exist here."""
        # No lookup for a name that cannot exist.
        names = {p.interface for p in held if p.interface and valid_interface_name(p.interface)}
        if not names:
            return frozenset()
        try:
            return await asyncio.to_thread(existing_links, names, self.ns)
        except NetworkError as exc:
            log.warning("cannot look up interfaces %s: %s", sorted(names), exc)
            return frozenset()

    def _managers(self, rows: Iterable[Row]) -> dict[str, AddressManager]:
        return {r.interface: AddressManager(r.interface, self.ns) for r in rows}

    async def kernel_rows(self) -> frozenset[Row]:
        """The VIPs this agent owns (IFA_PROTO ownership, survives restarts) on every interface of the node:
        besides the per-family ones, a previous run may have used any interface a Service's
        `kube-vip.io/serviceInterface` named, even one that no Service names any more."""
        return await asyncio.to_thread(self._owned_rows)

    def _owned_rows(self) -> frozenset[Row]:
        out: set[Row] = set()
        with self.ns.iproute():  # one netlink socket for the whole scan
            ifnames = link_names(self.ns)
            for ifname in sorted(ifnames):
                try:
                    for ip, _plen in AddressManager(ifname, self.ns).owned():
                        out.add(Row(ip, ifname))
                except NetworkError as exc:
                    log.warning("cannot read addresses of %s: %s", ifname, exc)
        return frozenset(out)

    # -- the pass --------------------------------------------------------------------------------------

    async def _snapshot(self) -> Snapshot:
        # The periodic pass (leadership is time-based) reuses the last snapshot while no watch event came
        # in: resolving every Service's claims each retry period costs O(Services) for nothing.
        if self.snap is not None and self._snap_version == self._world_version:
            return self.snap
        version = self._world_version
        # O(Services) of pure work: in a thread, on a copy, so the event loop keeps renewing Leases and
        # applying events meanwhile (1000 Services took the loop for seconds).
        # BGP mode keeps Service VIPs on lo / vip_interface: the annotation picks a layer-2 segment, and
        # a VIP on a shared segment would make every announcing node answer ARP / NDP for it there.
        self._touched_during = set()
        try:
            snap = await asyncio.to_thread(
                snapshot, self.world.copy(), self.cfg.lb_class, self.cfg.use_legacy_endpoints,
                dict(self._cache), per_address=self.per_address_units, service_interfaces=self.bgp is None,
            )
        finally:
            touched, self._touched_during = self._touched_during, None
        # Decisions of Services touched while the thread ran are stale already.
        self._cache = {k: d for k, d in snap.decided.items() if k not in touched}
        self._snap_version = version
        return snap

    def _holds(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        if self._stopping:
            return None
        if self.bgp is not None:  # BGP: ETP Local is announced by every eligible node (ECMP), no election
            return self.me if announces(self.me, eligible, self.leadership.holds(unit)) else None
        return self.me if self.leadership.holds(unit) else None

    def desired(
        self, snap: Snapshot, ifaces: dict[IPFamily, str], links: frozenset[str] = frozenset()
    ) -> frozenset[Row]:
        rows = desired_rows(snap.plans, self._holds, self.me, ifaces, links)
        if self._startup_keep and time.monotonic() < self._startup_until and not self._stopping:
            # Start-up without a flap: our VIPs still wanted cluster-wide stay while the election settles,
            # unless someone else is known to hold them, or this node already wants them elsewhere (their
            # interface changed while no agent ran: one address on two interfaces would answer twice).
            units = snap.units
            by_addr = snap.by_address
            placed = {r.address for r in rows}
            for r in self._startup_keep:
                p = by_addr.get(r.address)
                if r.address in placed or p is None:
                    continue
                if self.leadership.holder(p.unit, units[p.unit]) in (None, self.me):
                    rows |= {r}
        return rows

    def _missing_warnings(
        self, held: Iterable[VipPlan], links: frozenset[str]
    ) -> dict[str, frozenset[Condition]]:
        """A Warning for every Service of a held VIP whose annotated interface this node lacks."""
        out: dict[str, set[Condition]] = {}
        for p in missing_interfaces(held, links):
            for key in p.services:
                cond = missing_interface(key, p.services[0], p.interface, p.address, self.me)
                out.setdefault(key, set()).add(cond)
        return {k: frozenset(v) for k, v in out.items()}

    async def converge(self, reason: str = "") -> Changes:
        """One level-triggered pass over the kernel side; returns what it changed."""
        async with self._lock:
            started = time.perf_counter()
            snap = await self._snapshot()
            inputs = self._pass_inputs(snap)
            if inputs is not None and inputs == self._settled:
                if self.reports.failed_status:
                    self._report_wake.set()  # a status write waits for its retry
                self.passes += 1
                return Changes((), ())
            self.snap = snap
            if not self._stopping:
                self.leadership.set_units(snap.units)
            annotated = self._annotated_held(snap)
            links = await self.service_links(annotated)
            want = self.desired(snap, await self.interfaces(), links)
            self._node_warnings = self._missing_warnings(annotated, links)
            changes = diff(want, self.held)
            if self.bgp is not None and changes.remove:  # withdraw before the address goes
                await self._bgp_sync(self.held - frozenset(changes.remove), snap)
            if not changes.empty:
                await self._apply(changes, snap)
            if self.bgp is not None:
                await self._bgp_sync(self.held, snap)
            self._settled = inputs if self.held == want else None
            self.passes += 1
            self.metrics.reconcile_duration.observe(time.perf_counter() - started)
            self._update_gauges(snap)
            self._publish(snap)
            self._report_wake.set()
            return changes

    def _pass_inputs(self, snap: Snapshot) -> tuple[object, ...] | None:
        """What a pass depends on, or None when it also depends on time or the node's interfaces (the
        start-up window, an interface not resolved yet, a Service's own interface)."""
        if time.monotonic() < self._startup_until or len(self._ifaces) < len(IPFamily):
            return None
        if self.bgp is not None or snap.names_interfaces:
            return None
        return (self._snap_version, self._stopping, self.leadership.generation())

    async def _apply(self, changes: Changes, snap: Snapshot) -> None:
        # Withdraw first: announcements stop before the address goes, so no frame names a dead VIP.
        announcer = self.announcer
        if announcer is not None:
            await asyncio.gather(*(announcer.stop(r.address) for r in changes.remove))
        failed = await asyncio.to_thread(self._kernel, changes)
        done = Changes(
            add=tuple(r for r in changes.add if r not in failed),
            remove=tuple(r for r in changes.remove if r not in failed),
        )
        self.held = apply(self.held, done)
        if announcer is not None:
            # Together: each first frame waits for the announcer's thread, not for the one before it.
            started = await asyncio.gather(
                *(announcer.start(r.address, r.interface) for r in done.add), return_exceptions=True
            )
            for r, res in zip(done.add, started, strict=True):
                if isinstance(res, KubevipError):
                    log.error("cannot announce %s on %s: %s", r.address, r.interface, res)
                elif isinstance(res, BaseException):
                    raise res
        # One line per pass and direction: a line per VIP cost more than the VIPs when 2000 moved.
        if done.add:
            log.info("node %s: announcing %d VIPs: %s", self.me, len(done.add),
                     brief(f"{r.address} on {r.interface}" for r in done.add))
        if done.remove:
            log.info("node %s: withdrew %d VIPs: %s", self.me, len(done.remove),
                     brief(f"{r.address} from {r.interface}" for r in done.remove))
        self._node_events(done, snap)

    def _kernel(self, changes: Changes) -> set[Row]:
        """Address (and route) changes in a worker thread: netlink calls must not stall lease renewals."""
        failed: set[Row] = set()
        mgrs = self._managers([*changes.add, *changes.remove])
        n = self.cfg.net
        tables = {
            i: RoutingTable(i, self.ns, table=n.routing_table_id, protocol=n.routing_protocol,
                            route_type=n.routing_table_type)
            for i in mgrs
        } if n.routing_table else {}
        # One interface lookup and one address dump per interface and direction, not per VIP: a pass that
        # moves hundreds of VIPs otherwise spends seconds parsing netlink dumps (holding the GIL).
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
                log.info("%s left with its interface %s", r.address, r.interface)
                continue
            log.error("%s", exc)
            failed.add(r)
        prefixlen = self.cfg.net.subnet.prefixlen
        added_errors = {
            i: mgrs[i].add_many((r.address, prefixlen(r.address)) for r in changes.add if r.interface == i)
            for i in mgrs
        }
        for r in changes.add:
            exc = added_errors[r.interface].get(r.address)
            if exc is None and tables:
                try:
                    tables[r.interface].add(r.address)
                except KubevipError as err:
                    exc = err
            if exc is not None:
                log.error("%s", exc)
                failed.add(r)
        return failed

    def _update_gauges(self, snap: Snapshot) -> None:
        held = {r.address for r in self.held}
        by_addr = snap.by_address
        active = {key for a in held if (p := by_addr.get(a)) is not None for key in p.services}
        per_ns: dict[str, int] = {}
        for key in active:
            ns = key.split("/", 1)[0]
            per_ns[ns] = per_ns.get(ns, 0) + 1
        self.metrics.active_services.clear()
        for ns, n in per_ns.items():
            self.metrics.active_services.labels(ns).set(n)
        wanted = {fam: 0 for fam in IPFamily}
        for p in snap.plans:
            wanted[p.family] += 1
        for fam in IPFamily:
            self.metrics.announced_vips.labels(fam.value).set(sum(1 for a in held if IPFamily.of(a) == fam))
            self.metrics.service_vips.labels(fam.value).set(wanted[fam])

    # -- reports -----------------------------------------------------------------------------------------

    def _publish(self, snap: Snapshot) -> None:
        """Hand the VIPs now on this node's interfaces to the report Lease (written by its own task)."""
        if self.presence is None:
            return
        now = _rfc3339()
        since = {r: self._since.get(r) or now for r in self.held}
        self._since = since
        by_addr = snap.by_address
        out: list[HeldVip] = []
        for r in self.held:
            plan = by_addr.get(r.address)
            unit = plan.unit if plan is not None else ""
            out.append(HeldVip(r.address, r.interface, unit, self.leadership.lease_of(unit) if unit else "",
                               since[r]))
        self.presence.update(tuple(out))

    def _node_events(self, done: Changes, snap: Snapshot) -> None:
        """One Normal Event per Service and direction per pass, naming every address that changed."""
        if self.writer is None:
            return
        by_addr = snap.by_address
        for rows, reason, verb in ((done.add, STARTED, "started"), (done.remove, STOPPED, "stopped")):
            per_service: dict[str, list[str]] = {}
            for r in rows:
                plan = by_addr.get(r.address)
                for key in plan.services if plan is not None else self._services_of(r):
                    per_service.setdefault(key, []).append(f"{r.address} on {r.interface}")
            for key, addrs in per_service.items():
                msg = f"node {self.me} {verb} announcing {', '.join(addrs)}"
                spawn(self.guard, f"event {key}", self._node_event(key, reason, msg))

    def _services_of(self, r: Row) -> tuple[str, ...]:
        old = self.snap
        if old is None:
            return ()
        return tuple(k for k, plans in old.granted.items() if any(p.address == r.address for p in plans))

    async def _node_event(self, key: str, reason: str, message: str) -> None:
        rec = self.world.services.get(key)
        if rec is None or self.writer is None:
            return
        name = f"{rec.view.name[:200]}.{self.me[:40]}.{time.time_ns():x}"
        try:
            async with self._event_slots:
                await self.writer.event(
                    rec.view.namespace, rec.view.name, rec.view.uid, name, NORMAL, reason, message
                )
        except WRITE_ERRORS as exc:
            log.info("event for %s not written: %s", key, exc)

    async def report_loop(self) -> None:
        """Keep status, vipHost and Warning Events true; level-triggered like the kernel side."""
        sem = asyncio.Semaphore(WRITE_CONCURRENCY)
        while True:
            await self._report_wake.wait()
            self._report_wake.clear()
            if self.sources is not None and not self.sources.synced:
                continue
            snap = self.snap
            if snap is None:
                continue
            jobs = list(self._report_jobs(snap, self._report_round(snap)))
            if jobs:
                # Jobs are factories: a coroutine object made now and cancelled before its turn would
                # be "never awaited".
                async def run(job: Callable[[], Awaitable[None]]) -> None:
                    async with sem:
                        await job()
                await asyncio.gather(*(run(j) for j in jobs))

    def _report_round(self, snap: Snapshot) -> Iterable[str]:
        """The Services to look at: all when anything but their own objects changed (the snapshot, what
        this node holds, who leads what) or a write waits for its retry, else those whose objects did."""
        inputs = (
            self._snap_version, self.held, self._stopping, self.leadership.generation(),
            dict(self._node_warnings),
        )
        keys, self._report_keys = self._report_keys, set()
        if inputs != self._reported or self.reports.failed_status:
            self._reported = inputs
            return list(self.world.services)
        return [k for k in keys if k in self.world.services]

    def _report_jobs(self, snap: Snapshot, keys: Iterable[str]) -> Iterable[Callable[[], Awaitable[None]]]:
        units = snap.units

        def holder(unit: str, eligible: frozenset[str] | None) -> str | None:
            if self._stopping:
                return None
            return self.leadership.holder(unit, eligible)

        now = time.monotonic()
        for key in keys:
            rec = self.world.services[key]
            view = rec.view
            current_host = view.annotation(ANNOTATION_VIP_HOST)
            d = snap.decisions.get(key)
            plans: tuple[VipPlan, ...] = snap.granted.get(key, ())
            if d is None or not d.announce:
                wanted = ServiceStatus((), None)
            else:
                wanted = service_status([v.address for v in d.vips], plans, holder, units)
            # The node writing status writes the family conditions and vipHost-ipv6 with it (the
            # holder of the first VIP; when nobody holds any, the node vipHost names, clearing).
            writer = wanted.writer == self.me or (wanted.writer is None and current_host == self.me)
            extra = None
            if writer:
                handled = key in snap.handled
                conds = family_conditions(d if handled else None, view, plans, holder, units)
                host6 = ipv6_host(d, plans, holder, units, wanted.host) if wanted.host else None
                if conditions_differ(conds, view.status_conditions) or (
                    view.annotation(ANNOTATION_VIP_HOST_IPV6) != host6
                ):
                    extra = (conds, host6)
            if extra is not None or should_write(wanted, view.status_ingress, current_host, self.me):
                if self.reports.failed_status.get(key, 0.0) > now:
                    continue
                yield functools.partial(self._write_status, key, wanted, current_host, extra)
            if key in snap.handled and (d is None or d.reason != "ignored"):
                conds_w = snap.warnings.get(key, frozenset()) | self._node_warnings.get(key, frozenset())
                for cond in sorted(conds_w):
                    name = cond.event_name(view.uid)
                    if name not in self.reports.events:
                        self.reports.events.add(name)
                        yield functools.partial(self._warning, key, cond, name)

    async def _write_status(
        self, key: str, wanted: ServiceStatus, current_host: str | None,
        extra: tuple[tuple[StatusCondition, ...], str | None] | None = None,
    ) -> None:
        assert self.writer is not None
        rec = self.world.services.get(key)
        if rec is None:
            return
        v = rec.view
        try:
            if tuple(v.status_ingress) != wanted.ingress:
                await self.writer.service_status(v.namespace, v.name, wanted.ingress)
            host6 = extra[1] if extra is not None else v.annotation(ANNOTATION_VIP_HOST_IPV6)
            if current_host != wanted.host or host6 != v.annotation(ANNOTATION_VIP_HOST_IPV6):
                await self.writer.vip_host(v.namespace, v.name, wanted.host, host6)
            if extra is not None and conditions_differ(extra[0], v.status_conditions):
                conds = with_transitions(extra[0], v.status_conditions, _rfc3339())
                gone = tuple(sorted({c.type for c in v.status_conditions} - {c.type for c in conds}))
                await self.writer.service_conditions(v.namespace, v.name, conds, gone)
            self.reports.failed_status.pop(key, None)
            self.reports.failures.pop(key, None)
        except WRITE_ERRORS as exc:
            ns, _, name = key.partition("/")
            self.metrics.reconcile_errors.labels(ns, name, "status-write").inc()
            # Exponential backoff per Service: retries must not add load to a saturated API server.
            n = self.reports.failures[key] = self.reports.failures.get(key, 0) + 1
            self.reports.failed_status[key] = time.monotonic() + min(30.0, 0.5 * 2**n)
            log.warning("status of %s not written (retrying): %s", key, exc)
            self._report_wake.set()

    async def _bgp_sync(self, held: Iterable[Row], snap: Snapshot) -> None:
        """Announce `held` over BGP; a Service's bad BGP annotation becomes its Warning (once)."""
        assert self.bgp is not None
        held = frozenset(held)
        addrs = {r.address for r in held}
        annotations: dict[str, Mapping[str, str]] = {}
        for p in snap.plans:
            if p.address in addrs:
                for key in p.services:
                    rec = self.world.services.get(key)
                    annotations[key] = dict(rec.view.annotations) if rec is not None else {}
        for problem in sorted(await self.bgp.sync(held, snap.plans, annotations)):
            rec = self.world.services.get(problem.service)
            if rec is None:
                continue
            cond = Condition(problem.service, WARNING, problem.reason, problem.message)
            name = cond.event_name(rec.view.uid)
            if self.writer is None:
                log.warning("Service %s: %s (%s)", problem.service, problem.message, problem.reason)
            elif name not in self.reports.events:
                self.reports.events.add(name)
                spawn(self.guard, f"bgp warning {problem.service}",
                      self._warning(problem.service, cond, name))

    async def _warning(self, key: str, cond: Condition, name: str) -> None:
        assert self.writer is not None
        rec = self.world.services.get(key)
        if rec is None:
            return
        v = rec.view
        ns, _, svc = key.partition("/")
        self.metrics.reconcile_errors.labels(ns, svc, cond.reason).inc()
        log.warning("Service %s: %s (%s)", key, cond.message, cond.reason)
        try:
            await self.writer.event(v.namespace, v.name, v.uid, name, WARNING, cond.reason, cond.message)
        except WRITE_ERRORS as exc:
            self.reports.events.discard(name)  # try again on the next pass
            log.info("event for %s not written: %s", key, exc)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def loop(self) -> None:
        """Converge whenever something changed; also every retry period (leadership is time-based)."""
        period = self.cfg.election.timings.retry_period
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races with the
            # event being set, and the agent would never finish shutting down.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._wake.wait()
            self._wake.clear()
            if self.sources is not None and not self.sources.synced:
                continue
            try:
                await self.converge()
            except Exception:  # a failed pass must not end the agent: the next one retries
                log.exception("reconcile pass failed")
                self.metrics.reconcile_errors.labels("", "", "pass").inc()
            self.ready.set()

    async def start(self) -> None:
        """Adopt what the kernel holds, then start watches, election, loop and reporting."""
        if self.bgp is not None:
            await self.bgp.start()
        self.held = await self.kernel_rows()
        # BGP: a crashed agent's routes already left with its session, so keeping its Cluster VIPs while
        # the election settles would only risk a second announcer; Local VIPs need no election anyway.
        self._startup_keep = self.held if self.bgp is None else frozenset()
        self._startup_until = time.monotonic() + 2 * self.cfg.election.timings.lease_duration
        if self.held:
            log.info("found %d VIPs of a previous run: kept while the election settles", len(self.held))
        if self.presence is not None:
            spawn(self.guard, "presence", self.presence.run())
        if self.api is not None:
            self.sources = Sources(
                self.api, self.world, self.cfg.namespace, self.cfg.use_legacy_endpoints, self.touched,
                self.metrics, self._broken, written_back=self.written_back,
            )
            for r in self.sources.reflectors:
                spawn(self.guard, f"watch {r.name}", r.run())
            spawn(self.guard, "report", self.report_loop())
        spawn(self.guard, "election", self.leadership.run())
        spawn(self.guard, "reconcile", self.loop())

    async def shutdown(self) -> None:
        """Staged: withdraw every VIP, release the Leases, stop tasks."""
        self._stopping = True
        try:
            await self.converge(reason="shutdown")
        except Exception:
            log.exception("withdraw on shutdown failed")
        await self.leadership.release()
        if self.presence is not None:
            await self.presence.release()
        if self.bgp is not None:
            await self.bgp.close()
        await self.guard.close()
        if self.announcer is not None:
            await self.announcer.close()
        if self.held:
            log.warning("still holding %s after shutdown", sorted(str(r.address) for r in self.held))


def _rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
