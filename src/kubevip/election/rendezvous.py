"""Pure choice of the node that should hold a unit: sticky to a live holder (or to the node that held it
before its restart), else rendezvous hashing.

No I/O and no clocks here, so every node that sees the same view computes the same answer (a node
that has just started waits for a restarting peer: `starting`, the one input that is the node's own).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence


def score(unit: str, node: str) -> int:
    """Highest-random-weight score of `node` for `unit` (stable across processes and Python versions)."""
    digest = hashlib.blake2b(f"{unit}\x00{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous(unit: str, nodes: Iterable[str]) -> str | None:
    """The node with the highest score for `unit`; ties (astronomically rare) go to the smaller name."""
    best: tuple[int, str] | None = None
    for node in nodes:
        key = (score(unit, node), node)
        if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
            best = key
    return None if best is None else best[1]


def choose_holder(
    unit: str,
    current: str | None,
    live: Iterable[str],
    eligible: Iterable[str] | None = None,
    preferred: Sequence[str] = (),
    settled: Collection[str] | None = None,
    previous: str | None = None,
    starting: bool = False,
) -> str | None:
    """Who should hold `unit`: the current holder while it is live and eligible (no move-back), else the
    rendezvous winner among live, eligible nodes; None when no node qualifies. `eligible=None` means all.

    `preferred` (kube-vip.io/preferred-nodes, most preferred first) changes two things: a unit without
    a holder goes to the first preferred candidate; and a holder gives way to a preferred candidate that
    ranks above it, but only to one in `settled` (live long enough, docs/placement.md: the hysteresis
    that keeps a flapping preferred node from pulling the VIP back and forth). `settled=None`: all are.

    `previous` is the node an invalid claim still names: it held the unit in an earlier epoch (its
    process restarted, or it was fenced). While it is live and eligible again it counts as the current
    holder, so a restart of every agent gives each node back what it held instead of moving units to
    whoever came up first. `starting`: the asking node started moments ago (the scalable elector's
    RESTART_GRACE). It then leaves a unit whose previous holder is not live (yet) to that node, which in
    a restart of every agent is moments away; once the grace is over, the rendezvous decides among the
    live nodes. A node that is not starting (a peer stopped alone) takes over at once.
    """
    live_set = frozenset(live)
    candidates = live_set if eligible is None else live_set & frozenset(eligible)
    if current is None and previous is not None:
        if previous in candidates:
            current = previous
        elif starting and previous not in live_set and (eligible is None or previous in eligible):
            return previous
    ranked = [n for n in preferred if n in candidates]
    if current is not None and current in candidates:
        rank = ranked.index(current) if current in ranked else len(ranked)
        better = [n for n in ranked[:rank] if settled is None or n in settled]
        return better[0] if better else current
    if ranked:
        return ranked[0]
    return rendezvous(unit, candidates)
