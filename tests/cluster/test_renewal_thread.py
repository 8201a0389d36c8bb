"""The scalable mode's liveness renewals on their own thread (election.offloop), against the real API
server at the default timings (Lease 1.5 s, renew deadline 1.0 s): an agent loop blocked longer than
the renew deadline keeps its units; one blocked longer than the stall bound stops renewing, so peers
may take over, and fences once it runs again."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from kubevip.election.offloop import stall_bound
from kubevip.election.scalable import ScalableElector, node_lease_name
from kubevip.election.timings import Timings
from kubevip.kube.rest import RestClient
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster


class Units:
    """started / stopped callbacks, with the moments each unit stopped."""

    def __init__(self) -> None:
        self.held: set[str] = set()
        self.stops: list[tuple[str, float]] = []

    async def started(self, unit: str) -> None:
        self.held.add(unit)

    async def stopped(self, unit: str) -> None:
        self.held.discard(unit)
        self.stops.append((unit, time.monotonic()))


async def _live(rest: RestClient, ns: str, node: str, units: Units) -> tuple[ScalableElector, TaskGroupGuard]:
    el = ScalableElector(rest, ns, node, Timings(), units.started, units.stopped, renewal_thread=True)
    el.set_units({"default/a": None, "default/b": None})
    guard = TaskGroupGuard("test")
    spawn(guard, "scalable", el.run())
    await eventually(lambda: units.held == {"default/a", "default/b"}, "units held", 10)
    return el, guard


async def _renew_times(
    rest: RestClient, ns: str, node: str, stop: threading.Event, first: threading.Event
) -> list[float]:
    """The liveness Lease's renewTime as a second connection reads it, from a thread of its own (the
    test's loop is the one being blocked), until `stop`; (monotonic instant, renewTime) pairs, flat.
    `first` is set after the first sample."""

    def poll() -> list[float]:
        async def main() -> list[float]:
            peer = RestClient(rest.access)
            seen: list[float] = []
            try:
                while not stop.is_set():
                    resp = await peer.request(
                        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{node_lease_name(node)}"
                    )
                    body = await resp.json()
                    resp.release()
                    seen.append(time.monotonic())
                    seen.append(_micro(body["spec"]["renewTime"]))
                    first.set()
                    await asyncio.sleep(0.05)
            finally:
                await peer.close()
            return seen

        return asyncio.run(main())

    return await asyncio.to_thread(poll)


def _micro(stamp: str) -> float:
    """renewTime (RFC 3339 with microseconds) as a POSIX time."""
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _distinct_renewals(samples: list[float], since: float, until: float) -> int:
    """How many different renewTime values the poller saw between two monotonic instants."""
    pairs = zip(samples[::2], samples[1::2], strict=True)
    return len({renewed for at, renewed in pairs if since <= at <= until})


async def test_a_blocked_agent_loop_keeps_its_units(rest_kubevip: RestClient, kube_namespace: str) -> None:
    """3 s of a blocked loop (three renew deadlines; the 1000-Service restart measured 1-3 s): the
    renewals go on from their thread, nothing is fenced, nothing is claimed again."""
    units = Units()
    el, guard = await _live(rest_kubevip, kube_namespace, "node-r", units)
    stop, first = threading.Event(), threading.Event()
    poller = asyncio.ensure_future(_renew_times(rest_kubevip, kube_namespace, "node-r", stop, first))
    try:
        assert await asyncio.to_thread(first.wait, 10), "the poller reads the Lease"
        before = el.liveness.renewals
        blocked_at = time.monotonic()
        time.sleep(3 * Timings().renew_deadline)  # noqa: ASYNC251 - the blocked loop is the fault
        blocked_until = time.monotonic()
        assert el.liveness.renewals - before >= 6, "renewals went on while the loop was blocked"
        assert el.is_live and el.holds("default/a") and el.holds("default/b")
        # The loop runs again: what the renewal thread posted meanwhile has run once the cache holds the
        # version of the latest renewal.
        lease = node_lease_name("node-r")
        await eventually(
            lambda: el.liveness.mine is not None and el.cache.records[lease].resource_version
            == el.liveness.mine.resource_version, "the posted renewals ran", 5,
        )
        assert units.stops == [] and units.held == {"default/a", "default/b"}
    finally:
        stop.set()
        samples = await poller
        await guard.close()
    # The API server saw them: a second connection read a new renewTime during the block.
    assert _distinct_renewals(samples, blocked_at, blocked_until) >= 3, samples
    assert not guard.crashed


async def test_a_wedged_agent_loop_stops_renewing_and_fences_when_back(
    rest_kubevip: RestClient, kube_namespace: str
) -> None:
    """A loop blocked past the stall bound: no renewal from the bound on (the Lease expires for the
    peers), and the node's units are fenced once the loop runs, before anything else it does."""
    units = Units()
    el, guard = await _live(rest_kubevip, kube_namespace, "node-w", units)
    bound = stall_bound(Timings())
    stop, first = threading.Event(), threading.Event()
    poller = asyncio.ensure_future(_renew_times(rest_kubevip, kube_namespace, "node-w", stop, first))
    try:
        assert await asyncio.to_thread(first.wait, 10), "the poller reads the Lease"
        blocked_at = time.monotonic()
        time.sleep(bound + 2 * Timings().lease_duration)  # noqa: ASYNC251 - the wedged loop is the fault
        resumed = time.monotonic()
        await eventually(lambda: units.held == set(), "fenced once the loop runs again", 5)
        assert all(at >= resumed for _, at in units.stops), units.stops
        # ... and, live again in a new epoch, it claims its units back.
        await eventually(lambda: units.held == {"default/a", "default/b"} and el.is_live, "back", 15)
    finally:
        stop.set()
        samples = await poller
        await guard.close()
    # A margin of 0.5 s past the bound for the last renewal in flight and the poller's own period.
    quiet_from = blocked_at + bound + 0.5
    assert _distinct_renewals(samples, quiet_from, resumed) <= 1, samples
    assert _distinct_renewals(samples, blocked_at, blocked_at + bound - 0.5) >= 3, samples
    assert not guard.crashed
