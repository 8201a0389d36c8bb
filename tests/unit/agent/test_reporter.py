"""The reporter without root or API server: it writes only what differs, and each Warning once."""

from __future__ import annotations

import asyncio
from typing import Any

from kubevip.agent.reporter import Outcome, Reporter
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Row
from kubevip.core.selection import ClassFilter
from kubevip.core.world import SERVICE, World, apply_event, snapshot
from kubevip.metrics import Metrics
from kubevip.tasks import TaskGroupGuard
from tests.unit.objects import service


class FakeWriter:
    """Records the writes the reporter asks for (the real Writer talks to the API server)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def service_status(self, namespace: str, name: str, ingress: tuple[str, ...]) -> None:
        self.calls.append(("status", f"{namespace}/{name}", ingress))

    async def vip_host(self, namespace: str, name: str, host: str | None) -> None:
        self.calls.append(("vipHost", f"{namespace}/{name}", host))

    async def event(self, namespace: str, name: str, uid: str, ev: str, type_: str, reason: str,
                    message: str) -> None:
        self.calls.append(("event", f"{namespace}/{name}", reason))


class Holder:
    """The election's answer: `node` holds every unit."""

    def __init__(self, node: str | None) -> None:
        self.node = node

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        return self.node

    def generation(self) -> object:
        return self.node


def _status(d: dict[str, Any], ingress: list[str], host: str | None) -> dict[str, Any]:
    d["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress]}}
    if host:
        d["metadata"]["annotations"]["kube-vip.io/vipHost"] = host
    return d


async def _round(world: World, me: str, holder: str | None) -> list[tuple[Any, ...]]:
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter(me, writer, world, Holder(holder), Metrics(me), guard)  # type: ignore[arg-type]
    snap = snapshot(world, ClassFilter(), False)
    out = Outcome(snap, 1, frozenset(Row(p.address, "eth0") for p in snap.plans), False)
    for job in rep.jobs(out, rep.round(out)):
        await job()
    await asyncio.sleep(0)
    await guard.close()
    return writer.calls


async def test_a_status_already_right_is_not_written_again() -> None:
    """A restart that finds status and vipHost right writes neither (issue 24)."""
    w = World()
    dual = service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    d = _status(dual, ["192.0.2.10", "2001:db8::10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(d))
    assert await _round(w, "n1", "n1") == []


async def test_a_wrong_status_is_corrected_by_the_holder_only() -> None:
    w = World()
    d = _status(service("web", "192.0.2.10"), [], None)
    apply_event(w, SERVICE, False, service_from_dict(d))
    assert await _round(w, "n1", "n1") == [
        ("status", "default/web", ("192.0.2.10",)), ("vipHost", "default/web", "n1"),
    ]
    assert await _round(w, "n2", "n1") == []  # another node holds it: that node writes


async def test_a_warning_is_written_once_per_condition() -> None:
    w = World()
    # A port clash: the later Service gets a Warning.
    apply_event(w, SERVICE, False, service_from_dict(service("a", "192.0.2.10", created="t1")))
    apply_event(w, SERVICE, False, service_from_dict(service("b", "192.0.2.10", created="t2")))
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    snap = snapshot(w, ClassFilter(), False)
    out = Outcome(snap, 1, frozenset(), False)
    for _ in range(2):  # the second round finds the Warning already written
        for job in rep.jobs(out, list(w.services)):
            await job()
    await guard.close()
    events = [c for c in writer.calls if c[0] == "event"]
    assert events == [("event", "default/b", "vip-port-clash")]


async def test_while_the_election_settles_a_status_is_never_cleared() -> None:
    """After a restart nobody is known to hold the VIP yet: the status this node wrote stays (issue 24)."""
    w = World()
    d = _status(service("web", "192.0.2.10"), ["192.0.2.10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(d))
    snap = snapshot(w, ClassFilter(), False)
    cleared = [("status", "default/web", ()), ("vipHost", "default/web", None)]
    for settling, want in ((True, []), (False, cleared)):
        writer = FakeWriter()
        guard = TaskGroupGuard("test")
        rep = Reporter("n1", writer, w, Holder(None), Metrics("n1"), guard)  # type: ignore[arg-type]
        out = Outcome(snap, 1, frozenset(), False, settling=settling)
        for job in rep.jobs(out, rep.round(out)):
            await job()
        await guard.close()
        assert writer.calls == want
