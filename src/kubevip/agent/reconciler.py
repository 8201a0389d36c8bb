"""The running agent: World -> snapshot -> election -> kernel rows + announcements -> status and Events.

Level-triggered: every pass recomputes the whole desired state from the World and converges to it, so
a pass can be repeated or skipped without harm. Side effects are serialised by one lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping

from kubevip.agent import leadership
from kubevip.agent.bgp_node import follow as follow_bgp_annotations
from kubevip.agent.bgp_sink import DEFAULT_INTERFACE as BGP_DEFAULT_INTERFACE
from kubevip.agent.bgp_sink import BgpSink
from kubevip.agent.bgp_wants import announces
from kubevip.agent.dhcp import DhcpDriver
from kubevip.agent.nodes import NodeSource, publish_loop
from kubevip.agent.packets import DISCOVERY_PERIOD, PacketRuleDriver
from kubevip.agent.policy_facts import PolicyFacts
from kubevip.agent.presence import Presence
from kubevip.agent.reporter import Outcome, Reporter
from kubevip.agent.sources import Sources
from kubevip.bgp.settings import BgpSettings as BgpSettingsT
from kubevip.bgp.shared import SpeakerLike
from kubevip.config import AgentConfig
from kubevip.core.claims import PlanMemo, VipPlan
from kubevip.core.conditions import Condition, missing_interface, no_family_interface
from kubevip.core.egress import PacketRules
from kubevip.core.eligibility import Placement, PlacementMemo, placed_snapshot
from kubevip.core.interface import AUTO, valid_interface_name
from kubevip.core.plan import ServiceDecision
from kubevip.core.reasons import Reason
from kubevip.core.report import HeldVip
from kubevip.core.rows import (
    Changes,
    Row,
    desired_rows,
    diff,
    held_plans,
    missing_interfaces,
    needs_subnet_lookup,
)
from kubevip.core.rows import apply as applied
from kubevip.core.views import IPFamily, ServiceView
from kubevip.core.world import Decided, Snapshot, World, snapshot
from kubevip.election.lifetime import (
    KERNEL_LATE,
    Lifetime,
    due,
    expected_stamp,
    ipv6_lifetimes,
    ipv6_resume_at,
    lifetime,
    may_extend,
    minimum_lease_duration,
    still_safe,
)
from kubevip.errors import NetworkError
from kubevip.ip import IPAddress, NodeName, UnitId
from kubevip.kube.rest import RestClient
from kubevip.kube.writers import Writer
from kubevip.metrics import Metrics
from kubevip.net.announcer import Announcer
from kubevip.net.interfaces import FamilyInterfaces, existing_links, resolve_interface, subnet_interfaces
from kubevip.net.namespace import OWN, Netns
from kubevip.net.vipset import VipSet
from kubevip.tasks import TaskGroupGuard, run_here, spawn

log = logging.getLogger(__name__)

INVALID_OBJECT = Reason.INVALID_OBJECT
RULES_RETRY = 2.0  # seconds between attempts to apply packet rules nft refused
RULES_CHECK = 30.0  # seconds between checks that our nftables table is still there
# A snapshot of this few Services is computed on the loop: about 50 us of work per Service against a
# worker thread's hand-off of milliseconds when the agents and the API server share the cores (a new
# Service's first pass waited 0-16 ms for its thread). Bigger worlds keep the loop free for renewals.
INLINE_SNAPSHOT = 32


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
        vips: VipSet | None = None,
        bgp_speaker: SpeakerLike | None = None,
    ) -> None:
        self.cfg = cfg
        self.api = api
        self.ns = ns
        self.me = NodeName(cfg.node_name)
        self.metrics = metrics or Metrics(cfg.node_name)
        self.world = World()
        self.guard = TaskGroupGuard(f"agent:{self.me}")
        # The election gets its own client (own connection pool): a burst of status and Event writes
        # must never queue a Lease renewal behind it, or the node fences itself under load. The scalable
        # mode's liveness renewals also get their own thread (election.offloop): a busy loop must not
        # fence the ~1000 units one liveness Lease keeps.
        self.leadership = leadership.make(
            election_api or api, cfg.election, self.me, self._unit_started, self._unit_stopped, self.metrics,
            on_renewed=self._renewed, renewal_thread=True,
        )
        # The kernel side (net/vipset.py): addresses, routes, announcements, in their fixed order.
        self.vips = vips if vips is not None else VipSet(
            cfg.net, ns, announcer=Announcer(rate_ms=cfg.net.arp_rate_ms, ns=ns) if cfg.net.arp else None,
            label=f"node {cfg.node_name}",
        )
        self.writer = Writer(api, self.me) if api is not None else None
        # BGP mode (agent/bgp_sink.py): held VIPs are announced to the peers; no ARP / NDP.
        self.bgp = (BgpSink(cfg.bgp_settings, self.metrics, bgp_speaker) if cfg.bgp_settings is not None
                    else None)
        self.sources: Sources | None = None
        # Nodes for placement (core/eligibility.py): who may hold which VIP; None without a cluster.
        self.nodes: NodeSource | None = None
        self.placement: Placement | None = None
        self._node_changed = asyncio.Event()  # for BGP peers from our Node's annotations (agent/bgp_node.py)
        # The address policy's facts (Nodes, ServiceCIDRs, pools, this node's kernel): a change of the
        # policy re-decides every Service.
        # One Node watch in the agent: NodeSource's, shared with the policy's facts (start()).
        self.facts = PolicyFacts(api, cfg.policy, self._policy_changed, ns, watch_nodes=False)
        self._cache: dict[str, Decided] = {}
        self._lock = asyncio.Lock()
        self._fence_pass: asyncio.Future[None] | None = None
        self._world_version = 0  # bumped by touched(); the snapshot is recomputed only when it moved
        # Placement of unchanged plans is reused while nodes and rules stay the same (core.eligibility);
        # snapshots are computed one at a time (under the pass lock), so one memo serves them all.
        self._place_memo = PlacementMemo()
        self._plan_memo: PlanMemo = {}  # core.claims.resolve's, carried from snapshot to snapshot
        self._touched_during: set[str] | None = None  # keys touched while a snapshot is computed
        # Namespaces of Services changed since the last pass began (kube-vip's reconcile_duration label).
        self._pass_namespaces: set[str] = set()
        self._snap_version = -1
        # The snapshot the packet pass last ordered, its (view, decision) pairs, and whether any asks
        # for egress (`_packet_pass`).
        self._pairs_of: tuple[Snapshot, list[tuple[ServiceView, ServiceDecision]], bool] | None = None
        self._wake = asyncio.Event()
        # A pass whose inputs (snapshot, leadership, stopping) equal those of the last pass that left
        # nothing undone has nothing to do: the periodic pass is then free, however many Services.
        self._settled: tuple[object, ...] | None = None
        self.snap: Snapshot | None = None
        # The report Lease `kubevip status` reads (agent/presence.py): what this node holds, since when.
        self.presence = Presence(
            self.writer, cfg.election.namespace, self.me,
            cfg.election.mode if cfg.election.enabled else "none", "bgp" if self.bgp is not None else "arp",
        ) if self.writer is not None else None
        # What `_publish` last handed over; the held rows and snapshot the gauges and it last saw.
        self._held_vips: dict[Row, HeldVip] = {}
        self._published: tuple[object, object] = (None, None)
        # Status, vipHost and Events (agent/reporter.py): fed the outcome of every pass.
        self.reporter = Reporter(
            self.me, self.writer, self.world, self.leadership, self.metrics, self.guard,
            synced=lambda: self.sources is None or self.sources.synced,
            hold_down=cfg.election.timings.lease_duration if cfg.election.enabled else 0.0,
        )
        # Interface per family; a family without one (a single-stack node) is looked up again only every
        # IFACE_RETRY seconds, its warning logged once (the rule the control-plane VIPs share).
        self._iface = FamilyInterfaces(self._lookup_interface, "VIPs")
        # Warnings only this node can see (a Service's interface missing here), per Service, last pass.
        self._node_warnings: dict[str, frozenset[Condition]] = {}
        # VIPs this node holds but has no interface of their family for: left out of the status it writes.
        self._unplaced: set[IPAddress] = set()
        self._startup_keep: frozenset[Row] = frozenset()
        self._startup_until = 0.0
        self._stopping = False
        self.passes = 0
        self.ready = asyncio.Event()
        # Scalable election: one unit per VIP (no Lease per unit, so no kube-vip naming to keep).
        self.per_address_units = cfg.election.enabled and cfg.election.mode == "scalable"
        # Per-Service Leases: a Cluster Service without endpoints is elected in advance, so its holder
        # announces as soon as the first endpoint appears (core.claims.standby_units, docs/election.md;
        # kube-vip elects once endpoints are ready: a deliberate difference, docs/migration.md).
        # The global Lease and scalable mode elect no Lease per Service: nothing to win early there.
        self.standby_units = cfg.election.enabled and cfg.election.per_service and not self.per_address_units
        # Kernel lifetimes (docs/election.md): every VIP we hold by a Lease ends in the kernel before a
        # peer may take it over, unless renewals keep extending it. Not in BGP mode (the routes leave with
        # the session) nor without election (no peer takes over).
        self.lifetimes = (
            cfg.net.kernel_lifetime and self.bgp is None and cfg.election.enabled
            and (election_api or api) is not None
        )
        # Above this many IPv6 VIPs on the node, its IPv6 VIPs are permanent (election/lifetime.py,
        # `ipv6_lifetimes`); None: no limit (the ownership fallback needs every VIP of ours to carry a
        # lifetime, decided at start-up).
        self._ipv6_limit: int | None = cfg.net.kernel_lifetime_ipv6_limit
        self.ipv6_lifetimes = True
        self._ipv6_counted: tuple[frozenset[Row] | None, int] = (None, 0)  # rows -> their IPv6 count
        self._renewals = asyncio.Event()
        self.extensions = 0
        self._round_took = 0.0  # wall time of the last extension round (`expected_stamp`)
        # Egress SNAT and Service security (agent/packets.py): one nftables table of ours.
        self.packets = PacketRuleDriver(cfg.packets, api, self.me, ns)
        self._discover = asyncio.Event()
        self._rules_wanted: PacketRules | None = None
        self._rules_wake = asyncio.Event()
        # DHCP VIPs (agent/dhcp.py): clients for the DHCP wants whose unit this node holds.
        self.dhcp = DhcpDriver(self.me, ns, self.world, self.touched, self.writer, self.guard)

    @property
    def held(self) -> frozenset[Row]:
        """The VIPs on this node's interfaces now (the kernel side's record)."""
        return self.vips.held

    @held.setter
    def held(self, rows: frozenset[Row]) -> None:
        self.vips.held = rows

    @property
    def announcer(self) -> Announcer | None:
        return self.vips.announcer

    # -- inputs -----------------------------------------------------------------------------------

    def touched(self, keys: Iterable[str]) -> None:
        """Services whose inputs changed: drop their cached decisions and wake the loop."""
        for k in keys:
            self._cache.pop(k, None)
            self._pass_namespaces.add(k.partition("/")[0])
            if self._touched_during is not None:
                self._touched_during.add(k)
        self.reporter.touched(keys)
        self._world_version += 1
        self._wake.set()

    def nodes_changed(self) -> None:
        """A Node changed what placement reads: a new snapshot (decisions stay cached), every Service
        looked at again by the reporter."""
        self._world_version += 1
        self._wake.set()
        self._node_changed.set()

    def _own_annotations(self) -> Mapping[str, str] | None:
        view = self.nodes.nodes.get(self.me) if self.nodes is not None else None
        return dict(view.annotations) if view is not None else None

    async def _apply_bgp(self, settings: BgpSettingsT) -> None:
        """New BGP settings from our Node: swap the speaker between passes, then announce again."""
        assert self.bgp is not None
        async with self._lock:
            await self.bgp.reconfigure(settings)
        self._wake.set()
    def _policy_changed(self) -> None:
        self.touched(list(self.world.services))

    def written_back(self, keys: Iterable[str]) -> None:
        """Services whose status or vipHost changed (no decision did): check what they say."""
        self.reporter.written_back(keys)

    def _broken(self, kind: str, key: str, why: str) -> None:
        self.reporter.error_metric(key, INVALID_OBJECT)

    async def _unit_started(self, unit: str) -> None:
        self._wake.set()

    def _renewed(self) -> None:
        """A Lease renewal was accepted: extend the kernel lifetimes of what it covers."""
        self._renewals.set()

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

    @property
    def _ifaces(self) -> dict[IPFamily, str]:
        """The interface of each family found so far."""
        return self._iface.found

    @_ifaces.setter
    def _ifaces(self, found: dict[IPFamily, str]) -> None:
        self._iface.found = found

    def _lookup_interface(self, fam: IPFamily) -> str:
        """vip_servicesinterface, vip_interface, else the default route's interface of `fam`; blocking."""
        return resolve_interface(
            fam.version, for_service=True,
            vip_interface=self.cfg.net.interface or (BGP_DEFAULT_INTERFACE if self.bgp else ""),
            services_interface=self.cfg.net.services_interface, ns=self.ns,
        )

    async def interfaces(self) -> dict[IPFamily, str]:
        if not self._iface.pending():
            return dict(self._ifaces)
        return await asyncio.to_thread(self._iface.resolve)

    def _annotated_held(self, snap: Snapshot) -> tuple[VipPlan, ...]:
        """The VIPs this node holds whose Service names an interface (nothing to do when none does)."""
        if not snap.names_interfaces:
            return ()
        return tuple(p for p in held_plans(snap.plans, self._my_holdings(snap), self.me)
                     if p.interface or p.macvlan)

    async def service_links(self, held: Iterable[VipPlan]) -> frozenset[str]:
        """Which interfaces named by `kube-vip.io/serviceInterface` of the `held` VIPs exist here."""
        # No lookup for a name that cannot exist.
        names = {name for p in held for name in (p.interface, p.macvlan)
                 if name and name != AUTO and valid_interface_name(name)}
        if not names:
            return frozenset()
        try:
            return await asyncio.to_thread(existing_links, names, self.ns)
        except NetworkError as exc:
            log.warning("cannot look up interfaces %s: %s", sorted(names), exc)
            return frozenset()

    async def kernel_rows(self) -> frozenset[Row]:
        """The VIPs this agent owns (IFA_PROTO ownership, survives restarts) on every interface of the node:
        besides the per-family ones, a previous run may have used any interface a Service's
        `kube-vip.io/serviceInterface` named, even one that no Service names any more."""
        return await asyncio.to_thread(self.vips.owned_rows)

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
        run = run_here if len(self.world.services) <= INLINE_SNAPSHOT else asyncio.to_thread
        try:
            snap = await run(
                snapshot, self.world.copy(), self.cfg.lb_class, self.cfg.use_legacy_endpoints,
                dict(self._cache), per_address=self.per_address_units, service_interfaces=self.bgp is None,
                policy=self.facts.policy, cross_namespace=self.cfg.policy.cross_namespace,
                dhcp_layer2=self.bgp is None,  # DHCP VIPs are layer 2 only (docs/dhcp.md)
                plan_memo=self._plan_memo, standby=self.standby_units,
            )
            if self.nodes is not None:  # narrowed to the nodes placement allows (docs/placement.md)
                services = {k: r.view for k, r in self.world.services.items()}
                snap, self.placement = await run(
                    placed_snapshot, snap, services, self.nodes.snapshot(), self.cfg.placement,
                    self._place_memo,
                )
        finally:
            touched, self._touched_during = self._touched_during, None
        # Decisions of Services touched while the thread ran are stale already.
        self._cache = {k: d for k, d in snap.decided.items() if k not in touched}
        self._snap_version = version
        return snap

    def _my_holdings(self, snap: Snapshot) -> dict[UnitId, NodeName | None]:
        """The election's outcome for this node's rows, as data: unit -> me when this node announces it."""
        if self._stopping:
            return {}
        holds = self.leadership.holds
        if self.bgp is not None:  # BGP: ETP Local is announced by every eligible node (ECMP), no election
            # ... but a unit that needs one holder keeps its one elected holder: egress (replies must come
            # back to the node that translated the traffic) and a Cluster VIP restricted by placement.
            single = snap.single_units
            elected = self.placement.elected if self.placement is not None else frozenset()

            def mine(u: UnitId, e: frozenset[NodeName] | None) -> bool:
                if u in single or u in elected:
                    return holds(u) and (e is None or self.me in e)
                return announces(self.me, e, holds(u))

            return {u: self.me for u, e in snap.units.items() if mine(u, e)}
        return {u: self.me for u in snap.units if holds(u)}

    @property
    def _services_auto(self) -> bool:
        """vip_servicesinterface=auto (layer 2 and routing table; BGP puts VIPs on its own interface)."""
        return self.bgp is None and self.cfg.net.services_interface == AUTO

    async def _auto_interfaces(self, snap: Snapshot) -> dict[IPAddress, str]:
        """For held VIPs placed `auto`: the interface whose subnet holds each (one address dump)."""
        if not (snap.names_interfaces or self._services_auto):
            return {}
        services_auto = self._services_auto
        need = [p.address for p in held_plans(snap.plans, self._my_holdings(snap), self.me)
                if needs_subnet_lookup(p, services_auto)]
        if not need:
            return {}
        try:
            return await asyncio.to_thread(subnet_interfaces, need, self.ns)
        except NetworkError as exc:
            log.warning("auto interfaces: cannot read this node's addresses: %s", exc)
            return {}

    def desired(
        self, snap: Snapshot, ifaces: dict[IPFamily, str], links: frozenset[str] = frozenset(),
        by_subnet: Mapping[IPAddress, str] | None = None,
    ) -> frozenset[Row]:
        rows = desired_rows(snap.plans, self._my_holdings(snap), self.me, ifaces, links, by_subnet,
                            self._services_auto)
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

    def _family_warnings(
        self, snap: Snapshot, ifaces: Mapping[IPFamily, str], by_subnet: Mapping[IPAddress, str]
    ) -> None:
        """A Warning for every Service of a VIP this node holds but has no interface of its family for
        (an `auto` VIP whose subnet is on an interface has one). `_unplaced` lists every such VIP of the
        snapshot, held or not: the election may hand this node one before the next pass, and the
        reporter's round that follows must already leave it out of the status."""
        mine = self._my_holdings(snap)
        for p in snap.plans:
            placed_by_subnet = needs_subnet_lookup(p, self._services_auto) and p.address in by_subnet
            if (p.interface and p.interface != AUTO) or placed_by_subnet or p.family in ifaces:
                continue
            self._unplaced.add(p.address)
            if mine.get(p.unit) == self.me:
                for key in p.services:
                    cond = no_family_interface(key, p.address, self.me)
                    self._node_warnings[key] = self._node_warnings.get(key, frozenset()) | {cond}

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
            namespaces, self._pass_namespaces = self._pass_namespaces, set()
            snap = await self._snapshot()
            inputs = self._pass_inputs(snap)
            if inputs is not None and inputs == self._settled:
                self.reporter.retry_pending()  # a status write may wait for its retry
                self.passes += 1
                return Changes((), ())
            self.snap = snap
            if not self._stopping and self.leadership.set_units(snap.units):
                # A new unit's elector sends its Lease write at its first step: let it go out before the
                # rest of this pass, not after it (a yield for the elector's step, one for aiohttp's body
                # writer, a task of its own before Python 3.12). With per-Service Leases that write is
                # the create's critical path: 3-4 ms from the Service's event to the write before.
                await asyncio.sleep(0)
                await asyncio.sleep(0)
            if not self._stopping and self.placement is not None:
                self.leadership.set_preferred(self.placement.preferred)
            ifaces = await self.interfaces()
            if snap.dhcp or self.dhcp.active:
                # One holder per DHCP unit in every mode (one MAC on the segment): the elected one.
                await self.dhcp.sync(snap.dhcp, self.leadership.holds, ifaces, self._stopping)
            annotated = self._annotated_held(snap)
            links = await self.service_links(annotated)
            by_subnet = await self._auto_interfaces(snap)
            want = self.desired(snap, ifaces, links, by_subnet)
            self._node_warnings = self._missing_warnings(annotated, links)
            for key, conds in self.dhcp.warnings().items():
                self._node_warnings[key] = self._node_warnings.get(key, frozenset()) | conds
            self._unplaced = set()
            if len(ifaces) < len(IPFamily):
                self._family_warnings(snap, ifaces, by_subnet)
            changes = diff(want, self.held)
            if self.bgp is not None and changes.remove:  # withdraw before the address goes
                await self._bgp_sync(self.held - frozenset(changes.remove), snap)
            if not changes.empty:
                await self._apply(changes, snap)
            if self.bgp is not None:
                await self._bgp_sync(self.held, snap)
            if self.dhcp.active:
                await self.dhcp.after_pass(r.interface for r in self.held)
            await self._packet_pass(snap)
            self._settled = inputs if self.held == want else None
            self.passes += 1
            took = time.perf_counter() - started
            for ns in namespaces:
                self.metrics.reconcile_duration.labels(ns).observe(took)
            # After every pass, so nothing when neither input changed (10000 held VIPs: the gauges
            # ~15 ms, the report list 30-45 ms a pass).
            if self.held is not self._published[0] or snap is not self._published[1]:
                self._published = (self.held, snap)
                self._update_gauges(snap)
                self._publish(snap)
            settling = time.monotonic() < self._startup_until and not self._stopping
            self.reporter.passed(Outcome(snap, self._snap_version, self.held, self._stopping,
                                         dict(self._node_warnings), settling, frozenset(self._unplaced)))
            return changes

    def _service_pairs(self, snap: Snapshot) -> list[tuple[ServiceView, ServiceDecision]]:
        """(view, decision) of every handled Service in claim order (creationTimestamp, key)."""
        recs = self.world.services
        rows = [(rec.created, key, rec.view, d) for key, d in snap.decisions.items()
                if (rec := recs.get(key)) is not None]
        rows.sort(key=lambda r: (r[0], r[1]))
        return [(v, d) for _, _, v, d in rows]

    async def _packet_pass(self, snap: Snapshot) -> None:
        """Decide this node's packet rules for the held VIPs and hand them to `rules_loop`: applying a big
        table takes the kernel a moment (0.5 s for 1000 dual-stack Services, docs/egress.md), and no
        fencing pass may wait for that."""
        # The Services in claim order and whether any asks for egress depend on the snapshot only: once
        # per snapshot, not per pass (a restart of 1000 Services runs hundreds of passes on one snapshot
        # while the units are claimed; sorting and scanning every Service's annotations each time was
        # a tenth of the main thread's samples).
        if self._pairs_of is None or self._pairs_of[0] is not snap:
            pairs = self._service_pairs(snap)
            self._pairs_of = (snap, pairs, self.packets.needs_networks(pairs))
        _, pairs, needs = self._pairs_of
        if needs and not self.packets.discovered:
            self._discover.set()  # the discovery task looks the networks up, then wakes a pass
        held = frozenset(r.address for r in self.held)
        if not self.cfg.packets.service_security and not needs:
            rules = PacketRules()
        else:  # pure, O(Services): off the event loop. Bad annotations are Warnings (core/egress.py).
            rules = await asyncio.to_thread(self.packets.wanted, pairs, held)
        self._rules_wanted = rules
        self._rules_wake.set()

    async def rules_loop(self) -> None:
        """Apply the latest wanted packet rules (only the newest of a burst); retry a failure; every
        RULES_CHECK without news, put the table back if someone else removed it."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RULES_CHECK):
                    await self._rules_wake.wait()
            woken = self._rules_wake.is_set()
            self._rules_wake.clear()
            rules = self._rules_wanted
            if rules is None:
                continue
            if not woken:
                await self.packets.heal(rules)
                continue
            if not await self.packets.apply(rules):
                await asyncio.sleep(RULES_RETRY)  # backoff: nft refused or is missing, logged by apply
                self._rules_wake.set()

    async def discovery_loop(self) -> None:
        """Cluster networks for egress exemptions: when first needed, then every DISCOVERY_PERIOD."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DISCOVERY_PERIOD):
                    await self._discover.wait()
            self._discover.clear()
            snap = self.snap
            if snap is None or not self.packets.needs_networks(self._service_pairs(snap)):
                continue
            if await self.packets.discover(force=True):
                self._settled = None
                self._wake.set()

    def _pass_inputs(self, snap: Snapshot) -> tuple[object, ...] | None:
        """What a pass depends on, or None when it also depends on time or the node's interfaces (the
        start-up window, an interface not resolved yet, a Service's own interface)."""
        if time.monotonic() < self._startup_until:
            return None
        if self._iface.pending():
            return None  # a family still to be looked up (at start, or its retry is due)
        if self.bgp is not None or snap.names_interfaces:
            return None
        return (self._snap_version, self._stopping, self.leadership.generation(), frozenset(self._ifaces))

    async def _apply(self, changes: Changes, snap: Snapshot) -> None:
        # BGP: the route goes out the moment the kernel has the addresses (the pass's own sync after
        # this finds nothing left to send); the connection aborts and Events come after it.
        early = (lambda: self._bgp_sync(self.held, snap)) if self.bgp is not None else None
        self._judge_ipv6_lifetimes(applied(self.held, changes))
        done = await self.vips.apply(
            changes, self._add_lifetimes(changes.add, snap), self._add_deadline(changes.add, snap),
            after_kernel=early,
        )
        if self.lifetimes and any(r in self.vips.ours for r in done.add):
            # The adds' lifetimes were computed before the batch ran: a round now checks them against the
            # instant the kernel stamped them (and shortens any that a slow batch made unsafe).
            self._renewals.set()
        self.reporter.node_events(done, snap, self.snap, self._stopping)

    def _add_lifetimes(self, rows: Iterable[Row], snap: Snapshot) -> dict[Row, int | None]:
        """Kernel lifetime of each VIP about to be added (None: permanent, lifetimes off)."""
        if not self.lifetimes:
            return {}
        t = self.cfg.election.timings
        now = time.monotonic()
        by_addr = snap.by_address
        out: dict[Row, int | None] = {}
        for r in rows:
            if r.address.version == 6 and not self.ipv6_lifetimes:
                out[r] = None
                continue
            p = by_addr.get(r.address)
            renewed = self.leadership.renewed_at(p.unit) if p is not None else None
            # Unknown renewal (cannot happen for a held unit): the shortest lifetime; a round follows.
            out[r] = 1 if renewed is None else lifetime(t, renewed, now).seconds
        return out

    def _add_deadline(self, rows: Iterable[Row], snap: Snapshot) -> float | None:
        """The earliest fencing deadline (renewal + renewDeadline) of the units the adds rest on: the
        kernel gets none of them from then on, even if this process stops between the pass's decision
        and the netlink send (the extension round's race, docs/election.md). None: lifetimes off."""
        if not self.lifetimes:
            return None
        by_addr = snap.by_address
        renewed = [
            s for r in rows
            if (p := by_addr.get(r.address)) is not None
            and (s := self.leadership.renewed_at(p.unit)) is not None
        ]
        return min(renewed) + self.cfg.election.timings.renew_deadline if renewed else None

    # -- kernel lifetimes ------------------------------------------------------------------------------

    def _lifetime_regime(self) -> None:
        """One line at start-up: what the kernel guarantees with these timings."""
        t = self.cfg.election.timings
        first = lifetime(t, 0.0, 0.1)  # a renewal answered within 0.1 s
        if first.guaranteed:
            log.info("kernel VIP lifetimes: %d s after each renewal: the kernel withdraws the VIPs of a dead "
                     "or stalled agent at most %.2f s after its last renewal, before a peer may take over "
                     "(vip_leaseduration %.2f s)", first.seconds, 0.1 + first.seconds + KERNEL_LATE,
                     t.lease_duration)
        else:
            log.warning("kernel VIP lifetimes: vip_leaseduration %.2f s leaves no whole second that ends "
                        "before a peer may take over (needs >= %.2f s); VIPs get 1 s, so the kernel "
                        "withdraws a dead agent's VIPs at most %.2f s after a peer may take over, "
                        "instead of never",
                        t.lease_duration, minimum_lease_duration(t), first.overshoot)

    def _judge_ipv6_lifetimes(self, rows: frozenset[Row]) -> None:
        """Whether the node's IPv6 VIPs keep kernel lifetimes once it holds `rows` (the limit, election/
        lifetime.py); a change is logged and the next round rewrites them (permanent, or lifetimes)."""
        limit = self._ipv6_limit
        if not self.lifetimes or limit is None:
            return
        if rows is not self._ipv6_counted[0]:  # after every renewal, mostly for the same rows
            self._ipv6_counted = (rows, sum(1 for r in rows if r.address.version == 6))
        count = self._ipv6_counted[1]
        on = ipv6_lifetimes(count, limit, self.ipv6_lifetimes)
        if on == self.ipv6_lifetimes:
            return
        self.ipv6_lifetimes = on
        if on:
            log.info("kernel VIP lifetimes: IPv6 VIPs get them again (%d held, back to %d or fewer; "
                     "vip_kernel_lifetime_ipv6_limit %d)", count, ipv6_resume_at(limit), limit)
            expires = self.vips.expires
            for r in [r for r, at in expires.items() if r.address.version == 6 and at == math.inf]:
                del expires[r]  # unknown: the next round gives each a lifetime
        else:
            log.warning("kernel VIP lifetimes: %d IPv6 VIPs held, above vip_kernel_lifetime_ipv6_limit %d: "
                        "IPv6 VIPs become permanent (each IPv6 change costs the kernel a walk of every IPv6 "
                        "address); IPv4 ones keep lifetimes. A dead agent's IPv6 VIPs stay on this node "
                        "until it restarts; a live agent still removes them when it loses a Lease",
                        count, limit)
        self._renewals.set()

    async def _lifetime_loop(self) -> None:
        """Extend the lifetimes after renewals; renewals of many Leases coalesce into one round."""
        spacing = self.cfg.election.timings.retry_period / 4
        while True:
            await self._renewals.wait()
            self._renewals.clear()
            try:
                await self.extend_lifetimes()
            except Exception:  # the next renewal retries; the kernel fences meanwhile if it must
                log.exception("kernel lifetime extension failed")
            await asyncio.sleep(spacing)  # pacing, not synchronisation: bounds rounds per second

    async def extend_lifetimes(self) -> int:
        """One round: every held VIP of ours whose unit we hold gets the lifetime its last renewal allows;
        returns how many were extended. Under the pass lock: an extension re-creates a missing address,
        so it must never race a removal.

        It runs after every renewal, and every VIP of a Lease shares that Lease's renewal: the rows are
        grouped by their renewal instant, and each group's lifetime and checks are computed once (per
        row, they were 38 % of the Lease holder's main-thread Python at 100 Services; docs/performance.md)."""
        async with self._lock:
            snap = self.snap
            if snap is None or self._stopping or not self.lifetimes:
                return 0
            self._judge_ipv6_lifetimes(self.held)
            groups = self._renewal_groups(snap)
            if not groups:
                return 0
            t = self.cfg.election.timings
            now = time.monotonic()
            expires = self.vips.expires
            # Above the IPv6 limit: one last rewrite of each IPv6 VIP that may still carry a lifetime.
            permanent: dict[Row, float] = {}
            if not self.ipv6_lifetimes:
                for s, rows in list(groups.items()):
                    if may_extend(t, s, now):
                        permanent.update(
                            (r, s) for r in rows if r.address.version == 6 and expires.get(r) != math.inf
                        )
                    groups[s] = [r for r in rows if r.address.version != 6]
            due_rows: dict[float, list[Row]] = {}
            for s, rows in groups.items():
                if not may_extend(t, s, now):
                    continue
                new, period = lifetime(t, s, now), t.liveness_period
                keep = [r for r in rows if due(expires.get(r), now, new, period)]
                if keep:
                    due_rows[s] = keep
            if not due_rows and not permanent:
                return 0
            done = sum(map(len, due_rows.values())) + len(permanent)
            for _attempt in range(3):
                now = time.monotonic()
                # A renewal past this node's own fencing deadline extends nothing (a stalled loop woke up).
                due_rows = {s: rows for s, rows in due_rows.items() if may_extend(t, s, now)}
                permanent = {r: s for r, s in permanent.items() if may_extend(t, s, now)}
                if not due_rows and not permanent:
                    break
                at = expected_stamp(t, now, self._round_took)
                plan: dict[float, Lifetime] = {s: lifetime(t, s, at) for s in due_rows}
                seconds: dict[Row, int | None] = {
                    r: plan[s].seconds for s, rows in due_rows.items() for r in rows
                }
                seconds.update(dict.fromkeys(permanent))
                # Checked again next to each netlink send: a process stopped between here and there (the
                # chaos soak's SIGSTOP) must not re-create addresses after its fencing deadline.
                not_after = min([*due_rows, *permanent.values()]) + t.renew_deadline
                permanent = {}  # sent once: a retry is about lifetimes that came out too long
                stamped = await asyncio.to_thread(self.vips.extend, seconds, not_after)
                self._round_took = stamped - now
                late = {
                    r for s, lt in plan.items() if lt.guaranteed and not still_safe(t, s, lt.seconds, stamped)
                    for r in due_rows[s]
                }
                if not late:
                    break
                log.warning("kernel lifetimes: an extension round took %.3f s, longer than the lifetime's "
                            "rounding allows for %d VIPs: again, on their latest renewal",
                            stamped - now, len(late))
                # Renewals go on while a slow round runs (1.7-1.9 s over 2400 VIPs under load): the retry
                # rests on the latest. On the round's own renewal it was often past that renewal's
                # deadline by then, so it sent nothing and the too-long lifetimes it was to shorten stayed.
                due_rows = {}
                for s, rows in self._renewal_groups(snap).items():
                    if keep := [r for r in rows if r in late]:
                        due_rows[s] = keep
            self.extensions += 1
            return done

    def _renewal_groups(self, snap: Snapshot) -> dict[float, list[Row]]:
        """The held VIPs of ours whose unit this node holds, by the instant of their unit's last accepted
        renewal (one lookup per unit: a Lease's units share it)."""
        by_addr = snap.by_address
        ours = self.vips.ours
        renewed_at = self.leadership.renewed_at
        per_unit: dict[str, float | None] = {}
        groups: dict[float, list[Row]] = {}
        for r in self.held:
            p = by_addr.get(r.address)
            if p is None or r not in ours:
                continue
            unit = p.unit
            if unit in per_unit:
                s = per_unit[unit]
            else:
                s = per_unit[unit] = renewed_at(unit)
            if s is not None:
                groups.setdefault(s, []).append(r)
        return groups

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
        wanted = dict.fromkeys(IPFamily, 0)
        for p in snap.plans:
            wanted[p.family] += 1
        announced = dict.fromkeys(IPFamily, 0)
        for a in held:
            announced[IPFamily.of(a)] += 1
        for fam in IPFamily:
            self.metrics.announced_vips.labels(fam.value).set(announced[fam])
            self.metrics.service_vips.labels(fam.value).set(wanted[fam])

    def _publish(self, snap: Snapshot) -> None:
        """Hand the VIPs now on this node's interfaces to the report Lease (written by its own task).

        Its work follows what changed: one lookup per held row, and a new list only when an entry differs
        (rebuilding and sorting 10000 entries took 30-45 ms a pass)."""
        if self.presence is None:
            return
        held, index = self.held, snap.by_address
        old = self._held_vips
        new: dict[Row, HeldVip] = {}
        changed = len(old) != len(held)
        now = ""
        for r in held:
            plan = index.get(r.address)
            unit = plan.unit if plan is not None else ""
            lease = self.leadership.lease_of(unit) if unit else ""
            v = old.get(r)
            if v is None or v.unit != unit or v.lease != lease:
                now = now or _rfc3339()
                v = HeldVip(r.address, r.interface, unit, lease, v.since if v is not None else now)
                changed = True
            new[r] = v
        self._held_vips = new
        if changed:
            self.presence.update(tuple(new.values()))

    # -- reports -----------------------------------------------------------------------------------------

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
        self.reporter.problems(await self.bgp.sync(held, snap.plans, annotations))

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
            if self.nodes is not None and not self.nodes.synced:
                continue  # placement needs every Node: an excluded node must not win meanwhile
            try:
                await self.converge()
            except Exception:  # a failed pass must not end the agent: the next one retries
                log.exception("reconcile pass failed")
                self.metrics.reconcile_errors.labels("", "", "pass").inc()
            self.ready.set()

    async def start(self) -> None:
        """Start the election and the watches, adopt what the kernel holds, then start loop and reporting."""
        if self.bgp is not None:
            await self.bgp.start()
        # The election first: its first Lease round trips (a new TLS connection, a read, a write) overlap
        # the kernel reads, packet-rule removal and lists below instead of following them (issue 21, a
        # restart of every agent). Leading changes nothing until the first pass names the units.
        spawn(self.guard, "election", self.leadership.run())
        if self.api is not None:
            # The lists next, for the same reason: the kernel reads below overlap them. Nothing is
            # decided before the loop starts at the end, and the loop waits until every list is in.
            await self.facts.discover_service_cidrs()  # its reflector joins the lists
            self.sources = Sources(
                self.api, self.world, self.cfg.namespace, self.cfg.use_legacy_endpoints, self.touched,
                self.metrics, self._broken, written_back=self.written_back,
            )
            self.nodes = NodeSource(
                self.api, self.nodes_changed, self._broken,
                on_restart=lambda cause: self.metrics.watch_restarts.labels("nodes", cause).inc(),
                namespace=self.cfg.election.namespace, also=self.facts.node_handlers,
            )
            # No pass before the policy's facts (the shared Node watch among them) are listed too: an
            # address must not flash on a node.
            self.sources.reflectors.extend([*self.facts.reflectors, self.nodes.reflector])
            for r in [*self.sources.reflectors, self.nodes.lease_reflector]:
                spawn(self.guard, f"watch {r.name}", r.run())
        await asyncio.to_thread(self.vips.detect_ownership, f"node {self.me}'s Service VIPs", self.lifetimes)
        if not self.vips.ownership.proto_kept:
            self._ipv6_limit = None  # without IFA_PROTO a permanent address would not count as ours
        # A previous run's packet rules name VIPs this run may not hold: start from none.
        await self.packets.remove()
        self.vips.adopt(await self.kernel_rows())  # lifetimes unknown: extended in the first round once held
        # BGP: a crashed agent's routes already left with its session, so keeping its Cluster VIPs while
        # the election settles would only risk a second announcer; Local VIPs need no election anyway.
        self._startup_keep = self.held if self.bgp is None else frozenset()
        self._startup_until = time.monotonic() + 2 * self.cfg.election.timings.lease_duration
        if self.held:
            log.info("found %d VIPs of a previous run: kept while the election settles", len(self.held))
        if self.presence is not None:
            spawn(self.guard, "presence", self.presence.run())
        await self.facts.refresh_host()
        spawn(self.guard, "address policy: host facts", self.facts.host_loop())
        if self.api is not None and self.nodes is not None:
            if self.bgp is not None and self.bgp.settings.annotation_prefix:
                spawn(self.guard, "bgp from node annotations", follow_bgp_annotations(
                    self.bgp.settings, self.me, self._own_annotations, self._node_changed, self._apply_bgp,
                ))
            spawn(self.guard, "publish network",
                  publish_loop(self.api, self.me, self.nodes, self.interfaces, self.ns))
            spawn(self.guard, "report", self.reporter.loop())
            spawn(self.guard, "events", self.reporter.events_loop())
            spawn(self.guard, "egress-discovery", self.discovery_loop())
        spawn(self.guard, "packet-rules", self.rules_loop())
        spawn(self.guard, "reconcile", self.loop())
        if self.lifetimes:
            self._lifetime_regime()
            spawn(self.guard, "lifetimes", self._lifetime_loop())

    async def shutdown(self) -> None:
        """Staged: withdraw every VIP, release the Leases, stop tasks. From the first stage on, nothing a
        peer releases meanwhile is taken (`stop_taking`): when every agent stops at once, their units
        otherwise ended on the last agent to stop."""
        self._stopping = True
        self.leadership.stop_taking()
        try:
            await self.converge(reason="shutdown")
        except Exception:
            log.exception("withdraw on shutdown failed")
        await self.packets.remove()
        await self.leadership.release()
        if self.presence is not None:
            await self.presence.release()
        if self.bgp is not None:
            await self.bgp.close()
        await self.guard.close()
        await self.vips.close()
        if self.held:
            log.warning("still holding %s after shutdown", sorted(str(r.address) for r in self.held))


def _rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
