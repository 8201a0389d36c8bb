"""A restart that changes nothing writes nothing (issue 24): every agent stopped and started again, the
same node taking the global Lease and the same VIPs again, finds status, vipHost, conditions already right
and has no news, so the API server sees no Event POST and no Service PATCH (its own request counters, as
bench/agent.py reads them); a real move to another node still tells each Service once."""

from __future__ import annotations

import asyncio
import datetime
import re
from collections import Counter
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.core.conditions import STARTED, STOPPED
from kubevip.core.report import report_lease_name
from kubevip.election.timings import SERVICES_LEASE
from tests.e2e.conftest import E2E, IPAddress

pytestmark = pytest.mark.e2e
SERVICES = 3
COMPONENT = "kube-vip"


async def test_a_restart_with_the_same_holder_writes_nothing_and_a_move_tells_each_service_once(
    e2e: E2E,
) -> None:
    vips = {f"q{i}": [e2e.vip(4), e2e.vip(6)] for i in range(SERVICES)}
    for name, vs in vips.items():
        await e2e.service(name, vs, families=("IPv4", "IPv6"), policy="PreferDualStack")
    e2e.start_agents(vip_electionmode="lease")
    holder = await e2e.eventually(lambda: _lease_holder(e2e), f"{SERVICES_LEASE} held")
    # Everything the first holder has to write is written: status, vipHost, the family conditions (after
    # the start-up window) and its AnnouncingVIP Event per Service.
    await e2e.eventually(lambda: _reported(e2e, vips, holder), "every Service reported by the holder")
    await e2e.eventually(lambda: _announced(e2e, holder, len(vips)), f"AnnouncingVIP per Service by {holder}")

    # 1. Restart every agent; the old holder starts first and takes the Lease again, then the others.
    await asyncio.to_thread(e2e.fleet.stop)
    await e2e.eventually(lambda: _nowhere(e2e, vips), "every VIP withdrawn")
    events_before = await _our_events(e2e)
    written_before = await _agent_event_writes(e2e)
    counts_before = _requests(e2e.cp.metrics_text())
    since = datetime.datetime.now(datetime.UTC)
    node = next(n for n in e2e.nodes if n.name == holder)
    e2e.fleet.start((node,))
    await e2e.eventually(lambda: _lease_holder(e2e), f"{holder} takes the Lease again")
    assert await _lease_holder(e2e) == holder
    e2e.fleet.start(tuple(n for n in e2e.nodes if n.name != holder))
    for vs in vips.values():
        for v in vs:
            await e2e.eventually(lambda v=v: _reach_is(e2e, v, holder), f"{v} answered by {holder} again")
    for n in e2e.nodes:
        await e2e.eventually(lambda n=n: _reported_since(e2e, n.name, since), f"{n.name} running again")
    # Long enough for anything the restart would write: the holder's start-up window (two lease
    # durations, after which status and conditions are compared) and more, counted in its renewals.
    await e2e.renewals(SERVICES_LEASE, holder, count=24)
    writes = _writes(counts_before, _requests(e2e.cp.metrics_text()))
    new_events = [e for e in await _our_events(e2e) if e not in events_before]
    assert not new_events, f"the restart wrote Events: {new_events}\n{e2e.fleet.logs(60)}"
    # The API server's Event counters are the whole control plane's (the session cluster's controllers
    # write Events for other tests' namespaces): the agents' own Event writes, of any type, created or
    # counted up, are read from the Events themselves: a write adds an entry (a new Event, or a new count
    # and time); an entry that went is another test's namespace being deleted meanwhile (CI run of
    # session 32: two Events of the previous test's namespace), not a write.
    wrote = await _agent_event_writes(e2e) - written_before
    assert not wrote, f"the restart wrote or updated an Event: {sorted(wrote)}"
    # The counters are the whole API server's: an earlier test's namespace being deleted counts its
    # Services' DELETEs (session 32's CI rehearsal; a namespace whose Pods never finish terminating in
    # the lab stays so). The agents never delete a Service: their writes are POST, PUT and PATCH.
    service_writes = {k: v for k, v in writes.items() if k[1] == "services" and k[0] != "DELETE"}
    assert not service_writes, f"Service writes: {writes}"
    assert _lease_writes(writes) > 0, f"no Lease renewal counted: {writes}"  # the counters are live

    # 2. A real move: the holder stops, a peer takes the Lease and tells each Service, once.
    events_before = await _our_events(e2e)
    await asyncio.to_thread(e2e.fleet.agents[holder].stop)
    new = await e2e.eventually(lambda: _other_holder(e2e, holder), "a peer takes the Lease")
    await e2e.eventually(lambda: _reported(e2e, vips, new), f"every Service reported by {new}")
    await e2e.eventually(lambda: _announced(e2e, new, len(vips)), f"an AnnouncingVIP per Service by {new}")
    await e2e.renewals(SERVICES_LEASE, new, count=6)  # and no more after it
    moved = [e for e in await _our_events(e2e) if e not in events_before]
    per = Counter((e[1], e[2], e[3]) for e in moved)
    assert per == Counter({(name, STARTED, new) for name in vips}), moved
    assert all(f"node {new} started announcing" in e[4] for e in moved), moved
    assert not any(e[2] == STOPPED for e in moved), "the stopping holder wrote a withdrawal"


async def _lease_holder(e2e: E2E) -> str | None:
    try:
        lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(SERVICES_LEASE, e2e.ns)
    except ApiException:
        return None
    return lease.spec.holder_identity or None


async def _other_holder(e2e: E2E, old: str) -> str | None:
    h = await _lease_holder(e2e)
    return h if h and h != old else None




async def _reported_since(e2e: E2E, node: str, since: datetime.datetime) -> bool:
    """The node's agent wrote its report Lease after `since`: it runs and reaches the API server."""
    try:
        lease = await client.CoordinationV1Api(e2e.api).read_namespaced_lease(report_lease_name(node), e2e.ns)
    except ApiException:
        return False
    t = lease.spec.renew_time or lease.spec.acquire_time
    return t is not None and t >= since


async def _reported(e2e: E2E, vips: dict[str, list[IPAddress]], holder: str) -> bool:
    items = {s.metadata.name: s for s in (await e2e.core.list_namespaced_service(e2e.ns)).items}
    for name, vs in vips.items():
        s = items.get(name)
        if s is None:
            return False
        ingress = [i.ip for i in (s.status.load_balancer.ingress or [])]
        ours = [c for c in s.status.conditions or [] if c.type.startswith("kube-vip.io/")]
        if sorted(ingress) != sorted(map(str, vs)) or (s.metadata.annotations or {}).get(
            "kube-vip.io/vipHost"
        ) != holder or len(ours) != 2 or any(c.status != "True" for c in ours):
            return False
    return True


async def _our_events(e2e: E2E) -> list[tuple[str, str, str, str, str]]:
    """(Event name, Service, reason, reporting node, message) of every Event the agents wrote here."""
    evs = await e2e.core.list_namespaced_event(e2e.ns)
    return [
        (e.metadata.name, e.involved_object.name, e.reason, e.reporting_instance, e.message)
        for e in evs.items if e.reporting_component == COMPONENT and e.type == "Normal"
    ]


async def _agent_event_writes(e2e: E2E) -> set[tuple[str, str, int, str]]:
    """Every Event of the agents in any namespace, with what a later write changes (count, last time)."""
    evs = await e2e.core.list_event_for_all_namespaces()
    return {
        (e.metadata.namespace, e.metadata.name, e.count or 0, str(e.last_timestamp or e.event_time or ""))
        for e in evs.items if e.reporting_component == COMPONENT
    }


async def _announced(e2e: E2E, node: str, services: int) -> bool:
    evs = await _our_events(e2e)
    return len({e[1] for e in evs if e[2] == STARTED and e[3] == node}) == services


async def _nowhere(e2e: E2E, vips: dict[str, list[IPAddress]]) -> bool:
    owned = await e2e.owned()
    return not any(v in a for a in owned.values() for vs in vips.values() for v in vs)


async def _reach_is(e2e: E2E, vip: IPAddress, node: str) -> bool:
    return await e2e.reach(vip) == node


Key = tuple[str, str, str]  # verb, resource, subresource


def _requests(text: str) -> dict[Key, float]:
    """The API server's apiserver_request_total by (verb, resource, subresource), summed over the rest."""
    out: dict[Key, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def _writes(before: dict[Key, float], after: dict[Key, float]) -> dict[Key, float]:
    return {
        k: v - before.get(k, 0.0) for k, v in after.items()
        if k[0] in ("POST", "PUT", "PATCH", "DELETE", "APPLY") and v > before.get(k, 0.0)
    }


def _lease_writes(writes: dict[Key, Any]) -> float:
    return sum(v for k, v in writes.items() if k[1] == "leases")
