"""Scalable election: one liveness Lease per node plus per-unit claims written only on change.

Steady-state API writes are one liveness renewal per node per retry period, whatever the number of
units. Who holds a unit is decided by `rendezvous.choose_holder` (sticky, spread); who MAY announce is
decided by compare-and-swap on the unit's claim Lease, so two nodes with different views of the
cluster can never both win. docs/election.md explains why the two guarantees hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from kubevip.election.assign import Step, UnitFacts, assign
from kubevip.election.cache import LeaseCache
from kubevip.election.leaseapi import TRANSIENT, Conflict, LeaseApi
from kubevip.election.liveness import (
    ROLE_LABEL,
    ROLE_NODE,
    Liveness,
    expire_peers,
)
from kubevip.election.offloop import Bridge, RenewalThread, stall_bound
from kubevip.election.record import LeaseRecord, lease_body, released_body
from kubevip.election.rendezvous import choose_holder
from kubevip.election.timings import Timings
from kubevip.kube.rest import RestClient
from kubevip.listing import brief
from kubevip.tasks import bounded

log = logging.getLogger(__name__)

ROLE_CLAIM = "claim"
UNIT_ANNOTATION = "kubevip.io/unit"
EPOCH_ANNOTATION = "kubevip.io/epoch"

# Claims in flight at once: more only queue at a busy API server, where they delay the node's liveness
# renewals past their deadline. That held even with the renewals on a thread and a connection of their
# own: on a loaded 2-core lab, 32 shortened a restart of 1000 dual-stack Services (median 16.9 s against
# 20.8 s, eight alternated runs each) but late renewals stopped more units (19264 against 12334 over
# the runs), and 64 the most (docs/performance.md, session 24).
CLAIM_CONCURRENCY = 8
PREFERENCE_HOLD = 4  # lease durations a preferred node stays live before it takes a unit back
GC_AFTER = 4  # lease durations an unwanted, unheld claim stays before it is deleted
# Lease durations a starting node leaves a unit to its previous holder while that holder is not live (in
# a restart of every agent the peers come up within moments), counted from when it first had its units to
# judge (after the lists: seconds at 5000 Services); also how long a previous holder that is back gets to
# re-claim its units before peers race for them.
RESTART_GRACE = 2
# Lease durations, counted from when this node first saw a unit orphaned, that it leaves the unit to its
# pick while the pick is busy claiming (claims of its current epoch keep arriving): after a restart of
# every agent each node re-claims hundreds of units, CLAIM_CONCURRENCY at a time, for longer than the
# restart grace, and peers racing for the ones it had not reached yet moved 278-417 of 1000 Services
# (bench/agent.py, session 27); the losing compare-and-swaps and the moves' write-backs loaded the API
# server the claims wait on. A pick that stops claiming for a lease duration is raced; one that claims on
# past this is waited for until it has sent its backlog's worth of claims (`_winner_busy`).
BUSY_PATIENCE = 10
UnitCallback = Callable[[str], Awaitable[None]]
UnitObserver = Callable[[str, bool], None]


def node_lease_name(node: str) -> str:
    """Liveness Lease of `node` (hashed when the node name would make an over-long object name)."""
    name = f"kubevip-node-{node}"
    return name if len(name) <= 253 else f"kubevip-node-{_digest(node)}"


@functools.lru_cache(maxsize=16384)  # asked several times per unit and pass
def claim_lease_name(unit: str) -> str:
    """Claim Lease of a unit; the unit key itself lives in an annotation (it may hold ':' or '/')."""
    return f"kubevip-claim-{_digest(unit)}"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


@dataclass(frozen=True)
class Claim:
    """Who claimed a unit, in which liveness epoch of theirs."""

    unit: str
    holder: str | None
    epoch: int | None
    record: LeaseRecord


@functools.lru_cache(maxsize=8192)  # called per unit per pass; a record version never changes
def parse_claim(rec: LeaseRecord) -> Claim:
    raw = rec.annotations.get(EPOCH_ANNOTATION, "")
    return Claim(
        rec.annotations.get(UNIT_ANNOTATION, ""), rec.holder, int(raw) if raw.isdigit() else None, rec
    )


class ScalableElector:
    """Per-unit leadership for many units at the cost of one Lease renewal per node.

    Give it the units and their eligible nodes with `set_units`; it calls `on_started(unit)` before this
    node may announce a unit and `on_stopped(unit)` when it must stop (completing before returning).
    """

    def __init__(
        self,
        api_client: RestClient | LeaseApi,
        namespace: str,
        node: str,
        timings: Timings,
        on_started: UnitCallback,
        on_stopped: UnitCallback,
        *,
        observer: UnitObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_renewed: Callable[[], None] | None = None,
        renewal_thread: bool = False,
    ) -> None:
        self.api = api_client if isinstance(api_client, LeaseApi) else LeaseApi(api_client)
        self.namespace = namespace
        self.node = node
        self.timings = timings.validate()
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._observer = observer
        self._clock = clock
        self.cache = LeaseCache(
            self.api,
            namespace,
            ROLE_LABEL,
            timings.retry_period,
            idle_timeout=max(10.0, 4 * timings.lease_duration),
            clock=clock,
            version_matters=lambda rec: rec.labels.get(ROLE_LABEL) == ROLE_CLAIM,
        )
        self._units: dict[str, frozenset[str] | None] = {}
        # unit -> preferred nodes (kube-vip.io/preferred-nodes); node -> (epoch, first seen live in it).
        self._preferred: dict[str, tuple[str, ...]] = {}
        self._live_seen: dict[str, tuple[int, float]] = {}
        self._unit_of_claim: dict[str, str] = {}  # claim Lease name -> unit, for the units wanted here
        # Incremental passes: only units whose inputs changed (their claim, their eligibility), and
        # units still waiting for a holder, are looked at again; a change of any node's liveness state
        # (holder or epoch) or of our own, and a timer, make a pass look at every unit.
        self._dirty_units: set[str] = set()
        self._judging_since = 0.0  # when the units were first known (RESTART_GRACE counts from here)
        self._draining = False  # stop_taking(): no claims any more
        # Units that have no holder and that some node should claim -> that node (their pick), as of this
        # node's last look at them; looked at again by every pass.
        self._unsettled: dict[str, str] = {}
        self._node_view: tuple[object, ...] | None = None
        self._held: set[str] = set()
        self.held_changes = 0
        self._units_known = False  # no garbage collection before the first set_units
        self._orphan_since: dict[str, float] = {}
        # node -> when a claim of its, written in its current liveness epoch, last arrived (BUSY_PATIENCE),
        # and how many such claims arrived in all.
        self._claiming_at: dict[str, float] = {}
        self._claims_seen: dict[str, int] = {}
        # Unit whose BUSY_PATIENCE ran out while its pick still claimed -> (that pick, the pick's claims
        # seen then, the pick's backlog then): the race waits on until the pick has claimed that many.
        self._busy_mark: dict[str, tuple[str, int, int]] = {}
        self._backlog: Counter[str] | None = None  # picks' backlogs, counted once per pass when needed
        # Claim versions written by this node in its current liveness incarnation: only these count.
        self._my_claims: dict[str, LeaseRecord] = {}
        # renewal_thread: the liveness renewals run on a thread of their own, with their own connection
        # (election.offloop): a busy agent loop no longer fences every unit of the node.
        self._bridge: Bridge | None = None
        renew_api = self.api
        if renewal_thread:
            self._bridge = Bridge(stall_bound(self.timings))
            renew_api = LeaseApi(RestClient(self.api.client.access), self.api.request_timeout)
        self.liveness = Liveness(
            renew_api,
            namespace,
            node,
            node_lease_name(node),
            self.timings,
            self.cache,
            fence=self._fence,
            on_epoch=self._my_claims.clear,
            on_renewed=on_renewed,
            clock=clock,
            bridge=self._bridge,
            release_api=self.api,
        )
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.transitions = 0
        self._live_view: tuple[tuple[int, bool], frozenset[str]] | None = None

    # -- public view ---------------------------------------------------------------------------

    @property
    def lease_name(self) -> str:
        return node_lease_name(self.node)

    @property
    def is_live(self) -> bool:
        """True while this node's own liveness Lease is inside its renew deadline."""
        return self.liveness.is_live

    @property
    def _epoch(self) -> int | None:
        return self.liveness.epoch

    @property
    def held(self) -> frozenset[str]:
        """Units this node announces now."""
        return frozenset(self._held)

    def holds(self, unit: str) -> bool:
        return unit in self._held and self.is_live

    @property
    def renewed_at(self) -> float | None:
        """When the last accepted liveness write was sent, while live: no peer may take a unit of ours
        before `lease_duration` after it (claims are stealable only once our liveness lapsed)."""
        return self.liveness.renewed_at

    def set_units(self, units: Mapping[str, Collection[str] | None]) -> None:
        """Desired units -> nodes eligible to hold each (None: every live node); a change triggers a pass
        over the units that changed (the agent calls this on every one of its passes)."""
        new = {u: None if e is None else frozenset(e) for u, e in units.items()}
        if self._units_known and new == self._units:
            return
        old = self._units
        self._dirty_units |= {
            u for u in new.keys() | old.keys() if u not in old or u not in new or old[u] != new[u]
        }
        self._units = new
        self._unit_of_claim = {claim_lease_name(u): u for u in new}
        if not self._units_known:
            self._judging_since = self._clock()
        self._units_known = True
        self.cache.changed.set()

    def set_preferred(self, preferred: Mapping[str, Sequence[str]]) -> None:
        """unit -> nodes preferred to hold it, most preferred first (choose_holder); absent: none."""
        new = {u: tuple(p) for u, p in preferred.items() if p}
        if new == self._preferred:
            return
        old = self._preferred
        self._dirty_units |= {u for u in new.keys() | old.keys() if old.get(u) != new.get(u)}
        self._preferred = new
        self.cache.changed.set()

    def settled_nodes(self, live: Collection[str]) -> frozenset[str]:
        """Live nodes seen live in their current epoch for PREFERENCE_HOLD lease durations (on our
        clock; ourselves since we became live): only those win a unit back by preference."""
        now = self._clock()
        hold = PREFERENCE_HOLD * self.timings.lease_duration
        seen: dict[str, tuple[int, float]] = {}
        out: set[str] = set()
        for node in live:
            if node == self.node:
                since = self.liveness.live_since
            else:
                rec = self.cache.records.get(node_lease_name(node))
                epoch = rec.transitions if rec is not None else -1
                prev = self._live_seen.get(node)
                since = prev[1] if prev is not None and prev[0] == epoch else now
                seen[node] = (epoch, since)
            if now - since >= hold:
                out.add(node)
        self._live_seen = seen
        return frozenset(out)

    def live_nodes(self) -> frozenset[str]:
        """Nodes whose liveness Lease they hold, as this node sees them (itself only while live)."""
        nodes = set()
        for rec in self.cache.records.values():
            if rec.labels.get(ROLE_LABEL) == ROLE_NODE and rec.holder:
                nodes.add(rec.holder)
        nodes.discard(self.node)
        if self.is_live:
            nodes.add(self.node)
        return frozenset(nodes)

    def current_holder(self, unit: str) -> str | None:
        """The claim holder of `unit` if its claim is valid (holder live in the epoch it claimed in)."""
        rec = self.cache.records.get(claim_lease_name(unit))
        if rec is None:
            return None
        claim = parse_claim(rec)
        if claim.holder is None:
            return None
        if claim.holder == self.node:
            # Ours only if this incarnation wrote exactly this version (a restart must claim again).
            mine = self._my_claims.get(unit)
            ok = mine is not None and mine.resource_version == rec.resource_version and self.is_live
            return self.node if ok else None
        live = self.cache.records.get(node_lease_name(claim.holder))
        if live is None or live.holder != claim.holder or live.transitions != claim.epoch:
            return None
        return claim.holder

    def _eligible(self, unit: str) -> bool:
        e = self._units.get(unit)
        return unit in self._units and (e is None or self.node in e)

    def holder_of(self, unit: str, eligible: Collection[str] | None = None) -> str | None:
        """Who holds `unit` now, else who should take it next (same answer on every node with this view)."""
        return choose_holder(unit, self.current_holder(unit), self.live_nodes(), eligible)

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep this node's liveness, watch peers and claims, and converge held units; spawn it once."""
        self._task = asyncio.current_task()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.cache.run(), name=f"election-cache:{self.node}")
                tg.create_task(self._liveness_loop(), name=f"election-liveness:{self.node}")
                tg.create_task(self._assign_loop(), name=f"election-assign:{self.node}")
        finally:
            await self._fence("elector stopped")

    def stop_taking(self) -> None:
        """The agent is shutting down: keep what it holds until `release`, but claim nothing from here
        on. When every agent stops at once, the first to release handed its units to the others, which
        were still withdrawing their VIPs; the claims of all ended on the last agent to stop, and after
        the restart that agent took them all back (bench/agent.py: 100-300 of 1000 Services moved)."""
        self._draining = True

    async def release(self) -> None:
        """Withdraw every unit first, then release the liveness Lease so peers take over at once."""
        self._closing = True
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._fence("released")
        await self.liveness.release()

    async def _liveness_loop(self) -> None:
        if self._bridge is not None:
            thread = RenewalThread(
                f"liveness:{self.node}", self._bridge, self._liveness_steps, self.liveness.api.client.close
            )
            await thread.run()
        else:
            await self._liveness_steps()

    async def _liveness_steps(self) -> None:
        while not self._closing:
            await self.liveness.step(lambda: bool(self._held))

    # -- assignment ----------------------------------------------------------------------------

    async def _assign_loop(self) -> None:
        t = self.timings
        wake = self._clock()
        full_pass_at = 0.0
        while not self._closing:
            # Wake on any change, at the next peer expiry instant, or after one retry period.
            with contextlib.suppress(TimeoutError):
                await bounded(self.cache.changed.wait(), max(0.0, wake - self._clock()))
            dirty = self.cache.changed.is_set()
            self.cache.changed.clear()
            wake = self._clock() + t.retry_period
            if not self.is_live:
                if self._held:
                    await self._fence("not live")
                continue
            if not self.cache.synced:
                continue
            try:
                since = self.liveness.live_since
                wake = min(
                    wake,
                    await expire_peers(
                        self.api, self.cache, self.namespace, self.node, t, since, self._clock()
                    ),
                )
                # A pass over every unit costs CPU in proportion to the units: look at every unit once
                # per lease duration (the timers); otherwise only at what changed or still waits.
                full = self._clock() >= full_pass_at
                if full:
                    full_pass_at = self._clock() + t.lease_duration
                if dirty or self._unsettled or full:
                    await self._converge(full)
            except TRANSIENT as exc:
                log.debug("node %s: assignment pass failed: %r", self.node, exc)

    def _node_state(self) -> tuple[object, ...]:
        """Everything besides a unit's own claim that decides it: who is live in which epoch."""
        nodes = sorted(
            (name, rec.holder or "", rec.transitions)
            for name, rec in self.cache.records.items()
            if rec.labels.get(ROLE_LABEL) == ROLE_NODE
        )
        return (self._epoch, self.is_live, tuple(nodes))

    def _pass_units(self, full: bool) -> tuple[list[str], bool]:
        """The units this pass looks at, and whether that is every unit."""
        changed = self.cache.take_dirty()
        self._note_claiming(changed)
        view = self._node_state()
        if view != self._node_view:
            self._node_view = view
            full = True
        dirty, self._dirty_units = self._dirty_units, set()
        if full:
            return list(self._units), True
        dirty.update(self._unsettled)
        dirty.update(u for name in changed if (u := self._unit_of_claim.get(name)) is not None)
        return sorted(dirty), False

    async def _converge(self, full: bool = True) -> None:
        """One pass over the units that need a look (`full`: every unit)."""
        async with self._lock:
            live = self.live_nodes()
            units = self._units
            settled = self.settled_nodes(live) if self._preferred else None
            starting = self._starting()  # once per pass: the grace is judged again by the next pass
            todo, full = self._pass_units(full)
            self._backlog = None
            if full:
                log.debug("node %s: pass over all %d units, %d nodes live", self.node, len(todo), len(live))
            # Each claim is a compare-and-swap on the version judged stealable HERE: by the time a queued
            # claim is sent the watch may have brought a peer's valid claim, which it must not overwrite.
            to_claim: list[tuple[str, LeaseRecord | None, bool]] = []
            for unit in sorted(u for u in self._held if u not in units):
                await self._give_up(unit, "unit removed", delete=True)
            for unit in todo:
                if unit not in units:
                    self._settled(unit)
                    continue
                eligible = units[unit]
                if not self.is_live:
                    self._dirty_units.update(todo)  # look again once live
                    return
                self._adopt_claim(unit)
                current = self.current_holder(unit)
                want, previous = self._want(unit, current, live, eligible, settled, starting)
                if current is not None:
                    self._settled(unit)
                elif want is not None:
                    self._unsettled[unit] = want
                else:
                    self._unsettled.pop(unit, None)
                # The facts are gathered in the order the rule reads them: the orphan timer starts and
                # the absence clock of a missing liveness Lease runs only where the rule asks for them.
                orphan = current is None
                mine_to_take = eligible is None or self.node in eligible
                # A unit left to a previous holder that is not live yet (`_starting`) is not raced for
                # either: the wait ends with the grace, then the rendezvous decides.
                waiting = want is not None and want not in live
                # A previous holder back after a restart claims all its units again, 8 at a time: 700
                # of them took it 10 s on the busy lab, and peers racing for them after one lease
                # duration moved 100-300 units (bench/agent.py). It gets the restart grace instead.
                patience = RESTART_GRACE if orphan and want == previous else 1.0
                too_slow = (orphan and want != self.node and not waiting
                            and self._winner_too_slow(unit, patience) and not self._winner_busy(want, unit))
                stealable = (
                    orphan and (want == self.node or (too_slow and mine_to_take)) and self._stealable(unit)
                )
                facts = UnitFacts(
                    self.node, current, want, unit in self._held, too_slow, stealable,
                    orphan and self._stale_own_claim(unit), mine_to_take,
                )
                for step in assign(facts):
                    if step is Step.START:
                        await self._start(unit)
                    elif step is Step.GIVE_UP:
                        preferred = want is not None and self._eligible(unit)
                        why = "preferred node" if preferred else "no longer eligible"
                        await self._give_up(unit, f"{why}; next: {want or 'nobody'}")
                    elif step is Step.STOP:
                        await self._stop(unit, "claim lost")
                    elif step is Step.CLAIM:
                        if self._draining:
                            continue  # shutting down: the unit is for the peers that stay
                        judged = self.cache.records.get(claim_lease_name(unit))
                        to_claim.append((unit, judged, want == self.node))
                    else:
                        await self._delete_claim(unit)
            if to_claim and not self._may_claim():
                # Our liveness is about to lapse (a late renewal): a unit claimed now would be started
                # and fenced again within a fraction of a second, a flap for its clients (bench/chaos.py
                # saw claims ~0.2 s before the fencing). The units stay unsettled: the next pass, after
                # a renewal, claims them.
                log.debug("node %s: %d claims wait for a liveness renewal", self.node, len(to_claim))
                to_claim = []
            # Claims are independent compare-and-swaps: send them together, so a node taking over
            # many units after a failure needs about one round trip, not one per unit.
            sem = asyncio.Semaphore(CLAIM_CONCURRENCY)

            epoch = self._epoch

            async def claim(unit: str, judged: LeaseRecord | None, ours: bool) -> str:
                async with sem:
                    if not self._still_to_claim(unit, judged, ours, settled):
                        return "no longer ours"
                    return "won" if await self._claim(unit, judged, epoch) else "lost to a peer"

            results = await asyncio.gather(*(claim(*c) for c in to_claim), return_exceptions=True)
            outcomes: dict[str, int] = {}
            for (unit, _, _), res in zip(to_claim, results, strict=True):
                if isinstance(res, BaseException) and not isinstance(res, TRANSIENT):
                    raise res
                if isinstance(res, BaseException):
                    log.debug("node %s: claim of %s failed: %r", self.node, unit, res)
                    res = "failed"
                outcomes[res] = outcomes.get(res, 0) + 1
            if to_claim:
                log.debug("node %s: %d claims: %s", self.node, len(to_claim), outcomes)
            if full and self._units_known:
                await self._collect_garbage(live, units)

    def _still_to_claim(
        self, unit: str, judged: LeaseRecord | None, ours: bool, settled: frozenset[str] | None
    ) -> bool:
        """Whether a claim that waited for its turn (CLAIM_CONCURRENCY) still stands as judged: the unit
        still wanted, our liveness still lasting, the claim still at the judged version (else the
        compare-and-swap fails anyway: a write saved), and a unit judged ours by the rendezvous still
        ours among the nodes live now. After a restart of every agent the first node up judges every
        unit its own, and the others come up while its claims queue: without this it went on claiming
        their units for tens of seconds, and they lost their claims to it. Not sending a claim is
        always safe; the unit stays unsettled and the next pass judges it again."""
        if unit not in self._units or not self.is_live or not self._may_claim() or self._draining:
            return False
        now = self.cache.records.get(claim_lease_name(unit))
        if (now.resource_version if now else None) != (judged.resource_version if judged else None):
            return False
        if not ours:
            return True  # a race for an orphan its winner left: judged on other grounds
        want, _ = self._want(unit, self.current_holder(unit), self._live_now(), self._units[unit], settled,
                             self._starting())
        return want == self.node

    def _want(self, unit: str, current: str | None, live: frozenset[str], eligible: frozenset[str] | None,
              settled: frozenset[str] | None, starting: bool) -> tuple[str | None, str | None]:
        """choose_holder() with what this node knows (the previous holder an invalid claim still names,
        and whether this node is still `starting`), and that previous holder."""
        previous = self._previous_holder(unit) if current is None else None
        want = choose_holder(unit, current, live, eligible, self._preferred.get(unit, ()), settled,
                             previous, starting)
        return want, previous

    def _starting(self) -> bool:
        """Within RESTART_GRACE lease durations of becoming live in this epoch, or of first having the
        units to judge, whichever came later."""
        since = max(self.liveness.live_since, self._judging_since)
        return self.is_live and self._clock() - since < RESTART_GRACE * self.timings.lease_duration

    def _previous_holder(self, unit: str) -> str | None:
        """The node the unit's claim names, valid or not (a claim of an earlier epoch: its holder
        restarted, was fenced, or released)."""
        rec = self.cache.records.get(claim_lease_name(unit))
        return parse_claim(rec).holder if rec is not None else None

    def _live_now(self) -> frozenset[str]:
        """live_nodes(), recomputed only when a liveness Lease changed or our own liveness did (it walks
        every record, claims included: per queued claim that was quadratic)."""
        key = (self.cache.others_version, self.is_live)
        if self._live_view is None or self._live_view[0] != key:
            self._live_view = (key, self.live_nodes())
        return self._live_view[1]

    def _may_claim(self) -> bool:
        """Whether our liveness lasts at least one more retry period (the time a claim and its start
        take) before our own fencing deadline."""
        return self.liveness.live_until - self._clock() >= self.timings.retry_period

    def _adopt_claim(self, unit: str) -> None:
        """A claim in our name and current epoch that we do not count as ours is a claim write of ours
        whose answer we never got (timed out, yet stored): adopt it instead of clearing and re-claiming.
        """
        if unit in self._my_claims or self._epoch is None:
            return
        rec = self.cache.records.get(claim_lease_name(unit))
        if rec is None:
            return
        claim = parse_claim(rec)
        if claim.holder == self.node and claim.epoch == self._epoch:
            self._my_claims[unit] = rec

    async def _collect_garbage(self, live: frozenset[str], units: Mapping[str, object]) -> None:
        """Delete claim Leases of units no node here wants, once nobody can hold them (else every
        Service ever created would leave a Lease behind). Only the rendezvous pick among live nodes does
        it, and only after the claim sat unchanged for GC_AFTER lease durations.
        """
        now = self._clock()
        for name, rec in list(self.cache.records.items()):
            if rec.labels.get(ROLE_LABEL) != ROLE_CLAIM:
                continue
            claim = parse_claim(rec)
            if not claim.unit or claim.unit in units or claim.unit in self._held:
                continue
            seen = self.cache.seen.get(name)
            if seen is None or now - seen.first_seen < GC_AFTER * self.timings.lease_duration:
                continue
            if claim.holder not in (None, self.node) and not self._stealable(claim.unit):
                continue  # a live peer holds it: its own view says the unit still exists
            if choose_holder(claim.unit, None, live, None) != self.node:
                continue
            await self._remove_claim(rec)

    async def _remove_claim(self, rec: LeaseRecord) -> None:
        """Delete a claim, guarded by its resourceVersion: a claim written meanwhile survives."""
        try:
            await bounded(
                self.api.delete(self.namespace, rec.name, rec.resource_version), self.timings.renew_deadline
            )
        except Conflict:
            return
        log.info("node %s: removed claim %s of %s", self.node, rec.name, parse_claim(rec).unit)
        self.cache.drop(rec.name)

    def _winner_too_slow(self, unit: str, leases: float = 1.0) -> bool:
        """An orphan the rendezvous winner has not claimed within `leases` lease durations (winner
        overloaded or its view lags): any live node may then race for it; the compare-and-swap keeps it
        single.
        """
        since = self._orphan_since.setdefault(unit, self._clock())
        return self._clock() - since >= leases * self.timings.lease_duration

    def _note_claiming(self, names: Collection[str]) -> None:
        """Record when each peer was last seen claiming: a changed claim in its name, written in the
        liveness epoch it is live in now (a claim of an earlier epoch, as listed after a restart, is not
        work in progress)."""
        now = self._clock()
        for name in names:
            rec = self.cache.records.get(name)
            if rec is None or rec.holder is None or rec.holder == self.node \
                    or rec.labels.get(ROLE_LABEL) != ROLE_CLAIM:
                continue
            unit = parse_claim(rec).unit
            if unit and self.current_holder(unit) == rec.holder:  # valid: written in its live epoch
                self._claiming_at[rec.holder] = now
                self._claims_seen[rec.holder] = self._claims_seen.get(rec.holder, 0) + 1

    def _settled(self, unit: str) -> None:
        """`unit` has a holder (or is gone): its orphan bookkeeping ends."""
        self._unsettled.pop(unit, None)
        self._orphan_since.pop(unit, None)
        self._busy_mark.pop(unit, None)

    def _winner_busy(self, winner: str | None, unit: str) -> bool:
        """Whether `winner` was seen claiming within the last lease duration and is not done yet: its
        claims are queued behind the others it is sending, not forgotten, so the orphan race waits (the
        compare-and-swaps racing it would mostly lose, and each one won moves a unit).

        Not done: `unit` has been an orphan for less than BUSY_PATIENCE lease durations, or, once that
        ran out, the winner has not yet sent as many claims since as it had units to claim then (its
        backlog: the orphans this node judges it should claim). At 5000 Services a node back from a
        restart re-claims ~3300 units for ~100 s at kube-vip's timings, twice BUSY_PATIENCE, and the
        race then moved 171 VIPs (bench/agent.py, session 27). A winner whose view lacks `unit` still
        loses it one lease duration after its claims stop, and one that keeps claiming without end (a
        bug, Services created all the time) once it has claimed its backlog's worth of other units."""
        at = self._claiming_at.get(winner) if winner is not None else None
        if winner is None or at is None:
            return False
        now = self._clock()
        lease = self.timings.lease_duration
        if now - at >= lease:
            self._busy_mark.pop(unit, None)
            return False
        if now - self._orphan_since.get(unit, now) < BUSY_PATIENCE * lease:
            return True
        claimed = self._claims_seen.get(winner, 0)
        mark = self._busy_mark.get(unit)
        if mark is None or mark[0] != winner:
            if self._backlog is None:
                self._backlog = Counter(self._unsettled.values())
            mark = self._busy_mark[unit] = (winner, claimed, self._backlog.get(winner, 0))
        return claimed - mark[1] < mark[2]

    def _stealable(self, unit: str) -> bool:
        """A claim may be overwritten only when its holder is known not to be live in the claimed epoch."""
        rec = self.cache.records.get(claim_lease_name(unit))
        if rec is None:
            return True
        claim = parse_claim(rec)
        if claim.holder is None or claim.holder == self.node:
            return True
        name = node_lease_name(claim.holder)
        live = self.cache.records.get(name)
        if live is not None:
            if claim.epoch is not None and claim.epoch > live.transitions:
                # A claim from an epoch newer than the holder's liveness Lease as this node knows it: the
                # view of that Lease is behind (a delayed watch, the claim read after a lost race), not
                # the claim invalid. The election simulator found a 7 ms two-holder overlap there (seed
                # 736 of 800): a restarted holder's new claim overwritten on a stale liveness view.
                return False
            return live.holder != claim.holder or live.transitions != claim.epoch
        # Liveness Lease absent (deleted by hand?): wait a full default lease duration of absence.
        since = self.cache.absent_since.setdefault(name, self._clock())
        return self._clock() >= max(since, self.liveness.live_since) + self.timings.lease_duration

    async def _claim(self, unit: str, rec: LeaseRecord | None, epoch: int | None) -> bool:
        """Claim `unit` by compare-and-swap on `rec`, the version that was judged stealable in liveness
        `epoch`. Claims wait behind each other (CLAIM_CONCURRENCY): one whose node lost its liveness, or
        became live again in another epoch, since the judgement is not sent (the unit stays wanted; the
        next pass judges it again). It used to assert, and the assertion killed the elector's task."""
        if epoch is None or self._epoch != epoch or not self.is_live:
            return False
        name = claim_lease_name(unit)
        wall = time.time()
        body = lease_body(
            self.namespace,
            name,
            holder=self.node,
            duration=self.timings.lease_duration,
            transitions=0 if rec is None else rec.transitions + 1,
            acquire_wall=wall,
            renew_wall=wall,
            resource_version=None if rec is None else rec.resource_version,
            labels={ROLE_LABEL: ROLE_CLAIM},
            annotations={UNIT_ANNOTATION: unit, EPOCH_ANNOTATION: str(self._epoch)},
        )
        try:
            new = await bounded(
                self.api.create(body) if rec is None else self.api.replace(body), self.timings.renew_deadline,
            )
        except Conflict:
            return False  # someone else claimed first: the watch brings their claim
        self.cache.put(new)
        self._my_claims[unit] = new
        if self.is_live and unit in self._units:
            await self._start(unit)
        return True

    def _stale_own_claim(self, unit: str) -> bool:
        """A claim in our name from an earlier process of ours: peers may still think it valid."""
        rec = self.cache.records.get(claim_lease_name(unit))
        return rec is not None and rec.holder == self.node and unit not in self._my_claims

    async def _delete_claim(self, unit: str) -> None:
        rec = self.cache.records.get(claim_lease_name(unit))
        if rec is not None:
            await self._clear_claim(rec)

    async def _give_up(self, unit: str, why: str, *, delete: bool = False) -> None:
        """Withdraw, then clear our claim so the next node can take the unit at once (or delete it,
        when the unit is gone).
        """
        await self._stop(unit, why)
        rec = self._my_claims.pop(unit, None)
        if rec is not None:
            await (self._remove_claim(rec) if delete else self._clear_claim(rec))

    async def _clear_claim(self, rec: LeaseRecord) -> None:
        """Empty the claim's holder (an update, guarded by resourceVersion), keeping the Lease."""
        try:
            new = await bounded(
                self.api.replace(released_body(rec, time.time())), self.timings.renew_deadline
            )
        except Conflict:
            return
        self.cache.put(new)

    async def _start(self, unit: str) -> None:
        if unit in self._held:
            return
        self._held.add(unit)
        self.held_changes += 1
        self.transitions += 1
        self._notify(unit, True)
        try:
            await self._on_started(unit)
        except Exception:
            log.exception("node %s: on_started(%s) failed", self.node, unit)

    async def _stop(self, unit: str, why: str, *, logged: bool = False) -> None:
        if unit not in self._held:
            return
        self._held.discard(unit)
        self.held_changes += 1
        if not logged:
            log.info("node %s: stops holding %s (%s)", self.node, unit, why)
        self._notify(unit, False)
        try:
            await self._on_stopped(unit)
        except Exception:
            log.exception("node %s: on_stopped(%s) failed", self.node, unit)

    async def _fence(self, why: str) -> None:
        # All at once: withdrawing hundreds of units one after another could outlast the fencing slack.
        units = sorted(self._held)
        if units:
            log.info("node %s: stops holding %d units (%s): %s", self.node, len(units), why, brief(units))
        await asyncio.gather(*(self._stop(unit, why, logged=True) for unit in units))

    def _notify(self, unit: str, holding: bool) -> None:
        if self._observer is not None:
            try:
                self._observer(unit, holding)
            except Exception:
                log.exception("node %s: observer failed", self.node)
