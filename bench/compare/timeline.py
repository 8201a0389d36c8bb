"""Pure analysis of what the probes and address watchers recorded: who held a VIP when, and failovers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Interval = tuple[float, float]


@dataclass(frozen=True)
class AddrEvent:
    """A VIP appeared ("add") on or vanished ("del") from a node at monotonic time t (seconds)."""

    t: float
    node: str
    op: str
    addr: str


@dataclass(frozen=True)
class Reply:
    """The client got an answer for `family` from `node` at monotonic time t."""

    t: float
    family: str
    node: str


@dataclass(frozen=True)
class Stamp:
    """The bench saw a watch event of the workload namespace at monotonic time t (stamps.py): a Service
    (`service` its name) or an EndpointSlice (`service` the Service it belongs to, `family` its
    addressType, `ready` its ready endpoints)."""

    t: float
    kind: str
    type: str
    service: str
    family: str
    ready: int


@dataclass(frozen=True)
class Overlap:
    """Periods in which two or more nodes held the same VIP."""

    episodes: int
    total_s: float
    longest_s: float


def holder_intervals(events: Iterable[AddrEvent], addr: str, end: float) -> dict[str, list[Interval]]:
    """Per node, the periods in which `addr` was on one of its interfaces; open periods end at `end`."""
    since: dict[str, float] = {}
    out: dict[str, list[Interval]] = {}
    for ev in sorted((e for e in events if e.addr == addr), key=lambda e: e.t):
        if ev.op == "add":
            since.setdefault(ev.node, ev.t)
        elif ev.op == "del" and ev.node in since:
            start = since.pop(ev.node)
            out.setdefault(ev.node, []).append((start, ev.t))
    for node, start in since.items():
        out.setdefault(node, []).append((start, max(start, end)))
    return out


def overlap(intervals: Mapping[str, Sequence[Interval]], window: Interval | None = None) -> Overlap:
    """Episodes, total and longest time during which at least two nodes held the address (within window)."""
    points: list[tuple[float, int]] = []
    for spans in intervals.values():
        clipped = spans if window is None else [(max(a, window[0]), min(b, window[1])) for a, b in spans]
        for start, stop in merge(clipped):
            points.append((start, 1))
            points.append((stop, -1))
    # Ends sort before starts at the same instant: a hand-over at one instant is not an overlap.
    points.sort(key=lambda p: (p[0], p[1]))
    holders = 0
    began = 0.0
    episodes = 0
    total = 0.0
    longest = 0.0
    for t, delta in points:
        before = holders
        holders += delta
        if before < 2 <= holders:
            began = t
        elif before >= 2 > holders:
            episodes += 1
            total += t - began
            longest = max(longest, t - began)
    return Overlap(episodes, total, longest)


def merge(spans: Iterable[Interval]) -> list[Interval]:
    """Non-empty spans merged where they overlap, sorted: one node counts once however it was recorded."""
    out: list[Interval] = []
    for start, stop in sorted(s for s in spans if s[1] > s[0]):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], stop))
        else:
            out.append((start, stop))
    return out


def measure(spans: Iterable[Interval]) -> float:
    """Total time covered by the spans."""
    return sum(b - a for a, b in merge(spans))


def failover_times(
    replies: Sequence[Reply], t0: float, old_node: str, family: str
) -> tuple[float | None, float | None]:
    """After a disruption at t0: (seconds until the first answer from another node, longest answer gap).

    The gap spans t0 to that first new answer; None when no other node answered.
    """
    mine = sorted((r for r in replies if r.family == family), key=lambda r: r.t)
    first_new = next((r.t for r in mine if r.t >= t0 and r.node != old_node), None)
    if first_new is None:
        return None, None
    last = max((r.t for r in mine if r.t < t0), default=t0)
    gap = 0.0
    for r in mine:
        if r.t < t0:
            continue
        if r.t > first_new:
            break
        gap = max(gap, r.t - last)
        last = r.t
    return first_new - t0, gap


def first_answer(replies: Sequence[Reply], t0: float, family: str) -> float | None:
    """Seconds from t0 until the client first got an answer for `family` (None if it never did)."""
    times = [r.t for r in replies if r.family == family and r.t >= t0]
    return min(times) - t0 if times else None


def last_change(
    events: Iterable[AddrEvent], addrs: Iterable[str], since: float, until: float
) -> float | None:
    """When the last of `addrs` appeared on or left a node within [since, until], or None without one.

    The restart figure: the VIPs were removed before `since`, and at `until` every one was on exactly one
    node (the polled check), so the state after the window's last change is the converged one; that
    change is when the restart converged, however coarse the poll that saw it."""
    wanted = set(addrs)
    times = [e.t for e in events if e.addr in wanted and since <= e.t <= until]
    return max(times) if times else None


CREATE_STAGES = ("service", "slice", "address")


def create_stages(
    stamps: Iterable[Stamp], events: Iterable[AddrEvent], service: str, vips: Mapping[str, str], t0: float
) -> dict[str, dict[str, float]]:
    """Per stage and family, seconds from t0 (the create POST) until the bench saw the Service
    ("service"), the family's EndpointSlice with a ready endpoint ("slice"), and the family's VIP on some
    node ("address"); NaN for what it did not see. The agents announce only after the slice, so "slice"
    -> "address" is the agent's own part of a create, and the rest is the control plane's or the
    announcement's."""
    nan = float("nan")
    stamps = [s for s in stamps if s.t >= t0 and s.service == service]
    events = [e for e in events if e.t >= t0 and e.op == "add"]
    seen = [s.t for s in stamps if s.kind == "Service" and s.type == "ADDED"]
    out: dict[str, dict[str, float]] = {k: {} for k in CREATE_STAGES}
    for fam, vip in vips.items():
        out["service"][fam] = min(seen) - t0 if seen else nan
        ready = [s.t for s in stamps if s.kind == "EndpointSlice" and s.family.lower() == fam and s.ready]
        out["slice"][fam] = min(ready) - t0 if ready else nan
        added = [e.t for e in events if e.addr == vip]
        out["address"][fam] = min(added) - t0 if added else nan
    return out
