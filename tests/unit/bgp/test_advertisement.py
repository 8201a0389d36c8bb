"""Advertisements per VIP: next hop of the VIP's family, global plus per-Service communities."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.bgp.advertisement import (
    Advertisement,
    NextHops,
    advertisement_for,
    resolve_next_hops,
)
from kubevip.bgp.settings import BgpSettings, MpbgpNextHop
from kubevip.core.bgp import (
    ANNOTATION_COMMUNITIES,
    ANNOTATION_LARGE_COMMUNITIES,
    ServiceCommunities,
    service_communities,
)
from kubevip.core.communities import Community, LargeCommunity
from kubevip.errors import BgpError, InputError

V4 = ipaddress.IPv4Address("192.0.2.10")
V6 = ipaddress.IPv6Address("2001:db8::10")
LL6 = ipaddress.IPv6Address("fe80::1")
HOPS = NextHops(V4, V6)


def test_next_hop_of_the_vip_family_and_merged_communities() -> None:
    s = BgpSettings(communities=(Community(65000, 1),), large_communities=(LargeCommunity(1, 2, 3),))
    ann = {ANNOTATION_COMMUNITIES: "65000:2,65000:1", ANNOTATION_LARGE_COMMUNITIES: "4:5:6"}
    a = advertisement_for(ipaddress.ip_address("198.51.100.1"), service_communities(ann), s, HOPS)
    assert a == Advertisement(
        ipaddress.ip_network("198.51.100.1/32"),
        V4,
        (Community(65000, 1), Community(65000, 2)),
        (LargeCommunity(1, 2, 3), LargeCommunity(4, 5, 6)),
    )
    b = advertisement_for(ipaddress.ip_address("2001:db8:1::1"), ServiceCommunities(), s, HOPS)
    assert (b.prefix, b.next_hop) == (ipaddress.ip_network("2001:db8:1::1/128"), V6)


@pytest.mark.parametrize("key", [ANNOTATION_COMMUNITIES, ANNOTATION_LARGE_COMMUNITIES])
def test_bad_annotation_is_an_input_error_naming_it(key: str) -> None:
    with pytest.raises(InputError, match=key):
        service_communities({key: "bogus"})


def test_missing_next_hop_family_is_a_bgp_error() -> None:
    with pytest.raises(BgpError, match="IPv6"):
        vip = ipaddress.ip_address("2001:db8:1::1")
        advertisement_for(vip, ServiceCommunities(), BgpSettings(), NextHops(V4, None))


def test_advertisement_refuses_non_host_prefix_and_mixed_family() -> None:
    with pytest.raises(ValueError):
        Advertisement(ipaddress.ip_network("198.51.100.0/24"), V4)
    with pytest.raises(ValueError):
        Advertisement(ipaddress.ip_network("198.51.100.1/32"), V6)


def test_next_hops_default_to_node_addresses_skipping_link_local() -> None:
    assert resolve_next_hops(MpbgpNextHop(), BgpSettings(), [LL6, V4, V6], {}) == HOPS


def test_fixed_mpbgp_overrides_and_source_ip_wins_over_node_address() -> None:
    src = ipaddress.IPv4Address("192.0.2.99")
    fixed6 = ipaddress.IPv6Address("2001:db8::99")
    s = BgpSettings(source_ip=src)
    assert resolve_next_hops(MpbgpNextHop("fixed", None, fixed6), s, [V4, V6], {}) == NextHops(src, fixed6)
    assert resolve_next_hops(MpbgpNextHop(), s, [V4, V6], {}) == NextHops(src, V6)


def test_auto_sourceif_and_auto_sourceip() -> None:
    if4, if6 = ipaddress.IPv4Address("203.0.113.1"), ipaddress.IPv6Address("2001:db8:5::1")
    s = BgpSettings(source_if="eth1")
    assert resolve_next_hops(
        MpbgpNextHop("auto_sourceif"), s, [V4, V6], {"eth1": [LL6, if6, if4]}
    ) == NextHops(if4, if6)
    s2 = BgpSettings(source_ip=if4)
    assert resolve_next_hops(MpbgpNextHop("auto_sourceip"), s2, [V4, V6], {}, [if4, LL6, if6]) == NextHops(
        if4, if6
    )


@given(st.ip_addresses())
def test_every_vip_gets_a_host_prefix_of_its_family(
    vip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    a = advertisement_for(vip, ServiceCommunities(), BgpSettings(), HOPS)
    assert a.prefix.network_address == vip and a.prefix.prefixlen == a.prefix.max_prefixlen
    assert a.next_hop.version == vip.version
