"""The address policy: which addresses may be a VIP at all, whoever asks for them.

Every Service is tenant input: a user with edit rights in one namespace can write any text into
`kube-vip.io/loadbalancerIPs`. Without a policy the agents would announce a node's own address, the
default gateway, the control-plane VIP or a ClusterIP and take traffic from the whole cluster. The agent
and `kubevip ipam` ask the same question here, so an address IPAM would never hand out is also one the
agents never announce.

Pure: facts (the Nodes' addresses, this node's gateways and subnets, the Service CIDRs, the control-plane
VIP) and the operator's settings go in as data; the answer is a stable reason code and a message naming
the rule (docs/security.md).
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from kubevip.core import reasons
from kubevip.core.pools import PoolConfig
from kubevip.ip import IPAddress, IPFamily, IPNetwork

# Ranges that are never a unicast host address, whatever the operator allows (RFC 6890 / RFC 1122):
# "this network", the reserved class E block and the limited broadcast address.
ALWAYS_DENIED: tuple[tuple[IPNetwork, str, str], ...] = (
    (ipaddress.ip_network("255.255.255.255/32"), reasons.LIMITED_BROADCAST, "the limited broadcast address"),
    (ipaddress.ip_network("0.0.0.0/8"), reasons.RESERVED_RANGE, "0.0.0.0/8 (this network, RFC 1122)"),
    (ipaddress.ip_network("240.0.0.0/4"), reasons.RESERVED_RANGE, "240.0.0.0/4 (reserved, RFC 1112)"),
)


@dataclass(frozen=True)
class Refusal:
    """Why an address may not be a VIP: a stable code (reasons.POLICY_REJECTIONS) and the rule, in words."""

    reason: str
    rule: str


@dataclass(frozen=True)
class AddressPolicy:
    """Facts and settings; the default (no facts, no allow-list) still refuses `ALWAYS_DENIED`."""

    # Every Node's status.addresses, plus the addresses configured on this node's interfaces.
    node_addresses: frozenset[IPAddress] = frozenset()
    # This node's default gateways (next hops of default routes).
    gateways: frozenset[IPAddress] = frozenset()
    # The control-plane VIP(s) and the API server address the agent talks to.
    control_plane: frozenset[IPAddress] = frozenset()
    # ServiceCIDR objects (networking.k8s.io) where served, plus the `vip_service_cidrs` setting.
    service_cidrs: tuple[IPNetwork, ...] = ()
    # The subnets of this node's interfaces: their network and broadcast addresses are refused.
    subnets: tuple[IPNetwork, ...] = ()
    # `vip_allowed_cidrs`: when non-empty (or `from_pools`), only these (and the pools) are allowed.
    allowed: tuple[IPNetwork, ...] = ()
    # `vip_allowed_from_pools`: a namespace may use the IPAM ConfigMap's pools for it.
    from_pools: bool = False
    pools: PoolConfig = field(default_factory=PoolConfig)
    # `vip_allowed_interfaces`: shell patterns of interfaces `kube-vip.io/serviceInterface` may name. The
    # agent's setting defaults to none; a policy built without settings (`kubevip explain`) allows any.
    interfaces: tuple[str, ...] = ("*",)

    @property
    def restricted(self) -> bool:
        """True when an allow-list applies (empty list and no pools: everything not denied)."""
        return bool(self.allowed) or self.from_pools


DEFAULT_POLICY = AddressPolicy()


def _in_any(address: IPAddress, networks: Iterable[IPNetwork]) -> IPNetwork | None:
    for net in networks:
        if address.version == net.version and address in net:
            return net
    return None


def subnet_edge(address: IPAddress, subnet: IPNetwork) -> str | None:
    """The reason code when `address` is the network or (IPv4) broadcast address of `subnet`.

    /31 and /32 (IPv4) and /127 and /128 (IPv6) have no such addresses (RFC 3021, RFC 6164)."""
    if address.version != subnet.version or address not in subnet:
        return None
    if subnet.max_prefixlen - subnet.prefixlen < 2:
        return None
    if address == subnet.network_address:
        return reasons.SUBNET_NETWORK_ADDRESS
    if address.version == 4 and address == subnet.broadcast_address:
        return reasons.SUBNET_BROADCAST_ADDRESS
    return None


def refusal(policy: AddressPolicy, address: IPAddress, namespace: str) -> Refusal | None:
    """Why `address` may not be a VIP of a Service in `namespace`, or None when it may."""
    for net, reason, what in ALWAYS_DENIED:
        if address.version == net.version and address in net:
            return Refusal(reason, f"{what} is never a VIP")
    if address in policy.control_plane:
        return Refusal(reasons.CONTROL_PLANE_VIP, "the control-plane VIP (or API server address) is never a"
                                                  " Service VIP")
    if address in policy.node_addresses:
        return Refusal(reasons.NODE_ADDRESS, "a Node's own address is never a VIP")
    if address in policy.gateways:
        return Refusal(reasons.DEFAULT_GATEWAY, "a node's default gateway is never a VIP")
    cidr = _in_any(address, policy.service_cidrs)
    if cidr is not None:
        return Refusal(reasons.SERVICE_CIDR, f"inside the Service CIDR {cidr} (ClusterIPs)")
    for subnet in policy.subnets:
        edge = subnet_edge(address, subnet)
        if edge is not None:
            what = "network" if edge == reasons.SUBNET_NETWORK_ADDRESS else "broadcast"
            return Refusal(edge, f"the {what} address of the node subnet {subnet}")
    if not policy.restricted:
        return None
    if _in_any(address, policy.allowed) is not None:
        return None
    if policy.from_pools:
        pool = policy.pools.lookup(namespace, IPFamily.of(address)).pool
        if pool is not None and address in pool:
            return None
    allowed = ", ".join(str(n) for n in policy.allowed) or "none"
    pools = f"; or the IPAM pool of namespace {namespace!r}" if policy.from_pools else ""
    return Refusal(reasons.NOT_ALLOWED, f"outside vip_allowed_cidrs ({allowed}){pools}")


def interface_allowed(policy: AddressPolicy, name: str) -> bool:
    """Whether `kube-vip.io/serviceInterface` may name `name` (a `vip_allowed_interfaces` pattern matches)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in policy.interfaces)


def parse_cidrs(text: str) -> tuple[IPNetwork, ...]:
    """A comma list of CIDRs (a bare address is its host prefix); raises ValueError naming the entry."""
    out: list[IPNetwork] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not a CIDR (e.g. 192.0.2.0/24 or 2001:db8::/64)") from None
    return tuple(dict.fromkeys(out))


def parse_patterns(text: str) -> tuple[str, ...]:
    """A comma list of interface names or shell patterns (`*`, `vlan*`)."""
    return tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
