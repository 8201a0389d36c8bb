"""Renders the ExaBGP configuration file: one neighbour per peer, all fed by our API process."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.ip import IPAddress

PROCESS_NAME = "kubevip"

# Environment for the ExaBGP child: stay root (the agent already is), no CLI pipes, acknowledge every
# API command, and exit when our API process goes away so that the supervisor restarts both together.
EXABGP_ENV: Mapping[str, str] = {
    "exabgp_daemon_user": "root",
    "exabgp_daemon_drop": "false",
    "exabgp_daemon_daemonize": "false",
    "exabgp_api_cli": "false",
    "exabgp_api_ack": "true",
    "exabgp_api_respawn": "false",
    "exabgp_api_terminate": "true",
    "exabgp_api_encoder": "text",
    "exabgp_tcp_bind": "",
    "exabgp_log_destination": "stdout",
    "exabgp_log_level": "INFO",
    # No "route added to neighbor ..." line per command: ExaBGP formatted and wrote one per route (the
    # agent read each one and dropped it at its debug level), half of ExaBGP's CPU per command and on
    # the create path (docs/bgp.md). The agent logs what it announces itself and every refused command.
    "exabgp_log_processes": "false",
    "exabgp_reactor_speed": "0.1",
}


def _quote(arg: str) -> str:
    if not arg or any(c in arg for c in " \t;{}\"'\\\n"):
        raise ValueError(f"cannot pass {arg!r} to ExaBGP's process runner")
    return arg


def local_address(
    peer: Peer, settings: BgpSettings, source_if_addresses: Sequence[IPAddress]
) -> IPAddress | None:
    """The session's source: bgp_sourceip, else an address of the peer's family on bgp_sourceif, else auto."""
    if settings.source_ip is not None and settings.source_ip.version == peer.address.version:
        return settings.source_ip
    for ip in source_if_addresses:
        if ip.version == peer.address.version and not ip.is_link_local:
            return ip
    return None


def render(
    settings: BgpSettings,
    router_id: ipaddress.IPv4Address,
    process_argv: Sequence[str],
    source_if_addresses: Sequence[IPAddress] = (),
) -> str:
    """The whole ExaBGP configuration; `process_argv` runs the bridge to the agent."""
    lines = [
        f"process {PROCESS_NAME} {{",
        f"    run {' '.join(_quote(a) for a in process_argv)};",
        "    encoder text;",
        "}",
        "",
    ]
    for peer in settings.peers:
        lines += _neighbor(peer, settings, router_id, local_address(peer, settings, source_if_addresses))
    return "\n".join(lines) + "\n"


def _neighbor(
    peer: Peer, settings: BgpSettings, router_id: ipaddress.IPv4Address, local: IPAddress | None
) -> list[str]:
    out = [
        f"neighbor {peer.address} {{",
        f"    router-id {router_id};",
        f"    local-as {settings.local_as};",
        f"    peer-as {peer.asn};",
        f"    hold-time {settings.hold_time};",
    ]
    if local is not None:
        out.append(f"    local-address {local};")
    if peer.port != 179:
        out.append(f"    connect {peer.port};")
    if peer.password:
        out.append(f'    md5-password "{peer.password}";')
    if peer.multihop:
        # kube-vip's multihop allows routers several hops away; 255 is the widest reach.
        out.append("    outgoing-ttl 255;")
    out += [
        # Both families on every session: MP-BGP carries the other family with its own next hop.
        "    family {",
        "        ipv4 unicast;",
        "        ipv6 unicast;",
        "    }",
        "    api {",
        f"        processes [ {PROCESS_NAME} ];",
        "        neighbor-changes;",
        "    }",
        "}",
        "",
    ]
    return out
