"""net.vipset's announcement start-up: every VIP's first frame together, created in chunks so the event
loop's due timers (Lease renewals) run between them."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from kubevip.core.rows import Row
from kubevip.ip import IPAddress
from kubevip.net.vipset import START_CHUNK, _start_all
from tests.fixtures.waiting import eventually


class SlowAnnouncer:
    """start() records its first step, then waits for its first frame (a future the test controls)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.sent = asyncio.Event()
        self.cancelled = 0

    async def start(self, ip: IPAddress, ifname: str) -> None:
        self.started.append(str(ip))
        try:
            await self.sent.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


def _rows(n: int) -> list[Row]:
    return [Row(ipaddress.ip_address(f"10.0.{i // 256}.{i % 256}"), "eth0") for i in range(n)]


async def test_due_timers_run_between_chunks_of_starts() -> None:
    ann = SlowAnnouncer()
    rows = _rows(3 * START_CHUNK)
    seen_at: list[int] = []
    loop = asyncio.get_running_loop()
    start = ann.start

    async def first_arms_a_timer(ip: IPAddress, ifname: str) -> None:
        if not ann.started:  # a renewal timer falls due while the first steps run
            loop.call_later(0, lambda: seen_at.append(len(ann.started)))
        await start(ip, ifname)

    ann.start = first_arms_a_timer  # type: ignore[method-assign]
    task = asyncio.ensure_future(_start_all(ann, rows))  # type: ignore[arg-type]
    await eventually(lambda: len(ann.started) == len(rows), "every announcement started")
    ann.sent.set()
    assert await task == [None] * len(rows)
    assert ann.started == [str(r.address) for r in rows]  # every VIP, in order
    assert seen_at and seen_at[0] < len(rows)  # the timer ran before the last start, not after all


async def test_cancelled_start_cancels_every_started_announcement() -> None:
    ann = SlowAnnouncer()
    task = asyncio.ensure_future(_start_all(ann, _rows(2 * START_CHUNK + 5)))  # type: ignore[arg-type]
    await eventually(lambda: len(ann.started) >= START_CHUNK, "the first chunk started")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ann.cancelled == len(ann.started) > 0  # nothing left running behind the cancelled pass
