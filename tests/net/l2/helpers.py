"""Small helpers for the layer-2 tests: polling with a deadline and reading the client's neighbour cache."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from kubevip.lab.network import LabNetwork
from kubevip.net.namespace import Netns

T = TypeVar("T")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def wait_until(probe: Callable[[], T], within: float = 5.0, what: str = "condition") -> T:
    """Call `probe` until it returns something truthy; fail with `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s (last: {value!r})")
        time.sleep(0.01)


async def await_until(probe: Callable[[], T], within: float = 5.0, what: str = "condition") -> T:
    """`wait_until` for asyncio tests: the (blocking) probe runs on a worker thread."""
    deadline = time.monotonic() + within
    while True:
        value = await asyncio.to_thread(probe)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within}s (last: {value!r})")
        await asyncio.sleep(0.01)


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
