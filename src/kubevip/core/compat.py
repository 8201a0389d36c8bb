"""kube-vip's whole surface (settings and Service annotations) and what kubevip does with each: one table.

It feeds the start-up WARN lines, the `UnsupportedAnnotation` Warning Events, `kubevip migrate check` and
the test that keeps docs/migration.md complete. kube-vip's names are read from its source
(pkg/kubevip/config_envvar.go and annotations.go, HEAD bee5cfe; /work/shared/KUBE-VIP-SURFACE.md).

Status:
  supported  same meaning and values as kube-vip;
  different  accepted, but kubevip behaves differently in a way an operator may notice (the note says how);
  ignored    kube-vip reads it, kubevip does not: a swap loses the feature unless the value leaves it off.
`inert` lists values with which an ignored or different entry changes nothing (the feature is off, or the
value is kube-vip's default that kubevip matches).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.core.views import ServiceView

SUPPORTED = "supported"
DIFFERENT = "different"
IGNORED = "ignored"
SETTING = "setting"
ANNOTATION = "annotation"
ANNOTATION_PREFIX = "kube-vip.io/"
OFF = ("", "false", "0", "no", "off", "f", "n")
OFF_OR_TRUE = (*OFF, "true")  # dead settings, or a value kubevip behaves as anyway
# The Warning Event's reason for a Service using kube-vip.io/* annotations kubevip does not honour (the
# Event-style spelling docs/migration.md names; kubevip's own codes are in core.reasons).
UNSUPPORTED_ANNOTATION = "UnsupportedAnnotation"


@dataclass(frozen=True)
class Entry:
    name: str
    kind: str
    status: str
    note: str = ""
    inert: tuple[str, ...] = ()

    def changes_behaviour(self, value: str) -> bool:
        """Whether a swap to kubevip changes what this entry does with `value`."""
        if self.status == SUPPORTED:
            return False
        return value.strip().lower() not in self.inert


def _s(name: str, status: str = SUPPORTED, note: str = "", inert: tuple[str, ...] = ()) -> Entry:
    return Entry(name, SETTING, status, note, inert)


def _a(name: str, status: str = SUPPORTED, note: str = "", inert: tuple[str, ...] = ()) -> Entry:
    return Entry(name, ANNOTATION, status, note, inert)


_NO_BGP_CP = ("with bgp_enable=true the control-plane VIP runs in its own Pod: svc_enable=true in the same "
              "process is refused (docs/controlplane.md)")

SETTINGS: tuple[Entry, ...] = (
    # Identity, logging, configuration sources
    _s("vip_nodename"),
    _s("vip_loglevel", note="kube-vip v1 slog level number; `kubevip --log-level` wins over it"),
    _s("k8s_config_file", note="then /etc/kubernetes/admin.conf, ~/.kube/config, in-cluster (kube-vip's "
       "order); kubevip's `kubeconfig`/KUBECONFIG come first"),
    _s("config_file", IGNORED, "settings come from the environment and flags only", inert=("",)),
    _s("instance_name", IGNORED, "names egress nftables tables; no egress in kubevip", inert=("",)),
    _s("annotation", IGNORED, "BGP peers from Node annotations are not read", inert=("",)),
    _s("vip_configmap", IGNORED, "dead in kube-vip's manager too", inert=("", "plndr")),
    _s("vip_singlenode", IGNORED, "dead in kube-vip too", inert=OFF_OR_TRUE),
    _s("vip_startleader", IGNORED, "dead in kube-vip too", inert=OFF_OR_TRUE),
    _s("debounce_time", IGNORED, "kubevip batches level-triggered passes instead", inert=("", "0", "0s")),
    # Interfaces and addresses
    _s("vip_interface"),
    _s("vip_servicesinterface", note="`auto`: the interface whose subnet contains the VIP"),
    _s("vip_interfaceloglobal", DIFFERENT, "VIPs on `lo` always get scope global (as if true)",
       inert=("true", "1")),
    _s("vip_allow_interface_not_up", DIFFERENT, "kubevip never checks the link state (as if true)",
       inert=("true", "1")),
    _s("vip_subnet", note="`v4,v6` prefix lengths or `auto` (the interface's own prefix)"),
    _s("vip_skipdad", DIFFERENT, "IPv6 VIPs are always added without DAD (as if true)",
       inert=OFF_OR_TRUE),
    _s("address"),
    _s("vip_address"),
    _s("port"),
    _s("dns_mode"),
    _s("vip_ddns", IGNORED, "no DHCP", inert=OFF),
    # Announcement modes
    _s("vip_arp"),
    _s("vip_arpRate"),
    _s("vip_routingtable"),
    _s("vip_routingtableid"),
    _s("vip_routingprotocol", note="at least 5 (smaller values are the kernel's own)"),
    _s("vip_routingtabletype", note="kube-vip's integer RTN_* value or a name (unicast, local, ...)"),
    _s("vip_cleanroutingtable"),
    _s("vip_wireguard", IGNORED, "no WireGuard mode", inert=OFF),
    _s("bgp_enable"),
    # Leader election
    _s("vip_leaderelection"),
    _s("vip_leasename", note="`ns/name` allowed"),
    _s("vip_leaseduration", note="kubevip's defaults are 1.5/1.0/0.25 s when unset; kube-vip's values work"),
    _s("vip_renewdeadline"),
    _s("vip_retryperiod"),
    _s("vip_leaseannotations", IGNORED, "no annotations are put on the Leases", inert=("", "{}")),
    _s("cp_namespace", note="the global Leases' namespace when the Pod's own is unknown (static Pods)"),
    _s("svc_election", DIFFERENT, "a dual-stack externalTrafficPolicy Local Service elects its second family "
       "on `<lease>-ipv4`/`-ipv6` (docs/migration.md)", inert=OFF_OR_TRUE),
    _s("svc_leasename", note="`ns/name` allowed"),
    _s("per_service_election_on_demand", IGNORED, "forcePerServiceElection is not read", inert=OFF),
    _s("vip_preserve_on_leadership_loss", IGNORED, "a leader that loses its Lease always withdraws (fencing)",
       inert=OFF),
    _s("vip_loseleadership", IGNORED, "leadership is not given up when the interface goes down", inert=OFF),
    _s("vip_loseleadership_timeout_seconds", IGNORED, "see vip_loseleadership", inert=("", "30")),
    # Control plane
    _s("cp_enable", note=_NO_BGP_CP),
    _s("cp_detect", DIFFERENT, "use cp_apiserver=local", inert=OFF),
    _s("kubernetes_addr", DIFFERENT, "use cp_apiserver=https://<addr>", inert=("",)),
    _s("control_plane_health_check_address", IGNORED, "kubevip checks the local /livez (cp_health_*)",
       inert=("",)),
    _s("control_plane_health_check_period_seconds", DIFFERENT, "see cp_health_period", inert=("", "5")),
    _s("control_plane_health_check_timeout_seconds", DIFFERENT, "see cp_health_timeout", inert=("", "3")),
    _s("control_plane_health_check_failure_threshold", DIFFERENT, "see cp_health_threshold", inert=("", "3")),
    _s("control_plane_health_check_ca_path", IGNORED, "the kubeconfig's CA is used", inert=("",)),
    _s("backend_health_check_interval", DIFFERENT, "see cp_health_period", inert=("", "5")),
    _s("lb_enable", IGNORED, "no IPVS load balancer", inert=OFF),
    _s("lb_port", IGNORED, "no IPVS load balancer", inert=("", "6443")),
    _s("lb_fwdmethod", IGNORED, "no IPVS load balancer", inert=("", "local")),
    # Services
    _s("svc_enable"),
    _s("svc_namespace"),
    _s("lb_class_only"),
    _s("lb_class_name"),
    _s("lb_class_legacy_handling"),
    _s("enable_endpoints"),
    _s("disable_service_updates", IGNORED, "status.loadBalancer is always written", inert=OFF),
    _s("enable_service_security", note="egress SNAT / service security (docs/configuration.md)"),
    _s("enable_node_labeling", IGNORED, "Nodes are not labelled", inert=OFF),
    _s("mirror_dest_interface", IGNORED, "no traffic mirror", inert=("",)),
    _s("enable_upnp", IGNORED, "no UPnP", inert=OFF),
    _s("health_check_port"),
    _s("prometheus_server"),
    # kube-vip's manifests always write dhcp_mode; it only matters for Services asking for 0.0.0.0 / ::.
    _s("dhcp_mode", IGNORED, "DHCP families follow the Service's ipFamilies; DHCPv4 only (docs/dhcp.md)",
       inert=("", "ipv4", "ipv6", "dual")),
    _s("dhcp_backoff_attempts", IGNORED, "the DHCP client retries until its Service goes (docs/dhcp.md)",
       inert=("", "3")),
    # Egress
    _s("egress_podcidr", note="egress SNAT / service security (docs/configuration.md)"),
    _s("egress_servicecidr", note="egress SNAT / service security (docs/configuration.md)"),
    _s("egress_withnftables", IGNORED, "no egress SNAT", inert=OFF_OR_TRUE),
    _s("egress_enableinternalsnat", IGNORED, "no egress SNAT", inert=OFF),
    _s("egress_clean", note="egress SNAT / service security (docs/configuration.md)"),
    _s("iptables_backend", IGNORED, "no egress SNAT", inert=("", "nft", "legacy")),
    # BGP
    _s("bgp_as"),
    _s("bgp_routerid"),
    _s("bgp_routerinterface"),
    _s("bgp_peeraddress"),
    _s("bgp_peeras"),
    _s("bgp_peerpass"),
    _s("bgp_multihop", DIFFERENT, "multihop sessions use TTL 255 (kube-vip: 50)", inert=OFF),
    _s("bgp_peers", note="the 7th (BFD) field and `unnumbered:` peers are refused"),
    _s("bgp_sourceip"),
    _s("bgp_sourceif"),
    _s("bgp_hold_time"),
    _s("bgp_keepalive_interval", DIFFERENT, "validated; ExaBGP sends keepalives every hold/3",
       inert=("",)),
    _s("bgp_attach_ip_to_interface", DIFFERENT, "BGP VIPs are always put on the interface (as if true)",
       inert=("true", "1")),
    _s("mpbgp_nexthop"),
    _s("mpbgp_ipv4"),
    _s("mpbgp_ipv6"),
    _s("zebra_enable", IGNORED, "no zebra redistribution", inert=OFF),
    _s("zebra_url", IGNORED, "no zebra redistribution", inert=("",)),
    _s("zebra_version", IGNORED, "no zebra redistribution", inert=("",)),
    _s("zebra_software_name", IGNORED, "no zebra redistribution", inert=("",)),
)

ANNOTATIONS: tuple[Entry, ...] = (
    _a("kube-vip.io/loadbalancerIPs", DIFFERENT, "IP addresses only (DNS names are refused with a Warning), "
       "within the address policy (docs/security.md)", inert=()),
    _a("kube-vip.io/ignore", note="exactly \"true\", as kube-vip compares it"),
    _a("kube-vip.io/serviceInterface", DIFFERENT, "only names `vip_allowed_interfaces` allows (default: "
       "none; `*` = kube-vip's behaviour); `auto`: the interface whose subnet contains the VIP; ignored in "
       "BGP mode", inert=("",)),
    _a("kube-vip.io/leaseName", note="`name` or `<own namespace>/name`; other namespaces are refused"),
    _a("kube-vip.io/allow-reconcile-without-endpoints"),
    _a("kube-vip.io/vipHost", note="written by the node holding the Service's first VIP"),
    _a("kube-vip.io/forcePerServiceElection", IGNORED, "per_service_election_on_demand is not supported",
       inert=OFF),
    _a("kube-vip.io/serviceVLAN", IGNORED, "no VLAN sub-interfaces", inert=("",)),
    _a("kube-vip.io/ignore-service-security", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress-internal", note="accepted; kubevip always uses nftables"),
    _a("kube-vip.io/egress-ipv6", note="accepted; every served family is translated with its own VIP"),
    _a("kube-vip.io/egress-destination-ports", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress-source-ports", IGNORED, "no egress SNAT (unused by kube-vip too)", inert=("",)),
    _a("kube-vip.io/egress-allowed-networks", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress-denied-networks", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress-no-internal-traffic",
       note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress-detect-api-server", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/active-endpoint", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/active-endpoint-ipv6", note="egress SNAT / service security (docs/configuration.md)"),
    _a("kube-vip.io/egress-nftables-table", IGNORED, "egress state; not written", inert=("",)),
    _a("kube-vip.io/flush-conntrack", IGNORED, "unused by kube-vip too", inert=OFF),
    _a("kube-vip.io/loadbalancerHostname", note="DHCP option 12, for the server's DDNS (docs/dhcp.md)"),
    _a("kube-vip.io/hwaddr", note="DHCP macvlan MAC, honoured and written; unset: derived from the Service"
       " (kube-vip: random) (docs/dhcp.md)"),
    _a("kube-vip.io/requestedIP",
       note="DHCP: asked for first, written with the leased address (docs/dhcp.md)"),
    _a("kube-vip.io/macvlanName", note="DHCP macvlan name (docs/dhcp.md)"),
    _a("kube-vip.io/dhcp-broadcast", IGNORED, "the DHCP client never sets the BROADCAST flag", inert=OFF),
    _a("kube-vip.io/rp_filter", IGNORED, "the DHCP macvlan always gets rp_filter 0 (kube-vip's default)",
       inert=("", "0")),
    _a("kube-vip.io/ddns", IGNORED, "no DDNS", inert=OFF),
    _a("kube-vip.io/forwardUPNP", IGNORED, "no UPnP", inert=OFF),
    _a("kube-vip.io/upnp-lease-duration", IGNORED, "no UPnP", inert=("",)),
)

# kubevip's own kube-vip.io/* annotations (docs/bgp.md): not kube-vip's, never "unsupported".
KUBEVIP_ANNOTATIONS = frozenset({
    "kube-vip.io/bgp-communities", "kube-vip.io/bgp-large-communities", "kube-vip.io/allow-shared-ip",
    # docs/placement.md
    "kube-vip.io/node-selector", "kube-vip.io/preferred-nodes",
    # written by the agent (docs/status.md)
    "kube-vip.io/vipHost-ipv6",
})

SETTING_BY_NAME: Mapping[str, Entry] = {e.name: e for e in SETTINGS}
ANNOTATION_BY_NAME: Mapping[str, Entry] = {e.name: e for e in ANNOTATIONS}


def unsupported_settings(env: Mapping[str, str]) -> tuple[tuple[Entry, str], ...]:
    """kube-vip settings in `env` whose value a swap to kubevip would change or drop, by name."""
    return tuple(sorted(
        ((e, env[e.name]) for e in SETTINGS if e.name in env and e.changes_behaviour(env[e.name])),
        key=lambda ev: ev[0].name,
    ))


def unsupported_annotations(service: ServiceView) -> tuple[tuple[str, str], ...]:
    """(key, value) of the Service's kube-vip.io/* annotations kubevip does not honour, by key.

    An unknown kube-vip.io/* key counts too (a typo or a newer kube-vip feature is worth a word)."""
    out = []
    for key, value in service.annotations:
        if not key.startswith(ANNOTATION_PREFIX) or key in KUBEVIP_ANNOTATIONS:
            continue
        entry = ANNOTATION_BY_NAME.get(key)
        if entry is None or (entry.status == IGNORED and entry.changes_behaviour(value)):
            out.append((key, value))
    return tuple(sorted(out))


def describe_annotations(keys: Iterable[str]) -> str:
    """One sentence for an Event: each key with why it is not honoured."""
    parts = []
    for k in keys:
        entry = ANNOTATION_BY_NAME.get(k)
        known = entry is not None and entry.note
        parts.append(f"{k} ({entry.note})" if entry is not None and known else f"{k} (unknown to kubevip)")
    return "; ".join(parts)
