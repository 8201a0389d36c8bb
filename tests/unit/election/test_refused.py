"""A Lease the API server refuses (RBAC) is said once at warning level, not retried silently forever
(issue 21: svc_election's Lease in a Service's namespace without rights there left every unit unheld
with nothing above debug in the agents' logs)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from kubevip.election.elector import LeaseElector
from kubevip.election.timings import Timings
from kubevip.kube.errors import Forbidden
from tests.fixtures.waiting import eventually
from tests.unit.controlplane.fakes import FakeLeaseApi, _Scoped


class Refusing(_Scoped):
    """GETs answer 403 until `allow` is set; counts the attempts."""

    def __init__(self, real: FakeLeaseApi) -> None:
        super().__init__(real, "node1")
        self.allow = False
        self.gets = 0

    async def get(self, namespace: str, name: str, limit: float | None = None) -> Any:
        self.gets += 1
        if not self.allow:
            raise Forbidden(403, f"get lease {namespace}/{name}", "leases is forbidden")
        return await super().get(namespace, name, limit)


async def test_a_refused_lease_is_warned_once_then_taken_when_allowed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = Refusing(FakeLeaseApi())
    started = asyncio.Event()

    async def on_started() -> None:
        started.set()

    async def on_stopped() -> None:
        return None

    t = Timings(lease_duration=0.3, renew_deadline=0.2, retry_period=0.01, skew_margin=0.05)
    e = LeaseElector(api, "tenant", "kubevip-web", "node1", t, on_started, on_stopped)
    caplog.set_level(logging.DEBUG, logger="kubevip.election.elector")
    task = asyncio.create_task(e.run())
    try:
        await eventually(lambda: api.gets >= 5, "five refused attempts", within=10, interval=0.01)
        warned = [r for r in caplog.records if r.levelno == logging.WARNING and "refuses" in r.getMessage()]
        assert len(warned) == 1, [r.getMessage() for r in caplog.records]
        assert "tenant/kubevip-web" in warned[0].getMessage()
        api.allow = True
        async with asyncio.timeout(10):
            await started.wait()
        assert e.is_leader
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
