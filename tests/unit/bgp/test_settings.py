"""kube-vip's BGP variables: accepted forms, defaults, and a ConfigError naming the variable for bad ones."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.bgp.settings import BgpSettings, MpbgpNextHop, Peer, parse_peer
from kubevip.core.communities import Community, LargeCommunity
from kubevip.envparse import Settings
from kubevip.errors import ConfigError


def settings(**env: str) -> BgpSettings:
    return BgpSettings.from_env(Settings(env))


def test_defaults_match_kube_vip() -> None:
    s = settings()
    assert (s.enabled, s.local_as, s.hold_time, s.keepalive_interval, s.peers) == (False, 65000, 30, 10, ())


def test_single_peer_variables() -> None:
    s = settings(
        bgp_enable="true",
        bgp_as="65010",
        bgp_peeraddress="192.0.2.1",
        bgp_peeras="65020",
        bgp_peerpass="s3cret",
        bgp_multihop="true",
        bgp_routerid="192.0.2.9",
    )
    assert s.peers == (Peer(ipaddress.ip_address("192.0.2.1"), 65020, "s3cret", True),)
    assert s.local_as == 65010 and s.router_id == ipaddress.IPv4Address("192.0.2.9")


def test_peer_list_with_ipv6_brackets_port_and_mpbgp() -> None:
    s = settings(
        bgp_peers="192.0.2.1:65001::false,[2001:db8::1]:65002:pw:true:1179:mpbgp_nexthop=fixed;mpbgp_ipv4=192.0.2.5"
    )
    assert s.peers[0] == Peer(ipaddress.ip_address("192.0.2.1"), 65001)
    p = s.peers[1]
    assert (p.address, p.asn, p.password, p.multihop, p.port) == (
        ipaddress.ip_address("2001:db8::1"),
        65002,
        "pw",
        True,
        1179,
    )
    assert p.mpbgp == MpbgpNextHop("fixed", ipaddress.IPv4Address("192.0.2.5"), None)


def test_communities_global() -> None:
    s = settings(bgp_communities="65000:100, no-export", bgp_large_communities="65000:1:2")
    assert s.communities == (Community(65000, 100), Community(65535, 65281))
    assert s.large_communities == (LargeCommunity(65000, 1, 2),)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"bgp_as": "x"}, "bgp_as"),
        ({"bgp_as": "0"}, "bgp_as"),
        ({"bgp_as": "4294967296"}, "bgp_as"),
        ({"bgp_routerid": "2001:db8::1"}, "bgp_routerid"),
        ({"bgp_routerid": "1.2.3.4", "bgp_routerinterface": "eth0"}, "bgp_routerinterface"),
        ({"bgp_sourceip": "10.0.0.1", "bgp_sourceif": "eth0"}, "bgp_sourceif"),
        ({"bgp_sourceip": "nope"}, "bgp_sourceip"),
        ({"bgp_hold_time": "2"}, "bgp_hold_time"),
        ({"bgp_hold_time": "30", "bgp_keepalive_interval": "30"}, "bgp_keepalive_interval"),
        ({"bgp_peeraddress": "not-an-ip"}, "bgp_peeraddress"),
        ({"bgp_peeraddress": "192.0.2.1", "bgp_peeras": "-1"}, "bgp_peeras"),
        ({"bgp_peeraddress": "192.0.2.1", "bgp_peerpass": 'a"b'}, "bgp_peerpass"),
        ({"bgp_peeraddress": "192.0.2.1", "bgp_multihop": "maybe"}, "bgp_multihop"),
        ({"bgp_peeraddress": "192.0.2.1", "bgp_peers": "192.0.2.1:65000"}, "bgp_peers"),
        ({"bgp_peers": "2001:db8::1:65000"}, "bgp_peers"),
        ({"bgp_peers": "[2001:db8::1:65000"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1:abc"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1:65000::yes"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1:65000:::70000"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1:65000::::foo=bar"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1:65000::::mpbgp_ipv4=2001:db8::1"}, "bgp_peers"),
        ({"bgp_peers": "192.0.2.1:65000:::::true;300;300;3"}, "bgp_peers"),
        ({"bgp_enable": "true"}, "bgp_peers"),
        ({"mpbgp_nexthop": "magic"}, "mpbgp_nexthop"),
        ({"mpbgp_nexthop": "fixed"}, "mpbgp_nexthop"),
        ({"mpbgp_nexthop": "auto_sourceip"}, "mpbgp_nexthop"),
        ({"mpbgp_nexthop": "auto_sourceif"}, "mpbgp_nexthop"),
        ({"mpbgp_ipv4": "2001:db8::1"}, "mpbgp_ipv4"),
        ({"mpbgp_ipv6": "192.0.2.1"}, "mpbgp_ipv6"),
        ({"bgp_communities": "65000:70000"}, "bgp_communities"),
        ({"bgp_communities": "65000"}, "bgp_communities"),
        ({"bgp_large_communities": "1:2"}, "bgp_large_communities"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(**env)
    assert info.value.name == name
    assert name in str(info.value)


def test_password_never_appears_in_peer_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_peer("192.0.2.1:65000:topsecret:maybe")
    assert "topsecret" not in str(info.value)


addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))
passwords = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"\'\\;:,'), max_size=20
)


@given(addresses, st.integers(1, 2**32 - 1), passwords, st.booleans(), st.integers(1, 65535))
def test_peer_entries_round_trip(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, asn: int, pw: str, multihop: bool, port: int
) -> None:
    text = f"[{addr}]" if addr.version == 6 else str(addr)
    peer = parse_peer(f"{text}:{asn}:{pw}:{str(multihop).lower()}:{port}")
    assert peer == Peer(addr, asn, pw, multihop, port)


@given(st.text(max_size=40))
def test_any_peer_text_parses_or_raises_config_error(text: str) -> None:
    try:
        peer = parse_peer(text)
    except ConfigError as exc:
        assert exc.name == "bgp_peers"
    else:
        assert 1 <= peer.asn <= 2**32 - 1


def test_a_duplicate_peer_error_names_the_peer_not_the_passwords() -> None:
    with pytest.raises(ConfigError) as info:
        settings(bgp_peeraddress="192.0.2.1", bgp_peerpass="firstsecret",
                 bgp_peers="192.0.2.1:65000:othersecret,192.0.2.2:65000:thirdsecret")
    text = str(info.value)
    assert "192.0.2.1" in text and "listed twice" in text
    for secret in ("firstsecret", "othersecret", "thirdsecret"):
        assert secret not in text and secret not in repr(info.value.value)


@pytest.mark.parametrize("pw", ["it's", 'say"hi', "back\\slash", "semi;colon", "tab\tbed", "é", "x" * 81])
def test_a_password_exabgp_cannot_read_is_refused_naming_the_peer(pw: str) -> None:
    for env in ({"bgp_peers": f"192.0.2.7:65000:{pw}"}, {"bgp_peeraddress": "192.0.2.7", "bgp_peerpass": pw}):
        with pytest.raises(ConfigError) as info:
            settings(**env)
        assert "192.0.2.7" in str(info.value)
        assert pw not in str(info.value)


def test_a_peer_repr_hides_the_password() -> None:
    assert "hunter2" not in repr(parse_peer("192.0.2.1:65000:hunter2"))


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=90))
def test_every_password_we_accept_is_read_back_by_exabgp(pw: str) -> None:
    """The rule is checked against ExaBGP's own configuration tokeniser, not our idea of it."""
    from exabgp.configuration.core.format import tokens

    try:
        peer = parse_peer(f"192.0.2.1:65000:{pw}") if ":" not in pw and "," not in pw else None
    except ConfigError:
        return
    if peer is None or not peer.password:
        return
    (line,) = list(tokens([f'md5-password "{peer.password}";']))
    assert [w for _, _, w in line] == ["md5-password", peer.password, ";"]
    assert len(peer.password) <= 80
