"""Announcement schedule (pure) and the announcer's start/stop semantics with a recording sender."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.errors import NetworkError
from kubevip.net.announcer import BURST, EARLY_SHARE, START_CHUNK, Announcer, burst_gaps, gap_after
from kubevip.net.namespace import Netns
from kubevip.tasks import bounded
from tests.fixtures.waiting import eventually

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@given(st.integers(min_value=500, max_value=100_000), st.lists(st.floats(0, 5), max_size=8))
def test_delays_are_burst_gaps_then_rate(rate: int, burst: list[float]) -> None:
    delays = [gap_after(sent, burst_gaps(burst), rate) for sent in range(1, len(burst) + 6)]
    assert all(d >= 0 for d in delays)
    n_gaps = max(len(burst) - 1, 0)
    offsets = list(itertools.accumulate(delays[:n_gaps], initial=min(burst, default=0.0)))
    assert [round(x, 9) for x in offsets] == [round(x, 9) for x in sorted(burst)] or not burst
    assert delays[n_gaps:] == [rate / 1000.0] * (len(delays) - n_gaps)


def test_default_burst_starts_at_once_and_ends_within_seconds() -> None:
    assert BURST[0] == 0.0 and len(BURST) >= 3 and max(BURST) <= 3.0


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, IPAddress, float]] = []
        self.closed = False

    def factory(self, ifname: str, version: int, ns: Netns) -> Recorder.Sender:
        return Recorder.Sender(self, ifname)

    class Sender:
        def __init__(self, rec: Recorder, ifname: str) -> None:
            self.rec, self.ifname = rec, ifname

        def announce(self, ip: IPAddress, /) -> None:
            self.rec.sent.append((self.ifname, ip, time.monotonic()))

        def close(self) -> None:
            self.rec.closed = True


async def test_start_sends_at_once_then_bursts_and_stop_is_immediate() -> None:
    rec = Recorder()
    ann = Announcer(rate_ms=500, burst=(0.0, 0.01, 0.02), sender_factory=rec.factory)
    vip = ipaddress.ip_address("10.0.0.9")
    await ann.start(vip, "eth0")
    assert len(rec.sent) == 1  # on the wire before start() returned
    await eventually(lambda: len(rec.sent) >= 3, "three announcements of the first VIP", 5.0, interval=0.005)
    await ann.stop(vip)
    count = len(rec.sent)
    assert ann.active() == {}
    # Another VIP keeps running; none of its refreshes may carry the stopped VIP.
    other = ipaddress.ip_address("fd00::9")
    await ann.start(other, "eth0")
    await eventually(
        lambda: sum(1 for _, ip, _ in rec.sent if ip == other) >= 3,
        "three announcements of the other VIP",
        5.0,
        interval=0.005,
    )
    assert [ip for _, ip, _ in rec.sent[count:]] == [other] * (len(rec.sent) - count)
    await ann.close()
    assert rec.closed and ann.active() == {}


async def test_start_is_idempotent_and_moves_between_interfaces() -> None:
    rec = Recorder()
    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=rec.factory)
    vip = ipaddress.ip_address("10.0.0.9")
    await ann.start(vip, "eth0")
    await ann.start(vip, "eth0")
    assert len(rec.sent) == 1
    await ann.start(vip, "eth1")
    assert ann.active() == {vip: "eth1"}
    assert [i for i, _, _ in rec.sent] == ["eth0", "eth1"]
    await ann.close()


async def test_frames_leave_off_the_event_loop_and_stop_waits_for_one_on_its_way() -> None:
    """A send runs in the announcer's thread (the loop keeps going meanwhile); `stop` returns only after
    a send already under way is out, so no frame names the VIP afterwards."""
    release = threading.Event()
    entered = threading.Event()
    rec = Recorder()

    class Slow(Recorder.Sender):
        def announce(self, ip: IPAddress, /) -> None:
            if len(rec.sent) == 1:  # the first burst repeat hangs in the kernel, say
                entered.set()
                release.wait(5)
            super().announce(ip)

    ann = Announcer(rate_ms=10_000, burst=(0.0, 0.01), sender_factory=lambda i, v, n: Slow(rec, i))
    vip = ipaddress.ip_address("10.0.0.9")
    await ann.start(vip, "eth0")
    await asyncio.to_thread(entered.wait, 5)
    ticks = 0
    for _ in range(3):  # the loop is not blocked by the hanging send
        await asyncio.sleep(0)
        ticks += 1
    stopping = asyncio.ensure_future(ann.stop(vip))
    await asyncio.sleep(0.05)
    assert not stopping.done(), "stop returned while a frame was still on its way"
    release.set()
    await stopping
    assert ticks == 3 and len(rec.sent) == 2
    await asyncio.sleep(0.05)
    assert len(rec.sent) == 2, "nothing after stop"
    await ann.close()


async def test_vips_starting_together_open_one_sender_per_interface_and_family() -> None:
    rec = Recorder()
    opened: list[tuple[str, int]] = []

    def factory(ifname: str, version: int, ns: Netns) -> Recorder.Sender:
        opened.append((ifname, version))
        return rec.factory(ifname, version, ns)

    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=factory)
    vips = [ipaddress.ip_address(f"10.0.0.{i}") for i in range(1, 50)]
    vips += [ipaddress.ip_address(f"fd00::{i:x}") for i in range(1, 50)]
    await asyncio.gather(*(ann.start(v, "eth0") for v in vips))
    assert sorted(opened) == [("eth0", 4), ("eth0", 6)]
    assert {ip for _, ip, _ in rec.sent} == set(vips)
    await ann.close()


def _dual(n: int) -> list[IPAddress]:
    """`n` IPv4 and `n` IPv6 VIPs."""
    return [ipaddress.ip_address(f"10.0.1.{i}") for i in range(1, n + 1)] + [
        ipaddress.ip_address(f"fd00::1:{i:x}") for i in range(1, n + 1)
    ]


async def test_vips_started_together_go_out_in_one_batch() -> None:
    """One job for the thread per batch, not a future per frame: 3300 a second at 10000 VIPs."""
    rec = Recorder()
    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=rec.factory)
    vips = _dual(40)
    # The sockets first: starts that wait for one to open resume at different loop iterations.
    await ann.start(vips[0], "eth0")
    await ann.start(vips[-1], "eth0")
    assert ann.batches == 2
    await asyncio.gather(*(ann.start(v, "eth0") for v in vips[1:-1]))
    assert ann.batches == 3 and len(rec.sent) == len(vips)
    await ann.close()


async def test_refreshes_stay_batched() -> None:
    rec = Recorder()
    ann = Announcer(rate_ms=100, burst=(0.0,), sender_factory=rec.factory)
    vips = _dual(40)
    # Started together (a takeover): 80 separate `start` calls would batch as the loop happens to
    # interleave them with the sending thread, many batches on a loaded machine.
    assert await ann.start_many([(v, "eth0") for v in vips]) == [None] * len(vips)
    firsts = ann.batches
    await eventually(lambda: len(rec.sent) >= 4 * len(vips), "three refreshes of every VIP", 5.0,
                     interval=0.01)
    await ann.close()
    counts = {ip: 0 for ip in vips}
    for _, ip, _ in rec.sent:
        counts[ip] += 1
    assert max(counts.values()) - min(counts.values()) <= 1
    # The VIPs of one batch are due together from then on: each refresh round is at most as many batches
    # as the first frames took (a slow loop can only merge more of them), not one per VIP.
    assert firsts <= len(vips) // 4
    assert ann.batches - firsts <= firsts * (max(counts.values()) - 1)


async def test_refreshes_that_fall_close_together_merge_and_none_comes_early() -> None:
    """A VIP started a little after another joins the other's refresh (at most a tenth of a period
    early) and stays with it; no VIP is ever refreshed sooner than 0.9 periods after its last frame."""
    rec = Recorder()
    rate = 0.2
    ann = Announcer(rate_ms=int(rate * 1000), burst=(0.0,), sender_factory=rec.factory)
    a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    await ann.start(a, "eth0")
    await asyncio.sleep(rate * EARLY_SHARE / 2)  # part of the scenario: b starts within a's window
    await ann.start(b, "eth0")
    assert ann.batches == 2
    await eventually(lambda: sum(1 for _, ip, _ in rec.sent if ip == b) >= 5, "b refreshed four times", 5.0,
                     interval=0.01)
    await ann.close()
    for vip in (a, b):
        times = [t for _, ip, t in rec.sent if ip == vip]
        gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
        assert min(gaps) >= rate * (1 - EARLY_SHARE) - 0.002, gaps
    # From a's first refresh on, a and b share every batch.
    n_a = sum(1 for _, ip, _ in rec.sent if ip == a)
    assert ann.batches <= 2 + n_a - 1


async def test_a_failing_interface_costs_no_other_interface_its_frames_and_is_reopened() -> None:
    rec = Recorder()
    opened: list[str] = []

    class Broken(Recorder.Sender):
        def announce(self, ip: IPAddress, /) -> None:
            raise OSError("No such device")

    class Odd(Recorder.Sender):
        def announce(self, ip: IPAddress, /) -> None:
            raise ValueError("a bug in one frame")

    def factory(ifname: str, version: int, ns: Netns) -> Recorder.Sender:
        opened.append(ifname)
        cls = {"gone": Broken, "odd": Odd}.get(ifname, Recorder.Sender)
        return cls(rec, ifname)

    ann = Announcer(rate_ms=50, burst=(0.0,), sender_factory=factory)
    good, gone, odd = (ipaddress.ip_address(f"10.0.0.{i}") for i in (1, 2, 3))
    await asyncio.gather(ann.start(gone, "gone"), ann.start(odd, "odd"), ann.start(good, "eth0"))
    assert [ip for _, ip, _ in rec.sent] == [good]
    await eventually(lambda: opened.count("gone") >= 3 and opened.count("odd") >= 3,
                     "the failed interfaces reopened on later refreshes", 5.0, interval=0.01)
    assert rec.closed, "a failed sender is closed"
    assert {ip for _, ip, _ in rec.sent} == {good} and len(rec.sent) >= 3
    assert ann.active() == {good: "eth0", gone: "gone", odd: "odd"}
    await ann.close()


def _held(rec: Recorder, release: threading.Event) -> Callable[[str, int, Netns], Recorder.Sender]:
    """A sender factory whose frames wait in the announcer's thread until `release` is set."""

    class Held(Recorder.Sender):
        def announce(self, ip: IPAddress, /) -> None:
            release.wait(5)
            super().announce(ip)

    return lambda ifname, version, ns: Held(rec, ifname)


async def test_stopping_a_vip_whose_first_frame_waits_lets_its_start_return() -> None:
    release = threading.Event()
    rec = Recorder()
    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=_held(rec, release))
    first, second = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    starting = asyncio.ensure_future(ann.start(first, "eth0"))
    await eventually(lambda: ann.batches == 1, "the first batch in the thread", 5.0, interval=0.005)
    queued = asyncio.ensure_future(ann.start(second, "eth0"))  # waits behind the held batch
    await eventually(lambda: second in ann.active(), "the second VIP scheduled", 5.0, interval=0.005)
    await ann.stop(second)
    await bounded(queued, 5)
    release.set()
    await bounded(starting, 5)
    await ann.close()
    assert [ip for _, ip, _ in rec.sent] == [first]


def _many(n: int) -> list[tuple[IPAddress, str]]:
    return [(ipaddress.ip_address(f"10.1.{i // 256}.{i % 256}"), "eth0") for i in range(n)]


async def test_start_many_lets_due_timers_run_between_chunks() -> None:
    rec = Recorder()
    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=rec.factory)
    await ann.start(ipaddress.ip_address("10.0.0.1"), "eth0")  # the socket is open: no await per VIP
    pairs = _many(3 * START_CHUNK)
    seen: list[int] = []
    asyncio.get_running_loop().call_soon(lambda: seen.append(len(ann.active())))  # a renewal falls due
    assert await ann.start_many(pairs) == [None] * len(pairs)
    assert seen and 1 < seen[0] < len(pairs), seen  # it ran after the first chunk, before the last
    assert len(rec.sent) == len(pairs) + 1
    await ann.close()


async def test_start_many_reports_each_vips_error_and_starts_the_others() -> None:
    rec = Recorder()

    def factory(ifname: str, version: int, ns: Netns) -> Recorder.Sender:
        if ifname == "gone":
            raise NetworkError("interface gone not found")
        return rec.factory(ifname, version, ns)

    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=factory)
    a, b = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("10.0.0.2")
    res = await ann.start_many([(a, "eth0"), (b, "gone")])
    assert res[0] is None and isinstance(res[1], NetworkError)
    assert ann.active() == {a: "eth0"} and [ip for _, ip, _ in rec.sent] == [a]
    await ann.close()


async def test_a_cancelled_start_many_leaves_no_task_and_its_vips_announced_until_stopped() -> None:
    release = threading.Event()
    rec = Recorder()
    ann = Announcer(rate_ms=10_000, burst=(0.0,), sender_factory=_held(rec, release))
    pairs = _many(5)
    before = set(asyncio.all_tasks())
    starting = asyncio.ensure_future(ann.start_many(pairs))
    await eventually(lambda: ann.batches == 1, "the first frames in the thread", 5.0, interval=0.005)
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    assert set(ann.active()) == {ip for ip, _ in pairs}
    assert {t.get_name() for t in set(asyncio.all_tasks()) - before} == {"announcer:announcer"}
    release.set()
    await eventually(lambda: len(rec.sent) == len(pairs), "the first frames out", 5.0, interval=0.005)
    await ann.close()
    assert ann.active() == {}


async def test_a_vip_announced_costs_little_memory() -> None:
    """One entry per VIP held, 2000 on the holder at 1000 dual-stack Services: no generator, no future
    once its first frame is out. With them a VIP cost 1.1 KB here (this test's recording sender and the
    counters included), without them about 0.5 KB."""
    rec = Recorder()
    ann = Announcer(rate_ms=60_000, burst=(0.0, 30.0), sender_factory=rec.factory)
    vips = [ipaddress.ip_address(f"10.1.{i // 250}.{i % 250 + 1}") for i in range(2000)]
    await ann.start(vips[0], "eth0")  # the sender opened: not counted
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert await ann.start_many([(v, "eth0") for v in vips[1:]]) == [None] * (len(vips) - 1)
        per_vip = (tracemalloc.get_traced_memory()[0] - before) / (len(vips) - 1)
    finally:
        tracemalloc.stop()
        await ann.close()
    assert len(rec.sent) == len(vips)
    assert per_vip < 800, per_vip
