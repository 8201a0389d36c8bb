"""Layer-2 announcements per VIP: a burst at takeover, then a refresh every `vip_arpRate` ms.

API (asyncio; one Announcer per agent):

    ann = Announcer(rate_ms=3000)             # ns=Netns("node1") to act in another namespace
    await ann.start(vip, "eth0")              # first announcement is on the wire when this returns
    await ann.stop(vip)                       # no further announcement for `vip` after this returns
    await ann.close()                         # stops everything, closes the raw sockets

`AddressManager` / `RoutingTable` calls block on netlink: from asyncio use `asyncio.to_thread`.
IPv4 VIPs get gratuitous ARPs (net.arp), IPv6 VIPs unsolicited NAs (net.ndp). `start` for a VIP that is
already announced on the same interface does nothing; on another interface it moves there.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from kubevip.errors import NetworkError
from kubevip.ip import IPAddress
from kubevip.net.arp import ArpSender
from kubevip.net.interfaces import link
from kubevip.net.namespace import OWN, Netns
from kubevip.net.ndp import NdpSender
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)


# Seconds after takeover at which the burst repeats the first announcement: a lost frame or a neighbour
# that was busy gets several chances within the first ~2 s, instead of waiting a full refresh period.
BURST: tuple[float, ...] = (0.0, 0.05, 0.2, 0.5, 1.0, 2.0)
DEFAULT_RATE_MS = 3000


def announcement_delays(rate_ms: int, burst: Sequence[float] = BURST) -> Iterator[float]:
    """Sleep before each announcement after the first: the burst's gaps, then `rate_ms` forever."""
    offsets = sorted(burst) or [0.0]
    for prev, nxt in itertools.pairwise(offsets):
        yield nxt - prev
    while True:
        yield rate_ms / 1000.0


class Sender(Protocol):
    def announce(self, ip: IPAddress, /) -> None: ...
    def close(self) -> None: ...


SenderFactory = Callable[[str, int, Netns], Sender]


def raw_sender(ifname: str, version: int, ns: Netns) -> Sender:
    """The real sender for one interface and family."""
    mac = link(ifname, ns).mac
    return ArpSender(ifname, mac, ns) if version == 4 else NdpSender(ifname, mac, ns)  # type: ignore[return-value]


class Announcer:
    """Keeps one announcement task per VIP; tasks run under a `kubevip.tasks` guard.

    Frames go out from one thread of the announcer's own: a send on a bridged interface also delivers
    the broadcast to every port inside the system call, which with 1000 Services taken over at once
    kept the event loop (Lease renewals) blocked for seconds.
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
        self._own_guard = guard is None
        self._guard = guard or TaskGroupGuard("announcer")
        self._factory = sender_factory
        self._senders: dict[tuple[str, int], Sender] = {}
        self._opening = asyncio.Lock()
        self._tasks: dict[IPAddress, tuple[str, asyncio.Task[None]]] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="announce")
        # The send of each VIP that may still be running in the pool (`stop` waits for it).
        self._inflight: dict[IPAddress, Future[None]] = {}
        self.sent: dict[IPAddress, int] = {}

    def active(self) -> dict[IPAddress, str]:
        """VIP -> interface for every VIP being announced."""
        return {vip: ifname for vip, (ifname, _) in self._tasks.items()}

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

    async def _send(self, vip: IPAddress, ifname: str) -> None:
        sender: Sender | None = None
        try:
            sender = await self._open(ifname, vip.version)
            job = self._pool.submit(sender.announce, vip)
            self._inflight[vip] = job
            await asyncio.wrap_future(job)  # cancelled meanwhile: the entry stays for `stop` to wait on
            if self._inflight.get(vip) is job:
                del self._inflight[vip]
            self.sent[vip] = self.sent.get(vip, 0) + 1
        except (OSError, NetworkError) as exc:
            # The interface may have been recreated: reopen the socket next time instead of giving up.
            log.warning("announcing %s on %s failed: %s (will retry)", vip, ifname, exc)
            key = (ifname, vip.version)
            if sender is not None and self._senders.get(key) is sender:  # not one reopened meanwhile
                del self._senders[key]
                # Other VIPs' sends may still be queued on it: close it behind them, in the pool.
                self._pool.submit(sender.close)

    async def start(self, vip: IPAddress, ifname: str) -> None:
        """Announce `vip` on `ifname` now, then on the burst schedule, then every `rate_ms`."""
        current = self._tasks.get(vip)
        if current is not None and current[0] == ifname and not current[1].done():
            return
        await self.stop(vip)
        await self._open(ifname, vip.version)  # NetworkError here names a missing interface
        await self._send(vip, ifname)
        task = spawn(self._guard, f"announce {vip} on {ifname}", self._run(vip, ifname))
        self._tasks[vip] = (ifname, task)

    async def _run(self, vip: IPAddress, ifname: str) -> None:
        for delay in announcement_delays(self.rate_ms, self.burst):
            await asyncio.sleep(delay)
            await self._send(vip, ifname)

    async def stop(self, vip: IPAddress) -> None:
        """Stop announcing `vip`; returns once its task has ended (nothing more goes out)."""
        entry = self._tasks.pop(vip, None)
        if entry is None:
            return
        task = entry[1]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        job = self._inflight.pop(vip, None)
        if job is not None and not job.cancel():  # already on its way: wait until it is out
            await asyncio.gather(asyncio.wrap_future(job), return_exceptions=True)

    async def close(self) -> None:
        """Stop every VIP and close the sockets."""
        for vip in list(self._tasks):
            await self.stop(vip)
        self._pool.shutdown(wait=True, cancel_futures=True)
        for sender in self._senders.values():
            sender.close()
        self._senders.clear()
        if self._own_guard:
            await self._guard.close()
