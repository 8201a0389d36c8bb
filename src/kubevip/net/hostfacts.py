"""What the node's kernel says about its own addresses: for the address policy (kubevip.core.policy).

Read only. Addresses kubevip added (IFA_PROTO = ADDRESS_PROTO) are VIPs, not the node's own, and host
prefixes (/32, /128) have no subnet worth protecting.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from kubevip.ip import IPAddress, IPNetwork
from kubevip.net.addresses import ADDRESS_PROTO
from kubevip.net.interfaces import dump_addresses
from kubevip.net.namespace import OWN, Netns
from kubevip.net.rtnl_batch import default_routes


@dataclass(frozen=True)
class HostFacts:
    """The node's own addresses, the subnets of its interfaces and its default gateways."""

    addresses: frozenset[IPAddress] = frozenset()
    subnets: tuple[IPNetwork, ...] = ()
    gateways: frozenset[IPAddress] = frozenset()


def host_facts(ns: Netns = OWN, proto: int = ADDRESS_PROTO) -> HostFacts:
    """One address dump and one default-route dump per family; blocking (call it in a thread)."""
    addresses: set[IPAddress] = set()
    subnets: dict[IPNetwork, None] = {}
    gateways: set[IPAddress] = set()
    for a in dump_addresses(ns):
        if a.proto == proto:
            continue
        addr = a.ip
        if addr.is_loopback or addr.is_link_local:
            continue
        addresses.add(addr)
        net = ipaddress.ip_network((addr, a.prefixlen), strict=False)
        if net.max_prefixlen - net.prefixlen >= 2:
            subnets.setdefault(net)
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        for af in (socket.AF_INET, socket.AF_INET6):
            for route in default_routes(sock, af, f"listing default routes in {ns}"):
                gateways.update(route.gateways)
    return HostFacts(frozenset(addresses), tuple(subnets), frozenset(gateways))
