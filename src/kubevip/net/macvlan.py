"""macvlan children for DHCP VIPs (docs/dhcp.md): one per Service, with the Service's own MAC, so the
DHCP server and the switches see one client whichever node holds it. Side effects only: which child,
which MAC and which parent are decided in core/dhcp.py and by the agent."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

from kubevip.errors import NetworkError
from kubevip.net.namespace import OWN, Netns
from kubevip.net.rtnl_batch import link_kinds

log = logging.getLogger(__name__)

MACVLAN_MODE_BRIDGE = 4
ADDR_GEN_MODE_NONE = 1  # IN6_ADDR_GEN_MODE_NONE (linux/if_link.h)


def _sysctl(path: str, value: str, ns: Netns) -> None:
    """Write a per-interface sysctl of the agent's own namespace; a named namespace (tests driving another
    namespace from outside) keeps the kernel's defaults."""
    if ns.name is not None:
        return
    try:
        Path(path).write_text(value)
    except OSError as exc:
        log.warning("cannot write %s=%s: %s", path, value, exc)


def ensure_macvlan(name: str, parent: str, mac: str, ns: Netns = OWN) -> int:
    """The macvlan `name` on `parent` with `mac`, up; created (or re-created, when its parent or MAC
    differ) as needed. Returns its index. rp_filter 0 (replies to the VIP's clients leave by the node's
    routes, not by the child: kube-vip's default) and no IPv6 on it (an IPv4 DHCP VIP never sends IPv6:
    no link-local address, no router solicitation)."""
    with ns.iproute() as ipr:
        parents = ipr.link_lookup(ifname=parent)
        if not parents:
            raise NetworkError(f"interface {parent!r} (parent of the DHCP macvlan {name!r}) does not exist")
        found = ipr.link_lookup(ifname=name)
        if found:
            ln = ipr.get_links(found[0])[0]
            info = ln.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if kind != "macvlan":
                raise NetworkError(f"interface {name!r} exists and is not a macvlan (kind {kind!r})")
            if str(ln.get_attr("IFLA_ADDRESS")).lower() == mac and ln.get_attr("IFLA_LINK") == parents[0]:
                if not ln["flags"] & 1:
                    ipr.link("set", index=found[0], state="up")
                return int(found[0])
            ipr.link("del", index=found[0])
        try:
            ipr.link("add", ifname=name, kind="macvlan", link=parents[0], address=mac,
                     macvlan_mode="bridge")
        except Exception as exc:  # pyroute2 raises NetlinkError (an OSError) or ValueError
            raise NetworkError(f"cannot create macvlan {name!r} on {parent!r}: {exc}") from exc
        index = int(ipr.link_lookup(ifname=name)[0])
        # No IPv6 address of any kind on it, through netlink (a container's /proc/sys is often read-only):
        # IN6_ADDR_GEN_MODE_NONE, before it comes up, so no link-local address ever exists on it.
        with contextlib.suppress(Exception):  # IPv6 off in the namespace: nothing to turn off
            ipr.link("set", index=index, IFLA_AF_SPEC={
                "attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", ADDR_GEN_MODE_NONE]]}]]})
        _sysctl(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1", ns)
        _sysctl(f"/proc/sys/net/ipv4/conf/{name}/rp_filter", "0", ns)
        _sysctl(f"/proc/sys/net/ipv4/conf/{name}/arp_ignore", "1", ns)
        ipr.link("set", index=index, state="up")
        return index


def delete_macvlan(name: str, ns: Netns = OWN) -> bool:
    """Remove the macvlan `name` (its addresses go with it); False when it was not there. Never removes an
    interface of another kind."""
    with ns.iproute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return False
        ln = ipr.get_links(found[0])[0]
        info = ln.get_attr("IFLA_LINKINFO")
        if info is None or info.get_attr("IFLA_INFO_KIND") != "macvlan":
            log.warning("not removing %s: not a macvlan", name)
            return False
        with contextlib.suppress(Exception):
            ipr.link("del", index=found[0])
        return not ipr.link_lookup(ifname=name)


def macvlans(prefix: str, ns: Netns = OWN) -> frozenset[str]:
    """The macvlan interfaces whose name starts with `prefix` (ours, from an earlier run)."""
    # Our own dump (net/rtnl_batch.py), not pyroute2's: every agent lists them in its first pass, and
    # pyroute2's IPRoute costs 33 ms of CPU to import (issue 21, a restart of every agent).
    with ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        links = link_kinds(sock, f"listing interfaces in {ns}")
    return frozenset(name for name, kind in links if name.startswith(prefix) and kind == "macvlan")


ARP_TABLE = "kubevip_dhcp"


def arp_guard_script(vips: Mapping[str, str], table: str = ARP_TABLE) -> str:
    """Two small nftables tables for the holder's DHCP VIPs (`vips` maps each leased address to its
    macvlan), replaced in one transaction:

    - `arp <table>`: only the macvlan answers ARP for its VIP. Linux answers ARP for any local address on
      every interface (arp_ignore=0), so the parent would answer with its own MAC, and the server's unicast
      ACK to a renewal would reach the parent, never the client's raw socket on the macvlan.
    - `ip <table>`: the server's replies to the VIP's port 68 stop in the input hook, after the client's
      packet socket has its copy: with no UDP socket on port 68 the kernel would answer each with an ICMP
      port unreachable, and the ARP request it sends for the server (the VIP as sender) teaches the server
      the parent's MAC for the VIP, so the next renewal's ACK goes astray again (measured: 1 renewal in 5).

    The node's other addresses and traffic are untouched."""
    lines = [f"add table arp {table}", f"delete table arp {table}",
             f"add table ip {table}", f"delete table ip {table}"]
    if vips:
        lines.append(f"add table arp {table}")
        lines.append(f"add chain arp {table} input {{ type filter hook input priority 0; policy accept; }}")
        lines.append(f"add table ip {table}")
        lines.append(f"add chain ip {table} input {{ type filter hook input priority 0; policy accept; }}")
        for address, ifname in sorted(vips.items()):
            ipaddress.IPv4Address(address)  # a programming error otherwise, never tenant text
            lines.append(f'add rule arp {table} input arp operation request arp daddr ip {address} '
                         f'iifname != "{ifname}" drop')
            lines.append(f"add rule ip {table} input ip daddr {address} udp dport 68 drop")
    return "\n".join(lines) + "\n"


def apply_arp_guard(vips: Mapping[str, str], ns: Netns = OWN) -> None:
    """Replace the table in one `nft -f -` transaction (an empty mapping removes it)."""
    nft = shutil.which("nft")
    if nft is None:
        raise NetworkError("nft not found: install the nftables package (hack/prereqs.sh, the image)")
    prefix = ["ip", "netns", "exec", ns.name] if ns.name else []
    try:
        res = subprocess.run([*prefix, nft, "-f", "-"], input=arp_guard_script(vips), capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"nft: {exc}") from exc
    if res.returncode != 0:
        raise NetworkError(f"nft rejected table arp {ARP_TABLE}: {res.stderr.strip()}")
