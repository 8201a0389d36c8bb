"""What a DHCPv4 client reports (`net/dhcp4.py`), without pyroute2.dhcp: the agent imports this at start
and the client only when a Service asks DHCP."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

BOUND = "bound"
RENEWED = "renewed"
REBOUND = "rebound"
EXPIRED = "expired"
UNBOUND = "unbound"


@dataclass(frozen=True)
class LeaseEvent:
    """What the client learnt: `kind` is one of BOUND..UNBOUND; times are seconds from `obtained`
    (monotonic clock of this process)."""

    kind: str
    address: ipaddress.IPv4Address
    obtained: float
    lease_time: float
    renewal: float | None
    rebinding: float | None
    server: str
