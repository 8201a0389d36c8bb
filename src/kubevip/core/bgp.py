"""A Service's BGP annotations, parsed: the speaker (`kubevip.bgp`) knows nothing of Kubernetes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubevip.core.communities import Community, LargeCommunity, parse_communities, parse_large_communities
from kubevip.errors import InputError

ANNOTATION_COMMUNITIES = "kube-vip.io/bgp-communities"
ANNOTATION_LARGE_COMMUNITIES = "kube-vip.io/bgp-large-communities"


@dataclass(frozen=True)
class ServiceCommunities:
    """The communities a Service asks for on its VIPs' announcements."""

    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()


def service_communities(annotations: Mapping[str, str]) -> ServiceCommunities:
    """Parse kube-vip's community annotations; InputError names the annotation and its value."""
    text = annotations.get(ANNOTATION_COMMUNITIES, "")
    try:
        communities = parse_communities(text)
    except ValueError as exc:
        raise InputError(f"annotation {ANNOTATION_COMMUNITIES}={text!r}: {exc}") from None
    text = annotations.get(ANNOTATION_LARGE_COMMUNITIES, "")
    try:
        large = parse_large_communities(text)
    except ValueError as exc:
        raise InputError(f"annotation {ANNOTATION_LARGE_COMMUNITIES}={text!r}: {exc}") from None
    return ServiceCommunities(tuple(communities), tuple(large))
