"""The ground-floor vocabulary: families convert between Kubernetes' and the kernel's spelling."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.ip import IPAddress, IPFamily, service_key

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@given(addresses)
def test_family_of_an_address_matches_its_version(addr: IPAddress) -> None:
    fam = IPFamily.of(addr)
    assert fam.version == addr.version
    assert IPFamily.from_version(addr.version) is fam
    assert IPFamily.of(ipaddress.ip_network(addr)) is fam


def test_families_are_spelled_as_kubernetes_spells_them() -> None:
    assert [str(f) for f in IPFamily] == ["IPv4", "IPv6"]


@pytest.mark.parametrize("bad", [0, 5, 46, -4])
def test_unknown_version_is_refused_by_value(bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        IPFamily.from_version(bad)


def test_service_key() -> None:
    assert service_key("ns", "web") == "ns/web"


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_text_spells_an_address_as_str_does(addr: IPAddress) -> None:
    from kubevip.ip import text

    assert text(addr) == str(addr) and text(addr) == str(addr)  # the second answer comes from the memo
    assert ipaddress.ip_address(text(addr)) == addr
