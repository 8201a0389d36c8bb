"""Which endpoints serve a Service, per served family (EndpointSlices or legacy Endpoints)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from kubevip.core.views import (
    EndpointSliceView,
    EndpointView,
    IPFamily,
    LegacyEndpointsView,
    ServiceView,
)

ADDRESS_TYPE_FQDN = "FQDN"
SOURCE_SLICES = "EndpointSlice"
SOURCE_LEGACY = "Endpoints"


def _rank(ep: EndpointView) -> tuple[bool, bool, bool, str]:
    return (ep.ready, ep.serving, not ep.terminating, ep.node or "")


def _merge(endpoints: Iterable[EndpointView]) -> tuple[EndpointView, ...]:
    """One entry per address (the healthiest report wins), sorted by address: independent of input order."""
    best: dict[object, EndpointView] = {}
    for ep in endpoints:
        current = best.get(ep.address)
        if current is None or _rank(ep) > _rank(current):
            best[ep.address] = ep
    return tuple(sorted(best.values(), key=lambda ep: (ep.address.version, ep.address)))


def slices_of(service: ServiceView, slices: Iterable[EndpointSliceView]) -> tuple[EndpointSliceView, ...]:
    """The Service's address slices: labelled with its name, in its namespace, not FQDN; sorted by name."""
    mine = [
        s
        for s in slices
        if s.namespace == service.namespace
        and s.service_name == service.name
        and s.address_type != ADDRESS_TYPE_FQDN
    ]
    return tuple(sorted(mine, key=lambda s: s.name))


def all_endpoints(
    service: ServiceView,
    families: Sequence[IPFamily],
    slices: Iterable[EndpointSliceView],
    legacy: LegacyEndpointsView | None,
    use_legacy: bool,
) -> Mapping[IPFamily, tuple[EndpointView, ...]]:
    """Every endpoint of each served family (ready or not); other families dropped, whoever carries them."""
    if use_legacy:
        mine = legacy is not None and legacy.namespace == service.namespace and legacy.name == service.name
        source: Iterable[EndpointView] = legacy.endpoints if mine and legacy is not None else ()
    else:
        source = (ep for s in slices_of(service, slices) for ep in s.endpoints)
    collected = list(source)
    return MappingProxyType({f: _merge(ep for ep in collected if ep.family == f) for f in families})


def usable(endpoints: Iterable[EndpointView]) -> tuple[EndpointView, ...]:
    """The ready endpoints; if none is ready, the serving-and-terminating ones (as kube-proxy does)."""
    endpoints = tuple(endpoints)
    ready = tuple(ep for ep in endpoints if ep.ready)
    if ready:
        return ready
    return tuple(ep for ep in endpoints if ep.serving and ep.terminating)


def usable_endpoints(
    service: ServiceView,
    families: Sequence[IPFamily],
    slices: Iterable[EndpointSliceView],
    legacy: LegacyEndpointsView | None,
    use_legacy: bool,
) -> Mapping[IPFamily, tuple[EndpointView, ...]]:
    """Usable endpoints per served family; keys are exactly the served families, primary first."""
    everything = all_endpoints(service, families, slices, legacy, use_legacy)
    return MappingProxyType({f: usable(everything[f]) for f in families})


def nodes(endpoints: Iterable[EndpointView]) -> frozenset[str]:
    """The node names hosting these endpoints."""
    return frozenset(ep.node for ep in endpoints if ep.node)
