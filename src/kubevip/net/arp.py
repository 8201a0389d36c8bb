"""Gratuitous ARP: a pure frame builder and a raw AF_PACKET sender bound to one interface.

A gratuitous ARP has sender IP == target IP == the VIP and is broadcast; neighbours that already hold an
entry for the VIP switch it to our MAC. We send both forms, because receivers differ in which they honour:
the reply form (op 2, target MAC == sender MAC) and the request form (op 1, target MAC zero).
"""

from __future__ import annotations

import ipaddress
import struct

from kubevip.net.rawlink import RawLinkSender

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
BROADCAST = b"\xff" * 6
ARP_REQUEST = 1
ARP_REPLY = 2


def garp_frame(mac: bytes, ip: ipaddress.IPv4Address, *, reply: bool = True) -> bytes:
    """One Ethernet frame announcing that `ip` is at `mac` (reply form unless `reply=False`)."""
    if len(mac) != 6:
        raise ValueError(f"MAC must be 6 bytes, got {len(mac)}")
    target_mac = mac if reply else b"\x00" * 6
    eth = BROADCAST + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,  # hardware type: Ethernet
        ETH_P_IP,
        6,
        4,
        ARP_REPLY if reply else ARP_REQUEST,
        mac,
        ip.packed,
        target_mac,
        ip.packed,
    )
    return eth + arp


class ArpSender(RawLinkSender):
    """Sends gratuitous ARPs out of one interface through a raw packet socket (needs CAP_NET_RAW)."""

    protocol = "ARP"

    def announce(self, ip: ipaddress.IPv4Address) -> None:
        """Send both forms of the gratuitous ARP for `ip`."""
        for reply in (True, False):
            self.send(garp_frame(self.mac, ip, reply=reply))
