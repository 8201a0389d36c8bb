"""Served families: ipFamilies is the truth; fallbacks for hand-written objects; bounded by policy."""

from __future__ import annotations

import pytest

from kubevip.core.families import served_families
from kubevip.core.parse import service_from_dict
from kubevip.core.views import IPFamily
from kubevip.core.vips import well_formed
from tests.unit.core import builders as b

V4, V6 = IPFamily.IPV4, IPFamily.IPV6


def fams(**kw: object) -> tuple[IPFamily, ...]:
    svc = service_from_dict(b.service(**kw))  # type: ignore[arg-type]
    return served_families(svc, well_formed(svc))


@pytest.mark.parametrize(
    ("kw", "want"),
    [
        ({"families": ["IPv4"], "policy": "SingleStack"}, (V4,)),
        ({"families": ["IPv6", "IPv4"], "policy": "SingleStack"}, (V6,)),  # SingleStack: first only
        ({"families": ["IPv6", "IPv4"], "policy": None}, (V6,)),  # unset policy = SingleStack
        ({"families": ["IPv6", "IPv4"], "policy": "PreferDualStack"}, (V6, V4)),
        ({"families": ["IPv4", "IPv6"], "policy": "RequireDualStack"}, (V4, V6)),
        ({"families": ["IPv4"], "policy": "PreferDualStack"}, (V4,)),
        # ipFamilies wins over the VIPs and cluster IPs
        ({"families": ["IPv4"], "cluster_ips": ["fd00::1"], "lb_ips": "2001:db8::1"}, (V4,)),
        # no ipFamilies: cluster IPs
        ({"policy": "PreferDualStack", "cluster_ips": ["fd00::1", "10.0.0.1"]}, (V6, V4)),
        ({"policy": "SingleStack", "cluster_ips": ["fd00::1", "10.0.0.1"]}, (V6,)),
        # one cluster IP under a dual-stack policy: the VIPs add the second family after it
        ({"policy": "PreferDualStack", "cluster_ips": ["10.0.0.1"], "lb_ips": "2001:db8::1,192.0.2.1"},
         (V4, V6)),
        ({"policy": "SingleStack", "cluster_ips": ["10.0.0.1"], "lb_ips": "2001:db8::1"}, (V4,)),
        # neither: VIPs, in source order, bounded by the policy
        ({"policy": None, "lb_ips": "2001:db8::1,192.0.2.1"}, (V6,)),
        ({"policy": "PreferDualStack", "lb_ips": "2001:db8::1,192.0.2.1"}, (V6, V4)),
        ({"policy": "PreferDualStack", "lb_ips": "bogus, 192.0.2.1"}, (V4,)),
        ({"policy": "RequireDualStack", "lb_ips": "192.0.2.1"}, (V4, V6)),
        ({"policy": "SingleStack", "lb_ip": "192.0.2.1"}, (V4,)),
        ({"policy": "PreferDualStack"}, ()),
    ],
)
def test_served_families(kw: dict[str, object], want: tuple[IPFamily, ...]) -> None:
    assert fams(**kw) == want
