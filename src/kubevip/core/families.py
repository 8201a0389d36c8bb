"""Which IP families a Service serves, primary family first."""

from __future__ import annotations

from collections.abc import Iterable

from kubevip.core.views import (
    FAMILY_ORDER,
    REQUIRE_DUAL_STACK,
    SINGLE_STACK,
    IPAddress,
    IPFamily,
    ServiceView,
)


def effective_policy(service: ServiceView) -> str:
    """The ipFamilyPolicy in force: unset means SingleStack, as the API server defaults it."""
    return service.ip_family_policy or SINGLE_STACK


def _ordered_unique(families: Iterable[IPFamily]) -> tuple[IPFamily, ...]:
    seen: list[IPFamily] = []
    for family in families:
        if family not in seen:
            seen.append(family)
    return tuple(seen)


def served_families(service: ServiceView, vip_addresses: Iterable[IPAddress] = ()) -> tuple[IPFamily, ...]:
    """Served families: `ipFamilies` if set, else from cluster IPs, else from VIPs; bounded by policy.

    `vip_addresses` are the Service's well-formed VIP candidates in source order, used only when the
    object carries neither `ipFamilies` nor cluster IPs (hand-written objects).
    """
    policy = effective_policy(service)
    if service.ip_families:
        derived = _ordered_unique(service.ip_families)
    elif service.cluster_ips:
        derived = _ordered_unique(IPFamily.of(a) for a in service.cluster_ips)
        if policy != SINGLE_STACK:
            # Cluster IPs list the primary family first; a dual-stack policy may add VIP families after it.
            derived = _ordered_unique((*derived, *(IPFamily.of(a) for a in vip_addresses)))
    else:
        derived = _ordered_unique(IPFamily.of(a) for a in vip_addresses)
    if policy == SINGLE_STACK:
        return derived[:1]
    if policy == REQUIRE_DUAL_STACK and derived:
        # The policy itself demands both families; the missing one follows the primary.
        missing = sorted(set(IPFamily) - set(derived), key=FAMILY_ORDER.__getitem__)
        derived = (*derived, *missing)
    return derived[:2]
