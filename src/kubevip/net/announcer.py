"""Layer-2 announcements per VIP: a burst at takeover, then a refresh every `vip_arpRate` ms.

API (asyncio; one Announcer per agent):

    ann = Announcer(rate_ms=3000)             # ns=Netns("node1") to act in another namespace
    await ann.start(vip, "eth0")              # first announcement is on the wire when this returns
    await ann.start_many([(vip, "eth0"), ...])  # the same for many: one error (or None) per pair
    await ann.stop(vip)                       # no further announcement for `vip` after this returns
    await ann.close()                         # stops everything, closes the raw sockets

`AddressManager` / `RoutingTable` calls block on netlink: from asyncio use `asyncio.to_thread`.
IPv4 VIPs get gratuitous ARPs (net.arp), IPv6 VIPs unsolicited NAs (net.ndp). `start` for a VIP that is
already announced on the same interface does nothing; on another interface it moves there.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from kubevip.errors import NetworkError
from kubevip.ip import IPAddress
from kubevip.net.arp import ArpSender
from kubevip.net.interfaces import link
from kubevip.net.namespace import OWN, Netns
from kubevip.net.ndp import NdpSender
from kubevip.tasks import TaskGroupGuard, chunked, spawn

log = logging.getLogger(__name__)


# Seconds after takeover at which the burst repeats the first announcement: a lost frame or a neighbour
# that was busy gets several chances within the first ~2 s, instead of waiting a full refresh period.
BURST: tuple[float, ...] = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0)
DEFAULT_RATE_MS = 3000


def burst_gaps(burst: Sequence[float] = BURST) -> tuple[float, ...]:
    """The sleeps between the burst's announcements (the first goes at once)."""
    offsets = sorted(burst) or [0.0]
    return tuple(nxt - prev for prev, nxt in itertools.pairwise(offsets))


def gap_after(sent: int, gaps: Sequence[float], rate_ms: int) -> float:
    """Sleep after `sent` announcements of a VIP (1: the first): the burst's gaps, then `rate_ms` forever."""
    return gaps[sent - 1] if sent <= len(gaps) else rate_ms / 1000.0


class Sender(Protocol):
    def announce(self, ip: IPAddress, /) -> None: ...
    def close(self) -> None: ...


SenderFactory = Callable[[str, int, Netns], Sender]


def raw_sender(ifname: str, version: int, ns: Netns) -> Sender:
    """The real sender for one interface and family."""
    mac = link(ifname, ns).mac
    return ArpSender(ifname, mac, ns) if version == 4 else NdpSender(ifname, mac, ns)  # type: ignore[return-value]


@dataclass(eq=False, slots=True)
class _Vip:
    """One announced VIP: where, what comes next, and the batch its frame is in (if any).

    Kept small, one per VIP held (2000 on the holder at 1000 dual-stack Services): an index into the
    burst instead of a generator of delays, and no future once the first frame is out (1.1 -> 0.5 KB a
    VIP with its heap entry and counter, tests/unit/net/test_announcer.py)."""

    ifname: str
    first: asyncio.Future[None] | None  # until the first frame is out (`start_many` waits on it)
    step: int = 0  # announcements made: which gap of the burst comes next
    due: float = 0.0
    early: float = 0.0  # how much earlier than `due` it may join a batch
    live: bool = True  # read by the sending thread: a VIP stopped meanwhile is skipped
    batch: asyncio.Future[tuple[list[_Failure], set[int]]] | None = None


def _first_out(ent: _Vip) -> None:
    """The VIP's first frame is out (or it stopped): wake who waits for it, and drop the future."""
    if ent.first is not None:
        if not ent.first.done():
            ent.first.set_result(None)
        ent.first = None


_Failure = tuple[tuple[str, int], Sender, BaseException]
_Frame = tuple[Sender, IPAddress, _Vip]

START_CHUNK = 512  # VIPs scheduled by `start_many` between two yields to the event loop

# A VIP may join a batch up to this share of its own gap early: refreshes (every `rate_ms`) that fall
# within a tenth of a period of each other go out together and stay together afterwards.
EARLY_SHARE = 0.1


def _send_frames(frames: Sequence[_Frame]) -> tuple[list[_Failure], set[int]]:
    """Runs in the announcer's thread: every frame of a batch, skipping VIPs stopped meanwhile; returns
    the failed senders and the positions of the frames that did not go out."""
    failed: list[_Failure] = []
    broken: set[int] = set()
    unsent: set[int] = set()
    for i, (sender, vip, ent) in enumerate(frames):
        if not ent.live or id(sender) in broken:
            unsent.add(i)
            continue
        try:
            sender.announce(vip)
        # Any error, not only the kernel's: one VIP that cannot be sent must not stop the others' frames.
        except Exception as exc:
            broken.add(id(sender))
            unsent.add(i)
            failed.append(((ent.ifname, vip.version), sender, exc))
    return failed, unsent


class Announcer:
    """Announces every VIP on its schedule from one timer task, in batches; runs under a
    `kubevip.tasks` guard.

    Frames go out from one thread of the announcer's own: a send on a bridged interface also delivers
    the broadcast to every port inside the system call, which with 1000 Services taken over at once
    kept the event loop (Lease renewals) blocked for seconds. Every frame that is due (first frames of
    VIPs started in the same loop iteration, refreshes within a tenth of a period) goes to that thread in
    one job: a task and a thread-pool future per VIP and frame cost the holder of 10000 VIPs 3300
    futures a second and a sixth of a core with senders that do nothing (`bench/announcer.py`).
    """

    def __init__(
        self,
        *,
        rate_ms: int = DEFAULT_RATE_MS,
        ns: Netns = OWN,
        burst: Sequence[float] = BURST,
        guard: TaskGroupGuard | None = None,
        sender_factory: SenderFactory = raw_sender,
    ) -> None:
        self.rate_ms = rate_ms
        self.ns = ns
        self.burst = tuple(burst)
        self._gaps = burst_gaps(self.burst)
        self._own_guard = guard is None
        self._guard = guard or TaskGroupGuard("announcer")
        self._factory = sender_factory
        self._senders: dict[tuple[str, int], Sender] = {}
        self._opening = asyncio.Lock()
        self._vips: dict[IPAddress, _Vip] = {}
        # (due, sequence, VIP, entry); entries of stopped or moved VIPs are skipped when they come up.
        self._heap: list[tuple[float, int, IPAddress, _Vip]] = []
        self._seq = itertools.count()
        self._ticker: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._wake_at = math.inf
        self._max_early = EARLY_SHARE * max(rate_ms / 1000.0, max(self.burst, default=0.0))
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="announce")
        self.sent: dict[IPAddress, int] = {}
        self.batches = 0  # jobs handed to the thread, for tests and benchmarks

    def active(self) -> dict[IPAddress, str]:
        """VIP -> interface for every VIP being announced."""
        return {vip: ent.ifname for vip, ent in self._vips.items()}

    async def _open(self, ifname: str, version: int) -> Sender:
        key = (ifname, version)
        if key not in self._senders:
            # One opening at a time: hundreds of VIPs starting together would otherwise each open (in a
            # named namespace, fork with the GIL held: that stopped the event loop for seconds).
            async with self._opening:
                if key not in self._senders:
                    # Opening reads the MAC over netlink, which blocks: off the event loop.
                    self._senders[key] = await asyncio.to_thread(self._factory, ifname, version, self.ns)
        return self._senders[key]

    def _schedule(self, vip: IPAddress, ent: _Vip, due: float, early: float) -> None:
        ent.due, ent.early = due, early
        heapq.heappush(self._heap, (due, next(self._seq), vip, ent))
        if due < self._wake_at and self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def _take_due(self, now: float) -> list[tuple[IPAddress, _Vip]]:
        due: list[tuple[IPAddress, _Vip]] = []
        later: list[tuple[float, int, IPAddress, _Vip]] = []
        heap = self._heap
        while heap and heap[0][0] <= now + self._max_early:
            item = heapq.heappop(heap)
            at, _, vip, ent = item
            if not ent.live or ent.due != at:
                continue
            if at - ent.early <= now:
                due.append((vip, ent))
            else:
                later.append(item)
        for item in later:
            heapq.heappush(heap, item)
        return due

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            due = self._take_due(now)
            if due:
                await self._send(due, now)
                continue
            self._wake_at = self._heap[0][0] if self._heap else math.inf
            self._wakeup = wakeup = loop.create_future()
            timer = loop.call_at(self._wake_at, _wake, wakeup) if self._heap else None
            try:
                await wakeup
            finally:
                self._wakeup, self._wake_at = None, math.inf
                if timer is not None:
                    timer.cancel()

    async def _send(self, due: list[tuple[IPAddress, _Vip]], now: float) -> None:
        frames: list[_Frame] = []
        opened: dict[tuple[str, int], Sender | None] = {}
        for vip, ent in due:
            key = (ent.ifname, vip.version)
            if key not in opened:
                try:
                    opened[key] = self._senders.get(key) or await self._open(*key)
                except (OSError, NetworkError) as exc:
                    log.warning("announcing on %s (IPv%d) failed: %s (will retry)", key[0], key[1], exc)
                    opened[key] = None
            sender = opened[key]
            if sender is None:
                self._next(vip, ent, now)
            else:
                frames.append((sender, vip, ent))
        if not frames:
            return
        batch = asyncio.wrap_future(self._pool.submit(_send_frames, frames))
        self.batches += 1
        for _, _, ent in frames:
            ent.batch = batch
        try:
            failed, unsent = await asyncio.shield(batch)
        finally:
            for _, _, ent in frames:
                if ent.batch is batch:
                    ent.batch = None
                _first_out(ent)
        self._forget(failed)
        for i, (_, vip, ent) in enumerate(frames):
            if not ent.live:
                continue
            if i not in unsent:
                self.sent[vip] = self.sent.get(vip, 0) + 1
            self._next(vip, ent, now)

    def _next(self, vip: IPAddress, ent: _Vip, now: float) -> None:
        ent.step += 1
        gap = gap_after(ent.step, self._gaps, self.rate_ms)
        self._schedule(vip, ent, now + gap, EARLY_SHARE * gap)

    def _forget(self, failed: list[_Failure]) -> None:
        for key, sender, exc in failed:
            # The interface may have been recreated: reopen the socket next time instead of giving up.
            log.warning("announcing on %s (IPv%d) failed: %s (will retry)", key[0], key[1], exc)
            if self._senders.get(key) is sender:  # not one reopened meanwhile
                del self._senders[key]
                # Other batches may still be queued on it: close it behind them, in the thread.
                self._pool.submit(sender.close)

    async def start(self, vip: IPAddress, ifname: str) -> None:
        """Announce `vip` on `ifname` now, then on the burst schedule, then every `rate_ms`."""
        (err,) = await self.start_many([(vip, ifname)])
        if err is not None:
            raise err

    async def start_many(self, pairs: Sequence[tuple[IPAddress, str]]) -> list[Exception | None]:
        """`start` for every (VIP, interface) at once; returns when every first frame is out, with what
        `start` would have raised for each pair (None when it started). No task per VIP: at takeover their
        first frames share batches. A yield every START_CHUNK VIPs lets the loop's due timers (Lease
        renewals) run while 10000 are scheduled. Cancelled, the VIPs scheduled so far stay announced until
        `stop`, like those started."""
        loop = asyncio.get_running_loop()
        results: list[Exception | None] = [None] * len(pairs)
        waits: list[asyncio.Future[None]] = []
        async for i, (vip, ifname) in chunked(enumerate(pairs), START_CHUNK):
            current = self._vips.get(vip)
            if current is not None and current.ifname == ifname:
                if current.first is not None:
                    waits.append(current.first)
                continue
            try:
                await self.stop(vip)
                await self._open(ifname, vip.version)  # NetworkError here names a missing interface
            except Exception as exc:  # the caller decides per VIP (VipSet logs a missing interface)
                results[i] = exc
                continue
            if self._ticker is None or self._ticker.done():
                self._ticker = spawn(self._guard, "announcer", self._tick())
            first: asyncio.Future[None] = loop.create_future()
            ent = _Vip(ifname, first)
            self._vips[vip] = ent
            self._schedule(vip, ent, loop.time(), 0.0)
            waits.append(first)
        if waits:
            await asyncio.shield(asyncio.gather(*waits))
        return results

    async def stop(self, vip: IPAddress) -> None:
        """Stop announcing `vip`; returns once a frame of it already on its way is out (nothing more goes
        out)."""
        ent = self._vips.pop(vip, None)
        if ent is None:
            return
        ent.live = False
        _first_out(ent)
        if ent.batch is not None:
            await asyncio.gather(asyncio.shield(ent.batch), return_exceptions=True)

    async def close(self) -> None:
        """Stop every VIP and close the sockets."""
        for vip in list(self._vips):
            await self.stop(vip)
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        self._heap.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
        if self._own_guard:
            await self._guard.close()


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
