"""A node's own liveness Lease in the scalable election: acquire it, renew it, fence on its deadline.

The liveness Lease is the scalable election's only steady write: one renewal per node every
`Timings.liveness_period` (default: the retry period). Fencing does not depend on that period: this
node stops announcing `renew_deadline` after the last renewal the API server accepted (counted from
when it was sent), and peers may take its units only `lease_duration` after they saw that renewal.
A longer period only means fewer renewal attempts fit before the deadline; a failed attempt is retried
after one retry period. docs/election.md ("Liveness period") has the arithmetic and the trade-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from kubevip.election.cache import LeaseCache
from kubevip.election.handback import hand_back, still_ours
from kubevip.election.lag import LagReporter, SlowReplies
from kubevip.election.leaseapi import TRANSIENT, Conflict, LeaseApi
from kubevip.election.observe import Observation, expires_at
from kubevip.election.offloop import Inline
from kubevip.election.record import LeaseRecord, lease_body, released_body, renewed_body
from kubevip.election.timings import Timings
from kubevip.tasks import REPLY_GRACE, bounded, settled_within

log = logging.getLogger(__name__)

ROLE_LABEL = "kubevip.io/election"
ROLE_NODE = "node"
NODE_ANNOTATION = "kubevip.io/node"
EXPIRED_BY_ANNOTATION = "kubevip.io/expired-by"
Fence = Callable[[str], Awaitable[None]]


class Liveness:
    """This node's liveness Lease: `epoch` while live, `is_live` inside the renew deadline.

    `fence(why)` must withdraw everything this node announces (the elector's); `on_epoch()` is called
    when a new epoch starts or the old one is lost (claims of the old epoch are void); `on_renewed()`
    after every accepted renewal (the agent extends its kernel VIP lifetimes from `renewed_at`).

    `bridge`: where `step` runs relative to the elector. Inline (default): on the elector's loop.
    election.offloop.Bridge: `step` runs on the renewal thread; the epoch, the loss of the Lease and the
    fence are carried out on the elector's loop (and waited for), the cache and `on_renewed` posted
    there. `api` is then the thread's own connection; `release_api` the elector's.
    """

    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        node: str,
        name: str,
        timings: Timings,
        cache: LeaseCache,
        *,
        fence: Fence,
        on_epoch: Callable[[], None],
        on_renewed: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        bridge: Inline | None = None,
        release_api: LeaseApi | None = None,
    ) -> None:
        self.api = api
        self.release_api = release_api or api
        self.bridge = bridge or Inline()
        self.namespace = namespace
        self.node = node
        self.name = name
        self.timings = timings
        self.cache = cache
        self._fence = fence
        self._on_epoch = on_epoch
        self._on_renewed = on_renewed
        self._clock = clock
        self.mine: LeaseRecord | None = None  # own liveness Lease as last written by this process
        self.epoch: int | None = None
        self.live_until = 0.0
        self.live_since = 0.0
        self.renewals = 0  # accepted renewals (benchmarks, tests)
        self._lag = LagReporter(f"node {node} liveness", timings, clock)
        self._replies = SlowReplies(f"node {node} liveness", timings, clock)

    @property
    def is_live(self) -> bool:
        return self.epoch is not None and self._clock() < self.live_until

    @property
    def renewed_at(self) -> float | None:
        """When the last accepted liveness write was sent, while live."""
        return self.live_until - self.timings.renew_deadline if self.is_live else None

    async def step(self, holding: Callable[[], bool]) -> None:
        """One round: become live or renew, then sleep until the next round (or the fencing deadline,
        whichever is first) and fence if the deadline passed while `holding()`."""
        t = self.timings
        started = self._clock()
        if not self.bridge.owner_alive():
            wake = started + t.retry_period  # a wedged agent keeps nothing: no acquire, no renewal
        elif self.epoch is None:
            wake = await self.acquire()
        else:
            ok = await self.renew()
            # Steady renewals every liveness period; a failed one is retried after one retry period, so
            # a longer period costs no attempts after a failure (Timings.validate keeps two of them).
            wake = started + (t.liveness_period if ok else t.retry_period)
        # The renewal may have run into the deadline (it may take until exactly then): fence now, not
        # after the retry period's sleep. The election simulator saw a holder stop 110 ms past its
        # deadline there (scalable mode, seed 611 of 800).
        await self._fence_if_due(holding)
        before = self._clock()
        if self.epoch is not None and self.live_until > before:
            wake = min(wake, self.live_until)  # wake to fence, if it comes to that
        await asyncio.sleep(max(0.0, wake - before))
        if self.epoch is not None:
            self._lag.woke(max(wake, before))
        await self._fence_if_due(holding)

    async def _fence_if_due(self, holding: Callable[[], bool]) -> None:
        if self.epoch is not None and self._clock() >= self.live_until and holding():
            await self.bridge.run_async(lambda: self._fence("liveness renew deadline passed"))

    async def acquire(self) -> float:
        """Become live: create our Lease or take it once released or expired; returns when to look again."""
        t = self.timings
        now = self._clock()
        try:
            rec = await bounded(self.api.get(self.namespace, self.name), t.renew_deadline)
            if rec is not None:
                seen = await self.bridge.run(lambda: self._put_seen(rec))
                if rec.held:
                    # Maybe a previous process of this node still announces: wait for expiry.
                    expiry = expires_at(seen, rec.duration or t.lease_duration)
                    if now < expiry:
                        return min(now + t.retry_period, expiry)
            wall = time.time()
            body = lease_body(
                self.namespace,
                self.name,
                holder=self.node,
                duration=t.lease_duration,
                transitions=0 if rec is None else rec.transitions + 1,
                acquire_wall=wall,
                renew_wall=wall,
                resource_version=None if rec is None else rec.resource_version,
                labels={ROLE_LABEL: ROLE_NODE},
                annotations={NODE_ANNOTATION: self.node},
            )
            sent = self._clock()
            new = await bounded(
                self.api.create(body) if rec is None else self.api.replace(body), t.renew_deadline
            )
        except Conflict:
            return now + t.retry_period
        except TRANSIENT as exc:
            log.debug("node %s: liveness acquire failed: %r", self.node, exc)
            return now + t.retry_period
        await self.bridge.run(lambda: self._begin(new, sent))
        log.info("node %s: live (epoch %d)", self.node, new.transitions)
        return self._clock() + t.liveness_period

    def _put_seen(self, rec: LeaseRecord) -> Observation:
        self.cache.put(rec)
        return self.cache.seen[self.name]

    def _begin(self, new: LeaseRecord, sent: float) -> None:
        """A new epoch, on the elector's loop: its claims of the old epoch are void from here on."""
        self.mine = new
        self.live_until = sent + self.timings.renew_deadline
        self.epoch = new.transitions
        self._on_epoch()
        self.live_since = self._clock()
        self.cache.put(new)

    async def _lose(self) -> None:
        """Our Lease was taken away, on the elector's loop: withdraw everything, then end the epoch."""
        await self._fence("liveness lost")
        self.epoch = None
        self.mine = None
        self._on_epoch()

    async def renew(self) -> bool:
        """One renewal; False when it failed (retry soon). Losing the Lease fences and ends the epoch."""
        t = self.timings
        mine = self.mine
        assert mine is not None
        was_live = self.is_live
        body = renewed_body(mine, t.lease_duration, time.time())
        sent = self._clock()
        # While live, a renewal may not outlast the deadline (this loop fences). Past it we are fenced
        # already and a late renewal is still safe (a peer that marked us expired makes it conflict): give
        # it a whole renew deadline, or under load it could never get through again.
        remaining = self.live_until - sent
        if remaining <= 0:
            remaining = t.renew_deadline
        try:
            # A reply read late (the loop was blocked past the deadline) still counts: tasks.settled_within.
            new = await settled_within(self.api.replace(body, limit=remaining + REPLY_GRACE), remaining)
        except Conflict:
            # The read-back shares the renewal's deadline: while live, only the time left before the
            # fence (a conflict that came late must not buy a second allowance; peers expire us at
            # lease_duration from our last renewal they saw).
            left = max(0.05, sent + remaining - self._clock())
            try:
                current = await bounded(still_ours(self.api, mine, self.node, left), left)
            except TRANSIENT:
                return False  # cannot tell yet; the fencing deadline still rules
            if current is not None:
                self.mine = current  # a renewal of ours that timed out had landed
                return False
            # Someone marked us expired (or the Lease was edited): our claims are void; start over.
            log.warning("node %s: liveness Lease taken away; withdrawing everything", self.node)
            await self.bridge.run_async(self._lose)
            return False
        except TRANSIENT as exc:
            log.debug("node %s: liveness renew failed (%r)", self.node, exc)
            return False
        self._replies.replied(self._clock() - sent)
        self.mine = new
        self.live_until = sent + t.renew_deadline
        self.renewals += 1
        if not was_live:
            # Back after a gap: give peers a full lease duration from now before judging them.
            self.live_since = self._clock()
        self.bridge.post(lambda: self._renewed(new))
        return True

    def _renewed(self, new: LeaseRecord) -> None:
        """After an accepted renewal, on the elector's loop."""
        self.cache.put(new)
        if self._on_renewed is not None:
            try:
                self._on_renewed()
            except Exception:
                log.exception("node %s: on_renewed callback failed", self.node)

    async def release(self) -> None:
        """Hand the Lease back (after the caller withdrew everything) so peers take over at once."""
        mine = self.mine
        self.mine = None
        self.epoch = None
        if mine is None:
            return
        try:
            await hand_back(self.release_api, mine, self.node, self.timings.renew_deadline)
        except TRANSIENT as exc:
            log.warning("node %s: liveness release failed (%r); peers take over at expiry", self.node, exc)


async def expire_peers(
    api: LeaseApi, cache: LeaseCache, namespace: str, me: str, timings: Timings, since: float, now: float
) -> float:
    """Mark peers' liveness Leases expired once unchanged for their duration on our clock (counted from
    `since` at the earliest: when we became live); returns the next instant some peer would expire.
    """
    next_expiry = now + timings.retry_period
    for name, rec in list(cache.records.items()):
        if rec.labels.get(ROLE_LABEL) != ROLE_NODE or not rec.holder or rec.holder == me:
            continue
        seen = cache.seen.get(name)
        if seen is None:
            continue
        expiry = max(seen.first_seen, since) + (rec.duration or timings.lease_duration)
        if now < expiry:
            next_expiry = min(next_expiry, expiry)
            continue
        # Compare-and-swap on the version we watched expire: if the peer renewed after all (our watch
        # stalled), the write conflicts and we only refresh our view; no read needed up front.
        body = released_body(rec, time.time(), {**rec.annotations, EXPIRED_BY_ANNOTATION: me})
        try:
            new = await bounded(api.replace(body), timings.renew_deadline)
        except Conflict:
            fresh = await bounded(api.get(namespace, name), timings.renew_deadline)
            if fresh is None:
                cache.drop(name)
            else:
                cache.put(fresh)
            continue
        log.info("node %s: marked %s expired", me, rec.holder)
        cache.put(new)
    return next_expiry

