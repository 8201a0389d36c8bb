"""Pure addressing plan of one lab instance: names, subnets, addresses and MACs derived from (id, slot)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from kubevip.errors import ConfigError

# Benchmarking range (RFC 2544) and a ULA prefix: never routed anywhere, one /24 + /64 per lab slot.
IPV4_SPACE = ipaddress.IPv4Network("198.18.0.0/15")
IPV6_SPACE = ipaddress.IPv6Network("fd6b:7669:7000::/48")
SLOTS = range(1, 512)

# Host numbers inside a slot's subnets (same number in both families).
ROUTER_HOST = 1
UPLINK_HOST = 254
CLIENT_HOST = 100
FIRST_NODE_HOST = 11
MAX_NODES = CLIENT_HOST - FIRST_NODE_HOST
VIP_POOL_HOSTS = (200, 249)
# A single-stack lab with a BGP router and a control-plane VIP: the control-plane agent of node i needs a
# BGP session of its own beside the Service agent's, from a second address of the node (host 160 + i).
CP_SESSION_HOSTS = (160, 199)

_LAB_ID = re.compile(r"^[a-z0-9]{1,10}$")

# `lab up --stack`: which IP families the lab network, the control plane and the demo use.
STACKS: dict[str, tuple[int, ...]] = {"dual": (4, 6), "ipv4": (4,), "ipv6": (6,)}
DEFAULT_STACK = "dual"


@dataclass(frozen=True)
class Endpoint:
    """One namespace on the lab bridge: its interface, one address per family and a fixed MAC.

    Both addresses are always planned (so names and MACs never depend on the stack); only those of the
    topology's `families` are configured (see Topology.addresses).
    """

    name: str
    netns: str
    interface: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address
    mac: str
    bridge_port: str


@dataclass(frozen=True)
class Topology:
    """Everything a lab creates, computed before anything is created (so teardown knows it after a crash)."""

    lab_id: str
    slot: int
    bridge_netns: str
    uplink: str
    uplink_ipv4: ipaddress.IPv4Address
    uplink_ipv6: ipaddress.IPv6Address
    subnet_v4: ipaddress.IPv4Network
    subnet_v6: ipaddress.IPv6Network
    nodes: tuple[Endpoint, ...]
    client: Endpoint
    stack: str = DEFAULT_STACK

    @property
    def families(self) -> tuple[int, ...]:
        """The IP versions configured in this lab: (4, 6), (4,) or (6,)."""
        return STACKS[self.stack]

    def addresses(self, ep: Endpoint) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
        """The addresses `ep` really has, IPv4 first."""
        return tuple(a for a in (ep.ipv4, ep.ipv6) if a.version in self.families)

    def configured(
        self, address: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        """`address` if its family exists in this lab, else None (the `null` of `lab status -o json`)."""
        return address if address.version in self.families else None

    @property
    def api_address(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The host's uplink address nodes reach the API server at: IPv4 unless the lab is IPv6-only."""
        return self.uplink_ipv4 if 4 in self.families else self.uplink_ipv6

    @property
    def vip_pool_v4(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        return host_v4(self.slot, VIP_POOL_HOSTS[0]), host_v4(self.slot, VIP_POOL_HOSTS[1])

    @property
    def vip_pool_v6(self) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]:
        return host_v6(self.slot, VIP_POOL_HOSTS[0]), host_v6(self.slot, VIP_POOL_HOSTS[1])

    @property
    def netns_names(self) -> tuple[str, ...]:
        return (self.bridge_netns, *(n.netns for n in self.nodes), self.client.netns)


def validate_stack(stack: str) -> str:
    if stack not in STACKS:
        raise ConfigError("stack", stack, f"use one of {', '.join(STACKS)}")
    return stack


def validate_lab_id(lab_id: str) -> str:
    """Lab ids end up in interface names (15 characters at most), so keep them short and plain."""
    if not _LAB_ID.match(lab_id):
        raise ConfigError("lab id", lab_id, "use 1 to 10 characters from a-z and 0-9")
    return lab_id


def subnets(slot: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    """The /24 and /64 of a slot."""
    _check_slot(slot)
    v4 = ipaddress.IPv4Network((int(IPV4_SPACE.network_address) + slot * 256, 24))
    v6 = ipaddress.IPv6Network((int(IPV6_SPACE.network_address) + (slot << 64), 64))
    return v4, v6


def cp_session_address(topo: Topology, index: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The second address of node `index` (0-based) of a single-stack lab, of the lab's family, from which
    its control-plane agent peers the lab router (CP_SESSION_HOSTS)."""
    host = CP_SESSION_HOSTS[0] + index
    if host > CP_SESSION_HOSTS[1]:
        raise ValueError(f"node {index + 1}: control-plane BGP sessions exist for the first "
                         f"{CP_SESSION_HOSTS[1] - CP_SESSION_HOSTS[0] + 1} nodes only")
    return host_v4(topo.slot, host) if 4 in topo.families else host_v6(topo.slot, host)


def host_v4(slot: int, host: int) -> ipaddress.IPv4Address:
    return subnets(slot)[0].network_address + host


def host_v6(slot: int, host: int) -> ipaddress.IPv6Address:
    """Host 11 is ::11 (decimal digits read as hex), so both families of one namespace look alike."""
    return subnets(slot)[1].network_address + int(str(host), 16)


def slot_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int | None:
    """Which slot an address in the lab space belongs to (None outside the space); an IPv6-only lab
    holds its slot through its IPv6 uplink address only."""
    if isinstance(address, ipaddress.IPv4Address):
        if address not in IPV4_SPACE:
            return None
        return (int(address) - int(IPV4_SPACE.network_address)) // 256
    if address not in IPV6_SPACE:
        return None
    return (int(address) - int(IPV6_SPACE.network_address)) >> 64


def free_slot(used: set[int]) -> int:
    """The lowest slot no other lab (or anything else on the host) uses."""
    for s in SLOTS:
        if s not in used:
            return s
    raise ConfigError("lab slot", len(used), "every 198.18.0.0/15 slot is in use: run `kubevip lab down`")


def mac(slot: int, host: int, side: int = 0) -> str:
    """A locally administered unicast MAC, fixed per (slot, host); side 1 is the bridge-side veth end."""
    return f"02:6b:{0x76 + side:02x}:{slot >> 8:02x}:{slot & 0xFF:02x}:{host:02x}"


def endpoint(lab_id: str, slot: int, role: str, host: int) -> Endpoint:
    """The namespace `kvl-<id>-<role>` at host number `host` of the slot's subnets."""
    return Endpoint(
        name=role,
        netns=f"kvl-{lab_id}-{role}",
        interface="eth0",
        ipv4=host_v4(slot, host),
        ipv6=host_v6(slot, host),
        mac=mac(slot, host),
        bridge_port=role[:15],
    )


def plan(lab_id: str, slot: int, nodes: int, stack: str = DEFAULT_STACK) -> Topology:
    """The full topology of lab `lab_id` in `slot` with `nodes` node namespaces and `stack`'s families."""
    validate_lab_id(lab_id)
    validate_stack(stack)
    _check_slot(slot)
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError("nodes", nodes, f"use 1 to {MAX_NODES}")
    v4, v6 = subnets(slot)
    return Topology(
        lab_id=lab_id,
        slot=slot,
        bridge_netns=f"kvl-{lab_id}-br",
        uplink=f"kvl-{lab_id}",
        uplink_ipv4=host_v4(slot, UPLINK_HOST),
        uplink_ipv6=host_v6(slot, UPLINK_HOST),
        subnet_v4=v4,
        subnet_v6=v6,
        nodes=tuple(endpoint(lab_id, slot, f"node{i}", FIRST_NODE_HOST + i - 1) for i in range(1, nodes + 1)),
        client=endpoint(lab_id, slot, "client", CLIENT_HOST),
        stack=stack,
    )


def _check_slot(slot: int) -> None:
    if slot not in SLOTS:
        raise ConfigError("lab slot", slot, f"use {SLOTS.start} to {SLOTS.stop - 1}")
