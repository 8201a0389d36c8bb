"""SIGTERM of the announcing agent: it withdraws, releases and exits 0 promptly; a peer takes over."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e


async def test_sigterm_withdraws_releases_and_exits(e2e: E2E) -> None:
    vip = e2e.vip(6)
    await e2e.service("term", [vip], families=("IPv6",))
    e2e.start_agents()
    first = await e2e.eventually(lambda: e2e.reach(vip), "VIP answers")
    agent = e2e.fleet.agents[first]
    agent.signal(signal.SIGTERM)
    assert agent.proc is not None
    rc = await asyncio.to_thread(agent.proc.wait, 10)
    assert rc == 0, e2e.fleet.logs()
    assert first not in await e2e.holders(vip), "the stopping agent withdrew its VIP"
    second = await e2e.eventually(lambda: _other(e2e, vip, first), "a peer answers")
    assert await e2e.holders(vip) == {second}, "exactly the answering peer holds the VIP"


async def _other(e2e: E2E, vip: object, old: str) -> str | None:
    got = await e2e.reach(vip, wait=0.3)  # type: ignore[arg-type]
    return got if got and got != old else None
