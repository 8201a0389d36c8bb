"""In-memory stand-ins for the control-plane runner's edges: a Lease store and a kernel per node."""

from __future__ import annotations

import asyncio
import copy
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kubevip.controlplane.kernel import KernelVips
from kubevip.core.rows import Row
from kubevip.election.leaseapi import Conflict, LeaseApi, LeaseApiError
from kubevip.election.record import LeaseRecord, parse_lease
from kubevip.net.settings import NetSettings


class FakeLeaseApi:
    """Compare-and-swap Leases like the API server; `down` makes every call fail like an outage."""

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], dict[str, Any]] = {}
        self.down: set[str] = set()  # callers (by identity) whose API server is unreachable
        self.history: list[tuple[str, str | None]] = []  # (Lease name, holder) of every accepted write
        self._rv = itertools.count(1)

    def view(self, caller: str) -> LeaseApi:
        return _Scoped(self, caller)

    def holder(self, ns: str = "kube-system", name: str = "plndr-cp-lock") -> str | None:
        obj = self.store.get((ns, name))
        return None if obj is None else parse_lease(obj).holder

    def _check(self, caller: str) -> None:
        if caller in self.down:
            raise LeaseApiError(503, "fake API server down")

    def _save(self, body: dict[str, Any]) -> LeaseRecord:
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.store[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        rec = parse_lease(copy.deepcopy(obj))
        self.history.append((rec.name, rec.holder))
        return rec

    def holders_written(self, name: str = "plndr-cp-lock") -> list[str | None]:
        """The holder of every accepted write of Lease `name`, in order, renewals collapsed."""
        out: list[str | None] = []
        for lease, holder in self.history:
            if lease == name and (not out or out[-1] != holder):
                out.append(holder)
        return out


class _Scoped(LeaseApi):
    """One node's view of the store (the elector takes any LeaseApi as is)."""

    def __init__(self, real: FakeLeaseApi, caller: str) -> None:  # no ApiClient behind it
        self.real = real
        self.caller = caller
        self.request_timeout = 1.0

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        self.real._check(self.caller)
        obj = self.real.store.get((namespace, name))
        return None if obj is None else parse_lease(copy.deepcopy(obj))

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.real._check(self.caller)
        meta = body["metadata"]
        if (meta["namespace"], meta["name"]) in self.real.store:
            raise Conflict(409, "create", "exists")
        return self.real._save(body)

    async def watch(
        self,
        namespace: str,
        selector: str,
        resource_version: str,
        idle_timeout: float,
        field_selector: str | None = None,
    ) -> AsyncIterator[tuple[str, LeaseRecord]]:
        """Changes of the Leases after `resource_version` (polled in memory; a down caller's watch fails)."""
        name = (field_selector or "").removeprefix("metadata.name=")
        floor = int(resource_version or 0)
        while True:
            self.real._check(self.caller)
            for key, obj in list(self.real.store.items()):
                rv = obj["metadata"]["resourceVersion"]
                if key[0] != namespace or (name and key[1] != name) or int(rv) <= floor:
                    continue
                floor = int(rv)
                yield "MODIFIED", parse_lease(copy.deepcopy(obj))
            await asyncio.sleep(0.005)

    async def delete(
        self, namespace: str, name: str, resource_version: str, limit: float | None = None
    ) -> None:
        self.real._check(self.caller)
        cur = self.real.store.get((namespace, name))
        if cur is None:
            return
        if cur["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(409, "write", "changed")
        del self.real.store[(namespace, name)]

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        self.real._check(self.caller)
        meta = body["metadata"]
        cur = self.real.store.get((meta["namespace"], meta["name"]))
        if cur is None or cur["metadata"]["resourceVersion"] != meta["resourceVersion"]:
            raise Conflict(409, "write", "changed")
        return self.real._save(body)


@dataclass
class World:
    """Who holds which VIP across all fake kernels; records any moment two nodes disagree."""

    kernels: dict[str, FakeKernel] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def holders(self) -> dict[str, set[str]]:
        """VIP -> nodes that have it up."""
        out: dict[str, set[str]] = {}
        for node, k in self.kernels.items():
            for p in k.held:
                out.setdefault(str(p.address), set()).add(node)
        return out

    def check(self) -> None:
        nodes = {n for ns in self.holders().values() for n in ns}
        if len(nodes) > 1:
            self.violations.append(f"VIPs on several nodes: {self.holders()}")


class FakeKernel(KernelVips):
    """KernelVips without netlink: placements are recorded, every change is checked against the world."""

    def __init__(self, node: str, world: World) -> None:
        super().__init__(NetSettings())
        self.node = node
        self.world = world
        self.changes: list[frozenset[Row]] = []
        self.lifetimes: list[int | None] = []  # of each converge that added something
        self.extensions: list[int] = []
        world.kernels[node] = self

    def interfaces(self) -> dict[int, str]:
        return {4: "eth0", 6: "eth0"}

    def remove_leftovers(self) -> set[Row]:
        return set()

    def prepare(self) -> None:
        pass  # no announcement sockets in unit tests

    def detect_ownership(self, node: str, lifetime_marker: bool) -> None:
        pass  # no probe of the host's kernel in unit tests

    def extend_held(self, lifetime: int, not_after: float | None = None) -> float:
        if not_after is not None and time.monotonic() >= not_after:
            return time.monotonic()  # as rtnl_batch.run: nothing sent past the fencing deadline
        self.extensions.append(lifetime)
        return time.monotonic()

    async def converge(
        self, want: frozenset[Row], lifetime: int | None = None, not_after: float | None = None,
    ) -> None:
        if want - self.held:
            self.lifetimes.append(lifetime)
        # Removals land before additions, as in the real kernel path; check after each half.
        self.held = self.held & want
        self.world.check()
        self.held = want
        self.changes.append(want)
        self.world.check()
