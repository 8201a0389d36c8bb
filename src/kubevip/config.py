"""The agent's settings: kube-vip env vars first, flags of the same names second, validated once."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubevip.bgp.settings import BGP_SETTINGS, BgpSettings
from kubevip.controlplane.settings import CP_SETTINGS, ControlPlaneSettings
from kubevip.core import labelselector
from kubevip.core.compat import unsupported_settings
from kubevip.core.eligibility import Rules
from kubevip.core.policy import parse_cidrs, parse_patterns
from kubevip.core.selection import ClassFilter
from kubevip.election.timings import ElectionConfig, config_from_settings
from kubevip.envparse import Settings
from kubevip.errors import ConfigError, InputError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.net.settings import NetSettings, PacketSettings

DEFAULT_LB_CLASS = "kube-vip.io/kube-vip-class"

# Every setting the agent reads: (name, default shown in docs/--help, aliases). The manager registers a
# flag `--<name>` for each, so flags and env vars share one spelling, as kube-vip's docs use.
SETTINGS: tuple[tuple[str, str], ...] = (
    ("svc_enable", "false"),
    ("vip_arp", "false"),
    ("vip_interface", ""),
    ("vip_servicesinterface", ""),
    ("vip_leaderelection", "false"),
    ("svc_election", "false"),
    ("svc_namespace", ""),
    ("vip_leaseduration", "1.5"),
    ("vip_renewdeadline", "1.0"),
    ("vip_retryperiod", "0.25"),
    ("vip_leaseskewmargin", "0.25"),
    ("vip_leasenamespace", ""),
    ("cp_namespace", "kube-system"),
    ("svc_leasename", "plndr-svcs-lock"),
    ("vip_electionmode", "lease"),
    ("vip_livenessperiod", ""),
    ("lb_class_only", "false"),
    ("lb_class_name", DEFAULT_LB_CLASS),
    ("lb_class_legacy_handling", "true"),
    ("enable_endpoints", "false"),
    ("prometheus_server", ":2112"),
    ("health_check_port", ""),
    ("vip_nodename", ""),
    ("vip_arpRate", "3000"),
    ("vip_subnet", ""),
    ("vip_routingtable", "false"),
    ("vip_routingtableid", "198"),
    ("vip_routingprotocol", "248"),
    ("vip_routingtabletype", "unicast"),
    ("vip_cleanroutingtable", "false"),
    ("vip_skipdad", "false"),
    ("bgp_enable", "false"),
    ("cp_enable", "false"),
    ("kubeconfig", ""),
    ("vip_drain_on_cordon", "false"),
    ("vip_node_selector", ""),
    ("k8s_config_file", ""),
    ("enable_service_security", "false"),
    ("egress_podcidr", ""),
    ("egress_servicecidr", ""),
    ("egress_clean", "false"),
    # The address policy and sharing rules (docs/security.md).
    ("vip_allowed_cidrs", ""),
    ("vip_allowed_from_pools", "false"),
    ("vip_allowed_interfaces", ""),
    ("vip_service_cidrs", ""),
    ("svc_cross_namespace_sharing", "false"),
    ("KUBEVIP_CONFIG_MAP", "kubevip"),
    ("KUBEVIP_NAMESPACE", "kube-system"),
)
# The control-plane VIP's settings (docs/configuration.md, "Control-plane VIP").
SETTINGS += tuple(kv for kv in CP_SETTINGS if kv[0] not in {n for n, _ in SETTINGS})
# BGP mode's settings (docs/configuration.md, "BGP").
SETTINGS += tuple(kv for kv in BGP_SETTINGS if kv[0] not in {n for n, _ in SETTINGS})


@dataclass(frozen=True)
class ListenAddress:
    """A `host:port` to listen on; an empty host means every address."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}" if ":" not in self.host else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class PolicySettings:
    """The operator's side of the address policy (kubevip.core.policy); facts come from the cluster."""

    allowed_cidrs: tuple[IPNetwork, ...] = ()
    from_pools: bool = False
    interfaces: tuple[str, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    cross_namespace: bool = False
    # The IPAM ConfigMap read for `vip_allowed_from_pools` (the same names `kubevip ipam` reads).
    configmap: str = "kubevip"
    configmap_namespace: str = "kube-system"
    # IP literals of `address` / `vip_address` (the control-plane VIP): never a Service VIP.
    control_plane: frozenset[IPAddress] = frozenset()

    @classmethod
    def from_env(cls, s: Settings) -> PolicySettings:
        def cidrs(name: str) -> tuple[IPNetwork, ...]:
            value = s.str(name)
            try:
                return parse_cidrs(value)
            except ValueError as exc:
                raise ConfigError(name, value, str(exc)) from None

        cp: set[IPAddress] = set()
        for item in s.str("address", "", "vip_address").split(","):
            with contextlib.suppress(ValueError):  # a DNS name: resolved by the control plane, not here
                cp.add(ipaddress.ip_address(item.strip()))
        return cls(
            allowed_cidrs=cidrs("vip_allowed_cidrs"),
            from_pools=s.bool("vip_allowed_from_pools"),
            interfaces=parse_patterns(s.str("vip_allowed_interfaces")),
            service_cidrs=cidrs("vip_service_cidrs"),
            cross_namespace=s.bool("svc_cross_namespace_sharing"),
            configmap=s.str("KUBEVIP_CONFIG_MAP", "kubevip") or "kubevip",
            configmap_namespace=s.str("KUBEVIP_NAMESPACE", "kube-system") or "kube-system",
            control_plane=frozenset(cp),
        )


@dataclass(frozen=True)
class AgentConfig:
    """Everything `kubevip manager` needs, validated; built only by `AgentConfig.load`."""

    node_name: str
    services: bool
    arp: bool
    routing_table: bool
    bgp: bool
    interface: str
    services_interface: str
    namespace: str
    use_legacy_endpoints: bool
    election: ElectionConfig
    lb_class: ClassFilter
    prometheus: ListenAddress | None
    health_port: int | None
    arp_rate_ms: int
    kubeconfig: str
    net: NetSettings = field(default_factory=NetSettings)
    # enable_service_security, egress_* (kubevip.net.settings.PacketSettings, docs/egress.md).
    packets: PacketSettings = field(default_factory=PacketSettings)
    # cp_enable and friends (kubevip.controlplane.settings); disabled unless cp_enable=true.
    control_plane: ControlPlaneSettings | None = None
    # bgp_* and mpbgp_* (kubevip.bgp.settings); None unless bgp_enable=true.
    bgp_settings: BgpSettings | None = None
    # Which nodes may hold a Service VIP (vip_drain_on_cordon, vip_node_selector; docs/placement.md).
    placement: Rules = field(default_factory=Rules)
    policy: PolicySettings = field(default_factory=PolicySettings)
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # kube-vip's kubeconfig setting: tried after `kubeconfig`/KUBECONFIG (kubevip.kube.client).
    k8s_config_file: str = ""

    @property
    def mode(self) -> str:
        """The announcement mode name used in logs and manifests."""
        if self.arp:
            return "arp"
        if self.routing_table:
            return "routingtable"
        if self.bgp:
            return "bgp"
        return "none"

    @classmethod
    def load(cls, env: Mapping[str, str], flags: Mapping[str, str] | None = None) -> AgentConfig:
        """Read and validate; raises ConfigError naming the first bad variable."""
        s = Settings(env, flags)
        node = s.str("vip_nodename") or s.str("NODE_NAME") or ""
        services = s.bool("svc_enable")
        arp = s.bool("vip_arp")
        routing_table = s.bool("vip_routingtable")
        bgp = s.bool("bgp_enable")
        flags_on = (("vip_arp", arp), ("vip_routingtable", routing_table), ("bgp_enable", bgp))
        modes = [n for n, on in flags_on if on]
        if len(modes) > 1:
            raise ConfigError(modes[1], "true", f"one announcement mode at a time; {modes[0]} is already on")
        if not node:
            node = _hostname()
        if not node:
            raise ConfigError("vip_nodename", "", "set vip_nodename (or NODE_NAME) to this node's name")
        control_plane = ControlPlaneSettings.from_env(s)
        bgp_settings = BgpSettings.from_env(s) if bgp else None
        if bgp_settings is not None and control_plane.enabled:
            _check_control_plane_bgp(services, bgp_settings)
        election = config_from_settings(s)
        rate = s.int("vip_arpRate", 3000, minimum=0)
        if rate < 500:  # kube-vip's rule: tiny refresh intervals fall back to the default
            rate = 3000
        return cls(
            node_name=node,
            services=services,
            arp=arp,
            routing_table=routing_table,
            bgp=bgp,
            interface=s.str("vip_interface"),
            services_interface=s.str("vip_servicesinterface"),
            namespace=s.str("svc_namespace"),
            use_legacy_endpoints=s.bool("enable_endpoints"),
            election=election,
            lb_class=ClassFilter(
                only=s.bool("lb_class_only"),
                name=s.str("lb_class_name", DEFAULT_LB_CLASS) or DEFAULT_LB_CLASS,
                legacy_handling=s.bool("lb_class_legacy_handling", True),
            ),
            prometheus=_listen(s, "prometheus_server", ":2112"),
            health_port=_port(s, "health_check_port"),
            arp_rate_ms=rate,
            kubeconfig=s.str("kubeconfig") or s.str("KUBECONFIG"),
            net=NetSettings.from_env(s),
            packets=PacketSettings.from_env(s),
            control_plane=control_plane,
            bgp_settings=bgp_settings,
            placement=_placement(s, layer2=arp),
            policy=PolicySettings.from_env(s),
            raw=dict(env),
            k8s_config_file=s.str("k8s_config_file"),
        )


def _check_control_plane_bgp(services: bool, bgp: BgpSettings) -> None:
    """cp_enable with bgp_enable (docs/controlplane.md, "BGP"): what is not built yet, refused by name."""
    if services:
        # Both parts would run an ExaBGP from the same node address towards the same peers; a router
        # keeps one session per neighbour address, so one part's routes would vanish. One shared speaker
        # per process is not built yet: run the control plane in its own static Pod.
        raise ConfigError("svc_enable", "true", "cp_enable=true with bgp_enable=true runs the control-plane "
                          "VIP alone: run the Service agent (svc_enable=true) in its own Pod or DaemonSet "
                          "with its own BGP source address (docs/controlplane.md)")
    if not bgp.peers:
        raise ConfigError("bgp_peers", "", "cp_enable=true with bgp_enable=true needs bgp_peers or "
                          "bgp_peeraddress (the control plane does not read peers from Node annotations)")


def _placement(s: Settings, layer2: bool) -> Rules:
    raw = s.str("vip_node_selector")
    try:
        selector = labelselector.parse(raw)
    except InputError as exc:
        raise ConfigError("vip_node_selector", raw, str(exc)) from None
    return Rules(drain_on_cordon=s.bool("vip_drain_on_cordon"), node_selector=selector, layer2=layer2)
def unsupported_setting_warnings(env: Mapping[str, str]) -> list[str]:
    """One line per kube-vip setting in `env` that kubevip ignores or treats differently, with a value
    that matters (core.compat); the value is shown, as these settings carry no secrets."""
    return [f"{entry.name}={value}: kube-vip setting {entry.status} by kubevip ({entry.note})"
            for entry, value in unsupported_settings(env)]


def _hostname() -> str:
    try:
        return socket.gethostname().split(".")[0]
    except OSError:
        return ""


def listen_address(s: Settings, name: str, default: str) -> ListenAddress | None:
    """`host:port`, `[v6]:port` or `:port` of setting `name`; None when empty, `off` or `disabled`."""
    return _listen(s, name, default)


def _listen(s: Settings, name: str, default: str) -> ListenAddress | None:
    value = s.str(name, default)
    if value in ("", "off", "disabled"):
        return None
    host, sep, port_s = value.rpartition(":")
    if not sep:
        raise ConfigError(name, value, "expected host:port or :port (e.g. :2112), or empty to disable")
    host = host.strip("[]")
    try:
        port = int(port_s)
    except ValueError:
        raise ConfigError(name, value, "expected host:port or :port with a numeric port") from None
    if not 0 <= port <= 65535:
        raise ConfigError(name, value, "port must be 0-65535")
    return ListenAddress(host, port)


def _port(s: Settings, name: str) -> int | None:
    if not s.str(name):
        return None
    return s.int(name, 0, minimum=1, maximum=65535)


def load_from_process(flags: Mapping[str, str] | None = None) -> AgentConfig:
    """The configuration of this process: its environment, then the given flags."""
    return AgentConfig.load(os.environ, flags)
