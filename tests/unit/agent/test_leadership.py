"""agent/leadership.py without a simulator: which election the settings pick, and the no-election mode.
The fencing path itself runs in the election simulator (test_leadership_sim.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubevip.agent.leadership import Leases, Scalable, Solo, make
from kubevip.election.timings import ElectionConfig, Timings
from kubevip.metrics import Metrics
from tests.unit.election.sim import NS


async def _nothing(unit: str) -> None:
    return None


@pytest.mark.parametrize(("enabled", "with_api", "mode", "kind"), [
    (True, True, "scalable", Scalable),
    (True, True, "lease", Leases),
    (False, True, "scalable", Solo),  # vip_leaderelection=false: no election, even with an API
    (False, True, "lease", Solo),
    (True, False, "lease", Solo),
])
def test_make_picks_the_election_the_settings_ask_for(
    enabled: bool, with_api: bool, mode: str, kind: type,
) -> None:
    async def main() -> object:  # the electors create asyncio primitives: build them inside a loop
        cfg = ElectionConfig(enabled, "plndr-cp-lock", NS, "plndr-svcs-lock", False, mode, Timings())
        api: Any = object() if with_api else None  # never called: nothing runs
        return make(api, cfg, "n1", _nothing, _nothing, Metrics("n1"))

    got = asyncio.run(main())
    assert type(got) is kind
    if isinstance(got, Solo):
        assert got.node == "n1"


def test_without_election_every_eligible_node_announces() -> None:
    solo = Solo("n1", _nothing, _nothing)
    assert not solo.holds("default/a")  # told of nothing yet
    solo.set_units({"default/a": None, "default/b": frozenset({"n1"}), "default/c": frozenset({"n2"})})
    assert [solo.holds(u) for u in ("default/a", "default/b", "default/c", "default/d")] == [
        True, True, False, False]
    assert [solo.holder("u", e) for e in (None, frozenset({"n1", "n2"}), frozenset({"n2"}))] == [
        "n1", "n1", None]


def test_units_after_the_first_sync_get_fresh_electors(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a unit that appears after the agent's first sync (a new Service) creates its Lease without
    reading it first: the units of the first sync may have Leases from before this agent started."""
    import kubevip.agent.leadership as leadership

    made: dict[str, bool] = {}

    class Recording:
        def __init__(self, api: object, ns: str, name: str, *args: object, fresh: bool = False,
                     **kwargs: object) -> None:
            made[name] = fresh
            self.is_leader, self.leader = False, None

        async def run(self) -> None:
            await asyncio.Event().wait()

        async def release(self) -> None:
            return None

    async def main() -> None:
        cfg = ElectionConfig(True, "plndr-cp-lock", NS, "plndr-svcs-lock", True, "lease", Timings())
        leases = make(object(), cfg, "n1", _nothing, _nothing, Metrics("n1"))  # type: ignore[arg-type]
        assert isinstance(leases, Leases)
        monkeypatch.setattr(leadership, "LeaseElector", Recording)
        leases.set_units({"default/old": None})
        await leases._sync_unit_electors()
        leases.set_units({"default/old": None, "default/new": None})
        await leases._sync_unit_electors()
        await leases._guard.close()

    asyncio.run(main())
    assert made == {"old": False, "new": True}  # per-Service Leases are named after the Service


async def test_set_units_starts_a_new_units_elector_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new unit's elector starts in `set_units`, which says so: the agent's pass then yields, and the
    elector's first Lease write goes out before the rest of that pass instead of after it (with
    per-Service Leases, a new Service's critical path). A unit whose previous elector is still releasing
    its Lease gets its new one after that release; a node shutting down starts none."""
    import kubevip.agent.leadership as leadership

    made: list[str] = []
    running: list[str] = []
    releasing = asyncio.Event()
    release_may_end = asyncio.Event()

    class Recording:
        def __init__(self, api: object, ns: str, name: str, *args: object, **kwargs: object) -> None:
            made.append(name)
            self.name, self.is_leader, self.leader = name, False, None

        async def run(self) -> None:
            running.append(self.name)
            await asyncio.Event().wait()

        async def release(self) -> None:
            releasing.set()
            await release_may_end.wait()

        def stop_taking(self) -> None:
            return None

    cfg = ElectionConfig(True, "plndr-cp-lock", NS, "plndr-svcs-lock", True, "lease", Timings())
    leases = make(object(), cfg, "n1", _nothing, _nothing, Metrics("n1"))  # type: ignore[arg-type]
    assert isinstance(leases, Leases)
    monkeypatch.setattr(leadership, "LeaseElector", Recording)
    try:
        assert leases.set_units({"default/a": None}) is True
        assert made == ["a"] and running == []
        await asyncio.sleep(0)
        assert running == ["a"]  # its first step ran at the caller's first yield
        assert leases.set_units({"default/a": None}) is False  # nothing new
        assert leases.set_units({}) is False
        sync = asyncio.create_task(leases._sync_unit_electors())
        await releasing.wait()
        assert leases.set_units({"default/a": None}) is False  # back while its old elector releases
        assert made == ["a"]
        release_may_end.set()
        await sync
        assert made == ["a", "a"]  # started once the release was over
        leases.stop_taking()
        assert leases.set_units({"default/a": None, "default/b": None}) is False
        assert made == ["a", "a"]
    finally:
        await leases._guard.close()


async def test_losing_the_global_lease_stops_its_units_together() -> None:
    """The agent joins stops that arrive together into one fencing pass; stopped one after another,
    5000 units were 5000 passes and the fenced node's elector could not campaign for minutes. Each stop
    here waits until every unit's stop has begun: one after another, the first would wait forever."""
    units = [f"default/s{i}" for i in range(50)]
    begun: list[str] = []
    everyone = asyncio.Event()

    async def stopped(unit: str) -> None:
        begun.append(unit)
        if len(begun) == len(units):
            everyone.set()
        await everyone.wait()

    cfg = ElectionConfig(True, "plndr-cp-lock", NS, "plndr-svcs-lock", False, "lease", Timings())
    leases = make(object(), cfg, "n1", _nothing, stopped, Metrics("n1"))  # type: ignore[arg-type]
    assert isinstance(leases, Leases)
    leases.set_units({**dict.fromkeys(units), "default/local": frozenset({"n1"})})  # Local: its own Lease
    async with asyncio.timeout(5):
        await leases._global_stopped()
    assert sorted(begun) == sorted(units)


async def test_a_failed_unit_stop_is_raised_after_every_other_unit_stopped() -> None:
    stopped: list[str] = []

    async def stop(unit: str) -> None:
        if unit == "default/a":
            raise RuntimeError("fencing pass failed")
        stopped.append(unit)

    cfg = ElectionConfig(True, "plndr-cp-lock", NS, "plndr-svcs-lock", False, "lease", Timings())
    leases = make(object(), cfg, "n1", _nothing, stop, Metrics("n1"))  # type: ignore[arg-type]
    assert isinstance(leases, Leases)
    leases.set_units(dict.fromkeys(["default/a", "default/b", "default/c"]))
    with pytest.raises(RuntimeError, match="fencing pass failed"):
        await leases._global_stopped()
    assert sorted(stopped) == ["default/b", "default/c"]


def test_the_global_lease_is_reported_where_it_lives() -> None:
    """svc_leasename as "namespace/name" puts the global Lease in its own namespace: `kubevip status`
    names that one, and every unit's report shares one string."""
    async def main() -> None:
        cfg = ElectionConfig(True, "plndr-cp-lock", NS, "svcs", False, "lease", Timings(),
                             services_namespace="infra")
        leases = make(object(), cfg, "n1", _nothing, _nothing, Metrics("n1"))  # type: ignore[arg-type]
        leases.set_units({"default/a": None, "default/b": None})
        assert leases.lease_of("default/a") == "infra/svcs"
        assert leases.lease_of("default/a") is leases.lease_of("default/b")

    asyncio.run(main())
