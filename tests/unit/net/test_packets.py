"""Packet builders parsed back with scapy: the fields receivers check are exactly what we mean."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether

from kubevip.net.arp import garp_frame
from kubevip.net.ndp import na_frame

macs = st.binary(min_size=6, max_size=6)
v4 = st.ip_addresses(v=4).map(lambda a: ipaddress.IPv4Address(int(a)))
v6 = st.ip_addresses(v=6).map(lambda a: ipaddress.IPv6Address(int(a)))


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


@settings(max_examples=60)
@given(macs, v4)
def test_garp_reply_form(mac: bytes, ip: ipaddress.IPv4Address) -> None:
    pkt = Ether(garp_frame(mac, ip, reply=True))
    arp = pkt[ARP]
    assert pkt.dst == "ff:ff:ff:ff:ff:ff" and pkt.src == mac_str(mac) and pkt.type == 0x0806
    assert arp.op == 2
    assert arp.psrc == arp.pdst == str(ip)
    assert arp.hwsrc == arp.hwdst == mac_str(mac)
    assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 0x0800, 6, 4)


@settings(max_examples=60)
@given(macs, v4)
def test_garp_request_form(mac: bytes, ip: ipaddress.IPv4Address) -> None:
    arp = Ether(garp_frame(mac, ip, reply=False))[ARP]
    assert arp.op == 1
    assert arp.psrc == arp.pdst == str(ip)
    assert arp.hwsrc == mac_str(mac) and arp.hwdst == "00:00:00:00:00:00"


@settings(max_examples=60)
@given(macs, v6)
def test_unsolicited_na_fields(mac: bytes, ip: ipaddress.IPv6Address) -> None:
    raw = na_frame(mac, ip)
    pkt = Ether(raw)
    assert pkt.dst == "33:33:00:00:00:01" and pkt.src == mac_str(mac) and pkt.type == 0x86DD
    ip6 = pkt[IPv6]
    assert ip6.hlim == 255 and ip6.dst == "ff02::1" and ipaddress.IPv6Address(ip6.src) == ip and ip6.nh == 58
    na = pkt[ICMPv6ND_NA]
    assert (na.type, na.code) == (136, 0)
    assert (na.R, na.S, na.O) == (0, 0, 1)
    assert ipaddress.IPv6Address(na.tgt) == ip
    opt = pkt[ICMPv6NDOptDstLLAddr]
    assert opt.type == 2 and opt.len == 1 and opt.lladdr == mac_str(mac)
    # Checksum: scapy recomputes it when the field is cleared; ours must match.
    ours = na.cksum
    del na.cksum
    assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == ours
    assert ip6.plen == len(bytes(na))


def test_bad_mac_is_rejected() -> None:
    import pytest

    with pytest.raises(ValueError):
        garp_frame(b"\x00" * 5, ipaddress.IPv4Address("10.0.0.1"))
    with pytest.raises(ValueError):
        na_frame(b"\x00" * 7, ipaddress.IPv6Address("fd00::1"))
