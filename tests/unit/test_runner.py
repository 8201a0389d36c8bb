"""runner: when the metrics and health servers start (after the first pass, with a limit)."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from kubevip import runner


async def _waited(ready: bool, stop: bool, limit: float, later: str = "") -> tuple[float, Any]:
    agent = SimpleNamespace(ready=asyncio.Event())
    stopping = asyncio.Event()
    if ready:
        agent.ready.set()
    if stop:
        stopping.set()
    loop = asyncio.get_running_loop()
    if later == "ready":
        loop.call_later(0.05, agent.ready.set)
    elif later == "stop":
        loop.call_later(0.05, stopping.set)
    t0 = time.monotonic()
    await runner.first_pass_or_stop(agent, stopping, limit)  # type: ignore[arg-type]
    return time.monotonic() - t0, agent


async def test_servers_wait_for_the_first_pass() -> None:
    took, _ = await _waited(False, False, 30.0, later="ready")
    assert 0.04 <= took < 5.0


async def test_a_stop_ends_the_wait() -> None:
    took, _ = await _waited(False, False, 30.0, later="stop")
    assert 0.04 <= took < 5.0
    took, _ = await _waited(False, True, 30.0)
    assert took < 5.0


async def test_an_agent_that_never_gets_ready_serves_after_the_limit() -> None:
    took, agent = await _waited(False, False, 0.1)
    assert 0.09 <= took < 5.0 and not agent.ready.is_set()
    took, _ = await _waited(True, False, 30.0)
    assert took < 5.0


async def test_no_wait_is_left_behind() -> None:
    before = len(asyncio.all_tasks())
    await _waited(False, False, 0.05)
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before
