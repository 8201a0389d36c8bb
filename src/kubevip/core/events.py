"""Normal Events, aggregated and rate-limited: what a node has to say about a Service, as data.

A node that starts or stops announcing a Service's addresses has news; a restart of every agent, or a
failover of a node holding hundreds of Services, has hundreds of such news at once. They are
aggregated per Service and reason (`Aggregate`: one Event with a count and the latest message) and
sent through one token bucket per agent (`TokenBucket`), so the Event writes of an agent stay below
`RATE` per second after a burst of `BURST`, whatever the number of Services. Pure: the caller passes
the clock's readings in.

A Normal Event records a change as the cluster sees it (`is_news`): a node taking a VIP that the
Service's status and `kube-vip.io/vipHost` already say it holds (an agent restarted, the election
settled the same way) has nothing to tell, and a graceful shutdown's withdrawal is not told either (the
status keeps naming the node; whoever takes over tells the move, and a restart taking it back tells
nothing).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.ip import IPAddress

# Per agent: at most BURST Normal Events at once, then RATE per second (docs/configuration.md,
# "Events"). client-go's EventCorrelator allows a burst of 25 per object and source; ours is per agent.
BURST = 25
RATE = 5.0
EPS = 1e-9  # refills are float sums: 0.2 s at 5/s is 0.999... of a token


@dataclass(frozen=True)
class TokenBucket:
    """`tokens` available at instant `at`; refills at `rate` per second up to `burst`."""

    tokens: float = BURST
    at: float = 0.0
    rate: float = RATE
    burst: float = BURST

    def refilled(self, now: float) -> TokenBucket:
        if now <= self.at:
            return self
        tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        return TokenBucket(tokens, now, self.rate, self.burst)

    def take(self, now: float) -> TokenBucket | None:
        """The bucket after spending one token at `now`, or None when none is left (wait `wait(now)`)."""
        b = self.refilled(now)
        if b.tokens < 1.0 - EPS:
            return None
        return TokenBucket(max(0.0, b.tokens - 1.0), b.at, b.rate, b.burst)

    def wait(self, now: float) -> float:
        """Seconds from `now` until a token is available (0 when one is)."""
        b = self.refilled(now)
        return 0.0 if b.tokens >= 1.0 - EPS else (1.0 - b.tokens) / b.rate


@dataclass(frozen=True)
class Aggregate:
    """Occurrences of one (Service, reason) not yet written: how many, since when, the latest message."""

    count: int
    first: float  # wall-clock seconds
    last: float
    message: str

    def add(self, message: str, wall: float) -> Aggregate:
        return Aggregate(self.count + 1, self.first, max(self.last, wall), message)

    @staticmethod
    def one(message: str, wall: float) -> Aggregate:
        return Aggregate(1, wall, wall, message)


def reports_for(me: str, holder: str | None, vip_host: str | None) -> bool:
    """Whether this node writes a Service's Normal Events: the node announcing its first address (the
    one its status and `kube-vip.io/vipHost` name); while nobody does, the node vipHost still names (the
    last holder, which is the one that just stopped). One node per Service, never one per node."""
    return holder == me or (holder is None and vip_host == me)


def _addresses(ingress: Iterable[str]) -> list[IPAddress]:
    out: list[IPAddress] = []
    for s in ingress:
        try:
            out.append(ipaddress.ip_address(s))
        except ValueError:  # a status someone else wrote: not an address, so none of ours
            continue
    return out


def recorded_holder(
    address: IPAddress, ingress: Iterable[str], vip_host: str | None, vip_host_ipv6: str | None,
    units: Mapping[IPAddress, str] | None = None,
) -> str | None:
    """The node the Service's status and annotations name as holder of `address` (None: not listed, or
    its holder is not recorded). `kube-vip.io/vipHost` names the holder of the first address the status
    lists; `kube-vip.io/vipHost-ipv6` the holder of the first IPv6 one when that is another node (absent:
    the same node). An address in the same election unit as one of those (`units`: address -> unit) has
    the same holder; any other (a second VIP of a family in a unit of its own) is not recorded."""
    listed = _addresses(ingress)
    if address not in listed:
        return None
    units = units or {}

    unit = units.get(address)

    def with_(other: IPAddress | None) -> bool:
        return other is not None and (other == address or (unit is not None and units.get(other) == unit))

    first6 = next((a for a in listed if a.version == 6), None)
    if vip_host_ipv6 and with_(first6):
        return vip_host_ipv6
    if with_(listed[0]) or with_(first6):
        return vip_host
    return None


def is_news(
    started: bool, me: str, address: IPAddress, ingress: Iterable[str], vip_host: str | None,
    vip_host_ipv6: str | None, stopping: bool, units: Mapping[IPAddress, str] | None = None,
) -> bool:
    """Whether this node starting (`started`) or stopping to announce `address` is worth a Normal Event.

    Started: unless the Service's status and annotations already name this node as the address's holder
    (`recorded_holder`: nothing changed from the cluster's point of view, as after a restart); a holder
    they do not record is news. Stopped: unless this agent is shutting down (its status is kept on
    purpose; a successor's Started tells the move)."""
    if not started:
        return not stopping
    return recorded_holder(address, ingress, vip_host, vip_host_ipv6, units) != me
