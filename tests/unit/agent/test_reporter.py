"""The reporter without root or API server: it writes only what differs, and each Warning once."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kubevip.agent.reporter import ROUND_DUTY, Outcome, Reporter
from kubevip.core.conditions import STARTED, STOPPED
from kubevip.core.events import TokenBucket
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Changes, Row
from kubevip.core.selection import ClassFilter
from kubevip.core.views import StatusCondition
from kubevip.core.world import SERVICE, World, apply_event, snapshot
from kubevip.election.scalable import RESTART_GRACE
from kubevip.metrics import Metrics
from kubevip.tasks import TaskGroupGuard
from tests.fixtures.waiting import eventually
from tests.unit.objects import service


class FakeWriter:
    """Records the writes the reporter asks for (the real Writer talks to the API server)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.conditions: list[tuple[Any, ...]] = []  # apart: most tests look at status and vipHost
        self.counts: list[tuple[str, str, int, str]] = []  # events with their count and message

    async def service_status(self, namespace: str, name: str, ingress: tuple[str, ...]) -> None:
        self.calls.append(("status", f"{namespace}/{name}", ingress))

    async def vip_host(
        self, namespace: str, name: str, host: str | None, host_ipv6: str | None = None
    ) -> None:
        self.calls.append(("vipHost", f"{namespace}/{name}", host))
        if host_ipv6 is not None:
            self.calls.append(("vipHost-ipv6", f"{namespace}/{name}", host_ipv6))

    async def service_conditions(
        self, namespace: str, name: str, conditions: tuple[StatusCondition, ...], remove: tuple[str, ...]
    ) -> None:
        self.conditions.append((f"{namespace}/{name}", conditions, remove))

    async def event(self, namespace: str, name: str, uid: str, ev: str, type_: str, reason: str,
                    message: str, *, count: int = 1, first: float | None = None,
                    last: float | None = None) -> None:
        self.calls.append(("event", f"{namespace}/{name}", reason))
        self.counts.append((f"{namespace}/{name}", reason, count, message))


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


async def _report(
    w: World, holder: Holder, *, settling: bool = False, stopping: bool = False, hold_down: float = 0.0,
    per_address: bool = False, me: str = "n1", unplaced_version: int | None = None,
) -> list[tuple[Any, ...]]:
    """One report round over every Service of `w` as node `me`; the writes it asked for.
    `unplaced_version`: the VIPs of that IP version are ones `me` could not announce."""
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter(me, writer, w, holder, Metrics(me), guard, hold_down=hold_down)  # type: ignore[arg-type]
    snap = snapshot(w, ClassFilter(), False, per_address=per_address)
    unplaced = frozenset(p.address for p in snap.plans if p.address.version == unplaced_version)
    out = Outcome(snap, 1, frozenset(), stopping, settling=settling, unplaced=unplaced)
    for job in rep.jobs(out, rep.round(out)):
        await job()
    await guard.close()
    return writer.calls


async def test_while_the_election_settles_a_status_is_never_cleared() -> None:
    """After a restart nobody is known to hold the VIP yet: the status this node wrote stays (issue 24)."""
    w = World()
    d = _status(service("web", "192.0.2.10"), ["192.0.2.10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(d))
    assert await _report(w, Holder(None), settling=True, hold_down=3600.0) == []
    cleared = [("status", "default/web", ()), ("vipHost", "default/web", None)]
    assert await _report(w, Holder(None)) == cleared


async def test_a_stopping_agent_leaves_the_status_to_its_successor() -> None:
    w = World()
    d = _status(service("web", "192.0.2.10"), ["192.0.2.10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(d))
    assert await _report(w, Holder(None), stopping=True) == []


class PerFamily(Holder):
    """Only the IPv4 VIP's unit has a known holder yet (scalable mode: one unit per address)."""

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        return "n1" if "." in unit else None


async def test_while_settling_a_status_only_grows() -> None:
    w = World()
    dual = service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    apply_event(w, SERVICE, False, service_from_dict(_status(dual, ["192.0.2.10", "2001:db8::10"], "n1")))
    assert await _report(w, PerFamily(None), settling=True, hold_down=3600.0, per_address=True) == []
    shrunk = [("status", "default/web", ("192.0.2.10",))]
    assert await _report(w, PerFamily(None), per_address=True) == shrunk


async def test_an_address_without_a_holder_leaves_the_status_only_after_the_hold_down() -> None:
    w = World()
    dual = service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    apply_event(w, SERVICE, False, service_from_dict(_status(dual, ["192.0.2.10", "2001:db8::10"], "n1")))
    v4 = [("status", "default/web", ("192.0.2.10",))]
    assert await _report(w, PerFamily(None), hold_down=3600.0, per_address=True) == []  # changing hands
    assert await _report(w, PerFamily(None), per_address=True) == v4


async def test_an_address_the_service_gave_up_leaves_the_status_at_once() -> None:
    w = World()
    v4_only = service("web", "192.0.2.10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    apply_event(w, SERVICE, False, service_from_dict(_status(v4_only, ["192.0.2.10", "2001:db8::10"], "n1")))
    v4 = [("status", "default/web", ("192.0.2.10",))]
    assert await _report(w, Holder("n1"), hold_down=3600.0, per_address=True) == v4


async def _warnings(w: World, me: str, holder: str | None) -> list[tuple[Any, ...]]:
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter(me, writer, w, Holder(holder), Metrics(me), guard)  # type: ignore[arg-type]
    out = Outcome(snapshot(w, ClassFilter(), False), 1, frozenset(), False)
    for job in rep.jobs(out, list(w.services)):
        await job()
    await guard.close()
    return [c for c in writer.calls if c[0] == "event"]


async def test_a_services_warnings_come_from_one_node() -> None:
    """Issue 16: the holder of the Service's VIP writes its aggregated Warnings, not every node; while
    nobody holds it (e.g. no VIP granted), every node may write (one Event object: the name is fixed)."""
    w = World()
    junk = ",".join(f"10.0.0.{300 + i}" for i in range(50))
    apply_event(w, SERVICE, False, service_from_dict(service("web", f"192.0.2.10,{junk}")))
    one = [("event", "default/web", "not-an-ip")]
    assert await _warnings(w, "n1", "n1") == one
    assert await _warnings(w, "n2", "n1") == []  # n1 holds the VIP: n1 writes
    assert await _warnings(w, "n2", None) == one  # nobody known: n2 writes too (same Event name)
    w2 = World()
    apply_event(w2, SERVICE, False, service_from_dict(service("bad", junk)))  # no VIP: nothing held
    assert {c[2] for c in await _warnings(w2, "n2", "n1")} == {"not-an-ip", "no-vip"}


async def _conditions_round(w: World, me: str, holder: Holder) -> FakeWriter:
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter(me, writer, w, holder, Metrics(me), guard)  # type: ignore[arg-type]
    out = Outcome(snapshot(w, ClassFilter(), False, per_address=True), 1, frozenset(), False)
    for job in rep.jobs(out, rep.round(out)):
        await job()
    await guard.close()
    return writer


def _with_conditions(d: dict[str, Any], conds: tuple[StatusCondition, ...]) -> dict[str, Any]:
    d["status"]["conditions"] = [
        {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
         "lastTransitionTime": c.last_transition} for c in conds
    ] + [{"type": "example.com/Other", "status": "True", "reason": "X", "message": "",
          "lastTransitionTime": "t"}]
    return d


class SplitFamilies(Holder):
    """n1 holds the IPv4 VIP's unit, n2 the IPv6 one (scalable: a unit per address)."""

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        return "n1" if "." in unit else "n2"


async def test_family_conditions_and_vip_host_ipv6_are_written_once_by_the_status_writer() -> None:
    w = World()
    dual = service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    d = _status(dual, ["192.0.2.10", "2001:db8::10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(d))
    first = await _conditions_round(w, "n1", SplitFamilies(None))
    assert first.calls == [("vipHost", "default/web", "n1"), ("vipHost-ipv6", "default/web", "n2")]
    ((key, conds, removed),) = first.conditions
    assert key == "default/web" and removed == ()
    assert [(c.type, c.status, c.message) for c in conds] == [
        ("kube-vip.io/IPv4Announced", "True", "192.0.2.10 announced"),
        ("kube-vip.io/IPv6Announced", "True", "2001:db8::10 announced"),
    ]
    assert (await _conditions_round(w, "n2", SplitFamilies(None))).conditions == []  # not the writer
    # Once the Service says so, nothing is written again (another controller's condition is left alone).
    d["metadata"]["annotations"]["kube-vip.io/vipHost-ipv6"] = "n2"
    apply_event(w, SERVICE, False, service_from_dict(_with_conditions(d, conds)))
    again = await _conditions_round(w, "n1", SplitFamilies(None))
    assert again.calls == [] and again.conditions == []


async def test_conditions_without_a_known_holder_wait_for_the_election_to_settle() -> None:
    """No condition that lacks a holder while settling (a holder may not be known yet); the Service is
    looked at again once settled, although nothing else changed."""
    w = World()
    d = _status(service("web", "192.0.2.10"), [], "n1")  # vipHost names n1: the writer while none holds it
    apply_event(w, SERVICE, False, service_from_dict(d))
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    now = [0.0]
    rep = Reporter("n1", writer, w, Holder(None), Metrics("n1"), guard,  # type: ignore[arg-type]
                   hold_down=1.0, clock=lambda: now[0])
    snap = snapshot(w, ClassFilter(), False)
    await rep.report(Outcome(snap, 1, frozenset(), False, settling=True))
    assert writer.conditions == []
    # The window is RESTART_GRACE + 1 hold-downs (a lease duration each: election/scalable.py); the look
    # due then ends settling (nothing waits for a holder) and wakes the round that writes.
    now[0] = RESTART_GRACE + 1.0
    out = Outcome(snap, 1, frozenset(), False, settling=False)
    assert rep.round(out) == ["default/web"]  # the look: every Service, though nothing changed
    await rep.report(out)
    assert writer.conditions == [] and rep._wake.is_set()
    await rep.report(out)
    await guard.close()
    ((_, conds, _),) = writer.conditions
    assert [(c.type, c.status, c.reason) for c in conds] == [
        ("kube-vip.io/IPv4Announced", "False", "NoHolder"),
    ]


async def test_conditions_with_every_holder_known_are_written_while_settling() -> None:
    """A Service created while the agents settle gets its conditions with its status, not in one burst
    of every Service's when settling ends; never while the agent stops."""
    w = World()
    d = _status(service("web", "192.0.2.10"), ["192.0.2.10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(d))
    for stopping in (False, True):
        writer = FakeWriter()
        guard = TaskGroupGuard("test")
        rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard,  # type: ignore[arg-type]
                       hold_down=1.0, clock=lambda: 0.0)
        snap = snapshot(w, ClassFilter(), False)
        out = Outcome(snap, 1, frozenset(), stopping, settling=not stopping)
        for job in rep.jobs(out, rep.round(out)):
            await job()
        await guard.close()
        if stopping:
            assert writer.conditions == []
        else:
            ((_, conds, _),) = writer.conditions
            assert [(c.type, c.status) for c in conds] == [("kube-vip.io/IPv4Announced", "True")]


async def test_a_family_without_a_known_holder_stays_announced_for_the_hold_down() -> None:
    """A unit changing hands (no holder known for a moment) flips no condition to False and back."""
    w = World()
    dual = service("web", "192.0.2.10,2001:db8::10", families=("IPv4", "IPv6"), policy="PreferDualStack")
    true = tuple(
        StatusCondition(t, "True", "Announced", f"{a} announced", "t0")
        for t, a in (
            ("kube-vip.io/IPv4Announced", "192.0.2.10"), ("kube-vip.io/IPv6Announced", "2001:db8::10")
        )
    )
    d = _with_conditions(_status(dual, ["192.0.2.10", "2001:db8::10"], "n1"), true)
    apply_event(w, SERVICE, False, service_from_dict(d))
    for hold_down, flipped in ((3600.0, False), (0.0, True)):
        writer = FakeWriter()
        guard = TaskGroupGuard("test")
        rep = Reporter("n1", writer, w, PerFamily(None), Metrics("n1"), guard,  # type: ignore[arg-type]
                       hold_down=hold_down)
        out = Outcome(snapshot(w, ClassFilter(), False, per_address=True), 1, frozenset(), False)
        for job in rep.jobs(out, rep.round(out)):
            await job()
        await guard.close()
        written = {c.type: (c.status, c.reason) for _, conds, _ in writer.conditions for c in conds}
        assert (written.get("kube-vip.io/IPv6Announced") == ("False", "NoHolder")) is flipped
        assert "kube-vip.io/IPv4Announced" not in written or written["kube-vip.io/IPv4Announced"][0] == "True"


async def test_active_endpoint_annotations_are_written_by_the_holder_of_each_family_only() -> None:
    from kubevip.core.parse import endpointslice_from_dict
    from kubevip.core.world import ENDPOINT_SLICE
    from tests.unit.core import builders as b

    w = World()
    d = service("eg", "198.18.1.200,fd6b::200", families=("IPv4", "IPv6"), policy="RequireDualStack",
                annotations={"kube-vip.io/egress": "true", "kube-vip.io/active-endpoint": "10.244.1.9"})
    apply_event(w, SERVICE, False, service_from_dict(_status(d, ["198.18.1.200", "fd6b::200"], "n1")))
    for fam, addr in (("IPv4", "10.244.1.2"), ("IPv6", "fd00:10:244:1::2")):
        apply_event(w, ENDPOINT_SLICE, False, endpointslice_from_dict(
            b.endpointslice(f"eg-{fam}", fam, [b.ep(addr, "n1")], service_name="eg")))
    writer = FakeWriter()
    calls: list[tuple[str, dict[str, str | None]]] = []

    async def annotations(namespace: str, name: str, values: dict[str, str | None]) -> None:
        calls.append((f"{namespace}/{name}", values))

    writer.annotations = annotations  # type: ignore[attr-defined]
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    snap = snapshot(w, ClassFilter(), False)
    v4 = next(p for p in snap.plans if p.address.version == 4)
    # n1 holds only the IPv4 VIP: it corrects active-endpoint and leaves the IPv6 key to its holder.
    out = Outcome(snap, 1, frozenset({Row(v4.address, "eth0")}), False)
    for job in rep.jobs(out, rep.round(out)):
        await job()
    await guard.close()
    assert calls == [("default/eg", {"kube-vip.io/active-endpoint": "10.244.1.2"})]


def _services(n: int) -> World:
    w = World()
    for i in range(n):
        apply_event(w, SERVICE, False, service_from_dict(service(f"s{i}", f"192.0.2.{i + 1}")))
    return w


def _changes(snap: Any, add: bool) -> Changes:
    rows = tuple(Row(p.address, "eth0") for p in snap.plans)
    return Changes(add=rows if add else (), remove=() if add else rows)


async def test_normal_events_are_aggregated_per_service_and_reason_from_the_holder_only() -> None:
    """Issue 24: a VIP coming and going three times is one Started and one Stopped Event per Service
    with a count, written by the holder; a node that does not hold the Service writes none."""
    w = _services(4)
    snap = snapshot(w, ClassFilter(), False)
    for me, expected in (("n1", 8), ("n2", 0)):
        writer = FakeWriter()
        guard = TaskGroupGuard("test")
        rep = Reporter(me, writer, w, Holder("n1"), Metrics(me), guard)  # type: ignore[arg-type]
        for _ in range(3):
            rep.node_events(_changes(snap, True), snap, None)
            rep.node_events(_changes(snap, False), snap, None)
        assert len(rep.pending) == expected
        task = asyncio.get_running_loop().create_task(rep.events_loop())
        await eventually(functools.partial(_all_sent, rep, expected), "events sent")
        task.cancel()
        await guard.close()
        assert len(writer.counts) == expected
        assert all(count == 3 for _, _, count, _ in writer.counts)
        assert {(k, r) for k, r, _, _ in writer.counts} == {
            (f"default/s{i}", r) for i in range(expected // 2) for r in (STARTED, STOPPED)
        }


def _all_sent(rep: Reporter, expected: int) -> bool:
    return not rep.pending and rep.events_written == expected


async def test_a_restart_that_takes_the_recorded_vips_again_has_no_news_and_a_move_has() -> None:
    """Issue 24: two Services whose status and vipHost already name n1; n1 restarted takes both VIPs again
    (no Event), and its shutdown's withdrawal is none either; n2 taking them over (a move) tells it, once
    per Service; a Service the status does not list yet (new) is news for n1 too."""
    w = World()
    for i in range(2):
        svc = _status(service(f"s{i}", f"192.0.2.{i + 1}"), [f"192.0.2.{i + 1}"], "n1")
        apply_event(w, SERVICE, False, service_from_dict(svc))
    apply_event(w, SERVICE, False, service_from_dict(service("new", "192.0.2.9")))
    snap = snapshot(w, ClassFilter(), False)
    guard = TaskGroupGuard("test")
    n1 = Reporter("n1", FakeWriter(), w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    n1.node_events(_changes(snap, True), snap, None)
    assert set(n1.pending) == {("default/new", STARTED)}
    n1.pending.clear()
    n1.node_events(_changes(snap, False), snap, None, stopping=True)
    assert not n1.pending, "a shutdown's withdrawal is not news"
    n2 = Reporter("n2", FakeWriter(), w, Holder("n2"), Metrics("n2"), guard)  # type: ignore[arg-type]
    n2.node_events(_changes(snap, True), snap, None)
    assert set(n2.pending) == {(k, STARTED) for k in ("default/s0", "default/s1", "default/new")}
    assert n2.pending[("default/s0", STARTED)].message == "node n2 started announcing 192.0.2.1 on eth0"
    await guard.close()


async def test_a_status_this_process_wrote_before_its_add_leaves_the_add_news() -> None:
    """The status comes from the election and may go out before the pass adds the VIP: the add is still
    news (one Started Event), though the status names this node by then; a restarted process (nothing
    written by it) still finds no news in a status that already names it. Found by the flaky
    tests/e2e/test_quiet_restart.py: one of three Services lacked its Event."""
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(service("web", "192.0.2.1")))
    guard = TaskGroupGuard("test")
    writer = FakeWriter()
    rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    snap = snapshot(w, ClassFilter(), False)
    out = Outcome(snap, 1, frozenset(), False)  # the pass has not added anything yet
    for job in rep.jobs(out, rep.round(out)):
        await job()
    assert ("vipHost", "default/web", "n1") in writer.calls
    # The watch brings our own write back before the pass's add is told.
    written = _status(service("web", "192.0.2.1"), ["192.0.2.1"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(written))
    snap = snapshot(w, ClassFilter(), False)
    rep.node_events(_changes(snap, True), snap, None)
    assert set(rep.pending) == {("default/web", STARTED)}
    rep.pending.clear()
    rep.node_events(_changes(snap, True), snap, None)  # told once: a second add of it is no news
    assert not rep.pending
    restarted = Reporter("n1", FakeWriter(), w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    restarted.node_events(_changes(snap, True), snap, None)
    assert not restarted.pending
    await guard.close()


async def test_a_withdrawn_vip_the_new_snapshot_no_longer_plans_is_told_to_the_service_that_had_it() -> None:
    """A VIP whose Service moved to another address has no plan in the pass's snapshot: its Stopped Event
    goes to the Services the previous snapshot granted it to (the address index of that snapshot), and
    to no other Service."""
    w = _services(3)
    before = snapshot(w, ClassFilter(), False)
    apply_event(w, SERVICE, False, service_from_dict(service("s0", "192.0.2.50")))
    after = snapshot(w, ClassFilter(), False)
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", FakeWriter(), w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    gone = ipaddress.ip_address("192.0.2.1")
    rep.node_events(Changes(add=(), remove=(Row(gone, "eth0"),)), after, before)
    assert set(rep.pending) == {("default/s0", STOPPED)}
    assert rep.pending[("default/s0", STOPPED)].message == "node n1 stopped announcing 192.0.2.1 on eth0"
    rep.pending.clear()
    rep.node_events(Changes(add=(), remove=(Row(gone, "eth0"),)), after, None)
    assert not rep.pending, "without a previous snapshot nobody is named"
    await guard.close()


async def test_normal_events_wait_for_the_agents_token_bucket() -> None:
    """With the clock standing still, an agent writes its burst and then waits: 30 Services' news
    are not 30 writes at once."""
    w = _services(30)
    snap = snapshot(w, ClassFilter(), False)
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    rep.bucket = TokenBucket(5, 0.0, 1000.0, 5)  # 1 ms per token: the loop sleeps briefly and retries
    ticks = 0

    def frozen() -> float:
        nonlocal ticks
        ticks += 1
        return 0.0

    rep.node_events(_changes(snap, True), snap, None)
    task = asyncio.get_running_loop().create_task(rep.events_loop(frozen))
    await eventually(lambda: ticks >= 20, "the loop waited for tokens several times")
    task.cancel()
    await guard.close()
    assert len(writer.counts) == 5 and len(rep.pending) == 25


async def test_a_round_over_many_services_lets_due_timers_run_between_chunks() -> None:
    """A round decides ROUND_CHUNK Services between two yields: a renewal timer that falls due while the
    round decides runs before the round's last decisions, and a Service deleted meanwhile is skipped."""
    from kubevip.agent import reporter as reporter_mod

    w = World()
    n = 3 * reporter_mod.ROUND_CHUNK
    for i in range(n):
        svc = service(f"s{i}", f"10.1.{i // 250}.{i % 250 + 1}")
        apply_event(w, SERVICE, False, service_from_dict(_status(svc, [], None)))
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    snap = snapshot(w, ClassFilter(), False)
    decided: list[str] = []
    seen_at: list[int] = []
    holdings = rep._holdings

    def counting(out: Outcome, units: Any) -> Any:
        if not decided:  # a renewal timer falls due while the first Service is decided
            asyncio.get_running_loop().call_later(0, lambda: seen_at.append(len(decided)))
            w.services.pop("default/s1")  # deleted by a watch event while the round runs
        decided.append("x")
        return holdings(out, units)

    rep._holdings = counting  # type: ignore[method-assign]
    rep.passed(Outcome(snap, 1, frozenset(Row(p.address, "eth0") for p in snap.plans), False))
    task = asyncio.ensure_future(rep.loop())
    try:
        await eventually(lambda: len([c for c in writer.calls if c[0] == "status"]) == n - 1,
                         "every remaining Service's status written")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await guard.close()
    assert seen_at and seen_at[0] < len(decided)  # before the round's last decisions, not after all



async def _unplaced_round(me: str, holder: str, vips: str, status: list[str], host: str | None
                          ) -> list[tuple[Any, ...]]:
    """A round of `me`, which could not announce the Service's IPv6 VIPs (an IPv4-only node), while
    `holder` holds every unit."""
    w = World()
    fams = tuple(sorted({"IPv6" if ":" in v else "IPv4" for v in vips.split(",")}))
    d = service("web", vips, families=fams, policy="PreferDualStack" if len(fams) == 2 else "SingleStack")
    apply_event(w, SERVICE, False, service_from_dict(_status(d, status, host)))
    return await _report(w, Holder(holder), me=me, unplaced_version=6)


async def test_a_held_vip_this_node_cannot_announce_stays_out_of_the_status() -> None:
    """The pass marks what this node could not announce, held or not (a round can follow an election
    change before the next pass; CI: an IPv4 VIP in a status on an IPv6-only lab)."""
    assert await _unplaced_round("n1", "n1", "192.0.2.10,2001:db8::10", [], None) == [
        ("status", "default/web", ("192.0.2.10",)), ("vipHost", "default/web", "n1"),
    ]


async def test_what_this_node_cannot_announce_does_not_touch_another_holders_status() -> None:
    """n2 (IPv4-only, the former holder still named in vipHost) must not clear the status that n1, which
    holds the IPv6 VIP and can announce it, keeps: each would rewrite the other's."""
    assert await _unplaced_round("n2", "n1", "2001:db8::10", ["2001:db8::10"], "n2") == []


class ByUnit(Holder):
    """Who holds each unit, as a test sets it (scalable: a unit per address)."""

    def __init__(self) -> None:
        super().__init__(None)
        self.units: dict[str, str] = {}

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        return self.units.get(unit)

    def generation(self) -> object:
        return tuple(sorted(self.units.items()))


Rounds = Callable[..., Awaitable[list[tuple[Any, ...]]]]


async def _looped(rep: Reporter, out: Outcome) -> None:
    """A round, and the one it asks for at once, as `Reporter.loop` runs them (a look that ends settling
    wakes the next round for the statuses it kept)."""
    await rep.report(out)
    while rep._wake.is_set():
        rep._wake.clear()
        await rep.report(out)


def _settling_rounds(w: World, by: str) -> tuple[Rounds, TaskGroupGuard]:
    """n1's reporter, a hold-down of 1 s, on a clock the test sets; `at(t, settling, *vips)`: a round at
    `t` after the units of `vips` got `by` as their holder, returning the status writes so far."""
    now = [0.0]
    holder = ByUnit()
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, holder, Metrics("n1"), guard,  # type: ignore[arg-type]
                   hold_down=1.0, clock=lambda: now[0])
    snap = snapshot(w, ClassFilter(), False, per_address=True)

    async def at(t: float, settling: bool, *held: str) -> list[tuple[Any, ...]]:
        now[0] = t
        for vip in held:
            holder.units[f"vip:{vip}"] = by
        await _looped(rep, Outcome(snap, 1, frozenset(), False, settling=settling))
        return [c for c in writer.calls if c[0] == "status"]

    return at, guard


async def test_settling_outlasts_the_fixed_window_while_the_election_makes_progress() -> None:
    """After a restart of every agent the claims take longer than the fixed window: a status the
    election is still filling is not shrunk (then grown again) while units keep getting holders; once
    nothing progressed for one grace (the hold-down), the usual hold-down runs and the status shrinks."""
    w = World()
    vips = ("192.0.2.10", "192.0.2.11", "192.0.2.12")
    for i, vip in enumerate(vips):
        apply_event(w, SERVICE, False, service_from_dict(_status(service(f"web{i}", vip), [vip], "n1")))
    at, guard = _settling_rounds(w, "n2")  # n2 writes those Services' status, not n1

    assert await at(0.0, True) == []
    assert await at(1.5, True, vips[0]) == []
    # The fixed window (two hold-downs) is over; one more unit got a holder 0.9 s ago: still settling.
    assert await at(2.4, False, vips[1]) == []
    assert await at(3.3, False) == []
    # No progress for a whole grace: settled; web2's loss now waits the ordinary hold-down ...
    assert await at(3.5, False) == []
    # ... and is written once it has passed, by n1 (vipHost names it, nobody holds the address).
    assert await at(4.6, False) == [("status", "default/web2", ())]
    await guard.close()


async def test_settling_counts_addresses_so_half_held_dual_stack_services_are_progress() -> None:
    """Scalable mode elects each address on its own, and after a restart a node claimed all its IPv4
    units before any IPv6 one: for seconds no dual-stack Service was whole while hundreds of units got
    holders. Counted in Services that was no progress, settling ended with the fixed window, and every
    status shrank and grew back (bench/agent.py, session 27). Counted in addresses it is progress."""
    w = World()
    pairs = (("192.0.2.10", "2001:db8::10"), ("192.0.2.11", "2001:db8::11"))
    for i, (v4, v6) in enumerate(pairs):
        d = service(f"web{i}", f"{v4},{v6}", families=("IPv4", "IPv6"), policy="PreferDualStack")
        apply_event(w, SERVICE, False, service_from_dict(_status(d, [v4, v6], "n1")))
    at, guard = _settling_rounds(w, "n1")  # this node's IPv4 units first, as the claims go

    end = RESTART_GRACE + 1.0  # the fixed window, in hold-downs of 1 s
    assert await at(0.0, True) == []
    assert await at(end - 1.0, True, pairs[0][0]) == []
    assert await at(end - 0.1, True, pairs[1][0]) == []  # progress 0.1 s before the window's end
    # Counted in Services (both still half held) settling would have ended with the window, and the
    # statuses would shrink one hold-down after the next round, at end + 1.5; progress keeps it to
    # end - 0.1 + one grace (a hold-down).
    assert await at(end + 0.5, False) == []
    # No progress since: settled at end + 0.9; the IPv6 losses then wait the ordinary hold-down.
    assert await at(end + 1.0, False) == []
    assert await at(end + 1.5, False) == []
    assert sorted(await at(end + 2.0, False)) == [
        ("status", "default/web0", (pairs[0][0],)), ("status", "default/web1", (pairs[1][0],)),
    ]
    await guard.close()


async def test_without_progress_the_fixed_window_is_all_the_settling() -> None:
    """Nothing got a holder: the status shrinks one hold-down after the fixed window, as before."""
    w = World()
    vip = "192.0.2.10"
    apply_event(w, SERVICE, False, service_from_dict(_status(service("web", vip), [vip], "n1")))
    now = [0.0]
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, ByUnit(), Metrics("n1"), guard,  # type: ignore[arg-type]
                   hold_down=1.0, clock=lambda: now[0])
    snap = snapshot(w, ClassFilter(), False, per_address=True)
    end = RESTART_GRACE + 1.0  # the fixed window, in hold-downs of 1 s
    for t, settling in ((0.0, True), (end - 0.1, True), (end, False), (end + 0.9, False)):
        now[0] = t
        await _looped(rep, Outcome(snap, 1, frozenset(), False, settling=settling))
        assert writer.calls == [], t
    now[0] = end + 1.0
    await rep.report(Outcome(snap, 1, frozenset(), False, settling=False))
    assert ("status", "default/web", ()) in writer.calls
    await guard.close()


async def test_settling_ends_by_itself_no_other_wake_up_needed() -> None:
    """CI (run 32): a status held back while settling waited for the cap (20 lease durations) when
    nothing else woke the reporter after the fixed window; it must be written once the window ends."""
    w = World()
    d = _status(service("web", "192.0.2.10"), [], None)
    apply_event(w, SERVICE, False, service_from_dict(d))
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, Holder("n1"), Metrics("n1"), guard,  # type: ignore[arg-type]
                   hold_down=0.2)  # fixed window 0.6 s, cap 4 s
    snap = snapshot(w, ClassFilter(), False)
    rep.passed(Outcome(snap, 1, frozenset(Row(p.address, "eth0") for p in snap.plans), False, settling=True))
    task = asyncio.ensure_future(rep.loop())
    try:
        await eventually(lambda: writer.conditions, "conditions written after the window, unprompted",
                         within=2.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await guard.close()
    assert ("status", "default/web", ("192.0.2.10",)) in writer.calls


async def test_hold_downs_begun_apart_share_one_timer_and_each_is_written() -> None:
    """One timer at the earliest instant a round waits for: a later hold-down is asked for again in the
    round the earlier one wakes, so neither status waits for an unrelated wake-up."""
    w = World()
    s1 = _status(service("s1", "192.0.2.10"), ["192.0.2.10"], "n1")
    apply_event(w, SERVICE, False, service_from_dict(s1))
    writer = FakeWriter()
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", writer, w, Holder(None), Metrics("n1"), guard,  # type: ignore[arg-type]
                   hold_down=1.0)
    rep.passed(Outcome(snapshot(w, ClassFilter(), False), 1, frozenset(), False))
    task = asyncio.ensure_future(rep.loop())
    try:
        await eventually(lambda: rep._timer is not None, "s1's hold-down waits on the timer")
        first = rep._timer
        apply_event(w, SERVICE, False,
                    service_from_dict(_status(service("s2", "192.0.2.11"), ["192.0.2.11"], "n1")))
        rep.passed(Outcome(snapshot(w, ClassFilter(), False), 2, frozenset(), False))
        await eventually(lambda: "default/s2" in rep._shrinking, "s2's hold-down begun")
        assert rep._timer is first  # the earlier instant stands; s2 asks again when it comes
        assert [c for c in writer.calls if c[0] == "status"] == []

        def written() -> set[str]:
            return {c[1] for c in writer.calls if c[0] == "status"}

        await eventually(lambda: written() == {"default/s1", "default/s2"},
                         "both statuses shrunk once their hold-downs passed", within=5.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await guard.close()


async def test_rounds_pause_in_proportion_to_what_they_cost() -> None:
    """Every pass wakes the reporter; a restart of 1000 Services in scalable mode ran ~72 rounds over
    every Service while the claims waited for the loop (session 27). After a round the
    loop waits ROUND_DUTY times the round's decision time, coalescing the wake-ups meanwhile, so the
    rounds take at most a fifth of the loop; the next round still reads the latest outcome."""
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(_status(service("web", "192.0.2.10"), [], None)))
    guard = TaskGroupGuard("test")
    rep = Reporter("n1", FakeWriter(), w, Holder("n1"), Metrics("n1"), guard)  # type: ignore[arg-type]
    snap = snapshot(w, ClassFilter(), False)
    cost = 0.02
    rounds: list[int] = []

    async def costly(out: Outcome, sem: asyncio.Semaphore | None = None) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < cost:  # decisions that take `cost` seconds
            pass
        rounds.append(out.snap_version)
        return time.perf_counter() - started

    rep.report = costly  # type: ignore[method-assign]
    task = asyncio.ensure_future(rep.loop())
    try:
        started = time.perf_counter()
        version = 0
        while time.perf_counter() - started < 0.6:  # a pass every millisecond, each waking the reporter
            version += 1
            rep.passed(Outcome(snap, version, frozenset(), False))
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - started
        # The rounds take at most a fifth of the loop (ROUND_DUTY 4; the first round at once, and one
        # more for the edges); unpaused, a round every `cost`.
        assert ROUND_DUTY >= 4.0
        assert 2 <= len(rounds) <= elapsed / (5 * cost) + 2, (len(rounds), elapsed)
        await eventually(lambda: rounds[-1] == version, "the last outcome reported", within=2.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await guard.close()
