"""Normal Events, aggregated and rate-limited: what a node has to say about a Service, as data.

A node that starts or stops announcing a Service's addresses has news; a restart of every agent, or a
failover of a node holding hundreds of Services, has hundreds of such news at once. They are
aggregated per Service and reason (`Aggregate`: one Event with a count and the latest message) and
sent through one token bucket per agent (`TokenBucket`), so the Event writes of an agent stay below
`RATE` per second after a burst of `BURST`, whatever the number of Services. Pure: the caller passes
the clock's readings in.
"""

from __future__ import annotations

from dataclasses import dataclass

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
