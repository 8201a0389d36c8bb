"""The scalable election (its Lease cache is the kube/ reflector) with every elector process behind a
fault-injecting proxy: faults on a holder's API path never give a unit two holders, every unit ends
held by exactly one node, and no elector process dies."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.faultproxy import FaultProxy, Request
from tests.cluster.election_fleet import Fleet
from tests.cluster.test_election import FAILOVER, UNITS, all_held_once

pytestmark = pytest.mark.cluster

ARGS = ["--mode", "scalable", "--lease-duration", "3", "--renew-deadline", "1.5", "--skew-margin", "1"]


def _errors(status: int, headers: dict[str, str]) -> Callable[[FaultProxy], None]:
    def on(p: FaultProxy) -> None:
        p.answer = (status, headers)
        p.reset_all()
    return on


def _watch_fault(name: str) -> Callable[[FaultProxy], None]:
    def on(p: FaultProxy) -> None:
        if name == "freeze":
            p.freeze()
        elif name == "empty":
            p.empty_watches = True
            p.reset_all()
        else:
            p.truncate_watches = 300
            p.reset_all()
    return on


# (name, fault, whether the holder cannot renew and must fence itself, requests that show it was tried:
# any request for error answers, watches for watch faults; a half-open watch is left after the idle
# deadline, then the next one is healthy)
FAULTS: list[tuple[str, Callable[[FaultProxy], None], bool, int]] = [
    ("500", _errors(500, {}), True, 5),
    ("429", _errors(429, {"Retry-After": "1"}), True, 5),
    ("half-open", _watch_fault("freeze"), False, 1),
    ("empty watches", _watch_fault("empty"), False, 3),
    ("truncated watches", _watch_fault("truncate"), False, 3),
]


async def test_api_faults_on_a_holder_never_give_a_unit_two_holders(
    control_plane: ControlPlane, kube_namespace: str, tmp_path: Path
) -> None:
    args = list(ARGS)
    for u in UNITS:
        args += ["--unit", u]
    fleet = Fleet(control_plane, tmp_path, kube_namespace, args, fault_proxies=True)
    try:
        for n in ("node-a", "node-b", "node-c"):
            await fleet.spawn(n)
        held = await all_held_once(fleet)
        for name, fault, fences, tries in FAULTS:
            victim = held[UNITS[0]]
            proxy = fleet.electors[victim].proxy
            assert isinstance(proxy, FaultProxy)
            t0 = time.monotonic()
            fault(proxy)

            def tried(p: FaultProxy = proxy, t: float = t0, watches: bool = not fences,
                      n: int = tries) -> bool:
                reqs: list[Request] = [r for r in p.since(t) if r.watch or not watches]
                return len(reqs) >= n

            await fleet.wait_for(tried, FAILOVER, f"{victim} tries through the fault {name}")
            if fences:
                await fleet.wait_for(lambda v=victim: not fleet.leading(v), FAILOVER, f"{victim} fences")
            proxy.clear()
            held = await all_held_once(fleet)
            assert all(el.proc.returncode is None for el in fleet.electors.values()), name
        fleet.assert_never_two_holders()
    finally:
        await fleet.close()
