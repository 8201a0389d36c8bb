"""Small helpers for the layer-2 tests: reading the client's neighbour cache, addresses, ping."""

from __future__ import annotations

import ipaddress
import json
import socket

from kubevip.lab.network import LabNetwork
from kubevip.net.namespace import Netns

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def neighbour_mac(netns: str, ip: IPAddress) -> str | None:
    """The link-layer address the namespace's neighbour cache holds for `ip` (None if none)."""
    with Netns(netns).iproute() as ipr:
        for n in ipr.get_neighbours(family=socket.AF_INET6 if ip.version == 6 else socket.AF_INET):
            if n.get_attr("NDA_DST") and ipaddress.ip_address(n.get_attr("NDA_DST")) == ip:
                mac = n.get_attr("NDA_LLADDR")
                return str(mac) if mac else None
    return None


def ping(lab: LabNetwork, netns: str, ip: IPAddress, wait_s: int = 1) -> bool:
    res = lab.run(netns, ["ping", "-n", "-c", "1", "-W", str(wait_s), str(ip)], check=False)
    return res.returncode == 0


def addresses(lab: LabNetwork, netns: str, ifname: str) -> set[str]:
    """Every address on the interface as ip/prefix, from iproute2 (an independent view)."""
    out = lab.run(netns, ["ip", "-j", "addr", "show", "dev", ifname]).stdout
    return {f"{a['local']}/{a['prefixlen']}" for link in json.loads(out) for a in link.get("addr_info", [])}
