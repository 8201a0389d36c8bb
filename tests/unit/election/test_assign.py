"""The scalable elector's per-unit rule (election/assign.py): each branch, its invariants over every
input, and "never two holders" in small scripted clusters over EVERY order of their events."""

from __future__ import annotations

import copy
import itertools
import sys
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.assign import Step, UnitFacts, assign
from kubevip.election.rendezvous import choose_holder, rendezvous

ME, PEER = "node-a", "node-b"


@pytest.mark.parametrize(
    "facts,steps",
    [
        (UnitFacts(ME, ME, ME, held=False), (Step.START,)),
        (UnitFacts(ME, ME, ME, held=True), (Step.START,)),  # idempotent: _start ignores a held unit
        (UnitFacts(ME, ME, PEER, held=True), (Step.GIVE_UP,)),  # no longer eligible here
        (UnitFacts(ME, ME, None, held=True), (Step.GIVE_UP,)),
        (UnitFacts(ME, PEER, PEER, held=True), (Step.STOP,)),  # lost the claim to a peer
        (UnitFacts(ME, PEER, PEER, held=False, stealable=True, winner_too_slow=True), ()),
        (UnitFacts(ME, None, ME, held=False, stealable=True), (Step.CLAIM,)),
        (UnitFacts(ME, None, ME, held=True, stealable=True), (Step.STOP, Step.CLAIM)),
        (UnitFacts(ME, None, ME, held=False, stealable=False), ()),  # a claim not yet stealable
        (UnitFacts(ME, None, PEER, held=False, stealable=True), ()),  # the winner claims, not us
        (UnitFacts(ME, None, PEER, held=False, stealable=True, winner_too_slow=True), (Step.CLAIM,)),
        (UnitFacts(ME, None, PEER, held=False, stale_own_claim=True), (Step.DELETE_STALE,)),
        # The orphan race is for eligible nodes only (no ETP Local VIP without a local endpoint).
        (UnitFacts(ME, None, None, held=False, stealable=True, winner_too_slow=True, eligible=False), ()),
        (UnitFacts(ME, None, PEER, held=False, stealable=True, winner_too_slow=True, eligible=False), ()),
        (UnitFacts(ME, None, ME, held=False, stealable=True, stale_own_claim=True), (Step.CLAIM,)),
        (UnitFacts(ME, None, None, held=True), (Step.STOP,)),  # nobody may hold it (no eligible node)
    ],
)
def test_each_branch(facts: UnitFacts, steps: tuple[Step, ...]) -> None:
    assert assign(facts) == steps


facts_st = st.builds(
    UnitFacts,
    st.just(ME),
    st.sampled_from([None, ME, PEER, "node-c"]),
    st.sampled_from([None, ME, PEER, "node-c"]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


@given(facts_st)
def test_invariants_over_every_input(f: UnitFacts) -> None:
    steps = assign(f)
    assert len(set(steps)) == len(steps)
    if Step.START in steps:  # announce only on our own valid claim, while still the choice
        assert f.current == f.me == f.want and steps == (Step.START,)
    if f.current is not None and f.current != f.me:  # a peer's valid claim is never written
        assert steps == ((Step.STOP,) if f.held else ())
    if Step.CLAIM in steps:
        assert f.current is None and f.stealable and (f.want == f.me or (f.winner_too_slow and f.eligible))
        assert Step.DELETE_STALE not in steps
    if f.held and f.current != f.me:  # holding without a valid claim of ours: withdraw first
        assert steps[0] is Step.STOP
    if Step.DELETE_STALE in steps:
        assert f.current is None and f.stale_own_claim
    if f.current == f.me:
        assert steps in ((Step.START,), (Step.GIVE_UP,))


# -- a small cluster: every order of its events ---------------------------------------------------

UNIT = "vip:198.18.0.1"


@dataclass
class Store:
    """The API server: one claim (holder, epoch, version) and each node's liveness (holder, epoch)."""

    claim: tuple[str | None, int, int] = (None, 0, 0)
    live: dict[str, tuple[str | None, int]] = field(default_factory=dict)
    version: int = 0


@dataclass
class Node:
    name: str
    view: Store  # what its watch has brought so far
    epoch: int = 0
    live: bool = True
    held: bool = False
    my_claim: int | None = None  # the claim version this incarnation wrote
    too_slow: bool = False  # the orphan timer ran out (no clock here: a scenario sets it)

    def current(self) -> str | None:
        holder, epoch, version = self.view.claim
        if holder is None:
            return None
        if holder == self.name:
            return holder if self.live and self.my_claim == version else None
        return holder if self.view.live.get(holder) == (holder, epoch) else None

    def stealable(self) -> bool:
        holder, epoch, _ = self.view.claim
        return holder in (None, self.name) or self.view.live.get(holder) != (holder, epoch)

    def live_nodes(self) -> set[str]:
        nodes = {h for h, _ in self.view.live.values() if h and h != self.name}
        return nodes | ({self.name} if self.live else set())


class Cluster:
    def __init__(self, names: tuple[str, ...], holder: str | None = None) -> None:
        self.store = Store(live={n: (n, 0) for n in names})
        if holder is not None:
            self.store.version = 1
            self.store.claim = (holder, 0, 1)
        self.nodes = {n: Node(n, copy.deepcopy(self.store)) for n in names}
        if holder is not None:
            self.nodes[holder].my_claim = 1
            self.nodes[holder].held = True

    def holders(self) -> set[str]:
        return {n.name for n in self.nodes.values() if n.held}

    def sync(self, name: str) -> None:
        self.nodes[name].view = copy.deepcopy(self.store)

    def run_pass(self, name: str) -> None:
        """One pass of `name` over the unit, as ScalableElector._converge does it (no eligibility)."""
        n = self.nodes[name]
        if not n.live:
            n.held = False  # not live: fenced
            return
        current = n.current()
        want = choose_holder(UNIT, current, n.live_nodes(), None)
        facts = UnitFacts(
            n.name, current, want, n.held, n.too_slow and current is None,
            current is None and n.stealable(),
            current is None and n.view.claim[0] == n.name and n.my_claim is None,
        )
        for step in assign(facts):
            if step is Step.START:
                n.held = True
            elif step in (Step.STOP, Step.GIVE_UP):
                n.held = False
            elif step is Step.CLAIM and self.store.claim[2] == n.view.claim[2]:  # compare-and-swap
                self.store.version += 1
                self.store.claim = (n.name, n.epoch, self.store.version)
                n.my_claim = self.store.version
                n.view.claim = self.store.claim
                n.held = n.live
            elif step is Step.DELETE_STALE and self.store.claim[2] == n.view.claim[2]:
                self.store.version += 1
                self.store.claim = (None, 0, self.store.version)

    def lose_liveness(self, name: str) -> None:
        """`name` stopped renewing: it fenced itself at its renew deadline, and only then (renew deadline
        + skew margin < lease duration) a peer could mark its liveness Lease expired."""
        n = self.nodes[name]
        n.live, n.held, n.my_claim = False, False, None
        self.store.live[name] = (None, n.epoch)

    def come_back(self, name: str) -> None:
        """A new liveness epoch (the same process after a gap, or a restart under the same name)."""
        n = self.nodes[name]
        if n.live:
            return
        n.epoch += 1
        n.live = True
        self.store.live[name] = (name, n.epoch)
        self.sync(name)

    def apply(self, event: str) -> None:
        verb, name = event.split(":")
        {"sync": self.sync, "pass": self.run_pass, "lose": self.lose_liveness, "back": self.come_back}[verb](
            name
        )


def every_order(events: list[str]) -> set[tuple[str, ...]]:
    return set(itertools.permutations(events))


def explore(make: object, events: list[str]) -> int:
    """Run every order of `events` from a fresh cluster; never two holders after any event."""
    assert callable(make)
    orders = every_order(events)
    for order in orders:
        c: Cluster = make()
        for i, event in enumerate(order):
            c.apply(event)
            assert len(c.holders()) <= 1, f"two holders after {order[: i + 1]}: {c.holders()}"
    return len(orders)


WINNER = rendezvous(UNIT, ["node-a", "node-b"])
LOSER = "node-b" if WINNER == "node-a" else "node-a"


def test_first_claim_race_every_order() -> None:
    """Both see an unclaimed unit, each in its own time; the loser's orphan timer may also run out."""
    def make() -> Cluster:
        c = Cluster(("node-a", "node-b"))
        c.nodes[LOSER].too_slow = True  # the loser races too: only the compare-and-swap separates them
        return c

    n = explore(make, ["pass:node-a", "pass:node-b", "sync:node-a", "sync:node-b", "pass:node-a",
                       "pass:node-b", "sync:node-b"])
    assert n > 600


def test_failover_and_return_every_order() -> None:
    """The holder loses liveness, peers react with lagging views, the holder comes back in a new epoch
    (a gap, or a restart under the same name) and sees its old claim: never two holders."""
    def make() -> Cluster:
        c = Cluster(("node-a", "node-b"), holder="node-a")
        c.nodes["node-b"].too_slow = True
        return c

    n = explore(make, ["lose:node-a", "sync:node-b", "pass:node-b", "back:node-a", "pass:node-a",
                       "sync:node-a", "pass:node-a"])
    assert n > 600


def test_three_nodes_claim_after_expiry_every_order() -> None:
    def make() -> Cluster:
        c = Cluster(("node-a", "node-b", "node-c"), holder="node-a")
        for n in ("node-b", "node-c"):
            c.nodes[n].too_slow = True
        return c

    n = explore(make, ["lose:node-a", "sync:node-b", "sync:node-c", "pass:node-b", "pass:node-c",
                       "sync:node-b", "pass:node-b"])
    assert n > 600


def test_the_exploration_catches_a_broken_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The exploration can fail: a rule that announces as soon as it is the choice, before its claim
    won the compare-and-swap, gives two holders in some order."""
    real = assign

    def eager(f: UnitFacts) -> tuple[Step, ...]:
        return (Step.START,) if f.want == f.me and not f.held else real(f)

    monkeypatch.setattr(sys.modules[__name__], "assign", eager)
    with pytest.raises(AssertionError, match="two holders"):
        test_first_claim_race_every_order()
