"""net.vipset: which kernel changes run on the event loop and which in a worker thread."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping

import pytest

from kubevip.core.rows import Changes, Row
from kubevip.net.settings import NetSettings
from kubevip.net.vipset import INLINE_CHANGES, INLINE_DUMP, VipSet


def _rows(n: int) -> list[Row]:
    return [Row(ipaddress.ip_address(f"10.0.{i // 256}.{i % 256}"), "eth0") for i in range(n)]


class ThreadRecordingVips(VipSet):
    """The real `apply` over a kernel that records which thread ran each change."""

    def __init__(self, net: NetSettings | None = None, abort: bool = False) -> None:
        super().__init__(net or NetSettings(interface="eth0"), label="node n1")
        self.announcer = None
        self.abort = abort
        self.threads: list[int] = []

    def change(
        self, changes: Changes, lifetimes: Mapping[Row, int | None] | None = None,
        not_after: float | None = None,
    ) -> tuple[set[Row], set[Row]]:
        self.threads.append(threading.get_ident())
        return set(), set(changes.add)


@pytest.mark.parametrize("n", [1, INLINE_CHANGES, INLINE_CHANGES + 1, 4 * INLINE_CHANGES])
async def test_small_kernel_changes_run_on_the_loop_big_ones_in_a_thread(n: int) -> None:
    """A new Service's 2-VIP add is 0.2 ms of netlink; handing it to a worker thread cost the BGP create
    path ~3 ms (the worker waits for the GIL while the loop runs the rest of the pass). Hundreds of VIPs
    at once still leave the loop free for the Lease renewals."""
    vips = ThreadRecordingVips()
    done = await vips.apply(Changes(add=tuple(_rows(n)), remove=()))
    assert len(done.add) == n and len(vips.held) == n
    on_loop = vips.threads == [threading.get_ident()]
    assert on_loop == (n <= INLINE_CHANGES), (n, vips.threads)


async def test_routes_and_aborting_removals_never_run_on_the_loop() -> None:
    """pyroute2 (routing-table mode) refuses a thread that runs a loop; a removal's connection abort
    dumps every TCP socket of the node: both stay in a worker thread however few VIPs change."""
    me = threading.get_ident()
    routes = ThreadRecordingVips(NetSettings(interface="eth0", routing_table=True))
    await routes.apply(Changes(add=tuple(_rows(1)), remove=()))
    assert routes.threads and routes.threads[0] != me
    aborting = ThreadRecordingVips(abort=True)
    await aborting.apply(Changes(add=tuple(_rows(1)), remove=()))  # adds alone: on the loop
    await aborting.apply(Changes(add=(), remove=tuple(_rows(1))))
    assert aborting.threads[0] == me and aborting.threads[1] != me


async def test_a_removal_runs_on_the_loop_only_while_few_vips_are_held() -> None:
    """A removal finds our addresses in a dump of the interface: with 2000 VIPs on it that dump took
    17 ms of the loop (0.5 s of wall time in a busy restart, issue 21); a small holder's stays inline."""
    me = threading.get_ident()
    vips = ThreadRecordingVips()
    held = _rows(INLINE_DUMP + 1)
    await vips.apply(Changes(add=tuple(held[:INLINE_DUMP]), remove=()))  # many at once: a thread
    await vips.apply(Changes(add=(), remove=tuple(held[:1])))  # INLINE_DUMP held: on the loop
    await vips.apply(Changes(add=(held[0], held[-1]), remove=()))  # a small add: on the loop
    await vips.apply(Changes(add=(), remove=tuple(held[:1])))  # INLINE_DUMP + 1 held: a thread
    assert [t == me for t in vips.threads] == [False, True, True, False]
