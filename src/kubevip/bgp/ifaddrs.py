"""Reads interface addresses from the kernel (for bgp_sourceif, bgp_routerinterface, auto_sourceip)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from kubevip.errors import InterfaceNotFoundError
from kubevip.ip import IPAddress
from kubevip.pyroute2_lazy import submodule

if TYPE_CHECKING:
    from pyroute2.iproute.linux import IPRoute as _IPRoute


def IPRoute() -> _IPRoute:
    ipr: _IPRoute = submodule("pyroute2.iproute").IPRoute()
    return ipr


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


# Addresses kubevip adds (VIPs) carry this IFA_PROTO (kubevip.net.addresses.ADDRESS_PROTO): never a next hop.
_VIP_PROTO = 248


def peer_facing_addresses(peers: list[IPAddress]) -> list[IPAddress]:
    """The node's own addresses on the interfaces that route to `peers`: the kernel's preferred source
    first, then the other global addresses of those interfaces (VIPs excluded), IPv4 before IPv6."""
    preferred: list[IPAddress] = []
    rest: list[IPAddress] = []
    with IPRoute() as ipr:
        oifs: list[int] = []
        for peer in peers:
            try:
                routes = ipr.route("get", dst=str(peer))
            except Exception:  # pyroute2 raises NetlinkError when there is no route: skip that peer
                continue
            for r in routes:
                src = r.get_attr("RTA_PREFSRC")
                if src:
                    preferred.append(ipaddress.ip_address(src))
                oif = r.get_attr("RTA_OIF")
                if oif is not None and oif not in oifs:
                    oifs.append(oif)
        vips: set[IPAddress] = set()
        for oif in oifs:
            for a in ipr.get_addr(index=oif):
                ip = ipaddress.ip_address(a.get_attr("IFA_ADDRESS"))
                if a.get_attr("IFA_PROTO") == _VIP_PROTO:
                    vips.add(ip)
                elif a["scope"] == 0 and ip not in preferred and ip not in rest:
                    rest.append(ip)
    return [*(ip for ip in preferred if ip not in vips), *sorted(rest, key=lambda ip: (ip.version, ip))]
