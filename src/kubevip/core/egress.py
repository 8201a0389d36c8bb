"""Egress SNAT and Service security: which packet rules this node wants, decided per family (docs/egress.md).

Pure. Inputs are the Services' decisions (families, VIPs, usable endpoints per family), the VIPs this node
holds and the cluster's networks; the answer is a `PacketRules` value that net/nftables.py renders. A family
a Service does not serve never gets a rule: its endpoints are not even in the decision (core/endpoints.py
drops them), and rules are built per served family from that family's VIP and endpoints only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubevip.core import reasons
from kubevip.core.conditions import WARNING, Condition
from kubevip.core.plan import ANN_EGRESS, ServiceDecision, egress_enabled, endpoint_bound
from kubevip.core.views import IPAddress, IPFamily, ServiceView
from kubevip.ip import IPNetwork

ANN_EGRESS_IPV6 = "kube-vip.io/egress-ipv6"
ANN_EGRESS_INTERNAL = "kube-vip.io/egress-internal"
ANN_DESTINATION_PORTS = "kube-vip.io/egress-destination-ports"
ANN_ALLOWED_NETWORKS = "kube-vip.io/egress-allowed-networks"
ANN_DENIED_NETWORKS = "kube-vip.io/egress-denied-networks"
ANN_NO_INTERNAL_TRAFFIC = "kube-vip.io/egress-no-internal-traffic"
ANN_DETECT_API_SERVER = "kube-vip.io/egress-detect-api-server"
ANN_IGNORE_SECURITY = "kube-vip.io/ignore-service-security"
# Written by the agent holding the VIP, as kube-vip does: the local endpoint used for egress, per family.
ANN_ACTIVE_ENDPOINT = "kube-vip.io/active-endpoint"
ANN_ACTIVE_ENDPOINT_IPV6 = "kube-vip.io/active-endpoint-ipv6"

__all__ = ["ANN_EGRESS", "egress_enabled", "endpoint_bound"]  # and what is defined here

PROTOCOLS = ("tcp", "udp", "sctp")
# Bounded work per Service (tenant input): more entries than this in one annotation is an error.
MAX_ENTRIES = 64


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


@dataclass(frozen=True)
class EgressSpec:
    """A Service's egress annotations, parsed; `errors` name each bad entry (field and value)."""

    enabled: bool
    ports: tuple[tuple[str, int], ...] = ()
    allowed: tuple[IPNetwork, ...] | None = None  # None: any destination
    denied: tuple[IPNetwork, ...] = ()
    internal_exempt: bool = True
    detect_api_server: bool = False
    errors: tuple[str, ...] = ()


def _split(value: str | None) -> list[str]:
    return [p.strip() for p in (value or "").split(",") if p.strip()]


def _networks(field: str, value: str | None, errors: list[str]) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    items = _split(value)
    if len(items) > MAX_ENTRIES:
        errors.append(f"{field}: {len(items)} entries, at most {MAX_ENTRIES}")
        items = items[:MAX_ENTRIES]
    for item in items:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            errors.append(f"{field}: {item!r} is not an address or CIDR")
    return tuple(sorted(set(out), key=_net_key))


def _ports(value: str | None, errors: list[str]) -> tuple[tuple[str, int], ...]:
    """kube-vip's `proto:port,...` (a bare port is TCP)."""
    out: set[tuple[str, int]] = set()
    items = _split(value)
    if len(items) > MAX_ENTRIES:
        errors.append(f"{ANN_DESTINATION_PORTS}: {len(items)} entries, at most {MAX_ENTRIES}")
        items = items[:MAX_ENTRIES]
    for item in items:
        proto, sep, port = item.rpartition(":")
        proto = proto.strip().lower() if sep else "tcp"
        if proto not in PROTOCOLS or not port.strip().isdigit() or not 1 <= int(port) <= 65535:
            errors.append(f"{ANN_DESTINATION_PORTS}: {item!r} is not protocol:port (tcp, udp, sctp; 1-65535)")
            continue
        out.add((proto, int(port)))
    return tuple(sorted(out))


def egress_spec(service: ServiceView) -> EgressSpec:
    """Parse the Service's egress annotations (nothing but `enabled=False` when egress is off)."""
    if not egress_enabled(service):
        return EgressSpec(False)
    errors: list[str] = []
    ports = _ports(service.annotation(ANN_DESTINATION_PORTS), errors)
    allowed_raw = service.annotation(ANN_ALLOWED_NETWORKS)
    allowed = _networks(ANN_ALLOWED_NETWORKS, allowed_raw, errors) if _split(allowed_raw) else None
    denied = _networks(ANN_DENIED_NETWORKS, service.annotation(ANN_DENIED_NETWORKS), errors)
    return EgressSpec(
        enabled=True,
        ports=ports,
        allowed=allowed,
        denied=denied,
        # kube-vip: pod and Service CIDRs are exempt unless egress-no-internal-traffic is "true".
        internal_exempt=not _true(service.annotation(ANN_NO_INTERNAL_TRAFFIC)),
        detect_api_server=_true(service.annotation(ANN_DETECT_API_SERVER)),
        errors=tuple(errors),
    )


@dataclass(frozen=True)
class ClusterNetworks:
    """Destinations egress may exempt: pod and Service CIDRs (settings or discovered) and the API server."""

    pod_cidrs: tuple[IPNetwork, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    api_servers: tuple[IPAddress, ...] = ()


@dataclass(frozen=True)
class SnatRule:
    """Traffic from `sources` (this node's endpoints of one family) leaves with `vip` as its source,
    except to `exempt`; only to `allowed` when given; only to `ports` ((protocol, port)) when given."""

    service: str
    family: IPFamily
    vip: IPAddress
    sources: tuple[IPAddress, ...]
    exempt: tuple[IPNetwork, ...]
    allowed: tuple[IPNetwork, ...] | None
    ports: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class GuardRule:
    """Service security: on `vip`, only `ports` ((protocol, port)) are reachable."""

    vip: IPAddress
    ports: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class PacketRules:
    """Everything this node's packet-rule table should hold."""

    snat: tuple[SnatRule, ...] = ()
    guards: tuple[GuardRule, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.snat and not self.guards


def _net_key(n: IPNetwork) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)


def _of(family: IPFamily, nets: Iterable[IPNetwork]) -> tuple[IPNetwork, ...]:
    version = 4 if family == IPFamily.IPV4 else 6
    return tuple(sorted({n for n in nets if n.version == version}, key=_net_key))


def _host(a: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(a)


def snat_rules(
    decision: ServiceDecision, spec: EgressSpec, held: frozenset[IPAddress], me: str, nets: ClusterNetworks
) -> tuple[SnatRule, ...]:
    """One rule per served family whose (first) VIP this node holds and which has local endpoints."""
    if not spec.enabled or not decision.announce:
        return ()
    out: list[SnatRule] = []
    for family in decision.families:
        vips = [v.address for v in decision.vips_of(family) if v.address in held]
        if not vips:
            continue
        sources = tuple(sorted(
            {e.address for e in decision.endpoints.get(family, ()) if e.node == me and e.family == family},
            key=int,
        ))
        if not sources:
            continue
        allowed = None if spec.allowed is None else _of(family, spec.allowed)
        if allowed == ():
            continue  # only other families' destinations are allowed: nothing of this family leaves as VIP
        exempt: list[IPNetwork] = list(spec.denied)
        if spec.internal_exempt:
            exempt += [*nets.pod_cidrs, *nets.service_cidrs]
        if spec.detect_api_server:
            exempt += [_host(a) for a in nets.api_servers]
        out.append(
            SnatRule(decision.service, family, vips[0], sources, _of(family, exempt), allowed, spec.ports)
        )
    return tuple(out)


def node_rules(
    services: Iterable[tuple[ServiceView, ServiceDecision]],
    held: frozenset[IPAddress],
    me: str,
    nets: ClusterNetworks,
    service_security: bool,
) -> PacketRules:
    """This node's rules. `services` in claim order (earliest first): a pod address that two egress
    Services select leaves with the earlier one's VIP. Guards cover every held VIP of a Service with
    ports unless a Service on that VIP opts out (`kube-vip.io/ignore-service-security: "true"`)."""
    snat: list[SnatRule] = []
    taken: set[IPAddress] = set()
    guard_ports: dict[IPAddress, set[tuple[str, int]]] = {}
    ignored: set[IPAddress] = set()
    for view, decision in services:
        for rule in snat_rules(decision, egress_spec(view), held, me, nets):
            free = tuple(s for s in rule.sources if s not in taken)
            if free:
                taken.update(free)
                snat.append(SnatRule(rule.service, rule.family, rule.vip, free, rule.exempt, rule.allowed,
                                     rule.ports))
        if not service_security or not decision.announce:
            continue
        mine = [v.address for v in decision.vips if v.address in held]
        if _true(view.annotation(ANN_IGNORE_SECURITY)) or not view.ports:
            ignored.update(mine)  # kube-vip: no ports, no restriction
            continue
        ports = {((p.protocol or "TCP").lower(), p.port) for p in view.ports}
        for a in mine:
            guard_ports.setdefault(a, set()).update(ports)
    guards = tuple(
        GuardRule(a, tuple(sorted(p)))
        for a, p in sorted(guard_ports.items(), key=lambda kv: (kv[0].version, int(kv[0])))
        if a not in ignored
    )
    return PacketRules(tuple(sorted(snat, key=lambda r: (r.service, r.family.value))), guards)


def active_endpoints(
    decision: ServiceDecision, held: frozenset[IPAddress], me: str
) -> Mapping[str, str | None]:
    """kube-vip's `active-endpoint` / `active-endpoint-ipv6` as this node should write them: a key per
    served family whose VIP this node holds (the holder of the other family writes its own), valued with
    the first local endpoint translated here, or None (remove) when there is none."""
    out: dict[str, str | None] = {}
    for family in decision.families:
        if not any(v.address in held for v in decision.vips_of(family)):
            continue
        local = sorted((e.address for e in decision.endpoints.get(family, ()) if e.node == me), key=int)
        key = ANN_ACTIVE_ENDPOINT if family == IPFamily.IPV4 else ANN_ACTIVE_ENDPOINT_IPV6
        out[key] = str(local[0]) if local else None
    return out


def _parse_networks(values: Iterable[object]) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError:
            continue  # written by the API server's own validation: never expected, never fatal
    return out


def discovered_networks(
    nodes: Iterable[Mapping[str, object]],
    service_cidrs: Iterable[Mapping[str, object]],
    api_slices: Iterable[Mapping[str, object]],
    api_hosts: Iterable[str] = (),
    pod_cidrs_setting: tuple[IPNetwork, ...] | None = None,
    service_cidrs_setting: tuple[IPNetwork, ...] | None = None,
) -> ClusterNetworks:
    """ClusterNetworks from API objects (as JSON): every Node's `spec.podCIDRs`, every ServiceCIDR's
    `spec.cidrs`, the addresses of the `default/kubernetes` EndpointSlices, plus API server hosts that are
    address literals (the kubeconfig's server, KUBERNETES_SERVICE_HOST). Settings replace discovery."""

    def spec(obj: Mapping[str, object]) -> Mapping[str, object]:
        s = obj.get("spec")
        return s if isinstance(s, Mapping) else {}

    def listed(value: object) -> list[object]:
        return list(value) if isinstance(value, list) else []

    pods = pod_cidrs_setting
    if pods is None:
        pods = tuple(_parse_networks(c for n in nodes for c in listed(spec(n).get("podCIDRs"))))
    services = service_cidrs_setting
    if services is None:
        services = tuple(_parse_networks(c for o in service_cidrs for c in listed(spec(o).get("cidrs"))))
    apis: set[IPAddress] = set()
    for s in api_slices:
        for ep in listed(s.get("endpoints")):
            if isinstance(ep, Mapping):
                apis.update(a.network_address for a in _parse_networks(listed(ep.get("addresses"))))
    for host in api_hosts:
        try:
            apis.add(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            continue  # a name, not an address: nothing to exempt by address
    return ClusterNetworks(
        tuple(sorted(set(pods), key=_net_key)),
        tuple(sorted(set(services), key=_net_key)),
        tuple(sorted(apis, key=lambda a: (a.version, int(a)))),
    )


def egress_warnings(service: ServiceView) -> frozenset[Condition]:
    """A Warning per unusable egress annotation entry (one Event each, named after the condition)."""
    return frozenset(
        Condition(service.key, WARNING, reasons.EGRESS_ANNOTATION_INVALID, f"egress annotation ignored: {e}")
        for e in egress_spec(service).errors
    )
