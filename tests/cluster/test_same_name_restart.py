"""A node restarted under the same name, against the real API server: the old process is cut off from
the API server (fault injection in front of the real server; it keeps running and must fence itself),
the new process starts at once with the same identity. The new one must not trust the Lease that names
its node: their holdings never overlap, in both election modes, and the new one does take over."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubevip.election.elector import LeaseElector
from kubevip.election.leaseapi import LeaseApi
from kubevip.election.record import LeaseRecord
from kubevip.election.scalable import ScalableElector
from kubevip.election.timings import Timings
from kubevip.kube.rest import RestClient
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster


class CutOff(LeaseApi):
    """The real LeaseApi, until `cut` is set: then every request hangs (a black hole, not an error),
    so only the caller's own deadlines and the elector's fencing timer act."""

    def __init__(self, rest: RestClient) -> None:
        super().__init__(rest)
        self.cut = False

    async def _gate(self) -> None:
        if self.cut:
            await asyncio.Event().wait()

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        await self._gate()
        return await super().get(namespace, name, limit)

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        await self._gate()
        return await super().create(body, limit)

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        await self._gate()
        return await super().replace(body, limit)

    async def delete(self, namespace: str, name: str, resource_version: str,
                     limit: float | None = None) -> None:
        await self._gate()
        await super().delete(namespace, name, resource_version, limit)

    async def list(self, namespace: str, selector: str,
                   limit: float | None = None) -> tuple[list[LeaseRecord], str]:
        await self._gate()
        return await super().list(namespace, selector, limit)

    async def watch(self, namespace: str, selector: str, resource_version: str, idle_timeout: float,
                    field_selector: str | None = None) -> AsyncIterator[tuple[str, LeaseRecord]]:
        await self._gate()
        async for item in super().watch(namespace, selector, resource_version, idle_timeout, field_selector):
            await self._gate()
            yield item


class Spans:
    """(incarnation, unit) -> [start, end] on this process's monotonic clock."""

    def __init__(self) -> None:
        self.spans: list[list[Any]] = []

    def cb(self, inc: str, begin: bool) -> Any:
        async def f(unit: str = "lease") -> None:
            if begin:
                self.spans.append([inc, unit, time.monotonic(), None])
            else:
                for s in self.spans:
                    if s[0] == inc and s[1] == unit and s[3] is None:
                        s[3] = time.monotonic()
        return f

    def holding(self, inc: str, unit: str = "lease") -> bool:
        return any(s[0] == inc and s[1] == unit and s[3] is None for s in self.spans)

    def assert_no_overlap(self) -> None:
        by_unit: dict[str, list[list[Any]]] = {}
        for s in self.spans:
            by_unit.setdefault(s[1], []).append(s)
        for unit, spans in by_unit.items():
            spans.sort(key=lambda s: s[2])
            for a, b in itertools.pairwise(spans):
                assert a[3] is not None and a[3] <= b[2], (
                    f"{unit}: {a[0]} held it until {a[3]} but {b[0]} started at {b[2]}"
                )


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_lease_mode_restart_under_the_same_name(rest_kubevip: RestClient, kube_namespace: str):
    spans = Spans()
    old_api = CutOff(rest_kubevip)
    old = LeaseElector(old_api, kube_namespace, "plndr-svcs-lock", "node-a", Timings(),
                       lambda: spans.cb("old", True)(), lambda: spans.cb("old", False)())
    peer = LeaseElector(rest_kubevip, kube_namespace, "plndr-svcs-lock", "node-b", Timings(),
                        lambda: spans.cb("peer", True)(), lambda: spans.cb("peer", False)())
    t_old = asyncio.get_running_loop().create_task(old.run())
    await eventually(lambda: spans.holding("old"), "the first process of node-a leads", 30)
    t_peer = asyncio.get_running_loop().create_task(peer.run())
    old_api.cut = True  # the old process lives on, cut off from the API server
    new = LeaseElector(rest_kubevip, kube_namespace, "plndr-svcs-lock", "node-a", Timings(),
                       lambda: spans.cb("new", True)(), lambda: spans.cb("new", False)())
    t_new = asyncio.get_running_loop().create_task(new.run())
    try:
        await eventually(lambda: not spans.holding("old"), "the cut-off process fences itself", 30)
        await eventually(lambda: spans.holding("new") or spans.holding("peer"), "a new leader", 30)
        spans.assert_no_overlap()
    finally:
        await _stop(t_old, t_new, t_peer)
    spans.assert_no_overlap()


async def test_scalable_mode_restart_under_the_same_name(rest_kubevip: RestClient, kube_namespace: str):
    spans = Spans()
    units = {f"vip:198.18.0.{i}": None for i in range(1, 4)}
    old_api = CutOff(rest_kubevip)
    old = ScalableElector(old_api, kube_namespace, "node-a", Timings(), spans.cb("old", True),
                          spans.cb("old", False))
    old.set_units(units)
    t_old = asyncio.get_running_loop().create_task(old.run())
    await eventually(lambda: all(spans.holding("old", u) for u in units), "node-a holds every unit", 60)
    old_api.cut = True
    new = ScalableElector(rest_kubevip, kube_namespace, "node-a", Timings(), spans.cb("new", True),
                          spans.cb("new", False))
    new.set_units(units)
    t_new = asyncio.get_running_loop().create_task(new.run())
    try:
        await eventually(lambda: not any(spans.holding("old", u) for u in units), "old fences", 30)
        await eventually(lambda: all(spans.holding("new", u) for u in units), "the new process holds", 60)
        spans.assert_no_overlap()
    finally:
        await _stop(t_old, t_new)
    spans.assert_no_overlap()
