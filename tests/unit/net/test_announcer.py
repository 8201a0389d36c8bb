"""Announcement schedule (pure) and the announcer's start/stop semantics with a recording sender."""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from kubevip.net.announcer import BURST, Announcer, announcement_delays
from kubevip.net.namespace import Netns
from tests.fixtures.waiting import eventually

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@given(st.integers(min_value=500, max_value=100_000), st.lists(st.floats(0, 5), max_size=8))
def test_delays_are_burst_gaps_then_rate(rate: int, burst: list[float]) -> None:
    delays = list(itertools.islice(announcement_delays(rate, burst), len(burst) + 5))
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
