"""The agent's reporter: keeps each Service's status, `kube-vip.io/vipHost` and Warning Events true,
and tells, through Normal Events aggregated per Service and reason and rate-limited per agent
(`core.events`), when the node announcing a Service starts or stops.

Level-triggered like the kernel side: after every reconcile pass the agent hands over what the pass
left (`Outcome`: the snapshot, what this node holds, its own warnings) and wakes the report loop; a
round compares what each Service should say (pure: `core.rows.service_status`, `should_write`) with
what it says, and writes only the difference. The election is read, never driven.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from kubevip.agent.bgp_wants import Problem
from kubevip.agent.leadership import Leadership
from kubevip.core import reasons
from kubevip.core.announced import (
    ANNOTATION_VIP_HOST_IPV6,
    conditions_differ,
    family_conditions,
    ipv6_host,
    with_transitions,
)
from kubevip.core.claims import VipPlan
from kubevip.core.conditions import NORMAL, STARTED, STOPPED, WARNING, Condition
from kubevip.core.egress import active_endpoints, egress_enabled
from kubevip.core.events import Aggregate, TokenBucket, is_news, reports_for
from kubevip.core.plan import ServiceDecision
from kubevip.core.rows import Changes, Row, ServiceStatus, service_status, should_write
from kubevip.core.settling import SETTLED, Settling, starting
from kubevip.core.views import IPAddress, NodeName, StatusCondition, UnitId
from kubevip.core.world import Snapshot, World
from kubevip.election.scalable import RESTART_GRACE
from kubevip.errors import describe
from kubevip.ip import text
from kubevip.kube.errors import TRANSIENT
from kubevip.kube.writers import ANNOTATION_VIP_HOST, Writer
from kubevip.metrics import Metrics
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)

WRITE_CONCURRENCY = 8
ROUND_CHUNK = 100  # Services decided between two yields to the event loop
# After a round, the reporter waits this many times as long as the round's decisions took before the
# next one (the wake-ups meanwhile are coalesced; the next round reads the latest outcome): at most a
# fifth of the event loop goes to rounds. Every pass wakes the reporter and a change of who holds what
# makes the round look at every Service: in a restart of 1000 Services in scalable mode that was ~72 full
# rounds while the claims waited for the loop; the pause took a sixth off the main thread's CPU until
# every VIP was held (session 27; cProfile, whose cost per call inflates the reporter's many small calls,
# had put 42 % of the main thread in the rounds).
ROUND_DUTY = 4.0
ROUND_PAUSE_MAX = 2.0  # seconds: a status is never kept waiting longer than this by the pause
# Errors of one API write that a later round retries.
WRITE_ERRORS: tuple[type[BaseException], ...] = TRANSIENT


# Family conditions and `kube-vip.io/vipHost-ipv6` to write along with a Service's status.
Extra = tuple[tuple[StatusCondition, ...], str | None]


@dataclass
class Reports:
    """What this node already told the API server, so a repeated condition is written once. Every table
    is per Service and is freed when the Service goes (`forget`): tenants create and delete Services."""

    # Service key -> names of the Events written for it.
    written: dict[str, set[str]] = field(default_factory=dict)
    failed_status: dict[str, float] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    # Service key -> the `reason` labels of its reconcile-error metric series (removed with it).
    metric_reasons: dict[str, set[str]] = field(default_factory=dict)
    # Services whose status this process made name this node, and whose VIPs it has not started
    # announcing since: the status (written from the election) can go out before the pass adds the
    # VIPs, and that add is still news (a Started Event), though the status already names this node.
    named: set[str] = field(default_factory=set)

    def sent(self, key: str, name: str) -> bool:
        return name in self.written.get(key, ())

    def mark(self, key: str, name: str) -> None:
        self.written.setdefault(key, set()).add(name)

    def unmark(self, key: str, name: str) -> None:
        names = self.written.get(key)
        if names is not None:
            names.discard(name)

    def forget(self, key: str) -> set[str]:
        """Drop everything about a deleted Service; returns its metric reasons (for their removal)."""
        self.written.pop(key, None)
        self.failed_status.pop(key, None)
        self.failures.pop(key, None)
        self.named.discard(key)
        return self.metric_reasons.pop(key, set())

    @property
    def events(self) -> set[str]:
        """Every Event name written (tests, introspection)."""
        return {n for names in self.written.values() for n in names}


# A round that waits for an instant may come this much later: the same instant asked for again in the
# next round (its delay computed from a clock read a moment earlier) keeps the timer instead of replacing it.
TIMER_SLACK = 0.01


@dataclass(frozen=True)
class Outcome:
    """What a reconcile pass left for the reports."""

    snap: Snapshot
    snap_version: int
    held: frozenset[Row]
    stopping: bool
    # Warnings only this node can see (a Service's interface missing here), per Service.
    node_warnings: Mapping[str, frozenset[Condition]] = field(default_factory=dict)
    # The pass ran in the agent's start-up window: the election has not settled, so "nobody holds it"
    # may only mean "not known yet". A status is then never cleared (a restart of every agent would
    # clear and rewrite every Service's status and vipHost: hundreds of writes for nothing). The first
    # such outcome starts the reporter's settling, whose end it judges by its own clock: no pass comes
    # when the window ends, so an outcome's flag may stay True long after (CI run 32: conditions
    # waited past a 60 s deadline).
    settling: bool = False
    # VIPs this node could not announce if it held them (no interface of their family: a single-stack
    # node). The status must not list an address nobody answers on; the live holdings decide which of
    # them this node holds (a round can follow an election change before the next pass).
    unplaced: frozenset[IPAddress] = frozenset()


class Reporter:
    """Writes status, vipHost and Events for one node; `writer=None` reports to the log only."""

    def __init__(
        self,
        me: str,
        writer: Writer | None,
        world: World,
        leadership: Leadership,
        metrics: Metrics,
        guard: TaskGroupGuard,
        synced: Callable[[], bool] = lambda: True,
        hold_down: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`hold_down`: how long a status must keep losing an address for want of a holder before it
        is written (the agent passes one lease duration: a unit changing hands is not a loss); it is
        also the settling's grace (core/settling.py)."""
        self.clock = clock
        self.me = me
        self.writer = writer
        self.world = world
        self.leadership = leadership
        self.metrics = metrics
        self.guard = guard
        self.synced = synced
        self.reports = Reports()
        self.outcome: Outcome | None = None
        self._wake = asyncio.Event()
        self._event_slots = asyncio.Semaphore(WRITE_CONCURRENCY)
        # Services to look at in the next round (all of them when more than their objects changed).
        self._keys: set[str] = set()
        self._reported: tuple[object, ...] | None = None
        self.hold_down = hold_down
        self._shrinking: dict[str, float] = {}  # Service -> since when its status would lose addresses
        self._unheld: dict[str, float] = {}  # Service -> since when a True condition would turn NoHolder
        # Settling after the agent's start, extended past the agent's fixed window while the election
        # makes progress (core/settling.py); measured in the addresses a round kept in statuses.
        self._settling: Settling | None = None
        self._keeping = False  # this round keeps every status (settling or stopping)
        self._held_back = 0  # addresses this round kept in statuses for want of a known holder
        self._timer: asyncio.TimerHandle | None = None  # the next round a hold-down or settling waits for
        # Normal Events not yet written, (Service, reason) -> occurrences; sent by `events_loop` through
        # one token bucket per agent, oldest first.
        self.pending: dict[tuple[str, str], Aggregate] = {}
        self.bucket = TokenBucket(at=time.monotonic())
        self._events_wake = asyncio.Event()
        self.events_written = 0

    # -- inputs --------------------------------------------------------------------------------------

    def passed(self, outcome: Outcome) -> None:
        """A reconcile pass ended: report what it left."""
        self.outcome = outcome
        self._wake.set()

    def touched(self, keys: Iterable[str]) -> None:
        """Services whose objects changed: look at them in the next round; a deleted one's tables go."""
        for k in keys:
            self._keys.add(k)
            if k not in self.world.services:
                self.forget(k)

    def forget(self, key: str) -> None:
        """A Service is gone: free its report tables and its metric series."""
        ns, _, name = key.partition("/")
        for reason in self.reports.forget(key):
            with contextlib.suppress(KeyError):
                self.metrics.reconcile_errors.remove(ns, name, reason)
        self._shrinking.pop(key, None)

    def error_metric(self, key: str, reason: str) -> None:
        """Count an error of a Service under a metric series that ends with the Service."""
        ns, _, name = key.partition("/")
        self.reports.metric_reasons.setdefault(key, set()).add(reason)
        self.metrics.reconcile_errors.labels(ns, name, reason).inc()

    def written_back(self, keys: Iterable[str]) -> None:
        """Services whose status or vipHost changed (no decision did): check what they say now."""
        self._keys.update(keys)
        self._wake.set()

    def retry_pending(self) -> None:
        """Wake a round when a status write waits for its retry (a settled pass did nothing else)."""
        if self.reports.failed_status:
            self._wake.set()

    # -- the loop ------------------------------------------------------------------------------------

    async def loop(self) -> None:
        """Keep status, vipHost and Warning Events true; level-triggered like the kernel side."""
        sem = asyncio.Semaphore(WRITE_CONCURRENCY)
        while True:
            await self._wake.wait()
            self._wake.clear()
            out = self.outcome
            if out is None or not self.synced():
                continue
            spent = await self.report(out, sem)
            if spent > 0:
                await asyncio.sleep(min(ROUND_DUTY * spent, ROUND_PAUSE_MAX))

    async def report(self, out: Outcome, sem: asyncio.Semaphore | None = None) -> float:
        """One round: decide what each Service should say and write the difference. Returns the seconds
        the decisions took (the writes' not counted)."""
        sem = sem or asyncio.Semaphore(WRITE_CONCURRENCY)
        started = time.perf_counter()
        keys = list(self.round(out))
        full = len(keys) == len(self.world.services)
        now = self.clock()
        self._held_back = 0
        jobs: list[Callable[[], Awaitable[None]]] = []
        spent = 0.0
        for i in range(0, len(keys), ROUND_CHUNK):
            if i:
                # A round over 1000 Services is ~0.1-0.6 s of decisions: let due timers (the Lease
                # renewals) run between chunks instead of after the whole round.
                spent += time.perf_counter() - started
                await asyncio.sleep(0)
                started = time.perf_counter()
            jobs.extend(self.jobs(out, keys[i:i + ROUND_CHUNK]))
        spent += time.perf_counter() - started
        if full:
            self._observe_settling(now)
        if jobs:
            # Jobs are factories: a coroutine object made now and cancelled before its turn would
            # be "never awaited".
            async def run(job: Callable[[], Awaitable[None]]) -> None:
                async with sem:
                    await job()
            await asyncio.gather(*(run(j) for j in jobs))
        return spent

    def _keeps(self, out: Outcome, now: float) -> bool:
        """Whether this round never shrinks a status for want of a known holder: while the agent shuts
        down (the status names the Service's addresses, as MetalLB's does; a peer that takes over
        rewrites vipHost, and an agent restarting finds it right), or while it settles after its start
        (core/settling.py: a fixed window, extended while the election makes progress)."""
        if out.settling and self._settling is None:
            # The fixed window outlasts the scalable election's restart grace by one lease duration
            # (election/scalable.py): units waiting for their previous holder's return are not losses.
            self._settling = starting(now, self.hold_down, fixed_leases=RESTART_GRACE + 1)
        self._wake_when_settling_may_end(now)
        return out.stopping or (self._settling or SETTLED).active(now)

    def _wake_when_settling_may_end(self, now: float) -> None:
        """A round at the instant settling's next look is due (its window's end, a grace after the last
        progress, the cap): nothing else need wake the reporter then, and that round looks at every
        Service (`round`), since only a look ends settling and the statuses it kept wait for it."""
        at = (self._settling or SETTLED).next_look()
        if at is not None:
            self._wake_in(at - now)

    def _wake_in(self, delay: float) -> None:
        """A round within `delay` seconds. One timer, at the earliest instant asked for: every round
        asks again for what it still waits on (the Services it held back are looked at again), so a
        later instant is asked for again in the round the earlier one wakes. One timer per Service
        and round piled up thousands of handles while 1000 statuses waited out their hold-down."""
        loop = asyncio.get_running_loop()
        at = loop.time() + max(delay, 0.0)
        if self._timer is not None:
            if self._timer.when() <= at + TIMER_SLACK:
                return
            self._timer.cancel()
        self._timer = loop.call_at(at, self._timer_fired)

    def _timer_fired(self) -> None:
        self._timer = None
        self._wake.set()

    def _observe_settling(self, now: float) -> None:
        """After a round over every Service: progress is fewer addresses held back than the last time.
        A look that ends settling wakes the next round at once for the statuses this one kept."""
        s = self._settling
        if s is None or s.over:
            return
        self._settling = s.observe(now, self._held_back)
        if self._settling.over:
            self._wake.set()
        self._wake_when_settling_may_end(now)

    def round(self, out: Outcome) -> Iterable[str]:
        """The Services to look at: all when anything but their own objects changed (the snapshot, what
        this node holds, who leads what), a write waits for its retry or settling's next look is due,
        else those whose objects did."""
        inputs = (
            out.snap_version, out.held, out.stopping, self.leadership.generation(), dict(out.node_warnings),
            out.unplaced,
        )
        keys, self._keys = self._keys, set()
        look = self._settling is not None and self._settling.look_due(self.clock() + TIMER_SLACK)
        if inputs != self._reported or self.reports.failed_status or look:
            self._reported = inputs
            # Per-Service tables end with their Service.
            for k in [k for k in self._shrinking if k not in self.world.services]:
                del self._shrinking[k]
            for k in [k for k in self._unheld if k not in self.world.services]:
                del self._unheld[k]
            return list(self.world.services)
        return [k for k in keys if k in self.world.services]

    def _holdings(self, out: Outcome, units: Iterable[UnitId]) -> dict[UnitId, NodeName | None]:
        """Who holds each of `units`, as far as this node knows (for status and vipHost)."""
        if out.stopping:
            return {}
        units_now = out.snap.units
        out_: dict[UnitId, NodeName | None] = {}
        for u in units:
            h = self.leadership.holder(u, units_now.get(u))
            out_[u] = NodeName(h) if h is not None else None
        return out_

    def jobs(self, out: Outcome, keys: Iterable[str]) -> Iterable[Callable[[], Awaitable[None]]]:
        snap = out.snap
        now = self.clock()
        self._keeping = self._keeps(out, now)
        for key in keys:
            rec = self.world.services.get(key)
            if rec is None:  # deleted while the round yielded between chunks
                continue
            view = rec.view
            current_host = view.annotation(ANNOTATION_VIP_HOST)
            d = snap.decisions.get(key)
            plans: tuple[VipPlan, ...] = snap.granted.get(key, ())
            holdings = self._holdings(out, {p.unit for p in plans})
            if out.unplaced:  # held here now (the election may have moved since the pass), not answered
                plans = tuple(p for p in plans
                              if p.address not in out.unplaced or holdings.get(p.unit) != self.me)
            if d is None or not d.announce:
                wanted = ServiceStatus((), None)
            else:
                wanted = service_status([v.address for v in d.vips], plans, holdings)
            extra = self._extra(key, out, d, plans, holdings, wanted, current_host)
            if should_write(wanted, view.status_ingress, current_host, self.me):
                if self.reports.failed_status.get(key, 0.0) > now:
                    continue
                granted = [v.address for v in d.vips] if d is not None else []
                if self._held_down(key, out, wanted, view.status_ingress, granted, now):
                    continue
                yield functools.partial(self._write_status, key, wanted, current_host, extra)
            else:
                self._shrinking.pop(key, None)
                if extra is not None and self.reports.failed_status.get(key, 0.0) <= now:
                    yield functools.partial(self._write_status, key, wanted, current_host, extra)
            if self.writer is not None and d is not None and d.announce and egress_enabled(view) \
                    and not out.stopping:
                held = frozenset(r.address for r in out.held)
                wanted_ann = active_endpoints(d, held, self.me)
                patch = {k: v for k, v in wanted_ann.items() if view.annotation(k) != v}
                if patch:
                    yield functools.partial(self._write_annotations, key, patch)
            if key in snap.handled and (d is None or d.reason != "ignored"):
                # Cluster-wide warnings are written by one node: the holder of the Service's first VIP
                # (every node while none holds it); warnings about this node are written by this node.
                conds = set(out.node_warnings.get(key, frozenset()))
                first = snap.granted.get(key, ())[:1]
                writer = self._holdings(out, {first[0].unit}).get(first[0].unit) if first else None
                if writer in (None, self.me):
                    conds |= snap.warnings.get(key, frozenset())
                for cond in sorted(conds):
                    name = cond.event_name(view.uid)
                    if not self.reports.sent(key, name):
                        self.reports.mark(key, name)
                        yield functools.partial(self._warning, key, cond, name)

    def _extra(
        self, key: str, out: Outcome, d: ServiceDecision | None, plans: tuple[VipPlan, ...],
        holdings: Mapping[UnitId, NodeName | None], wanted: ServiceStatus, current_host: str | None,
    ) -> Extra | None:
        """The family conditions and vipHost-ipv6 to write with the status, when they differ from what the
        Service says; only the node writing the status writes them (the holder of the first VIP; when
        nobody holds any, the node vipHost names), never while this agent stops, and while the election
        settles only when no family lacks a known holder (a condition flipping to False for want of one
        would be noise then). A Service created while the agents settle gets its conditions with its
        status, not one burst of them all when settling ends (session 32: 100 at once, 15 s after a
        restart, in the bench's steady window)."""
        writer = wanted.writer == self.me or (wanted.writer is None and current_host == self.me)
        if not writer:
            return None
        if out.stopping:
            return None
        view = self.world.services[key].view
        conds = family_conditions(d if key in out.snap.handled else None, view, plans, holdings)
        if self._keeping and any(_lacks_holder(c) for c in conds):
            self._keys.add(key)  # looked at again once the election has settled
            return None
        conds = self._hold_conditions(key, conds, view.status_conditions, self.clock())
        host6 = ipv6_host(d, plans, holdings, wanted.host) if wanted.host else None
        host6_now = view.annotation(ANNOTATION_VIP_HOST_IPV6)
        if conditions_differ(conds, view.status_conditions) or host6_now != host6:
            return (conds, host6)
        return None

    def _hold_conditions(
        self, key: str, conds: tuple[StatusCondition, ...], current: tuple[StatusCondition, ...], now: float,
    ) -> tuple[StatusCondition, ...]:
        """A family whose VIPs merely have no known holder right now (a unit changing hands) stays True
        until `hold_down` has passed, as its addresses stay in the status: no False/True flip of every
        Service's conditions through a failover or a restart."""
        cur = {c.type: c for c in current}
        losing = {
            c.type for c in conds
            if _lacks_holder(c) and (o := cur.get(c.type)) is not None
            and o.status == "True"
        }
        if not losing:
            self._unheld.pop(key, None)
            return conds
        since = self._unheld.setdefault(key, now)
        if now - since >= self.hold_down:
            self._unheld.pop(key, None)
            return conds
        self._keys.add(key)
        self._wake_in(self.hold_down - (now - since))
        return tuple(cur[c.type] if c.type in losing else c for c in conds)

    def _held_down(
        self, key: str, out: Outcome, wanted: ServiceStatus, current: Iterable[str],
        granted: Iterable[IPAddress], now: float,
    ) -> bool:
        """True when the status would only lose addresses that are still granted (nobody is known to
        hold them): not while settling or stopping, and not before `hold_down` has passed. A loss the
        decision makes (an address removed, the Service no longer announced) is written at once."""
        cur = set(current)
        lost = cur - set(wanted.ingress)
        # text(): cached; str() of an IPv6 address is computed anew each time, and while the election
        # settles every Service of a round loses its VIPs for a moment (a restart of 1000 Services: a
        # tenth of the main thread's samples).
        if not lost or not lost <= {text(v) for v in granted}:
            self._shrinking.pop(key, None)
            return False
        if self._keeping:
            self._keys.add(key)  # looked at again once the election has settled
            # Addresses, not Services: a dual-stack Service is whole only once both of its units have a
            # holder, and after a restart of every agent in scalable mode each node claimed all its IPv4
            # units before any IPv6 one, so for seconds no Service became whole while hundreds of
            # units got holders, and settling ended as if nothing progressed (session 27: 1000-2000
            # status and vipHost writes, shrinking then growing back, in a restart that moved nothing).
            self._held_back += len(lost)
            return True
        since = self._shrinking.setdefault(key, now)
        if now - since < self.hold_down:
            self._keys.add(key)
            self._wake_in(self.hold_down - (now - since))
            return True
        self._shrinking.pop(key, None)
        return False

    # -- writes ----------------------------------------------------------------------------------------

    async def _write_status(
        self, key: str, wanted: ServiceStatus, current_host: str | None, extra: Extra | None = None,
    ) -> None:
        assert self.writer is not None
        rec = self.world.services.get(key)
        if rec is None:
            return
        v = rec.view
        if wanted.host != self.me:
            self.reports.named.discard(key)
        elif current_host != self.me:  # before the write: the pass may add while it is on its way
            self.reports.named.add(key)
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
            self.error_metric(key, "status-write")
            # Exponential backoff per Service: retries must not add load to a saturated API server.
            n = self.reports.failures[key] = self.reports.failures.get(key, 0) + 1
            self.reports.failed_status[key] = self.clock() + min(30.0, 0.5 * 2**n)
            log.warning("status of %s not written (retrying): %s", key, describe(exc))
            self._wake.set()

    async def _write_annotations(self, key: str, values: dict[str, str | None]) -> None:
        """kube-vip's active-endpoint annotations (egress), written by the node holding the family's VIP."""
        assert self.writer is not None
        rec = self.world.services.get(key)
        if rec is None:
            return
        try:
            await self.writer.annotations(rec.view.namespace, rec.view.name, values)
        except WRITE_ERRORS as exc:
            ns, _, name = key.partition("/")
            self.metrics.reconcile_errors.labels(ns, name, "annotation-write").inc()
            log.warning("annotations of %s not written (retried in the next round): %s", key, describe(exc))
            self._keys.add(key)

    def problems(self, problems: Iterable[Problem]) -> None:
        """New problems of the BGP side (a Service's bad annotation, no next hop): a Warning each, once."""
        for problem in sorted(problems):
            rec = self.world.services.get(problem.service)
            if rec is None:
                continue
            cond = Condition(problem.service, WARNING, problem.reason, problem.message)
            name = cond.event_name(rec.view.uid)
            if self.writer is None:
                log.warning("Service %s: %s (%s)", problem.service, problem.message, problem.reason)
            elif not self.reports.sent(problem.service, name):
                self.reports.mark(problem.service, name)
                spawn(self.guard, f"bgp warning {problem.service}",
                      self._warning(problem.service, cond, name))

    async def _warning(self, key: str, cond: Condition, name: str) -> None:
        assert self.writer is not None
        rec = self.world.services.get(key)
        if rec is None:
            return
        v = rec.view
        self.error_metric(key, cond.reason)
        log.warning("Service %s: %s (%s)", key, cond.message, cond.reason)
        try:
            await self.writer.event(v.namespace, v.name, v.uid, name, WARNING, cond.reason, cond.message)
        except WRITE_ERRORS as exc:
            self.reports.unmark(key, name)  # try again on the next round
            log.info("event for %s not written: %s", key, describe(exc))

    def node_events(
        self, done: Changes, snap: Snapshot, fallback: Snapshot | None, stopping: bool = False,
    ) -> None:
        """What a pass changed, as Normal Events: per Service and direction, naming every address that
        changed as the cluster sees it (`core.events.is_news`: not a VIP the Service's status and vipHost
        already give to this node, not a withdrawal of this agent's shutdown); for a VIP without a plan in
        `snap`, the Services `fallback` granted it to. Only the node that reports for the Service
        (`core.events.reports_for`) keeps them; they are aggregated per Service and reason until
        `events_loop` sends them."""
        if self.writer is None:
            return
        by_addr = snap.by_address
        wall = time.time()
        services = self.world.services
        seen: set[str] = set()
        for rows, reason, verb in ((done.add, STARTED, "started"), (done.remove, STOPPED, "stopped")):
            per_service: dict[str, list[str]] = {}
            for r in rows:
                plan = by_addr.get(r.address)
                for key in plan.services if plan is not None else _services_of(fallback, r):
                    rec = services.get(key)
                    if rec is None:
                        continue
                    v = rec.view
                    units = {p.address: str(p.unit) for p in snap.granted.get(key, ())}
                    news = is_news(reason == STARTED, self.me, r.address, v.status_ingress,
                                   v.annotation(ANNOTATION_VIP_HOST), v.annotation(ANNOTATION_VIP_HOST_IPV6),
                                   stopping, units)
                    if reason == STARTED and key in self.reports.named:
                        news = True  # this process's own status write got there before the add
                        seen.add(key)
                    if not news:
                        continue
                    per_service.setdefault(key, []).append(f"{r.address} on {r.interface}")
            for key, addrs in per_service.items():
                if not self._reports_for(key, snap):
                    continue
                msg = f"node {self.me} {verb} announcing {', '.join(addrs)}"
                old = self.pending.get((key, reason))
                self.pending[(key, reason)] = Aggregate.one(msg, wall) if old is None else old.add(msg, wall)
        self.reports.named.difference_update(seen)
        if self.pending:
            self._events_wake.set()

    def _reports_for(self, key: str, snap: Snapshot) -> bool:
        rec = self.world.services.get(key)
        if rec is None:
            return False
        first = snap.granted.get(key, ())[:1]
        holder = self.leadership.holder(first[0].unit, snap.units.get(first[0].unit)) if first else None
        return reports_for(self.me, holder, rec.view.annotation(ANNOTATION_VIP_HOST))

    async def events_loop(self, clock: Callable[[], float] = time.monotonic) -> None:
        """Send the pending Normal Events, oldest first, one token each; a Service gone meanwhile is
        skipped (its Events would go with it)."""
        while True:
            await self._events_wake.wait()
            self._events_wake.clear()
            while self.pending:
                now = clock()
                bucket = self.bucket.take(now)
                if bucket is None:
                    await asyncio.sleep(self.bucket.wait(now))
                    continue
                self.bucket = bucket
                (key, reason), agg = next(iter(self.pending.items()))
                del self.pending[(key, reason)]
                await self._node_event(key, reason, agg)

    async def _node_event(self, key: str, reason: str, agg: Aggregate) -> None:
        rec = self.world.services.get(key)
        if rec is None or self.writer is None:
            return
        # One name per write (Events are create-only for the agent: kube-vip's RBAC grants no patch); the
        # count says how many times it happened since the last one.
        name = f"{rec.view.name[:200]}.{self.me[:40]}.{time.time_ns():x}"
        try:
            async with self._event_slots:
                await self.writer.event(
                    rec.view.namespace, rec.view.name, rec.view.uid, name, NORMAL, reason, agg.message,
                    count=agg.count, first=agg.first, last=agg.last,
                )
            self.events_written += 1
        except WRITE_ERRORS as exc:
            log.info("event for %s not written: %s", key, describe(exc))


_NO_HOLDER = reasons.condition_reason(reasons.NO_HOLDER)


def _lacks_holder(c: StatusCondition) -> bool:
    """A family condition False only because none of its VIPs has a known holder right now."""
    return c.status == "False" and c.reason == _NO_HOLDER


def _services_of(snap: Snapshot | None, r: Row) -> tuple[str, ...]:
    """The Services `snap` granted `r`'s address to. Through the snapshot's address index: a fencing node
    removes thousands of rows at once, and a scan of every grant per row blocked the loop for seconds
    (5000 Services: 10000 rows x 5000 grants)."""
    plan = snap.by_address.get(r.address) if snap is not None else None
    return plan.services if plan is not None else ()


def _rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
