"""Unsolicited Neighbour Advertisement (RFC 4861 7.2.6): a pure frame builder and a raw sender.

We build the whole Ethernet frame (IPv6 header included) so that the hop limit (255, which receivers
check), the flags (Override set, Solicited clear, Router clear) and the target link-layer address option are
exactly what we mean, and the frame is testable as bytes. It goes to ff02::1 (all nodes), source = the VIP.
"""

from __future__ import annotations

import ipaddress
import struct

from kubevip.net.rawlink import RawLinkSender

ETH_P_IPV6 = 0x86DD
ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_NODES_MAC = b"\x33\x33\x00\x00\x00\x01"
ICMPV6 = 58
NA_TYPE = 136
FLAG_OVERRIDE = 0x20000000
OPT_TARGET_LLADDR = 2
HOP_LIMIT = 255


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def na_frame(mac: bytes, ip: ipaddress.IPv6Address) -> bytes:
    """One Ethernet frame announcing that `ip` is at `mac` to all nodes on the link."""
    if len(mac) != 6:
        raise ValueError(f"MAC must be 6 bytes, got {len(mac)}")
    option = struct.pack("!BB6s", OPT_TARGET_LLADDR, 1, mac)
    body = struct.pack("!I16s", FLAG_OVERRIDE, ip.packed) + option
    length = 4 + len(body)
    pseudo = ip.packed + ALL_NODES.packed + struct.pack("!I3xB", length, ICMPV6)
    csum = _checksum(pseudo + struct.pack("!BBH", NA_TYPE, 0, 0) + body)
    icmp = struct.pack("!BBH", NA_TYPE, 0, csum) + body
    ipv6 = struct.pack("!IHBB16s16s", 6 << 28, length, ICMPV6, HOP_LIMIT, ip.packed, ALL_NODES.packed)
    eth = ALL_NODES_MAC + mac + struct.pack("!H", ETH_P_IPV6)
    return eth + ipv6 + icmp


class NdpSender(RawLinkSender):
    """Sends unsolicited NAs out of one interface through a raw packet socket (needs CAP_NET_RAW)."""

    protocol = "NDP"

    def announce(self, ip: ipaddress.IPv6Address) -> None:
        self.send(na_frame(self.mac, ip))
