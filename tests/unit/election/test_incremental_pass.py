"""The scalable elector's incremental pass (only units whose inputs changed) decides exactly what a pass
over every unit decides, whatever the claims, the nodes' liveness and the eligibility do."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.election.record import lease_body, parse_lease
from kubevip.election.scalable import (
    EPOCH_ANNOTATION,
    ROLE_CLAIM,
    ROLE_LABEL,
    ROLE_NODE,
    UNIT_ANNOTATION,
    ScalableElector,
    claim_lease_name,
    node_lease_name,
)
from kubevip.election.timings import Timings
from tests.unit.controlplane.fakes import FakeLeaseApi

NS = "kube-system"
ME = "node1"
PEERS = ("node2", "node3")
UNITS = tuple(f"vip:10.0.0.{i}" for i in range(8))
NOW = 1000.0  # a fixed clock: no timer (orphan race, garbage collection) fires, so both passes are pure


async def _noop(unit: str) -> None:
    return None


class Side:
    """One elector and its own Lease store, fed the same changes as the other side."""

    def __init__(self) -> None:
        self.fake = FakeLeaseApi()
        self.el = ScalableElector(
            self.fake.view(ME), NS, ME, Timings(1.5, 1.0, 0.25), _noop, _noop, clock=lambda: NOW
        )
        mine = self.put(node_body(ME, ME, 0))
        self.el.liveness.mine = mine
        self.el.liveness.epoch = 0
        self.el.liveness.live_until = NOW + 1e6

    def put(self, body: dict[str, Any]) -> Any:
        meta = body["metadata"]
        old = self.fake.store.get((NS, meta["name"]))
        if old is not None:
            body = copy.deepcopy(body)
            body["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        rec = self.fake._save(body)
        self.el.cache.put(rec)
        return rec

    def claims(self) -> dict[str, str | None]:
        out = {}
        for (_, name), obj in sorted(self.fake.store.items()):
            rec = parse_lease(obj)
            if rec.labels.get(ROLE_LABEL) == ROLE_CLAIM:
                out[name] = rec.holder
        return out


def node_body(node: str, holder: str, epoch: int) -> dict[str, Any]:
    return lease_body(NS, node_lease_name(node), holder=holder or None, duration=1.5, transitions=epoch,
                      acquire_wall=0.0, renew_wall=0.0, labels={ROLE_LABEL: ROLE_NODE})


def claim_body(unit: str, holder: str, epoch: int) -> dict[str, Any]:
    return lease_body(NS, claim_lease_name(unit), holder=holder or None, duration=1.5, transitions=0,
                      acquire_wall=0.0, renew_wall=0.0, labels={ROLE_LABEL: ROLE_CLAIM},
                      annotations={UNIT_ANNOTATION: unit, EPOCH_ANNOTATION: str(epoch)})


holders = st.sampled_from(("", ME, *PEERS))
claim_change = st.tuples(st.just("claim"), st.sampled_from(UNITS), holders, st.integers(0, 1))
node_change = st.tuples(st.just("node"), st.sampled_from(PEERS), st.sampled_from(("", "self")),
                        st.integers(0, 1))
eligibility = st.dictionaries(
    st.sampled_from(UNITS), st.one_of(st.none(), st.frozensets(st.sampled_from((ME, *PEERS)))), min_size=1
)
units_change = st.tuples(st.just("units"), eligibility)


@settings(max_examples=200)
@given(
    st.lists(st.tuples(st.sampled_from(UNITS), holders, st.integers(0, 1)), max_size=8),
    eligibility,
    st.lists(st.one_of(claim_change, node_change, units_change), min_size=1, max_size=10),
)
async def test_incremental_pass_decides_like_a_full_pass(initial, units, changes) -> None:
    full, incremental = Side(), Side()
    for side in (full, incremental):
        for peer in PEERS:
            side.put(node_body(peer, peer, 0))
        for unit, holder, epoch in initial:
            side.put(claim_body(unit, holder, epoch))
        side.el.set_units(units)
    await full.el._converge(True)
    await incremental.el._converge(True)
    for change in changes:
        for side in (full, incremental):
            if change[0] == "claim":
                _, unit, holder, epoch = change
                side.put(claim_body(unit, holder, epoch))
            elif change[0] == "node":
                _, peer, holder, epoch = change
                side.put(node_body(peer, peer if holder == "self" else "", epoch))
            else:
                side.el.set_units(change[1])
        await full.el._converge(True)
        await incremental.el._converge(False)
        assert incremental.el.held == full.el.held, change
        assert incremental.claims() == full.claims(), change
