"""Reads interface addresses from the kernel (for bgp_sourceif, bgp_routerinterface, auto_sourceip)."""

from __future__ import annotations

import ipaddress

from pyroute2 import IPRoute

from kubevip.errors import InterfaceNotFoundError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def interface_addresses(name: str) -> list[IPAddress]:
    """Addresses on interface `name`, IPv4 first; raises InterfaceNotFoundError naming it."""
    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            raise InterfaceNotFoundError(
                f"interface {name!r} does not exist (check bgp_sourceif / bgp_routerinterface)"
            )
        out = [ipaddress.ip_address(a.get_attr("IFA_ADDRESS")) for a in ipr.get_addr(index=idx[0])]
    return sorted(out, key=lambda ip: (ip.version, ip))


def interface_with(ip: IPAddress) -> str:
    """Name of the interface carrying `ip`, or "" if none does."""
    with IPRoute() as ipr:
        for a in ipr.get_addr():
            if ipaddress.ip_address(a.get_attr("IFA_ADDRESS")) == ip:
                links = ipr.get_links(a["index"])
                return str(links[0].get_attr("IFLA_IFNAME")) if links else ""
    return ""
