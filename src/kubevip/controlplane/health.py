"""Is the local kube-apiserver healthy? A `/livez` probe every period, down after `threshold` misses.

The decision (`HealthState.observe`) is pure; `HealthMonitor` only runs the probe on a timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kubevip.controlplane.settings import HealthSettings
from kubevip.kube.rest import RestClient

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class HealthState:
    """Unhealthy until the first success (never claim the VIP before the API server answered); healthy
    again on any success; unhealthy after `threshold` consecutive failures.
    """

    healthy: bool = False
    failures: int = 0

    def observe(self, ok: bool, threshold: int) -> HealthState:
        if ok:
            return HealthState(True, 0)
        failures = self.failures + 1
        return HealthState(self.healthy and failures < threshold, failures)


class HealthMonitor:
    """Runs `probe` every `period` (each bounded by `timeout`) and keeps `state`; `changed` wakes waiters."""

    def __init__(self, probe: Probe, settings: HealthSettings, *, name: str = "kube-apiserver") -> None:
        self.probe = probe
        self.settings = settings
        self.name = name
        self.state = HealthState()
        self.checks = 0
        self._changed = asyncio.Condition()

    @property
    def healthy(self) -> bool:
        return self.state.healthy

    async def check_once(self) -> bool:
        """One probe (a timeout or error counts as a miss); returns whether the verdict changed."""
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives as the probe completes, and the monitor would then outlive its shutdown.
            async with asyncio.timeout(self.settings.timeout):
                ok = await self.probe()
        except (TimeoutError, OSError) as exc:
            log.debug("%s health probe failed: %r", self.name, exc)
            ok = False
        before = self.state
        self.state = before.observe(ok, self.settings.threshold)
        self.checks += 1
        if self.state.healthy != before.healthy:
            log.info("%s is %s (%d consecutive failed checks)", self.name,
                     "healthy" if self.state.healthy else "unhealthy", self.state.failures)
            async with self._changed:
                self._changed.notify_all()
            return True
        return False

    async def run(self) -> None:
        """Probe forever at a fixed period (start it with kubevip.tasks.spawn)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.check_once()
            await asyncio.sleep(max(0.0, started + self.settings.period - loop.time()))

    async def wait_for(self, healthy: bool) -> None:
        """Return once the verdict is `healthy`."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.state.healthy == healthy)


async def livez_probe(api_client: RestClient, path: str, limit: float) -> bool:
    """GET `path` on the API server of `api_client` with its credentials; True on HTTP 200 `ok`."""
    try:
        resp = await api_client.request("GET", path, timeout=limit)
    except Exception as exc:  # any failure to get an answer is a failed check
        log.debug("GET %s failed: %r", path, exc)
        return False
    try:
        status = int(resp.status)
        body = await resp.read()
    finally:
        resp.release()
    return status == 200 and body.strip() == b"ok"
