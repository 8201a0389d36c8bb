"""Who holds each election unit: no election, kube-vip's Lease mode, or the scalable mode.

The agent only asks `holds(unit)` (may this node announce it now?) and `holder(unit, eligible)` (who does,
as far as this node knows, for status). Elections call back `on_started(unit)` / `on_stopped(unit)`;
`on_stopped` completes only once the unit's VIPs are withdrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, cast

from kubevip.core.leases import SERVICE_LEASE_PREFIX
from kubevip.election.elector import LeaseElector
from kubevip.election.scalable import ScalableElector, claim_lease_name
from kubevip.election.timings import ElectionConfig
from kubevip.ip import NodeName, UnitId
from kubevip.kube.rest import RestClient
from kubevip.metrics import Metrics
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)

UnitCallback = Callable[[str], Awaitable[None]]
Renewed = Callable[[], None]
Clock = Callable[[], float]  # monotonic seconds; the election simulator passes its virtual clock
Units = Mapping[UnitId, "frozenset[NodeName] | None"]


def _plain(units: Units) -> Mapping[str, frozenset[str] | None]:
    """`election/` elects on any Lease name, so it names units and nodes by plain `str`; a UnitId and a
    NodeName are such strings (NewType: no copy, no cost)."""
    return cast(Mapping[str, "frozenset[str] | None"], units)
Preferred = Mapping[str, "tuple[str, ...]"]  # unit -> kube-vip.io/preferred-nodes, most preferred first


class Leadership(Protocol):
    def set_units(self, units: Units) -> bool:
        """The units to elect and their eligible nodes (None: every node). True when a new unit's
        election started here: its first Lease write goes out once the caller yields to the loop."""
        ...
    def set_preferred(self, preferred: Preferred) -> None: ...
    def holds(self, unit: str) -> bool: ...
    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None: ...
    def generation(self) -> object: ...
    def renewed_at(self, unit: str) -> float | None: ...
    def lease_of(self, unit: str) -> str:
        """"namespace/name" of the Lease deciding `unit`, "" when no Lease does (for `kubevip status`)."""
        ...
    async def run(self) -> None: ...
    def stop_taking(self) -> None:
        """Shutting down: keep what is held until `release`, take nothing new (a Lease or a unit a peer
        releases meanwhile is for the nodes that stay)."""
        ...
    async def release(self) -> None: ...


def _eligible(me: str, eligible: frozenset[str] | None) -> bool:
    return eligible is None or me in eligible


class Solo:
    """vip_leaderelection=false: every eligible node announces (kube-vip's behaviour without election)."""

    def __init__(self, node: str, on_started: UnitCallback, on_stopped: UnitCallback) -> None:
        self.node = node
        self._units: dict[str, frozenset[str] | None] = {}
        self._on_started = on_started
        self._on_stopped = on_stopped

    def set_units(self, units: Units) -> bool:
        self._units = dict(_plain(units))
        return False

    def set_preferred(self, preferred: Preferred) -> None:
        """Every eligible node announces: there is nothing to prefer."""

    def holds(self, unit: str) -> bool:
        return unit in self._units and _eligible(self.node, self._units[unit])

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        return self.node if _eligible(self.node, eligible) else None

    def generation(self) -> object:
        """Equal while `holds` and `holder` answer the same for the same units (here: always)."""
        return 0

    def renewed_at(self, unit: str) -> float | None:
        """No Lease, no peer taking over: no kernel lifetime."""
        return None

    def lease_of(self, unit: str) -> str:
        return ""

    async def run(self) -> None:
        await asyncio.Event().wait()

    def stop_taking(self) -> None:
        """Nothing is taken from anyone here."""

    async def release(self) -> None:
        return None


class Scalable:
    """vip_electionmode=scalable: one liveness Lease per node, claims only on change (election/scalable)."""

    def __init__(
        self, api: RestClient, cfg: ElectionConfig, node: str, on_started: UnitCallback,
        on_stopped: UnitCallback, metrics: Metrics, on_renewed: Renewed | None = None,
        *, clock: Clock = time.monotonic, renewal_thread: bool = False,
    ) -> None:
        self.node = node
        self.metrics = metrics
        self.elector = ScalableElector(
            api, cfg.namespace, node, cfg.timings, on_started, on_stopped, observer=self._observe,
            on_renewed=on_renewed, clock=clock, renewal_thread=renewal_thread,
        )

    def _observe(self, unit: str, holding: bool) -> None:
        self.metrics.is_leader.labels(self.node, unit).set(1 if holding else 0)
        self.metrics.leader_transitions.labels(unit).inc()

    def set_units(self, units: Units) -> bool:
        self.elector.set_units(_plain(units))  # claims go out from the elector's own loop
        return False

    def set_preferred(self, preferred: Preferred) -> None:
        self.elector.set_preferred(preferred)

    def holds(self, unit: str) -> bool:
        return self.elector.holds(unit)

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        if self.elector.holds(unit):
            return self.node
        return self.elector.current_holder(unit)

    def generation(self) -> object:
        e = self.elector
        return (e.cache.version, e.is_live, e.held_changes)

    def renewed_at(self, unit: str) -> float | None:
        return self.elector.renewed_at if self.elector.holds(unit) else None

    def lease_of(self, unit: str) -> str:
        return f"{self.elector.namespace}/{claim_lease_name(unit)}"

    async def run(self) -> None:
        await self.elector.run()

    def stop_taking(self) -> None:
        self.elector.stop_taking()

    async def release(self) -> None:
        await self.elector.release()


def unit_lease(unit: str) -> tuple[str, str]:
    """(namespace, Lease name) of a unit in Lease mode: the unit is "<namespace>/<Lease>" (kube-vip's
    name, core.leases), plus "/<family>" for a dual-stack Local Service's second family."""
    ns, _, rest = unit.partition("/")
    name, _, family = rest.partition("/")
    return ns, f"{name}-{family.lower()}" if family else name


def election_labels(unit: str) -> tuple[str, str]:
    """(namespace, name) for kube-vip's per-Service election metrics: the Service's name for its own
    Lease (`kubevip-<name>`), else the Lease's (a `kube-vip.io/leaseName` group)."""
    ns, name = unit_lease(unit.rsplit("/", 1)[0] if unit.count("/") > 1 else unit)
    return ns, name.removeprefix(SERVICE_LEASE_PREFIX)


class Leases:
    """kube-vip's Lease mode: one global Lease (plndr-svcs-lock), or a Lease per unit with svc_election.

    Units of Services with externalTrafficPolicy Local always get their own Lease among eligible nodes:
    a global leader without local endpoints must not announce them.
    """

    def __init__(
        self, api: RestClient, cfg: ElectionConfig, node: str, on_started: UnitCallback,
        on_stopped: UnitCallback, metrics: Metrics, on_renewed: Renewed | None = None,
        *, clock: Clock = time.monotonic,
    ) -> None:
        self.api = api
        self.cfg = cfg
        self._on_renewed = on_renewed
        self.node = node
        self.metrics = metrics
        self._clock = clock
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._units: dict[str, frozenset[str] | None] = {}
        self._guard = TaskGroupGuard(f"leases:{node}")
        self._per_unit: dict[str, LeaseElector] = {}
        self._synced_once = False  # units after the first sync are new: their electors start `fresh`
        self._draining = False  # stop_taking(): no new elector, none campaigns
        self._releasing: set[str] = set()  # units whose elector is releasing its Lease (`run`)
        self.global_elector = LeaseElector(
            api, cfg.services_lease_namespace, cfg.services_lease_name, node, cfg.timings,
            self._global_started, self._global_stopped, observer=self._observe, on_renewed=on_renewed,
            clock=clock,
        )
        self._changed = asyncio.Event()
        # Where the global Lease lives (svc_leasename may name its own namespace), one string for
        # every VIP's report rather than one each.
        self._global_lease = f"{cfg.services_lease_namespace}/{cfg.services_lease_name}"

    def _observe(self, lease: str, leading: bool) -> None:
        self.metrics.is_leader.labels(self.node, lease).set(1 if leading else 0)
        self.metrics.leader_transitions.labels(lease).inc()

    def _own_lease(self, unit: str) -> bool:
        return self.cfg.per_service or self._units.get(unit) is not None

    async def _global_started(self) -> None:
        for u in self._units:
            if not self._own_lease(u):
                await self._on_started(u)

    async def _global_stopped(self) -> None:
        """Every unit of the global Lease stops at once: the agent joins stops that arrive together into
        one fencing pass. One after another, each stop was a pass of its own: 5000 Services being created
        kept every pass's inputs new, so a fenced node spent minutes in thousands of passes before its
        elector could campaign again, and with every node fenced nobody held the Lease."""
        units = [u for u in self._units if not self._own_lease(u)]
        results = await asyncio.gather(*(self._on_stopped(u) for u in units), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def set_units(self, units: Units) -> bool:
        # A new unit's elector starts here, not in `run`'s next turn: that turn comes only after the
        # caller's pass (1-3 ms on a busy machine), and with per-Service Leases a new Service's Lease
        # write is its create's critical path (issue 21). Stopping the electors of units that went
        # away awaits their release, which stays in `run`.
        self._units = dict(_plain(units))
        self._changed.set()
        return self._start_campaigns()

    def set_preferred(self, preferred: Preferred) -> None:
        """Not honoured: a Lease goes to whoever takes it first (docs/placement.md, scalable only)."""

    def holds(self, unit: str) -> bool:
        if unit not in self._units:
            return False
        if self._own_lease(unit):
            e = self._per_unit.get(unit)
            return e is not None and e.is_leader
        return self.global_elector.is_leader

    def holder(self, unit: str, eligible: frozenset[str] | None) -> str | None:
        if self.holds(unit):
            return self.node
        if self._own_lease(unit):
            e = self._per_unit.get(unit)
            return e.leader if e is not None else None
        return self.global_elector.leader

    def lease_of(self, unit: str) -> str:
        if self._own_lease(unit):
            return "/".join(unit_lease(unit))
        return self._global_lease

    def generation(self) -> object:
        g = self.global_elector
        return (g.is_leader, g.leader, tuple((u, e.is_leader, e.leader) for u, e in self._per_unit.items()))

    def renewed_at(self, unit: str) -> float | None:
        if not self.holds(unit):
            return None
        if self._own_lease(unit):
            e = self._per_unit.get(unit)
            return e.renewed_at if e is not None else None
        return self.global_elector.renewed_at

    async def run(self) -> None:
        spawn(self._guard, "global", self.global_elector.run())
        try:
            while True:
                await self._changed.wait()
                self._changed.clear()
                await self._sync_unit_electors()
        finally:
            await self._guard.close()

    async def _sync_unit_electors(self) -> None:
        try:
            await self._sync_units_once()
        finally:
            self._synced_once = True

    def _wanted(self) -> set[str]:
        return {u for u, e in self._units.items() if self._own_lease(u) and _eligible(self.node, e)}

    async def _sync_units_once(self) -> None:
        want = self._wanted()
        for unit in set(self._per_unit) - want:
            elector = self._per_unit.pop(unit)
            self.metrics.election_loops.labels(*election_labels(unit)).dec()
            self._releasing.add(unit)
            try:
                await elector.release()
            finally:
                self._releasing.discard(unit)
        self._start_campaigns()

    def _start_campaigns(self) -> bool:
        """An elector for every wanted unit that has none; True when one started. None while shutting
        down, and none for a unit whose previous elector is still releasing its Lease (`run` starts it
        after that release)."""
        if self._draining:
            return False
        new = self._wanted() - set(self._per_unit) - self._releasing
        for unit in new:
            ns, name = unit_lease(unit)

            async def started(u: str = unit) -> None:
                await self._on_started(u)

            async def stopped(u: str = unit) -> None:
                await self._on_stopped(u)

            # Units of the first sync existed before this agent (their Leases may too): read first.
            e = LeaseElector(self.api, ns, name, self.node, self.cfg.timings, started, stopped,
                             observer=self._observe, on_renewed=self._on_renewed, clock=self._clock,
                             fresh=self._synced_once)
            self._per_unit[unit] = e
            self.metrics.election_loops.labels(*election_labels(unit)).inc()
            spawn(self._guard, f"lease {ns}/{name}", self._campaign(unit, e))
        self._synced_once = True
        return bool(new)

    async def _campaign(self, unit: str, elector: LeaseElector) -> None:
        """Run one unit's election, counted like kube-vip's per-Service loop (attempts, errors)."""
        labels = election_labels(unit)
        self.metrics.election_attempts.labels(*labels).inc()
        try:
            await elector.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.metrics.election_errors.labels(*labels, type(exc).__name__).inc()
            raise

    def stop_taking(self) -> None:
        self._draining = True  # electors of units that appear from here on are not started
        for e in (self.global_elector, *self._per_unit.values()):
            e.stop_taking()

    async def release(self) -> None:
        for e in list(self._per_unit.values()):
            with contextlib.suppress(Exception):
                await e.release()
        with contextlib.suppress(Exception):
            await self.global_elector.release()


def make(
    api: RestClient | None, cfg: ElectionConfig, node: str, on_started: UnitCallback,
    on_stopped: UnitCallback, metrics: Metrics, on_renewed: Renewed | None = None,
    *, clock: Clock = time.monotonic, renewal_thread: bool = False,
) -> Leadership:
    """The election the settings ask for; `on_renewed` runs after every accepted renewal (any Lease).
    `renewal_thread`: the scalable mode's liveness renewals on their own thread (the agent; the
    simulator drives one loop on a fake clock)."""
    if not cfg.enabled or api is None:
        return Solo(node, on_started, on_stopped)
    if cfg.mode == "scalable":
        return Scalable(api, cfg, node, on_started, on_stopped, metrics, on_renewed, clock=clock,
                        renewal_thread=renewal_thread)
    return Leases(api, cfg, node, on_started, on_stopped, metrics, on_renewed, clock=clock)
