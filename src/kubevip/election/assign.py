"""The scalable elector's per-unit rule, as a pure function: given what this node sees of one unit,
what it does next. No I/O, no clock: the caller (ScalableElector._converge) gathers the facts and
carries out the steps in order.

Why two nodes never both hold a unit (docs/election.md): a node STARTs only on a claim that is valid
in its view and written by its current incarnation; it CLAIMs only by compare-and-swap on a claim
version whose holder is not live in the claimed epoch, and a holder stops (fences) before any peer can
see its liveness expire. tests/unit/election/test_assign.py checks the rule over every order of
events in small scripted clusters.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Step(enum.Enum):
    START = "start"  # announce: our claim is valid and we are still the choice
    GIVE_UP = "give-up"  # withdraw, then clear our claim so the next node takes it at once
    STOP = "stop"  # withdraw: the valid claim is not ours (lost to a peer, or no valid claim)
    CLAIM = "claim"  # compare-and-swap the claim to us (on the version judged stealable)
    DELETE_STALE = "delete-stale"  # an earlier process of ours claimed it: delete so no peer waits


@dataclass(frozen=True)
class UnitFacts:
    """What this node knows of one unit at the start of a pass."""

    me: str
    current: str | None  # holder of the unit's valid claim (live in the epoch it claimed in), if any
    want: str | None  # choose_holder(): current while live and eligible, else the rendezvous winner
    held: bool  # this node announces the unit now
    winner_too_slow: bool = False  # an orphan its rendezvous winner left unclaimed for a lease duration
    stealable: bool = False  # the claim's holder is known not to be live in the claimed epoch
    stale_own_claim: bool = False  # the claim names us but this incarnation never wrote it
    eligible: bool = True  # this node may hold the unit (ETP Local: it has a local endpoint)


def assign(f: UnitFacts) -> tuple[Step, ...]:
    """The steps for one unit, in order (empty: nothing to do)."""
    if f.current == f.me:
        return (Step.START,) if f.want == f.me else (Step.GIVE_UP,)
    steps = (Step.STOP,) if f.held else ()
    if f.current is not None:
        return steps  # a peer's valid claim: never touch it
    # The race for an orphan the winner left is open to eligible nodes only: a claim is announced at
    # once, and a node without local endpoints must not announce an externalTrafficPolicy Local VIP
    # even for a moment (the election simulator caught exactly that).
    if (f.want == f.me or (f.winner_too_slow and f.eligible)) and f.stealable:
        return (*steps, Step.CLAIM)
    if f.stale_own_claim:
        return (*steps, Step.DELETE_STALE)
    return steps
