"""BGP from Node annotations in kube-vip's format (core/bgppeers.py)."""

from __future__ import annotations

import base64
import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import bgppeers
from kubevip.errors import InputError

P = "example.com"
BASE = {f"{P}/node-asn": "65001", f"{P}/src-ip": "192.0.2.11", f"{P}/peer-asn": "65000",
        f"{P}/peer-ip": "192.0.2.1"}


def test_plain_keys() -> None:
    nb = bgppeers.parse(BASE, P)
    assert (nb.local_as, nb.peer_as, nb.multihop, nb.password) == (65001, 65000, False, "")
    assert nb.source_ip == ipaddress.ip_address("192.0.2.11")
    assert nb.peers == (ipaddress.ip_address("192.0.2.1"),)


def test_equinix_metal_keys_several_peers_ordered_and_deduplicated() -> None:
    ann = {
        f"{P}/bgp-peers-0-node-asn": "65001", f"{P}/bgp-peers-0-src-ip": "2001:db8::11",
        f"{P}/bgp-peers-0-peer-asn": "65530",
        f"{P}/bgp-peers-1-peer-ip": "2001:db8::2", f"{P}/bgp-peers-0-peer-ip": "2001:db8::1, 192.0.2.1",
        f"{P}/bgp-peers-10-peer-ip": "2001:db8::1",
        f"{P}/bgp-peers-0-bgp-pass": base64.b64encode(b"s3cret").decode(),
        f"{P}/bgp-peers-0-peer-multi-hop": "true",
        "other.io/peer-ip": "198.51.100.1",
    }
    nb = bgppeers.parse(ann, P)
    assert [str(p) for p in nb.peers] == ["2001:db8::1", "192.0.2.1", "2001:db8::2"]
    assert (nb.password, nb.multihop, nb.peer_as) == ("s3cret", True, 65530)
    assert "s3cret" not in repr(nb)


def test_plain_key_wins_over_the_numbered_one() -> None:
    nb = bgppeers.parse({**BASE, f"{P}/bgp-peers-0-node-asn": "65099"}, P)
    assert nb.local_as == 65001


@pytest.mark.parametrize(("key", "value", "named"), [
    ("node-asn", None, "node-asn is missing"),
    ("node-asn", "0", "node-asn='0'"),
    ("node-asn", "4294967296", "node-asn"),
    ("src-ip", "", "src-ip is missing"),
    ("src-ip", "not-ip", "src-ip='not-ip'"),
    ("peer-asn", "x", "peer-asn='x'"),
    ("peer-ip", " , ", "peer-ip is missing"),
    ("peer-ip", "192.0.2.1,nope", "'nope' is not an IP"),
    ("peer-multi-hop", "yes", "peer-multi-hop='yes'"),
    ("bgp-pass", "%%%", "bgp-pass: not base64"),
])
def test_errors_name_the_annotation(key: str, value: str | None, named: str) -> None:
    ann = dict(BASE)
    if value is None:
        ann.pop(f"{P}/{key}")
    else:
        ann[f"{P}/{key}"] = value
    with pytest.raises(InputError) as err:
        bgppeers.parse(ann, P)
    assert named in str(err.value)
    if key == "bgp-pass":
        assert value not in str(err.value)  # a secret never reaches a message


@given(st.text(min_size=1, max_size=30).filter(lambda s: s.strip() == s and "\x00" not in s))
def test_password_round_trip_never_in_errors(password: str) -> None:
    enc = base64.b64encode(password.encode()).decode()
    nb = bgppeers.parse({**BASE, f"{P}/bgp-pass": enc}, P)
    assert nb.password == password
    with pytest.raises(InputError) as err:
        bgppeers.parse({**BASE, f"{P}/bgp-pass": enc, f"{P}/peer-asn": "bad"}, P)
    assert enc not in str(err.value)


def test_peers_in_the_order_of_n_plain_key_first_none_lost_to_an_empty_entry() -> None:
    ann = {**BASE, f"{P}/peer-ip": "192.0.2.1,,192.0.2.2", f"{P}/bgp-peers-0-peer-ip": "192.0.2.3",
           f"{P}/bgp-peers-10-peer-ip": "192.0.2.10", f"{P}/bgp-peers-2-peer-ip": "192.0.2.20"}
    assert [str(p) for p in bgppeers.parse(ann, P).peers] == [
        "192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.20", "192.0.2.10"]


def test_every_as_number_and_up_to_max_peers_are_accepted() -> None:
    for asn in ("1", "4294967295"):
        nb = bgppeers.parse({**BASE, f"{P}/node-asn": asn, f"{P}/peer-asn": asn}, P)
        assert (nb.local_as, nb.peer_as) == (int(asn), int(asn))
    many = [f"192.0.2.{i}" for i in range(1, bgppeers.MAX_PEERS + 2)]
    nb = bgppeers.parse({**BASE, f"{P}/peer-ip": ",".join(many[:-1])}, P)
    assert len(nb.peers) == bgppeers.MAX_PEERS
    with pytest.raises(InputError) as err:
        bgppeers.parse({**BASE, f"{P}/peer-ip": ",".join(many)}, P)
    assert str(err.value) == f"annotations {P}/*peer-ip name 33 peers; at most 32"


def test_has_any_looks_under_the_prefix_only() -> None:
    assert bgppeers.has_any({f"{P}/node-asn": ""}, P)
    assert not bgppeers.has_any({f"{P}x/node-asn": "1", P: "1"}, P)
    assert not bgppeers.has_any({}, P)


def test_multihop_false_is_read_not_refused() -> None:
    assert bgppeers.parse({**BASE, f"{P}/peer-multi-hop": "false"}, P).multihop is False
    assert bgppeers.parse({**BASE, f"{P}/peer-multi-hop": "true"}, P).multihop is True
