"""Node-networking settings read from kube-vip's variables (see docs/configuration.md, "Node networking")."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from kubevip.envparse import Settings
from kubevip.errors import ConfigError, KubevipError
from kubevip.ip import IPAddress
from kubevip.net.interfaces import interface_networks
from kubevip.net.namespace import OWN, Netns
from kubevip.net.routes import DEFAULT_PROTOCOL, DEFAULT_TABLE, ROUTE_TYPES

log = logging.getLogger(__name__)

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

DEFAULT_ARP_RATE_MS = 3000
MIN_ARP_RATE_MS = 500
# Protocols 0-4 belong to the kernel and iproute2 (unspec, redirect, kernel, boot, static); owning one of
# them would let `vip_cleanroutingtable` delete routes kubevip never made.
MIN_ROUTING_PROTOCOL = 5


@dataclass(frozen=True)
class SubnetMasks:
    """Prefix lengths for VIP addresses: fixed per family, or `auto` (the interface's matching subnet)."""

    v4: int = 32
    v6: int = 128
    auto: bool = False

    def prefixlen(self, ip: IPAddress, on_interface: Iterable[IPInterface] = ()) -> int:
        """The prefix length to add `ip` with; for `auto`, that of an interface subnet containing it."""
        if self.auto:
            for net in on_interface:
                n = net.network
                if n.version == ip.version and ip in n and n.prefixlen < ip.max_prefixlen:
                    return n.prefixlen
            return ip.max_prefixlen
        return self.v4 if ip.version == 4 else self.v6

    def networks(self, ifname: str, ns: Netns = OWN) -> tuple[IPInterface, ...]:
        """The interface's own subnets when `auto` needs them (one netlink dump), else none; blocking."""
        if not self.auto:
            return ()
        try:
            return tuple(interface_networks(ifname, ns))
        except KubevipError as exc:
            log.warning("vip_subnet=auto: cannot read the subnets of %s (%s): using /32 and /128",
                        ifname, exc)
            return ()


def parse_subnet(value: str, name: str = "vip_subnet") -> SubnetMasks:
    """`""` -> 32/128; `auto`; `"v4mask,v6mask"`; a single value is the IPv4 mask (IPv6 stays 128)."""
    v = value.strip()
    if not v:
        return SubnetMasks()
    if v.lower() == "auto":
        return SubnetMasks(auto=True)
    parts = [p.strip().lstrip("/") for p in v.split(",")]
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise ConfigError(name, value, 'expected "v4mask,v6mask" (e.g. "32,128"), one IPv4 mask, or auto')
    v4 = int(parts[0])
    v6 = int(parts[1]) if len(parts) == 2 else 128
    if v4 > 32 or v6 > 128:
        raise ConfigError(name, value, "the IPv4 mask must be 0-32 and the IPv6 mask 0-128")
    return SubnetMasks(v4=v4, v6=v6)


# kube-vip reads vip_routingtabletype as the kernel's RTN_* number (pkg/kubevip config_environment.go);
# the numbers of the types kubevip supports (linux/rtnetlink.h).
RTN_NUMBERS = {1: "unicast", 2: "local", 4: "anycast", 6: "blackhole", 7: "unreachable", 8: "prohibit",
               9: "throw"}


def route_type(s: Settings, name: str = "vip_routingtabletype") -> str:
    """`vip_routingtabletype` as a name (`unicast`) or as kube-vip's integer (`1`); 0 (RTN_UNSPEC, the Go
    zero value kube-vip's manifests may carry) means unicast, the kernel's default for a route."""
    value = s.str(name, "unicast") or "unicast"
    if value.isdigit():
        number = int(value)
        if number == 0:
            return "unicast"
        if number not in RTN_NUMBERS:
            names = ", ".join(f"{n} ({t})" for n, t in RTN_NUMBERS.items())
            raise ConfigError(s.source_name(name), value,
                              f"unsupported route type number; use one of {names}")
        return RTN_NUMBERS[number]
    if value not in ROUTE_TYPES:
        raise ConfigError(s.source_name(name), value,
                          f"expected one of {', '.join(ROUTE_TYPES)} or kube-vip's number (1 = unicast)")
    return value


DEFAULT_STATE_DIR = "/var/lib/kubevip"
DEFAULT_IPV6_LIFETIME_LIMIT = 1000
OWNERSHIP_MODES = ("auto", "statefile")


@dataclass(frozen=True)
class NetSettings:
    """Everything `kubevip.net` needs from the environment, validated."""

    interface: str = ""
    services_interface: str = ""
    arp: bool = False
    arp_rate_ms: int = DEFAULT_ARP_RATE_MS
    subnet: SubnetMasks = SubnetMasks()
    routing_table: bool = False
    routing_table_id: int = DEFAULT_TABLE
    routing_protocol: int = DEFAULT_PROTOCOL
    routing_table_type: str = "unicast"
    clean_routing_table: bool = False
    skip_dad: bool = False
    # Kernel-enforced VIP lifetimes (docs/election.md): on unless vip_kernel_lifetime=false.
    kernel_lifetime: bool = True
    # Above this many IPv6 VIPs held on the node, its IPv6 VIPs are permanent: every IPv6 address change
    # costs the kernel a walk of every IPv6 address, so lifetime rounds grow O(n^2) (docs/election.md).
    kernel_lifetime_ipv6_limit: int = DEFAULT_IPV6_LIFETIME_LIMIT
    # Address ownership (docs/networking.md): "auto" probes IFA_PROTO at start-up, "statefile" forces the
    # fallback (state file in `state_dir` + lifetime marker) as on kernels < 5.18.
    ownership: str = "auto"
    state_dir: str = DEFAULT_STATE_DIR

    @classmethod
    def from_env(cls, s: Settings) -> NetSettings:
        """Read and validate; a bad value raises ConfigError naming the variable."""
        rate = s.int("vip_arpRate", DEFAULT_ARP_RATE_MS)
        if rate < MIN_ARP_RATE_MS:
            # kube-vip does the same: too-fast refreshes flood the segment, so fall back to the default.
            log.warning("vip_arpRate=%d is below %d: using %d ms", rate, MIN_ARP_RATE_MS, DEFAULT_ARP_RATE_MS)
            rate = DEFAULT_ARP_RATE_MS
        arp = s.bool("vip_arp")
        routing_table = s.bool("vip_routingtable")
        if arp and routing_table:
            raise ConfigError("vip_routingtable", "true", "vip_arp and vip_routingtable exclude each other")
        return cls(
            interface=s.str("vip_interface"),
            services_interface=s.str("vip_servicesinterface"),
            arp=arp,
            arp_rate_ms=rate,
            subnet=parse_subnet(s.str("vip_subnet"), s.source_name("vip_subnet")),
            routing_table=routing_table,
            routing_table_id=s.int("vip_routingtableid", DEFAULT_TABLE, minimum=1, maximum=2**32 - 1),
            routing_protocol=s.int(
                "vip_routingprotocol", DEFAULT_PROTOCOL, minimum=MIN_ROUTING_PROTOCOL, maximum=255
            ),
            routing_table_type=route_type(s),
            clean_routing_table=s.bool("vip_cleanroutingtable"),
            skip_dad=s.bool("vip_skipdad"),
            kernel_lifetime=s.bool("vip_kernel_lifetime", True),
            kernel_lifetime_ipv6_limit=s.int(
                "vip_kernel_lifetime_ipv6_limit", DEFAULT_IPV6_LIFETIME_LIMIT, minimum=0, maximum=10**6
            ),
            ownership=s.choice("vip_ownership", "auto", OWNERSHIP_MODES),
            state_dir=s.str("vip_statedir", DEFAULT_STATE_DIR) or DEFAULT_STATE_DIR,
        )


@dataclass(frozen=True)
class PacketSettings:
    """Egress SNAT and Service security (net/nftables.py, docs/egress.md)."""

    service_security: bool = False
    # egress_podcidr / egress_servicecidr: "" discovers them (Nodes' podCIDRs, the ServiceCIDR API).
    pod_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None
    service_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None
    clean: bool = False  # egress_clean: accepted; our table is always removed at start-up
    table: str = "kubevip"

    @classmethod
    def from_env(cls, s: Settings) -> PacketSettings:
        return cls(
            service_security=s.bool("enable_service_security"),
            pod_cidrs=_cidrs(s.source_name("egress_podcidr"), s.str("egress_podcidr")),
            service_cidrs=_cidrs(s.source_name("egress_servicecidr"), s.str("egress_servicecidr")),
            clean=s.bool("egress_clean"),
        )


def _cidrs(name: str, value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None:
    """kube-vip's comma-separated CIDR list (one per family, either order); "" is None (discover)."""
    items = [p.strip() for p in value.split(",") if p.strip()]
    if not items:
        return None
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            why = f"{item!r} is not a CIDR (e.g. 10.244.0.0/16,fd00:10:244::/56)"
            raise ConfigError(name, value, why) from None
    return tuple(out)
