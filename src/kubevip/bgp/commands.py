"""ExaBGP text-API commands and the diff that turns "what ExaBGP has" into "what is desired"."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# One peer's view of one prefix: (peer, prefix) -> (next hop, communities text, large communities text).
Key = tuple[IPAddress, IPNetwork]
Route = tuple[IPAddress, str, str]


def _order(key: Key) -> tuple[int, int, int, int]:
    peer, prefix = key
    return (peer.version, int(peer), prefix.version, int(prefix.network_address))


def diff(have: Mapping[Key, Route], want: Mapping[Key, Route]) -> tuple[list[tuple[Key, Route]], list[Key]]:
    """(announce these, then withdraw those) so that `have` becomes `want`; a changed route is re-announced,
    which replaces it at the peer without a withdrawal gap."""
    announce = [(k, want[k]) for k in sorted(want, key=_order) if have.get(k) != want[k]]
    withdraw = [k for k in sorted(have, key=_order) if k not in want]
    return announce, withdraw


def announce(key: Key, route: Route) -> str:
    peer, prefix = key
    nh, communities, large = route
    cmd = f"neighbor {peer} announce route {prefix} next-hop {nh} origin igp"
    if communities:
        cmd += f" community [ {communities} ]"
    if large:
        cmd += f" large-community [ {large} ]"
    return cmd


def withdraw(key: Key, route: Route) -> str:
    peer, prefix = key
    return f"neighbor {peer} withdraw route {prefix} next-hop {route[0]}"
