"""The shared wait helpers (tests/fixtures/waiting.py): value returned, plain and async probes, and a
failure that names what was awaited, the last value and the caller's detail."""

from __future__ import annotations

import pytest

from tests.fixtures.waiting import eventually, wait_until


class Countdown:
    """Falsy for the first `n` calls, then returns "done"."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self) -> str:
        self.left -= 1
        return "done" if self.left < 0 else ""


async def test_eventually_returns_the_value_of_a_plain_or_async_probe() -> None:
    assert await eventually(Countdown(3), "plain", 5.0, interval=0.001) == "done"
    probe = Countdown(2)

    async def async_probe() -> str:
        return probe()

    assert await eventually(async_probe, "async", 5.0, interval=0.001) == "done"


def test_wait_until_returns_the_value() -> None:
    assert wait_until(Countdown(2), "plain", 5.0, interval=0.001) == "done"


async def test_eventually_failure_names_what_last_value_and_detail() -> None:
    with pytest.raises(pytest.fail.Exception) as info:
        await eventually(lambda: [], "the list filled", 0.0, detail=lambda: "agent logs here")
    assert str(info.value) == "the list filled: not true within 0.0s (last: [])\nagent logs here"


def test_wait_until_failure_names_what_and_probes_at_least_once() -> None:
    probe = Countdown(10)
    with pytest.raises(pytest.fail.Exception, match=r"^VIP answers: not true within 0.0s \(last: ''\)$"):
        wait_until(probe, "VIP answers", 0.0)
    assert probe.left == 9
