"""Health verdict of the local API server: pure state machine (hypothesis) and the monitor loop."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.controlplane.health import HealthMonitor, HealthState, livez_probe
from kubevip.controlplane.settings import HealthSettings
from kubevip.tasks import bounded


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
    await bounded(waiter, 1)
    assert await m.check_once() is False and m.healthy  # one miss < threshold
    assert await m.check_once() is True and not m.healthy
    assert await m.check_once() is False and m.state.failures == 3  # the stalled probe timed out


class _Resp:
    def __init__(self, status: int, body: bytes) -> None:
        self.status, self._body, self.released = status, body, False

    async def read(self) -> bytes:
        return self._body

    def release(self) -> None:
        self.released = True


class _Client:
    """Stands in for RestClient.request: answers, or fails like an unreachable API server."""

    def __init__(self, answer: _Resp | Exception) -> None:
        self.answer = answer
        self.asked: list[str] = []

    async def request(self, method: str, path: str, **_: object) -> _Resp:
        self.asked.append(f"{method} {path}")
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize(
    "answer,healthy",
    [
        (_Resp(200, b"ok"), True),
        (_Resp(200, b"ok\n"), True),
        (_Resp(500, b"[-]etcd failed: reason withheld\nlivez check failed"), False),
        (_Resp(503, b"ok"), False),
        (_Resp(200, b"[+]ping ok"), False),
        (ConnectionRefusedError(111, "refused"), False),
        (TimeoutError(), False),
    ],
)
async def test_livez_probe_says_healthy_only_for_200_ok(answer: _Resp | Exception, healthy: bool) -> None:
    client = _Client(answer)
    assert await livez_probe(client, "/livez", 0.5) is healthy  # type: ignore[arg-type]
    assert client.asked == ["GET /livez"]
    if isinstance(answer, _Resp):
        assert answer.released
