"""VIPs: annotation first, then spec.loadBalancerIP; every unused address gets a stable reason code."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.dhcp import LAYER2_RULE
from kubevip.core.parse import service_from_dict
from kubevip.core.views import IPFamily
from kubevip.core.vips import MAX_PER_FAMILY, Rejection, choose, classify
from tests.unit.core import builders as b

V4, V6 = IPFamily.IPV4, IPFamily.IPV6


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("192.0.2.1", ipaddress.ip_address("192.0.2.1")),
        ("2001:db8::1", ipaddress.ip_address("2001:db8::1")),
        ("0.0.0.0", reasons.UNSPECIFIED),
        ("::", reasons.UNSPECIFIED),
        ("127.0.0.1", reasons.LOOPBACK),
        ("::1", reasons.LOOPBACK),
        ("224.0.0.5", reasons.MULTICAST),
        ("ff02::1", reasons.MULTICAST),
        ("169.254.1.1", reasons.LINK_LOCAL),
        ("fe80::1", reasons.LINK_LOCAL),
        ("::ffff:192.0.2.1", reasons.IPV4_MAPPED),
        ("::ffff:127.0.0.1", reasons.IPV4_MAPPED),
        ("fe80::1%eth0", reasons.ZONE_SUFFIX),
        ("2001:db8::1%2", reasons.ZONE_SUFFIX),
        ("vip.example.com", reasons.DNS_NAME),
        ("localhost", reasons.DNS_NAME),
        ("VIP.Example.COM", reasons.DNS_NAME),  # names are case-insensitive
        ("vip.example.com.", reasons.DNS_NAME),  # a fully qualified name ends in a dot
        ("node.1X", reasons.DNS_NAME),  # the last label holds a letter
        ("vip.example.300", reasons.NOT_AN_IP),  # ... and only the last label counts
        ("10.0.0.300", reasons.NOT_AN_IP),
        ("192.0.2.0/24", reasons.NOT_AN_IP),
        ("010.0.0.1", reasons.NOT_AN_IP),
        ("not an ip", reasons.NOT_AN_IP),
        ("-bad-.com", reasons.NOT_AN_IP),
    ],
)
def test_classify(text: str, want: object) -> None:
    assert classify(text) == want


def test_annotation_beats_spec_and_tolerates_whitespace() -> None:
    svc = service_from_dict(b.service(families=["IPv4", "IPv6"], policy="PreferDualStack",
                                      lb_ips=" 192.0.2.1 ,, 2001:db8::1\t", lb_ip="192.0.2.99"))
    vips, rejected = choose(svc, (V4, V6))
    assert [(str(v.address), v.family, v.source) for v in vips] == [
        ("192.0.2.1", V4, "annotation"), ("2001:db8::1", V6, "annotation")]
    assert rejected == ()


def test_empty_annotation_counts_as_absent() -> None:
    svc = service_from_dict(b.service(families=["IPv4"], lb_ips="  ", lb_ip="192.0.2.99"))
    vips, _ = choose(svc, (V4,))
    assert [(str(v.address), v.source) for v in vips] == [("192.0.2.99", "spec")]


def test_primary_family_first_and_duplicates_collapse() -> None:
    svc = service_from_dict(b.service(
        families=["IPv6", "IPv4"], policy="PreferDualStack",
        lb_ips="192.0.2.1,2001:db8::1,192.0.2.2,2001:DB8:0::1,192.0.2.1,bo gus!,bo gus!"))
    vips, rejected = choose(svc, (V6, V4))
    assert [str(v.address) for v in vips] == ["2001:db8::1", "192.0.2.1", "192.0.2.2"]
    assert rejected == (Rejection("bo gus!", reasons.NOT_AN_IP),)


def test_unserved_family_rejected() -> None:
    svc = service_from_dict(b.service(families=["IPv4"], lb_ips="2001:db8::1,192.0.2.1"))
    vips, rejected = choose(svc, (V4,))
    assert [str(v.address) for v in vips] == ["192.0.2.1"]
    assert rejected == (Rejection("2001:db8::1", reasons.FAMILY_NOT_SERVED),)


def test_status_ingress_is_never_a_source() -> None:
    d = b.service(families=["IPv4"])
    d["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    assert choose(service_from_dict(d), (V4,)) == ((), ())


@settings(max_examples=40, deadline=None)
@given(st.integers(MAX_PER_FAMILY - 2, MAX_PER_FAMILY + 2),
       st.integers(MAX_PER_FAMILY - 2, MAX_PER_FAMILY + 2), st.booleans())
def test_the_per_family_cap_is_exact(n4: int, n6: int, v6_first: bool) -> None:
    """Exactly MAX_PER_FAMILY VIPs per family, counted per family: the first MAX_PER_FAMILY distinct
    addresses of each family in source order are used, each later one is refused as too many (naming
    the cap), and duplicates or addresses of the other family take no place."""
    v4 = [str(ipaddress.IPv4Address(0xC0000200 + i)) for i in range(n4)]
    v6 = [str(ipaddress.IPv6Address((0x20010DB8 << 96) + i)) for i in range(n6)]
    texts = [t for pair in zip(v4, v6, strict=False) for t in pair] + v4[len(v6):] + v6[len(v4):]
    texts += v4[:3] + v6[:3]  # duplicates collapse and take no place
    families = (V6, V4) if v6_first else (V4, V6)
    svc = service_from_dict(b.service(families=[f.value for f in families], policy="PreferDualStack",
                                      lb_ips=",".join(texts)))
    vips, rejected = choose(svc, families)
    first, second = (v6, v4) if v6_first else (v4, v6)
    assert [str(v.address) for v in vips] == first[:MAX_PER_FAMILY] + second[:MAX_PER_FAMILY]
    too_many = [t for t in texts if t in v4[MAX_PER_FAMILY:] or t in v6[MAX_PER_FAMILY:]]
    assert rejected == tuple(Rejection(t, reasons.TOO_MANY_ADDRESSES) for t in too_many)
    assert all(r.rule == f"at most {MAX_PER_FAMILY} addresses per family" for r in rejected)


def test_a_dhcp_refusal_names_the_layer2_rule_only_for_that_reason() -> None:
    """The Warning's rule text: the layer-2 setting for `0.0.0.0` in BGP mode, nothing for `::` (no
    DHCPv6 client) or a DHCP entry of a family the Service does not serve."""
    dual = service_from_dict(b.service(families=["IPv4", "IPv6"], policy="PreferDualStack",
                                       lb_ips="0.0.0.0,::"))
    _, rejected = choose(dual, (V4, V6), dhcp_layer2=False)
    assert [(r.address, r.reason, r.rule) for r in rejected] == [
        ("0.0.0.0", reasons.DHCP_NEEDS_LAYER2, LAYER2_RULE), ("::", reasons.DHCPV6_UNSUPPORTED, "")]
    v6 = service_from_dict(b.service(families=["IPv6"], lb_ips="0.0.0.0"))
    _, rejected = choose(v6, (V6,), dhcp_layer2=True)
    assert [(r.address, r.reason, r.rule) for r in rejected] == [("0.0.0.0", reasons.FAMILY_NOT_SERVED, "")]
