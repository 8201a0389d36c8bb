"""VIPs: annotation first, then spec.loadBalancerIP; every unused address gets a stable reason code."""

from __future__ import annotations

import ipaddress

import pytest

from kubevip.core import reasons
from kubevip.core.parse import service_from_dict
from kubevip.core.views import IPFamily
from kubevip.core.vips import Rejection, choose, classify
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
