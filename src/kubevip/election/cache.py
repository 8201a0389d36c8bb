"""A list+watch cache of the Leases with one label, recording when each version was first seen here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from kubevip.election.leaseapi import LeaseApi
from kubevip.election.observe import Observation, observe
from kubevip.election.record import DURATION_MS_ANNOTATION, LeaseRecord, parse_lease
from kubevip.kube.watch import REPLACE_CHUNK, Backoff, Reflector
from kubevip.tasks import chunked

log = logging.getLogger(__name__)


class LeaseCache:
    """Level view of Leases matching `selector` in one namespace; `changed` is set on every update, and
    `dirty` collects the names whose decisive state changed until a consumer takes them."""

    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        selector: str,
        retry_period: float,
        idle_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        version_matters: Callable[[LeaseRecord], bool] = lambda rec: False,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.selector = selector
        self.retry_period = retry_period
        self.idle_timeout = idle_timeout
        self._clock = clock
        # Records whose very version decides something (a claim counts as ours only in the version we
        # wrote): a new version of them is a change even when nothing else in it changed.
        self._version_matters = version_matters
        self.records: dict[str, LeaseRecord] = {}
        self.seen: dict[str, Observation] = {}
        self.absent_since: dict[str, float] = {}
        self.synced = False
        self.changed = asyncio.Event()
        self.dirty: set[str] = set()
        self.version = 0  # bumped on every decisive change (consumers skip work while it stands still)
        # Bumped only by decisive changes of records whose version does not matter (in scalable mode the
        # nodes' liveness Leases, not the many claims): a view derived from those alone stays valid
        # while it stands still.
        self.others_version = 0

    def put(self, rec: LeaseRecord) -> None:
        """Record a version we read or wrote ourselves (fresher than the watch may be)."""
        old = self.records.get(rec.name)
        if old is not None and _newer(old.resource_version, rec.resource_version):
            return
        self.records[rec.name] = rec
        self.seen[rec.name] = observe(self.seen.get(rec.name), rec.resource_version, self._clock())
        self.absent_since.pop(rec.name, None)
        matters = self._version_matters(rec)
        moved = old is not None and old.resource_version != rec.resource_version
        if old is None or not same_state(old, rec) or (moved and matters):
            self.dirty.add(rec.name)
            self.version += 1
            if not matters or (old is not None and not self._version_matters(old)):
                self.others_version += 1
            self.changed.set()

    def drop(self, name: str) -> None:
        if (old := self.records.pop(name, None)) is not None:
            if not self._version_matters(old):
                self.others_version += 1
            self.seen.pop(name, None)
            self.absent_since.setdefault(name, self._clock())
            self.dirty.add(name)
            self.version += 1
            self.changed.set()

    def take_dirty(self) -> set[str]:
        """The names changed since the last call (a consumer re-examines only what they decide)."""
        out, self.dirty = self.dirty, set()
        return out

    def reflector(self) -> Reflector:
        """The one kube/ list+watch, feeding put/drop; backoff within a few retry periods so the cache
        is back soon after the API server is (each attempt is one request, the rate stays bounded)."""
        return Reflector(
            f"leases {self.namespace}/{self.selector}", self.api.client,
            f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases",
            self._replace, self._event, idle_timeout=self.idle_timeout,
            request_timeout=max(1.0, self.idle_timeout), first_list="",  # decisions never go back in time
            backoff=Backoff(first=min(0.5, self.retry_period), cap=max(1.0, 2 * self.retry_period)),
            query={"labelSelector": self.selector},
        )

    async def _replace(self, items: Iterable[dict[str, Any]]) -> None:
        # A malformed Lease fails the list: retried. In chunks between yields to the loop: scalable
        # mode lists one claim Lease per VIP (2000 at 1000 dual-stack Services) when a node starts.
        records = [parse_lease(item) async for item in chunked(items, REPLACE_CHUNK)]
        names = {r.name for r in records}
        for name in list(self.records):
            if name not in names:
                self.drop(name)
        for rec in records:
            self.put(rec)
        self.synced = True
        self.changed.set()

    def _event(self, kind: str, obj: dict[str, Any]) -> None:
        rec = parse_lease(obj)
        if kind == "DELETED":
            self.drop(rec.name)
        else:
            self.put(rec)

    async def run(self) -> None:
        """List, then watch from the list's version, forever (kube.watch.Reflector restarts it)."""
        await self.reflector().run()


def _newer(a: str, b: str) -> bool:
    """True if resourceVersion `a` is known to be newer than `b` (they are opaque unless both are ints)."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return False


def same_state(a: LeaseRecord, b: LeaseRecord) -> bool:
    """Equal but for a renewal (resourceVersion, renewTime and the precise-duration stamp), which moves
    expiry times (kept in `seen`) but changes no decision, so it need not wake anyone.
    """
    return (
        a.holder == b.holder
        and a.transitions == b.transitions
        and a.duration == b.duration
        and a.acquire_time == b.acquire_time
        and a.labels == b.labels
        and _decisive(a.annotations) == _decisive(b.annotations)
    )


def _decisive(annotations: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in annotations.items() if k != DURATION_MS_ANNOTATION}
