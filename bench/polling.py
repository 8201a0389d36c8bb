"""Waiting on a condition with a deadline in the benchmarks (a benchmark stops with TimeoutError)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(probe: Callable[[], Awaitable[Any]], within: float, what: str) -> Any:
    """Await `probe` every 10 ms until it returns something truthy and return that; TimeoutError after
    `within` seconds, naming `what`."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        got = await probe()
        if got:
            return got
        await asyncio.sleep(0.01)
    raise TimeoutError(f"{what}: not within {within}s")
