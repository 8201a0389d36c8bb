"""A raw AF_PACKET socket bound to one interface, sending whole Ethernet frames (ARP and NDP share it)."""

from __future__ import annotations

import socket

from kubevip.errors import NetworkError
from kubevip.net.namespace import OWN, Netns


class RawLinkSender:
    """Owns the non-blocking raw socket of one interface (needs CAP_NET_RAW); subclasses build the frames."""

    # Named in the error when the socket cannot be opened, so the operator knows which announcer failed.
    protocol = "packet"

    def __init__(self, ifname: str, mac: bytes, ns: Netns = OWN) -> None:
        self.ifname = ifname
        self.mac = mac
        try:
            self._sock = ns.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self._sock.bind((ifname, 0))
        except OSError as exc:
            what = f"a raw {self.protocol} socket on {ifname} in {ns}"
            raise NetworkError(f"cannot open {what}: {exc}") from exc
        self._sock.setblocking(False)

    def send(self, frame: bytes) -> None:
        self._sock.send(frame)

    def close(self) -> None:
        self._sock.close()
