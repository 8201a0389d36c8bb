"""ConfigMap parsing: pools per key and family, kube-vip's lookup order, errors that name the key."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

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
