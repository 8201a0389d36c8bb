"""The agent's collector policy (what is alive gets frozen, a long pause is logged) and the C heap's
free pages handed back."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
import time

import pytest

from kubevip import heap


def test_settle_freezes_what_is_alive() -> None:
    before = gc.get_freeze_count()
    keep = [{"n": i} for i in range(1000)]
    heap.settle()
    try:
        assert gc.get_freeze_count() >= before + len(keep)
    finally:
        gc.unfreeze()


def test_a_long_collection_is_logged_once_installed(caplog: pytest.LogCaptureFixture) -> None:
    heap.watch_pauses()
    heap.watch_pauses()
    try:
        assert gc.callbacks.count(heap._timer) == 1
        with caplog.at_level(logging.WARNING, logger="kubevip.heap"):
            heap._timer("start", {"generation": 2})
            heap._started[0] = time.perf_counter() - 1.5  # as if the walk had taken 1.5 s
            heap._timer("stop", {"generation": 2})
            heap._timer("start", {"generation": 0})
            heap._timer("stop", {"generation": 0})
        assert len(caplog.records) == 1
        assert "generation 2" in caplog.text and "1.5" in caplog.text
    finally:
        gc.callbacks.remove(heap._timer)


def test_configure_makes_collections_rarer_and_watches_pauses() -> None:
    before = gc.get_threshold()
    try:
        heap.configure()
        assert gc.get_threshold() == heap.THRESHOLDS
        assert all(a >= b for a, b in zip(gc.get_threshold(), before, strict=True))
        assert heap._timer in gc.callbacks
    finally:
        gc.set_threshold(*before)
        gc.callbacks.remove(heap._timer)


# A hole in the middle of the C heap: 64 MiB of 4 KiB blocks (above pymalloc's 512 bytes, below
# glibc's mmap threshold, so they come from the heap) freed while the block after them stays.
HOLE = """
import sys
from kubevip import heap

def rss():
    return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])

blocks = [bytearray(4096) for _ in range(16384)]
pin = bytearray(4096)
del blocks
before = rss()
print(heap.release_free_memory(), before, rss())
"""


def test_trimming_hands_a_freed_hole_back_to_the_kernel() -> None:
    out = subprocess.run([sys.executable, "-c", HOLE], check=True, capture_output=True, text=True)
    trimmed, before, after = out.stdout.split()
    assert trimmed == "True"  # glibc: the machines this runs on
    assert int(before) - int(after) > 48 * 1024, out.stdout  # KiB: most of the 64 MiB hole


async def test_tend_settles_once_ready_then_trims_again_and_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    thrice = asyncio.Event()

    def trim(pad: int) -> int:
        calls.append(pad)
        if len(calls) == 3:
            thrice.set()
        return 1

    monkeypatch.setattr(heap, "_trim", [trim])
    ready = asyncio.Event()
    task = asyncio.ensure_future(heap.tend(ready.wait, every=0.001))
    try:
        await asyncio.sleep(0.01)  # the measurement itself: nothing may happen before ready
        assert calls == []
        frozen = gc.get_freeze_count()
        keep = [{"n": i} for i in range(100)]
        ready.set()
        async with asyncio.timeout(5):
            await thrice.wait()
        assert calls[:3] == [0, 0, 0]
        assert gc.get_freeze_count() >= frozen + len(keep)
    finally:
        task.cancel()
        gc.unfreeze()
