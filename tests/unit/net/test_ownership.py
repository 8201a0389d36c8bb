"""Ownership (pure part): the address protocol decides; the state file only when the kernel has none."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from kubevip.net.addresses import ADDRESS_PROTO, AddressManager, normalise

addr = st.ip_addresses().map(lambda ip: (ip, ip.max_prefixlen))


@given(addr, st.one_of(st.none(), st.integers(0, 255)), st.booleans(), st.booleans())
def test_protocol_wins_over_state_file(
    a: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int], proto: int | None, recorded: bool,
    permanent: bool,
) -> None:
    m = AddressManager("eth0")
    keys = {f"{a[0]}/{a[1]}"} if recorded else set()
    ours = m._is_ours(a, proto, permanent, keys)
    if proto is None:
        assert ours == recorded
    else:
        assert ours == (proto == ADDRESS_PROTO)


@given(addr, st.one_of(st.none(), st.integers(0, 255)), st.booleans(), st.booleans(), st.booleans())
def test_fallback_ignores_the_protocol_and_uses_the_lifetime_marker(
    a: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int], proto: int | None, recorded: bool,
    permanent: bool, marker: bool,
) -> None:
    """Without IFA_PROTO (or forced): recorded in the state file, and, with the marker, not permanent."""
    m = AddressManager("eth0", proto_kept=False, lifetime_marker=marker)
    keys = {f"{a[0]}/{a[1]}"} if recorded else set()
    assert m._is_ours(a, proto, permanent, keys) == (recorded and not (marker and permanent))


@given(st.lists(st.ip_addresses(), max_size=5))
def test_bare_addresses_get_the_host_prefix(ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    assert normalise(ips) == {(ip, ip.max_prefixlen) for ip in ips}
