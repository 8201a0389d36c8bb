"""The lab's IPAM pool: the upper half of each family's VIP pool but the control-plane VIP (its last
address), parsed back by the ConfigMap parser."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.views import IPFamily
from kubevip.ipam.pools import parse_configmap
from kubevip.lab.ipam import configmap, ipam_pool, pool_json

ip = ipaddress.ip_address


def test_upper_half_per_family() -> None:
    pool = ipam_pool({4: (ip("10.0.0.100"), ip("10.0.0.199")), 6: (ip("fd00::100"), ip("fd00::1ff"))})
    assert pool_json(pool) == {"ipv4": "10.0.0.150-10.0.0.198", "ipv6": "fd00::180-fd00::1fe"}
    data = configmap(pool)["data"]
    assert isinstance(data, dict)
    cfg = parse_configmap(data)
    assert not cfg.errors
    v4, v6 = cfg.lookup("any", IPFamily.IPV4).pool, cfg.lookup("any", IPFamily.IPV6).pool
    assert v4 is not None and v4.size == 49 and v6 is not None and v6.size == 127


@given(st.integers(0, 2**32 - 3), st.integers(2, 500))
def test_halves_never_overlap_nor_take_the_control_plane_vip(first: int, width: int) -> None:
    last = min(first + width, 2**32 - 1)
    a, b = ipaddress.IPv4Address(first), ipaddress.IPv4Address(last)
    lo, hi = ipam_pool({4: (a, b)})[4]
    assert a < lo <= hi < b  # b: the control-plane VIP (lab.cpvip.vips)
    assert int(hi) - int(lo) + 1 == (last - first + 1) - (last - first + 1) // 2 - 1
