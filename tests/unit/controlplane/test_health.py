"""Health verdict of the local API server: pure state machine (hypothesis) and the monitor loop."""

from __future__ import annotations

import asyncio

from hypothesis import given
from hypothesis import strategies as st

from kubevip.controlplane.health import HealthMonitor, HealthState
from kubevip.controlplane.settings import HealthSettings


def model(results: list[bool], threshold: int) -> bool:
    """Healthy iff some check ever succeeded and fewer than `threshold` checks failed since the last."""
    if True not in results:
        return False
    trailing = len(results) - 1 - max(i for i, ok in enumerate(results) if ok)
    return trailing < threshold


@given(st.lists(st.booleans(), max_size=30), st.integers(1, 5))
def test_state_matches_the_model(results: list[bool], threshold: int) -> None:
    s = HealthState()
    for ok in results:
        s = s.observe(ok, threshold)
    assert s.healthy == model(results, threshold)


@given(st.integers(1, 5))
def test_unhealthy_until_first_success_and_down_after_threshold(threshold: int) -> None:
    s = HealthState()
    for _ in range(10):
        s = s.observe(False, threshold)
        assert not s.healthy
    s = s.observe(True, threshold)
    assert s.healthy
    for i in range(threshold):
        assert s.healthy
        s = s.observe(False, threshold)
        assert s.failures == i + 1
    assert not s.healthy


async def test_monitor_counts_timeouts_as_misses_and_wakes_waiters() -> None:
    answers = [True, False, False]
    stall = asyncio.Event()

    async def probe() -> bool:
        if not answers:
            await stall.wait()  # never set: the timeout must turn this into a miss
        return answers.pop(0)

    m = HealthMonitor(probe, HealthSettings(period=0.01, timeout=0.01, threshold=2))
    waiter = asyncio.get_running_loop().create_task(m.wait_for(True))
    assert await m.check_once() is True and m.healthy
    await asyncio.wait_for(waiter, 1)
    assert await m.check_once() is False and m.healthy  # one miss < threshold
    assert await m.check_once() is True and not m.healthy
    assert await m.check_once() is False and m.state.failures == 3  # the stalled probe timed out
