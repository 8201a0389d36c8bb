"""kube-vip's own election layout: `svc_election=true` gives each Service its Lease `kubevip-<service>` in
the Service's namespace, its holder announces both families, and SIGTERM hands it to a peer. Then a
foreign write before expiry: another identity writes itself as the Lease's holder (and keeps renewing);
the agent that held it fences, no node carries the VIPs while the intruder holds the Lease, and a node
takes them again once the intruder's Lease expires. The shared node watcher (`E2E.watch`) fails the test
on any instant with a VIP on two nodes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import signal
import time

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.tasks import bounded
from tests.e2e.conftest import E2E

pytestmark = pytest.mark.e2e
INTRUDER = "intruder-not-a-node"


async def test_per_service_lease_mode(e2e: E2E) -> None:
    v4, v6 = e2e.vip(4), e2e.vip(6)
    await e2e.service("web", [v4, v6], families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents(vip_electionmode="lease", svc_election="true")
    holder = await e2e.eventually(lambda: _lease_holder(e2e, "kubevip-web"), "Lease kubevip-web held")
    assert await e2e.eventually(lambda: _reach_is(e2e, v4, holder), "IPv4 answered by the Lease holder")
    assert await e2e.eventually(lambda: _reach_is(e2e, v6, holder), "IPv6 answered by the Lease holder")
    assert await e2e.holders(v4) == await e2e.holders(v6) == {holder}

    async with e2e.watch(v4, v6):
        e2e.fleet.agents[holder].signal(signal.SIGTERM)
        new = await e2e.eventually(lambda: _other_holder(e2e, "kubevip-web", holder), "a peer takes it")
        assert await e2e.eventually(lambda: _reach_is(e2e, v4, new), "IPv4 follows the Lease")
        assert await e2e.eventually(lambda: _reach_is(e2e, v6, new), "IPv6 follows the Lease")

    # A foreign write before expiry: the intruder replaces the live Lease (compare-and-swap on the
    # holder's current version, as a real competitor would) and renews it like a holder would.
    async with e2e.watch(v4, v6) as w:
        written = time.monotonic()
        await _write_holder(e2e, "kubevip-web", INTRUDER)
        stop = asyncio.Event()
        renewer = asyncio.create_task(_keep_renewing(e2e, "kubevip-web", INTRUDER, stop))
        try:
            await e2e.eventually(lambda: _nowhere(e2e, v4, v6), f"{new} fences: the intruder holds the Lease")
            fenced = time.monotonic()
            # Held by the intruder for more than a lease duration (4 s; its renewals accepted): nobody
            # takes the VIPs meanwhile, checked on every sample of the node watcher.
            await e2e.renewals("kubevip-web", INTRUDER, 10)
            assert await _lease_holder(e2e, "kubevip-web") == INTRUDER
            during = time.monotonic()
        finally:
            stop.set()
            await renewer
        assert all(w.holders(v, fenced) and w.holders(v, fenced)[0] == frozenset() for v in (v4, v6))
        assert all(not s[v] for t, s in w.samples if fenced <= t <= during for v in (v4, v6)), (
            "a node carried a VIP while the intruder held its Lease"
        )
        # The intruder stops renewing: its Lease expires and a node takes it (and the VIPs) again.
        back = await e2e.eventually(lambda: _other_holder(e2e, "kubevip-web", INTRUDER), "a node takes it")
        assert await e2e.eventually(lambda: _reach_is(e2e, v4, back), "IPv4 answered by the new holder")
        assert await e2e.eventually(lambda: _reach_is(e2e, v6, back), "IPv6 answered by the new holder")
    print(f"foreign write: {new} dropped the VIPs {fenced - written:.2f}s after it (poll included)")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


async def _write_holder(e2e: E2E, name: str, who: str) -> None:
    api = client.CoordinationV1Api(e2e.api)
    lease = await api.read_namespaced_lease(name, e2e.ns)
    assert lease.spec.holder_identity not in (None, "", who)
    lease.spec.holder_identity = who
    lease.spec.acquire_time = lease.spec.renew_time = _now()
    lease.spec.lease_transitions = (lease.spec.lease_transitions or 0) + 1
    await api.replace_namespaced_lease(name, e2e.ns, lease)


async def _keep_renewing(e2e: E2E, name: str, who: str, stop: asyncio.Event) -> None:
    """Renew as `who` every 0.5 s until stopped; gives up as soon as someone else holds the Lease."""
    api = client.CoordinationV1Api(e2e.api)
    while not stop.is_set():
        lease = await api.read_namespaced_lease(name, e2e.ns)
        if lease.spec.holder_identity != who:
            return
        lease.spec.renew_time = _now()
        try:
            await api.replace_namespaced_lease(name, e2e.ns, lease)
        except ApiException as exc:
            if exc.status != 409:  # a conflict is an agent's write: read again
                raise
        with contextlib.suppress(TimeoutError):
            await bounded(stop.wait(), 0.5)




async def _nowhere(e2e: E2E, *vips: object) -> bool:
    owned = await e2e.owned()
    return not any(v in addrs for addrs in owned.values() for v in vips)


async def _lease_holder(e2e: E2E, name: str) -> str | None:
    try:
        lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(name, e2e.ns)
    except ApiException:
        return None
    return lease.spec.holder_identity or None


async def _other_holder(e2e: E2E, name: str, old: str) -> str | None:
    h = await _lease_holder(e2e, name)
    return h if h and h != old else None


async def _reach_is(e2e: E2E, vip: object, node: str) -> bool:
    return await e2e.reach(vip) == node  # type: ignore[arg-type]
