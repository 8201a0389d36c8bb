"""The control-plane VIP over BGP: who announces, decided from facts (pure, no I/O).

Two modes (docs/controlplane.md, "BGP"):

* `ecmp` (kube-vip's default, `vip_leaderelection=false`): every control-plane node whose local API
  server is healthy announces both VIPs; the router spreads clients over them. No Lease.
* `single` (`vip_leaderelection=true`): only the holder of `plndr-cp-lock` announces, exactly like
  layer 2 (the elector campaigns only while the local API server is healthy and fences on failure).

Either way a stopping agent announces nothing, and the addresses are on the node exactly while the node
announces (the router sends traffic only where the node accepts it).
"""

from __future__ import annotations

from dataclasses import dataclass

ECMP = "ecmp"
SINGLE = "single"
MODES = (ECMP, SINGLE)


@dataclass(frozen=True)
class CpFacts:
    """What one node knows about itself at one instant."""

    mode: str  # ECMP or SINGLE
    healthy: bool  # the local API server passed the health gate (controlplane.health)
    leading: bool  # holds plndr-cp-lock (always False in ECMP mode: nobody campaigns)
    stopping: bool  # SIGTERM received


def mode_for(leader_election: bool) -> str:
    """kube-vip's rule for cp_enable with bgp_enable: election only with vip_leaderelection=true."""
    return SINGLE if leader_election else ECMP


def announces(f: CpFacts) -> bool:
    """Whether this node puts the control-plane VIPs up and announces them."""
    if f.stopping or f.mode not in MODES:
        return False
    if f.mode == ECMP:
        return f.healthy
    # Single holder: the Lease decides. The elector only campaigns while healthy and releases when the
    # API server fails, so `leading` already implies a recent healthy verdict; requiring both here as
    # well closes the window between an unhealthy verdict and the release.
    return f.leading and f.healthy
