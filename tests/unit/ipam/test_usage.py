"""Pool usage for `kubevip ipam` metrics (allocator.pool_usage): sizes exclude what is never handed out."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.views import IPFamily
from kubevip.ipam.allocator import Allocator, Request, pool_usage, skipped, usable
from kubevip.ipam.pools import parse_configmap


@given(st.integers(0, 2**32 - 1), st.integers(0, 2000))
def test_usable_counts_exactly_what_the_scan_may_hand_out(first: int, extra: int) -> None:
    last = min(first + extra, 2**32 - 1)
    assert usable(4, first, last) == sum(1 for n in range(first, last + 1) if not skipped(4, n))
    assert usable(6, first, last) == last - first + 1


def test_used_and_free_follow_allocations_per_pool_and_family() -> None:
    cfg = parse_configmap({"range-global": "10.0.0.254-10.0.1.2,fd00::1-fd00::4", "cidr-ns1": "10.9.0.0/30"})
    a = Allocator(cfg)
    a.ensure(Request("ns2", "a", (IPFamily.IPV4, IPFamily.IPV6), require_all=True))
    a.ensure(Request("ns1", "b", (IPFamily.IPV4,)))
    got = {(u.key, u.family): (u.size, u.used, u.free) for u in a.usage()}
    # 10.0.0.254, (10.0.0.255 and 10.0.1.0 skipped), 10.0.1.1, 10.0.1.2
    assert got[("range-global", IPFamily.IPV4)] == (3, 1, 2)
    assert got[("range-global", IPFamily.IPV6)] == (4, 1, 3)
    assert got[("cidr-ns1", IPFamily.IPV4)][1] == 1
    assert sum(u.used for u in a.usage()) == 3


def test_a_hand_picked_address_inside_a_pool_counts_as_used() -> None:
    cfg = parse_configmap({"range-global": "10.0.0.1-10.0.0.4"})
    (u,) = pool_usage(cfg, [ipaddress.ip_address("10.0.0.2"), ipaddress.ip_address("192.0.2.1")])
    assert (u.size, u.used, u.free) == (4, 1, 3)


def test_a_held_skipped_address_is_not_counted_as_used() -> None:
    """A user's `.0` or `.255` inside a pool takes nothing the pool could hand out: `used` never exceeds
    `size` and `free` stays what the scan may still give."""
    cfg = parse_configmap({"cidr-global": "10.0.0.0/24"})
    held = [ipaddress.ip_address(a) for a in ("10.0.0.0", "10.0.0.255", "10.0.0.7")]
    (u,) = pool_usage(cfg, held)
    assert (u.size, u.used, u.free) == (254, 1, 253)
