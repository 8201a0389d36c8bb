"""The scalable elector claims no unit when its own liveness is about to lapse: a unit claimed then would
be started and fenced again within a fraction of a second (bench/chaos.py saw claims ~0.2 s before the
fencing: a flap for the unit's clients). It claims once a renewal gives it at least a retry period."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.record import parse_lease
from kubevip.election.scalable import CLAIM_CONCURRENCY, ROLE_CLAIM, ROLE_LABEL
from tests.unit.election.test_incremental_pass import NOW, UNITS, Side


def _claims(side: Side) -> set[str]:
    return {
        name for (_, name), obj in side.fake.store.items()
        if parse_lease(obj).labels.get(ROLE_LABEL) == ROLE_CLAIM
    }


async def _pass(left: float) -> Side:
    side = Side()  # this node alone is live: it is every orphan's rendezvous winner
    side.el.liveness.live_until = NOW + left
    side.el.set_units(dict.fromkeys(UNITS))
    await side.el._converge(full=True)
    return side


@given(st.floats(min_value=0.001, max_value=3.0))
async def test_claims_only_with_a_retry_period_of_liveness_left(left: float) -> None:
    side = await _pass(left)
    retry = side.el.timings.retry_period
    assert (len(_claims(side)) == len(UNITS)) == (left >= retry)
    assert _claims(side) == set() or left >= retry


async def test_a_renewal_lets_the_waiting_claims_through() -> None:
    side = await _pass(0.1)
    assert _claims(side) == set() and set(side.el._unsettled) == set(UNITS)  # still wanted: looked at again
    side.el.liveness.live_until = NOW + 1.0  # a renewal
    await side.el._converge(full=False)
    assert len(_claims(side)) == len(UNITS)


async def test_claims_queued_across_a_liveness_loss_are_dropped_not_crashing() -> None:
    """Claims wait behind each other (CLAIM_CONCURRENCY); when the liveness Lease is taken away while
    they wait, the rest are not sent, and the pass ends normally. (It used to assert on the missing
    epoch and kill the elector's task: seen in bench/agent.py at 1000 Services, scalable mode.)"""
    side = Side()
    side.el.liveness.live_until = NOW + 1.0
    units = [f"vip:10.1.0.{i}" for i in range(3 * CLAIM_CONCURRENCY)]
    side.el.set_units(dict.fromkeys(units))
    create = side.el.api.create
    sent: list[str] = []

    async def create_then_lose_liveness(body: dict[str, object]) -> object:
        sent.append(str(body["metadata"]["name"]))  # type: ignore[index]
        side.el.liveness.epoch = None  # "liveness Lease taken away; withdrawing everything"
        return await create(body)

    side.el.api.create = create_then_lose_liveness  # type: ignore[method-assign]
    await side.el._converge(full=True)
    assert 1 <= len(sent) <= CLAIM_CONCURRENCY  # only those already under way when liveness went
    assert len(_claims(side)) == len(sent)
    assert not side.el.held
