"""Both electors, real code at default timings, through many random fault schedules in virtual time.

Properties (tests/unit/election/sim.py describes the faults):
- never two holders of a unit at any simulated instant (checked at every on_started);
- after a foreign write names someone else, the elector that held the unit stops within one retry
  period (plus the round trips), when its own API path is healthy;
- every unit is held again within `recovery_bound` after the last fault ends, and nothing moves after
  that (no flapping, no move-back).
"""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass

import pytest

from kubevip.election.scalable import node_lease_name
from kubevip.election.timings import Timings
from tests.unit.election.sim import (
    FOREIGN,
    GRACEFUL,
    INSTANTS,
    RESTART,
    WINDOWS,
    Fault,
    Fleet,
    Recorder,
    SimServer,
    Write,
    random_faults,
    run_sim,
)

NODES = ("node-a", "node-b", "node-c")
LEASE_UNITS = ("plndr-svcs-lock", "kubevip-web")
SCALABLE_UNITS = ("vip:198.18.0.1", "vip:198.18.0.2", "vip:fd00::1", "default/web")
# Random schedules per mode; hack/mutation runs fewer (every mutant re-runs them).
SEEDS = range(int(os.environ.get("KUBEVIP_SIM_SEEDS", "60")))
T = Timings()  # the defaults: 1.5 / 1.0 / 0.25 (+ 0.25 skew margin)


def recovery_bound(mode: str, t: Timings = T) -> float:
    """Seconds from the end of the last fault until every unit is held again.

    Lease mode: a candidate waits one lease duration from when it saw the last version (the watch may
    bring it only when the fault ends), plus a failed attempt's retry and a few round trips.
    Scalable: a peer's liveness expires after one lease duration on our clock, counted from when we
    could see again (a node back from a gap waits a further lease duration before judging peers); the
    rendezvous winner claims at once, anyone else after one more lease duration ("winner too slow").
    """
    if mode == "lease":
        return t.lease_duration + t.renew_deadline + 2 * t.retry_period + 0.5
    return 3 * t.lease_duration + 4 * t.retry_period + 0.5


def fault_over(f: Fault, t: Timings = T) -> float:
    """When a fault's effects end: a restart's old process is killed one lease duration + 1 s later,
    INTRUDER never renews its foreign write, which expires after its 1.5 s."""
    if f.kind == RESTART:
        return f.start + t.lease_duration + 1.0
    if f.kind == FOREIGN:
        return f.start + 1.5
    return f.end


@dataclass
class Outcome:
    faults: list[Fault]
    rec: Recorder
    faults_over: float
    held_at_bound: dict[str, set[str]]
    current: dict[str, str]
    end: float
    mode: str
    writes: list[Write]
    crashed: list[str]
    timings: Timings = T

    def explain(self) -> str:
        spans = "\n".join(
            f"  {s.unit}: {s.incarnation} {s.start:.3f}..{'' if s.end is None else f'{s.end:.3f}'}"
            for s in self.rec.spans
        )
        return f"faults: {self.faults}\nviolations: {self.rec.violations}\nspans:\n{spans}"


def simulate(mode: str, faults: list[Fault], seed: int, units: tuple[str, ...], t: Timings = T) -> Outcome:
    rnd = random.Random(seed)
    bound = recovery_bound(mode, t)
    over = max([fault_over(f, t) for f in faults] + [0.0])

    async def main() -> Outcome:
        server = SimServer(rnd, faults)
        fleet = Fleet(mode, NODES, units, server, t)
        for n in NODES:
            fleet.start(n)
        injector = asyncio.get_running_loop().create_task(fleet.inject(faults))
        await asyncio.sleep(over + bound - server.now())
        held = {u: fleet.rec.holders(u) for u in units}
        await asyncio.sleep(5.0)  # a quiet tail: nothing may move
        end = server.now()
        injector.cancel()
        crashed = await fleet.stop()
        return Outcome(
            faults, fleet.rec, over, held, dict(fleet.current), end, mode, server.writes, crashed, t
        )

    return run_sim(main)


def check(out: Outcome, mode: str) -> None:
    assert not out.crashed, f"an elector died: {out.crashed}\n{out.explain()}"
    assert not out.rec.violations, out.explain()
    bound = recovery_bound(mode, out.timings)
    for unit, holders in out.held_at_bound.items():
        assert len(holders) == 1, f"{unit} not held {bound}s after the faults ended\n{out.explain()}"
        (holder,) = holders
        assert holder in out.current.values(), f"{unit} held by a dead process\n{out.explain()}"
    _check_fencing(out)
    moved = out.rec.changes_after(out.faults_over + bound)
    moved = [s for s in moved if not (s.end is not None and s.end >= out.end)]  # the final stop
    assert not moved, f"holdings changed after recovery: {moved}\n{out.explain()}"
    _check_foreign(out)
    _check_handover(out)


def _check_fencing(out: Outcome) -> None:
    """The fencing promise itself: a holder stops at most `renew_deadline` after the last write of its
    Lease (lease mode: the unit's; scalable: its liveness Lease) that the API server accepted from it.
    The elector counts from when it SENT that write, which is no later than when it was accepted."""
    for s in out.rec.spans:
        node = s.incarnation.split("#")[0]
        lease = s.unit if out.mode == "lease" else node_lease_name(node)
        end = out.end if s.end is None else s.end
        renewals = [w.at for w in out.writes if w.writer == s.incarnation and w.name == lease
                    and w.holder == node and w.at <= end]
        assert renewals, f"{s.incarnation} held {s.unit} without ever writing {lease}\n{out.explain()}"
        assert end <= renewals[-1] + out.timings.renew_deadline + 1e-6, (
            f"{s.incarnation} held {s.unit} until {end:.3f}, more than renew_deadline after its last"
            f" accepted write of {lease} at {renewals[-1]:.3f}\n{out.explain()}"
        )


def _quiet_around(out: Outcome, f: Fault, before: float = 2.0, after: float = 2.0) -> bool:
    return not any(
        g is not f and g.start - after <= f.start <= fault_over(g, out.timings) + before for g in out.faults
    )


def _check_handover(out: Outcome) -> None:
    """A graceful restart hands the Lease back: the unit is held again within one retry period and a
    few round trips (a peer or the new process), not only at expiry one lease duration later."""
    for f in out.faults:
        if f.kind != GRACEFUL or not _quiet_around(out, f):
            continue
        for s in out.rec.spans:
            if s.incarnation.split("#")[0] != f.node or s.start > f.start:
                continue
            if s.end is None or s.end < f.start:
                continue
            limit = s.end + out.timings.retry_period + 0.3
            assert any(n.unit == s.unit and s.end <= n.start <= limit for n in out.rec.spans), (
                f"{s.unit} released at {s.end:.3f} but not held again by {limit:.3f}\n{out.explain()}"
            )


def _check_foreign(out: Outcome) -> None:
    """A holder that a foreign write overrode stops within one retry period and two round trips."""
    for f in out.faults:
        if f.kind != FOREIGN:
            continue
        disturbed = {
            g.node for g in out.faults
            if g is not f and g.start - 2.0 <= f.start <= fault_over(g, out.timings) + 0.5
            and (g.kind in WINDOWS or g.kind in (RESTART, GRACEFUL))
        }
        for s in out.rec.spans:
            node = s.incarnation.split("#")[0]
            if s.unit != f.unit or s.start > f.start or (s.end is not None and s.end < f.start):
                continue
            if node in disturbed:
                continue
            limit = f.start + out.timings.retry_period + 0.15
            assert s.end is not None and s.end <= limit, (
                f"{s.incarnation} kept {s.unit} after a foreign write at {f.start}\n{out.explain()}"
            )


@pytest.mark.parametrize("seed", SEEDS)
def test_lease_mode_random_schedules(seed: int) -> None:
    faults = random_faults(random.Random(f"lease-{seed}"), NODES, LEASE_UNITS)
    check(simulate("lease", faults, seed, LEASE_UNITS), "lease")


@pytest.mark.parametrize("seed", SEEDS)
def test_scalable_mode_random_schedules(seed: int) -> None:
    faults = random_faults(random.Random(f"scalable-{seed}"), NODES, SCALABLE_UNITS)
    check(simulate("scalable", faults, seed, SCALABLE_UNITS), "scalable")


def _holder_at(out: Outcome, unit: str, t: float) -> str:
    (span,) = [s for s in out.rec.spans if s.unit == unit and s.start <= t and (s.end is None or s.end > t)]
    return span.incarnation.split("#")[0]


@pytest.mark.parametrize("mode,units", [("lease", LEASE_UNITS), ("scalable", SCALABLE_UNITS)])
@pytest.mark.parametrize("kind", sorted(INSTANTS + WINDOWS))
def test_each_fault_on_the_holder(mode: str, units: tuple[str, ...], kind: str) -> None:
    """Scripted: every kind of fault, aimed at whoever holds the first unit once the fleet settled."""
    settled = simulate(mode, [], 0, units)
    holder = _holder_at(settled, units[0], 3.0)
    fault = Fault(kind, holder, 4.0, 4.0 if kind in INSTANTS else 6.5, units[0])
    out = simulate(mode, [fault], 0, units)
    check(out, mode)
    if kind in (FOREIGN, RESTART, GRACEFUL):
        # The fault did take the unit from its holder's process at least for a moment.
        assert any(s.unit == units[0] and s.end is not None and 4.0 <= s.end < out.end for s in out.rec.spans)


# The liveness period (vip_livenessperiod): fewer steady renewals, each failure retried after one retry
# period. "goal": our timings with renewals every 0.6 s (1.7 writes/s per node, crash failover bounded
# by the same 1.5 s Lease); "economy": a 6 s Lease renewed every 2 s (0.5 writes/s per node).
LIVENESS_PROFILES = {
    "goal": Timings(1.5, 1.0, 0.25, liveness=0.6),
    "economy": Timings(6.0, 4.0, 0.5, liveness=2.0),
    "kubelet": Timings(15.0, 10.0, 2.0, liveness=7.5),  # 0.13 writes/s per node
}
LIVENESS_SEEDS = range(int(os.environ.get("KUBEVIP_SIM_LIVENESS_SEEDS", "8")))


@pytest.mark.parametrize("profile", sorted(LIVENESS_PROFILES))
@pytest.mark.parametrize("seed", LIVENESS_SEEDS)
def test_scalable_mode_liveness_period_random_schedules(profile: str, seed: int) -> None:
    """The same properties (never two holders, the fencing promise counted from the last ACCEPTED
    liveness write, re-held within the bound of these timings) when renewals are rarer than retries."""
    t = LIVENESS_PROFILES[profile]
    faults = random_faults(random.Random(f"liveness-{profile}-{seed}"), NODES, SCALABLE_UNITS)
    check(simulate("scalable", faults, seed, SCALABLE_UNITS, t), "scalable")


@pytest.mark.parametrize("profile", sorted(LIVENESS_PROFILES))
def test_liveness_writes_follow_the_liveness_period(profile: str) -> None:
    """Nothing failing: each node writes its liveness Lease once per liveness period, not per retry
    period (the cost the setting exists for), and the units stay where they settled."""
    t = LIVENESS_PROFILES[profile]
    out = simulate("scalable", [], 0, SCALABLE_UNITS, t)
    check(out, "scalable")
    start = 3 * t.lease_duration  # settled
    for node in NODES:
        writes = [w.at for w in out.writes if w.name == node_lease_name(node) and w.at >= start]
        steady = out.end - start
        assert len(writes) <= steady / t.liveness_period + 1, (node, len(writes), steady)
        assert len(writes) >= steady / t.liveness_period - 1, (node, len(writes), steady)
