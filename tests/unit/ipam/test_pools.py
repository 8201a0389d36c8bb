"""ConfigMap parsing: pools per key and family, kube-vip's lookup order, errors that name the key."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.pools import _UNKNOWN_KEY as _UNKNOWN
from kubevip.core.views import IPFamily
from kubevip.ipam.pools import parse_configmap

V4, V6 = IPFamily.IPV4, IPFamily.IPV6


def test_mixed_families_are_split_per_key() -> None:
    cfg = parse_configmap({"cidr-global": "192.0.2.0/29, 2001:db8::/126",
                           "range-team": "198.51.100.10-198.51.100.12"})
    assert not cfg.errors
    assert set(cfg.pools["cidr-global"]) == {V4, V6}
    assert cfg.pools["cidr-global"][V6].size == 4
    assert cfg.pools["range-team"][V4].size == 3
    assert ipaddress.ip_address("198.51.100.11") in cfg.pools["range-team"][V4]
    assert ipaddress.ip_address("198.51.100.13") not in cfg.pools["range-team"][V4]


def test_lookup_order_is_kube_vips_and_per_family() -> None:
    cfg = parse_configmap({
        "cidr-team": "10.0.0.0/24",
        "cidr-global": "10.1.0.0/24",
        "range-team": "fd00::1-fd00::9",
        "range-global": "fd01::1-fd01::9, 10.2.0.1-10.2.0.9",
    })
    assert cfg.lookup("team", V4).pool is not None and cfg.lookup("team", V4).pool.key == "cidr-team"
    # cidr-team and cidr-global have no IPv6: the IPv6 lookup goes on to range-team.
    assert cfg.lookup("team", V6).pool is not None and cfg.lookup("team", V6).pool.key == "range-team"
    assert cfg.lookup("other", V4).pool is not None and cfg.lookup("other", V4).pool.key == "cidr-global"
    assert cfg.lookup("other", V6).pool is not None and cfg.lookup("other", V6).pool.key == "range-global"


def test_no_pool() -> None:
    cfg = parse_configmap({"cidr-team": "10.0.0.0/24"})
    look = cfg.lookup("other", V4)
    assert look.pool is None and look.malformed_key is None


def test_malformed_key_stops_the_lookup_and_names_the_key() -> None:
    cfg = parse_configmap({"cidr-team": "10.0.0.0/33", "cidr-global": "10.1.0.0/24"})
    assert [e.key for e in cfg.errors] == ["cidr-team"]
    assert "10.0.0.0/33" in str(cfg.errors[0])
    look = cfg.lookup("team", V4)
    assert look.pool is None and look.malformed_key == "cidr-team"
    # Another namespace is unaffected.
    assert cfg.lookup("other", V4).pool is not None


def test_partly_malformed_key_keeps_its_good_entries() -> None:
    cfg = parse_configmap({"range-global": "10.0.0.1-10.0.0.5,nonsense,10.0.0.9-10.0.0.1,10.0.0.1-fd00::1"})
    assert [e.key for e in cfg.errors] == ["range-global"] * 3
    pool = cfg.lookup("x", V4).pool
    assert pool is not None and pool.size == 5
    assert cfg.lookup("x", V6).malformed_key == "range-global"


def test_skip_end_ips_in_cidr() -> None:
    cfg = parse_configmap({"cidr-global": "2001:db8::/126,192.0.2.8/32", "skip-end-ips-in-cidr": "true"})
    v6 = cfg.pools["cidr-global"][V6]
    assert v6.describe() == "2001:db8::1-2001:db8::2"
    assert cfg.pools["cidr-global"][V4].size == 1  # a /32 stays whole


def test_flags_and_errors() -> None:
    cfg = parse_configmap({
        "search-order": "desc", "allow-share-team": "true", "allow-share-global": "false",
        "interface-global": "eth1", "interface-team": "bad/name", "skip-end-ips-in-cidr": "maybe",
        "cidr_global": "10.0.0.0/24",
    })
    assert cfg.descending
    assert cfg.share_allowed("team") and not cfg.share_allowed("other")
    assert cfg.interface_for("team") == "eth1"
    assert {e.key for e in cfg.errors} == {"interface-team", "skip-end-ips-in-cidr", "cidr_global"}


def test_bad_search_order_named() -> None:
    cfg = parse_configmap({"search-order": "random"})
    assert [e.key for e in cfg.errors] == ["search-order"] and not cfg.descending


def test_empty_key_is_an_error() -> None:
    cfg = parse_configmap({"cidr-global": " , "})
    assert [e.key for e in cfg.errors] == ["cidr-global"]
    assert cfg.lookup("x", V4).malformed_key == "cidr-global"


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40), max_size=6))
def test_never_raises(data: dict[str, str]) -> None:
    cfg = parse_configmap(data)
    for e in cfg.errors:
        assert e.key in data or e.key in ("skip-end-ips-in-cidr", "search-order")


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), min_size=1, max_size=6))
def test_ranges_are_merged_exactly(spans: list[tuple[int, int]]) -> None:
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    v4 = ipaddress.IPv4Address
    text = ",".join(f"{v4(base + a)}-{v4(base + a + w)}" for a, w in spans)
    pool = parse_configmap({"range-global": text}).pools["range-global"][V4]
    want = {base + a + i for a, w in spans for i in range(w + 1)}
    assert pool.size == len(want)
    for n in range(base, base + 350):
        assert (ipaddress.IPv4Address(n) in pool) == (n in want)


def test_global_sharing_and_a_namespaces_own_interface_apply() -> None:
    cfg = parse_configmap({"allow-share-global": "true", "allow-share-b": "false",
                           "interface-global": "eth1", "interface-a": "vlan10"})
    assert cfg.share_allowed("a") and not cfg.share_allowed("b")
    assert cfg.interface_for("a") == "vlan10" and cfg.interface_for("b") == "eth1"


def test_entries_are_read_as_kube_vip_writes_them() -> None:
    """Host bits in a CIDR are masked (Go's net.ParseCIDR), an empty entry between two is skipped,
    adjacent ranges are one block, and an IPv4 pool is described in IPv4."""
    cfg = parse_configmap({"cidr-a": "192.0.2.5/30",
                           "range-global": "10.0.0.1-10.0.0.2,,10.0.0.3-10.0.0.4"})
    assert cfg.errors == ()
    assert cfg.pools["cidr-a"][V4].describe() == "192.0.2.4-192.0.2.7"
    assert cfg.pools["range-global"][V4].describe() == "10.0.0.1-10.0.0.4"
    two = parse_configmap({"range-b": "10.0.0.5-10.0.0.6, 10.0.0.1-10.0.0.2"}).pools["range-b"][V4]
    assert two.describe() == "10.0.0.1-10.0.0.2,10.0.0.5-10.0.0.6"


_IFNAME = "not an interface name (1-15 chars, no / : space)"


@pytest.mark.parametrize(("data", "errors"), [
    ({"search-order": "asc", "skip-end-ips-in-cidr": "true"}, []),
    ({"search-order": "desc", "typo": "1"}, [("typo", _UNKNOWN)]),
    ({"search-order": "up"}, [("search-order", "'up' is not a search order; write desc or asc")]),
    ({"allow-share-a": "maybe"}, [("allow-share-a", "'maybe' is not a boolean; write true or false")]),
    ({"interface-a": "x" * 15}, []),
    ({"interface-a": "vlanX1"}, []),
    ({"interface-a": "x" * 16}, [("interface-a", f"{'x' * 16!r}: {_IFNAME}")]),
    ({"interface-a": " "}, [("interface-a", f"' ': {_IFNAME}")]),
    ({"range-a": "10.0.0.1"},
     [("range-a", "'10.0.0.1' is not a range; write first-last, e.g. 192.0.2.1-192.0.2.9")]),
    ({"range-a": "10.0.0.1-x"}, [("range-a", "'10.0.0.1-x': both ends must be IP addresses")]),
    ({"range-a": "10.0.0.1-fd00::1"},
     [("range-a", "'10.0.0.1-fd00::1': both ends must be of the same family")]),
    ({"range-a": "10.0.0.2-10.0.0.1"},
     [("range-a", "'10.0.0.2-10.0.0.1': the first address is above the last")]),
    ({"cidr-a": ","}, [("cidr-a", "holds no address; remove the key or add CIDRs/ranges")]),
])
def test_each_configmap_error_names_its_key_and_the_fix(
    data: dict[str, str], errors: list[tuple[str, str]],
) -> None:
    assert [(e.key, e.message) for e in parse_configmap(data).errors] == errors
