"""BGP mode, pure: who announces a VIP, and the advertisements this node wants for the VIPs it holds.

ETP Cluster: the elected holder only. ETP Local: every node with a usable local endpoint of the VIP's
family (no election), so the router has ECMP over exactly those nodes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.bgp.advertisement import Advertisement, NextHops, advertisement_for
from kubevip.bgp.settings import BgpSettings
from kubevip.core.bgp import service_communities
from kubevip.core.claims import VipPlan
from kubevip.core.reasons import Reason
from kubevip.core.rows import addr_key
from kubevip.core.views import IPAddress
from kubevip.errors import BgpError, InputError

# Warning reasons (Events, logs, kube_vip_service_reconcile_errors_total{reason}).
BAD_ANNOTATION = Reason.BGP_BAD_ANNOTATION
NO_NEXT_HOP = Reason.BGP_NO_NEXT_HOP


def announces(me: str, eligible: frozenset[str] | None, leads: bool) -> bool:
    """Cluster (`eligible` None): only while this node leads the unit; Local: whenever it is eligible."""
    if eligible is not None:
        return me in eligible
    return leads


@dataclass(frozen=True, order=True)
class Problem:
    """Why a Service's VIP (or part of its attributes) is not announced from this node."""

    service: str
    reason: str
    message: str


@dataclass(frozen=True)
class Wanted:
    """The whole desired set for the speaker, and what kept anything out of it."""

    advertisements: frozenset[Advertisement]
    problems: frozenset[Problem]


def wanted(
    held: Iterable[IPAddress],
    plans: Iterable[VipPlan],
    annotations: Mapping[str, Mapping[str, str]],
    settings: BgpSettings,
    next_hops: NextHops,
) -> Wanted:
    """One advertisement per held VIP that still has a plan; communities are the union over its Services.

    A Service whose BGP annotation is bad adds nothing (and a Problem); a VIP of only bad Services, or
    without a next hop of its family, is not announced. Other VIPs never notice.
    """
    by_addr = {p.address: p for p in plans}
    out: set[Advertisement] = set()
    problems: set[Problem] = set()
    for addr in sorted(set(held), key=addr_key):
        plan = by_addr.get(addr)
        if plan is None:
            continue  # held only because its removal failed: never announce it
        good: list[Advertisement] = []
        for svc in plan.services:
            try:
                wanted = service_communities(annotations.get(svc, {}))
                good.append(advertisement_for(addr, wanted, settings, next_hops))
            except InputError as exc:
                problems.add(Problem(svc, BAD_ANNOTATION, f"VIP {addr} not announced by BGP for this "
                                     f"Service: {exc}"))
            except BgpError as exc:
                problems.update(Problem(s, NO_NEXT_HOP, str(exc)) for s in plan.services)
                good = []
                break
        if good:
            out.add(Advertisement(
                ipaddress.ip_network(addr),
                good[0].next_hop,
                tuple(c for a in good for c in a.communities),
                tuple(c for a in good for c in a.large_communities),
            ))
    return Wanted(frozenset(out), frozenset(problems))
