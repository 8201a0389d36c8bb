"""What the speaker announces: one host prefix per VIP with its next hop and communities."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.bgp.settings import BgpSettings, MpbgpNextHop
from kubevip.core.bgp import ServiceCommunities
from kubevip.core.communities import Community, LargeCommunity
from kubevip.errors import BgpError
from kubevip.ip import IPAddress, IPNetwork


@dataclass(frozen=True)
class Advertisement:
    """A /32 or /128 announced with a next hop of the same family; communities kept sorted."""

    prefix: IPNetwork
    next_hop: IPAddress
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()

    def __post_init__(self) -> None:
        if self.prefix.prefixlen != self.prefix.max_prefixlen:
            raise ValueError(f"{self.prefix}: only host prefixes (/32, /128) are announced")
        if self.prefix.version != self.next_hop.version:
            raise ValueError(f"{self.prefix}: next hop {self.next_hop} is of the other family")
        object.__setattr__(self, "communities", tuple(sorted(set(self.communities))))
        object.__setattr__(self, "large_communities", tuple(sorted(set(self.large_communities))))


@dataclass(frozen=True)
class NextHops:
    """The next hop this node announces for each family (None: that family cannot be announced)."""

    ipv4: ipaddress.IPv4Address | None = None
    ipv6: ipaddress.IPv6Address | None = None

    def for_family(self, version: int) -> IPAddress | None:
        return self.ipv4 if version == 4 else self.ipv6

    def overlay(self, other: NextHops) -> NextHops:
        """`other`'s next hops where set, ours otherwise."""
        return NextHops(other.ipv4 or self.ipv4, other.ipv6 or self.ipv6)


def _usable(ip: IPAddress) -> bool:
    return not (ip.is_link_local or ip.is_loopback or ip.is_multicast or ip.is_unspecified)


def _first(addresses: Iterable[IPAddress], version: int) -> IPAddress | None:
    for ip in addresses:
        if ip.version == version and _usable(ip):
            return ip
    return None


def _pick(addresses: Iterable[IPAddress]) -> NextHops:
    addrs = list(addresses)
    return NextHops(_first(addrs, 4), _first(addrs, 6))  # type: ignore[arg-type]


def resolve_next_hops(
    mpbgp: MpbgpNextHop,
    settings: BgpSettings,
    node_ips: Iterable[IPAddress],
    interface_addresses: Mapping[str, Iterable[IPAddress]],
    source_ip_interface: Iterable[IPAddress] = (),
) -> NextHops:
    """Next hop per family: kube-vip's mpbgp_nexthop rule over a default of the node's own addresses.

    `interface_addresses` holds the addresses of bgp_sourceif; `source_ip_interface` those of the
    interface carrying bgp_sourceip (for auto_sourceip).
    """
    base = _pick(node_ips)
    if settings.source_ip is not None:
        base = base.overlay(_pick([settings.source_ip]))
    if mpbgp.mode == "fixed":
        return base.overlay(NextHops(mpbgp.ipv4, mpbgp.ipv6))
    if mpbgp.mode == "auto_sourceip":
        assert settings.source_ip is not None  # checked by BgpSettings.from_env
        return _pick(source_ip_interface).overlay(_pick([settings.source_ip]))
    if mpbgp.mode == "auto_sourceif" or settings.source_if:
        return base.overlay(_pick(interface_addresses.get(settings.source_if, ())))
    return base


def advertisement_for(
    vip: IPAddress, wanted: ServiceCommunities, settings: BgpSettings, next_hops: NextHops
) -> Advertisement:
    """The advertisement for one VIP of a Service: global communities plus the Service's own.

    Raises BgpError when this node has no next hop of the VIP's family.
    """
    communities = list(settings.communities) + list(wanted.communities)
    large = list(settings.large_communities) + list(wanted.large_communities)
    nh = next_hops.for_family(vip.version)
    if nh is None:
        raise BgpError(
            f"no IPv{vip.version} next hop for {vip}: give the node an IPv{vip.version} address "
            f"or set mpbgp_nexthop=fixed with mpbgp_ipv{vip.version}"
        )
    return Advertisement(ipaddress.ip_network(vip), nh, tuple(communities), tuple(large))
