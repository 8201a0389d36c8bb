"""One Lease, one leader (kube-vip compatible): acquire, renew with fencing, release on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from kubevip.election.handback import hand_back, still_ours
from kubevip.election.lag import LagReporter
from kubevip.election.leaseapi import TRANSIENT, Conflict, LeaseApi
from kubevip.election.observe import Observation, expires_at, observe
from kubevip.election.record import LeaseRecord, lease_body, renewed_body
from kubevip.election.timings import Timings
from kubevip.kube.errors import Forbidden, Unauthorized
from kubevip.kube.rest import RestClient
from kubevip.tasks import REPLY_GRACE, bounded, settled_within

log = logging.getLogger(__name__)

# Lost races in a row that are read again at once; the next one waits a retry period (LeaseElector._lost).
LOST_RACES_AT_ONCE = 3

Callback = Callable[[], Awaitable[None]]
Observer = Callable[[str, bool], None]
Renewed = Callable[[], None]


class LeaseElector:
    """Leader election on one Lease; `on_started`/`on_stopped` bracket the time this node may announce.

    Fencing: leadership lasts `renew_deadline` from the moment the last accepted write was SENT; at that
    instant `on_stopped` runs, whatever the API server does. Peers wait `lease_duration` from when THEY
    saw that write, and `renew_deadline + skew_margin < lease_duration`, so the intervals never overlap.
    """

    def __init__(
        self,
        api_client: RestClient | LeaseApi,
        namespace: str,
        name: str,
        identity: str,
        timings: Timings,
        on_started: Callback,
        on_stopped: Callback,
        *,
        observer: Observer | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_renewed: Renewed | None = None,
        fresh: bool = False,
    ) -> None:
        self.api = api_client if isinstance(api_client, LeaseApi) else LeaseApi(api_client)
        # A unit that appeared after the agent started (a new Service): its Lease most likely does not
        # exist yet, so the first attempt creates it without reading it first (one API round trip less
        # from a Service's creation to its announcement). The create is itself a compare-and-swap: when
        # any Lease is there it conflicts, and the next attempt reads it at once and follows as usual.
        self._fresh = fresh
        self._on_renewed = on_renewed
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.timings = timings.validate()
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._observer = observer
        self._clock = clock
        self._leading = False
        self._lead_until = 0.0
        self._just_won = False  # the first lead step waits a retry period: winning was a write
        self._mine: LeaseRecord | None = None  # the version this process last wrote
        self._seen: Observation | None = None
        self._refused: type[Exception] | None = None  # the refusal last warned about (Forbidden, ...)
        self._task: asyncio.Task[None] | None = None
        self._lag = LagReporter(f"lease {namespace}/{name}", self.timings, clock)
        self._closing = False
        self._draining = False  # stop_taking(): no acquire any more
        # The acquireTime of an acquiring write whose answer has not come (None: none in flight). A release
        # that cancels it cannot know whether it landed, and a landed one would keep peers out until expiry.
        self._acquiring: str | None = None
        # A release seen on the watch (`_follow`): the next attempt writes on that version at once
        # instead of reading the Lease first (one API round trip less on a hand-over).
        self._released: LeaseRecord | None = None
        # Lost races in a row (our write conflicted: someone wrote the Lease first). Each is looked at
        # again at once: the read finds the winner and follows it, so a SIGTERM right after a Service was
        # created is taken over at once, not after the retry period the loser would otherwise sleep. Two
        # in a row are common: a new Service's Lease left over, released, by an earlier Service of the
        # same name makes every create conflict, and then all but one compare-and-swap on the released
        # version. Past LOST_RACES_AT_ONCE the loser sleeps a retry period: someone who keeps writing the
        # Lease (a tenant's own namespace, with svc_election) costs us that many reads a period, no more.
        self._lost = 0
        self.leader: str | None = None
        self.transitions = 0

    @property
    def lease_name(self) -> str:
        return self.name

    @property
    def is_leader(self) -> bool:
        """True while this node may announce: leading and inside its renew deadline."""
        return self._leading and self._clock() < self._lead_until

    @property
    def renewed_at(self) -> float | None:
        """When (this elector's clock) the last accepted write was sent, while leading: peers may take
        over `lease_duration` after it; the kernel lifetimes of our VIPs count from it."""
        if not self.is_leader:
            return None
        return self._lead_until - self.timings.renew_deadline

    def _renewed(self) -> None:
        if self._on_renewed is not None:
            try:
                self._on_renewed()
            except Exception:
                log.exception("lease %s/%s: on_renewed callback failed", self.namespace, self.name)

    async def run(self) -> None:
        """Campaign and lead until cancelled or released; start it with kubevip.tasks.spawn."""
        self._task = asyncio.current_task()
        try:
            while not self._closing:
                if self._leading:
                    await self._lead_step()
                else:
                    await self._candidate_step()
        finally:
            if self._leading:
                await self._stop_leading("elector stopped")

    def stop_taking(self) -> None:
        """The agent is shutting down: lead on until `release`, but take no Lease from here on. A
        stopping node that took a Lease a peer just released would hand it on a moment later; when every
        agent stops at once, everything ended on the last agent to stop."""
        self._draining = True

    async def release(self) -> None:
        """Withdraw first (on_stopped), then hand the Lease back so a peer takes over within one retry."""
        self._closing = True
        task = self._task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._leading:
            await self._stop_leading("released")
        mine, self._mine = self._mine, None
        acquiring, self._acquiring = self._acquiring, None
        if mine is None and acquiring is not None:
            mine = await self._landed(acquiring)
        if mine is None:
            return
        try:
            await hand_back(self.api, mine, self.identity, self.timings.renew_deadline)
        except TRANSIENT as exc:
            log.warning(
                "lease %s/%s: release failed (%r); peers take over at expiry", self.namespace, self.name, exc
            )

    async def _landed(self, acquire_time: str) -> LeaseRecord | None:
        """The Lease, if an acquiring write of ours that was cancelled in flight (`acquire_time`) landed.

        Found by an e2e test: a stopping agent's watch saw the holder's release and its compare-and-swap
        went out just before its own release cancelled it; the write landed, and the Lease named a process
        that had exited until it expired."""
        try:
            rec = await self.api.get(self.namespace, self.name, limit=self.timings.renew_deadline)
        except TRANSIENT as exc:
            log.warning("lease %s/%s: not read on release (%r); peers take over at expiry if a write of ours "
                        "landed", self.namespace, self.name, exc)
            return None
        if rec is None or rec.holder != self.identity or rec.acquire_time != acquire_time:
            return None
        return rec

    # -- leader side -------------------------------------------------------------------------

    async def _lead_step(self) -> None:
        t = self.timings
        started = self._clock()
        remaining = self._lead_until - started
        if remaining <= 0:
            await self._stop_leading("renew deadline passed")
            return
        # A renewal one retry period after the last accepted write, as in the steady state: the write
        # that won the Lease is one. Renewing at once after winning (client-go's loop does) put a second
        # Lease write on the API server right when the new leader's first announcement is waiting on it
        # (a Service's EndpointSlice, bench/compare.py's BGP create: the PUT took 14 ms then).
        if self._just_won:
            self._just_won = False
            first_due = self._lead_until - t.renew_deadline + t.retry_period
            if started < first_due:
                await asyncio.sleep(first_due - started)
                self._lag.woke(first_due)
                return
        try:
            await settled_within(self._renew(), remaining)
        except Conflict:
            if await self._adopt_own_write():
                return  # a renewal of ours that timed out had landed: renew again at once from it
            await self._stop_leading("lease changed by someone else")
            return
        except TRANSIENT as exc:
            log.warning(
                "lease %s/%s: renew failed (%r); %.2fs left before fencing",
                self.namespace,
                self.name,
                exc,
                self._lead_until - self._clock(),
            )
        if self._clock() >= self._lead_until:
            await self._stop_leading("renew deadline passed")
            return
        # Sleep to the next renewal, but never past the fencing deadline.
        wake = min(started + t.retry_period, self._lead_until)
        before = self._clock()
        await asyncio.sleep(max(0.0, wake - before))
        self._lag.woke(max(wake, before))

    async def _renew(self) -> None:
        mine = self._mine
        assert mine is not None
        body = renewed_body(mine, self.timings.lease_duration, time.time())
        sent = self._clock()
        rec = await self.api.replace(body, limit=max(0.05, self._lead_until - sent) + REPLY_GRACE)
        self._mine = rec
        self._lead_until = sent + self.timings.renew_deadline
        self._renewed()

    async def _adopt_own_write(self) -> bool:
        """After a renewal conflict: True if the Lease is still ours (or we cannot tell yet; the fencing
        deadline still rules), False if someone else wrote it.
        """
        mine = self._mine
        assert mine is not None
        # Only the time left before the fence: with a floor (it was 50 ms) the read could outlast the
        # deadline, and the holder fenced that much late (the election simulator, lease mode, seed 448).
        limit = self._lead_until - self._clock()
        if limit <= 0:
            return True  # cannot tell in time: the deadline rules, the next step fences
        try:
            current = await bounded(still_ours(self.api, mine, self.identity, limit), limit)
        except TRANSIENT:
            return True
        if current is None:
            return False
        self._mine = current
        return True

    async def _stop_leading(self, why: str) -> None:
        self._leading = False
        log.info("lease %s/%s: %s stops leading (%s)", self.namespace, self.name, self.identity, why)
        self._notify(False)
        try:
            await self._on_stopped()
        except Exception:
            log.exception("lease %s/%s: on_stopped callback failed", self.namespace, self.name)

    # -- candidate side ----------------------------------------------------------------------

    async def _candidate_step(self) -> None:
        t = self.timings
        if self._draining:
            await asyncio.sleep(t.retry_period)  # until release() ends the run
            return
        wake = self._clock() + t.retry_period
        lost, self._lost = self._lost, 0
        try:
            expiry = await bounded(self._try_acquire(), t.renew_deadline)
            self._refused = None
        except Conflict:
            expiry = None  # someone else won the race: read again at once, then follow the winner
            if lost < LOST_RACES_AT_ONCE:
                self._lost = lost + 1
                return
        except TRANSIENT as exc:
            # We saw nothing: our clock on the holder's version restarts once we can see again.
            self._seen = None
            if isinstance(exc, (Forbidden, Unauthorized)) and type(exc) is not self._refused:
                # Not transient in practice: RBAC (e.g. svc_election's Lease in the Service's namespace
                # without rights there) keeps the unit unheld forever; say so once, not at debug level.
                log.warning("lease %s/%s: the API server refuses this agent the Lease (%s); the unit stays "
                            "unheld by this node until that changes", self.namespace, self.name, exc)
            else:
                log.debug("lease %s/%s: acquire attempt failed: %r", self.namespace, self.name, exc)
            self._refused = type(exc) if isinstance(exc, (Forbidden, Unauthorized)) else None
            expiry = None
        if self._leading:
            try:
                await self._on_started()
            except Exception:
                log.exception("lease %s/%s: on_started callback failed", self.namespace, self.name)
            return
        if expiry is None:
            await asyncio.sleep(max(0.0, wake - self._clock()))
            return
        await self._follow(expiry)

    async def _follow(self, expiry: float) -> None:
        """Watch the holder's Lease until it expires (on our clock) or is released; then try again.

        A watch, not polling, so a released Lease is taken within milliseconds; renewals seen here only
        push the expiry later, and the next attempt re-reads the Lease before writing anything.
        """
        seen = self._seen
        assert seen is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout_at(loop.time() + max(0.0, expiry - self._clock())) as deadline:
                stream = self.api.watch(
                    self.namespace,
                    "",
                    seen.resource_version,
                    idle_timeout=max(10.0, 4 * self.timings.lease_duration),
                    field_selector=f"metadata.name={self.name}",
                )
                async for kind, rec in stream:
                    if kind == "BOOKMARK":
                        continue
                    if kind == "DELETED":
                        return
                    if not rec.held:
                        self._released = rec
                        return
                    self._seen = observe(self._seen, rec.resource_version, self._clock())
                    self.leader = rec.holder
                    left = expires_at(self._seen, rec.duration or self.timings.lease_duration) - self._clock()
                    deadline.reschedule(loop.time() + max(0.0, left))
        except TimeoutError:
            return
        except TRANSIENT as exc:
            log.debug("lease %s/%s: watch failed: %r", self.namespace, self.name, exc)
            await asyncio.sleep(self.timings.retry_period)

    async def _try_acquire(self) -> float | None:
        """One attempt; returns the local time the current holder's Lease expires, if someone holds it."""
        released, self._released = self._released, None
        if released is not None:
            # Compare-and-swap on the released version: a peer that took it first makes this conflict.
            await self._write_acquire(released)
            return None
        if self._fresh:
            self._fresh = False
            await self._write_acquire(None)  # Conflict when a Lease exists: read at once (_candidate_step)
            return None
        rec = await self.api.get(self.namespace, self.name)
        now = self._clock()
        if rec is None:
            await self._write_acquire(None)
            return None
        self.leader = rec.holder
        mine = self._mine
        ours = (
            mine is not None and rec.holder == self.identity and rec.resource_version == mine.resource_version
        )
        if rec.held and not ours:
            self._seen = observe(self._seen, rec.resource_version, now)
            expiry = expires_at(self._seen, rec.duration or self.timings.lease_duration)
            if now < expiry:
                return expiry
        await self._write_acquire(rec)
        return None

    async def _write_acquire(self, rec: LeaseRecord | None) -> None:
        wall = time.time()
        transitions = 0 if rec is None else rec.transitions + (0 if rec.holder == self.identity else 1)
        body = lease_body(
            self.namespace,
            self.name,
            holder=self.identity,
            duration=self.timings.lease_duration,
            transitions=transitions,
            acquire_wall=wall,
            renew_wall=wall,
            resource_version=None if rec is None else rec.resource_version,
            labels=None if rec is None else rec.labels,
            annotations=None if rec is None else rec.annotations,
        )
        sent = self._clock()
        self._acquiring = body["spec"]["acquireTime"]
        try:
            new = await (self.api.create(body) if rec is None else self.api.replace(body))
        except BaseException:
            if not self._closing:  # refused or failed: nothing of ours landed (a cancel may have)
                self._acquiring = None
            raise
        self._acquiring = None
        self._mine = new
        self._lead_until = sent + self.timings.renew_deadline
        self._seen = None
        self._leading = True
        self._just_won = True
        self.leader = self.identity
        self.transitions += 1
        log.info("lease %s/%s: %s starts leading", self.namespace, self.name, self.identity)
        self._notify(True)

    def _notify(self, leading: bool) -> None:
        if self._observer is not None:
            try:
                self._observer(self.name, leading)
            except Exception:
                log.exception("lease %s/%s: observer failed", self.namespace, self.name)
