"""Kubernetes JSON objects (camelCase dicts, as the API returns them) -> core views.

Every malformed field raises InputError naming the object, the field and the value.

Strings that many objects repeat (namespaces, annotation and label keys, condition texts, a Service's
name in its EndpointSlices' labels) are interned: the JSON decoder makes a new string for every
occurrence, and the views keep them for as long as the object lives. At 1000 Services that is about
30 strings a Service (issue 21, RSS at 1000 Services).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Mapping
from typing import Any

from kubevip.core.views import (
    IP_FAMILY_POLICIES,
    TRAFFIC_CLUSTER,
    TRAFFIC_LOCAL,
    EndpointSliceView,
    EndpointView,
    IPAddress,
    IPFamily,
    IPNetwork,
    LegacyEndpointsView,
    ServicePort,
    ServiceView,
    StatusCondition,
)
from kubevip.errors import InputError

DEFAULT_NAMESPACE = "default"
LABEL_SERVICE_NAME = "kubernetes.io/service-name"
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
# Values up to this long are interned (keys always): "true", node and class names; not a long value
# such as kubectl's last-applied-configuration.
SHORT_VALUE = 64


def shared(text: str) -> str:
    """The one copy of `text` that every view keeps (sys.intern: freed again once no view holds it)."""
    return sys.intern(text) if type(text) is str else text


def _short(text: str) -> str:
    return shared(text) if len(text) <= SHORT_VALUE else text


def _pair(k: str, v: str) -> tuple[str, str]:
    return shared(k), _short(v)

__all__ = [
    "endpoints_from_dict", "endpointslice_from_dict", "node_addresses_from_dict", "object_ref",
    "service_cidrs_from_dict", "service_from_dict", "shared",
]


def object_ref(kind: str, d: Mapping[str, Any]) -> str:
    """`Kind ns/name` for messages, tolerating missing metadata."""
    meta = d.get("metadata") if isinstance(d, Mapping) else None
    meta = meta if isinstance(meta, Mapping) else {}
    name = meta.get("name") or "<unnamed>"
    return f"{kind} {meta.get('namespace') or DEFAULT_NAMESPACE}/{name}"


class _Reader:
    """Typed access to one object's fields; every failure names object, field and value."""

    def __init__(self, kind: str, d: object) -> None:
        if not isinstance(d, Mapping):
            raise InputError(f"{kind}: expected an object (mapping), got {type(d).__name__}")
        self.d: Mapping[str, Any] = d
        self.ref = object_ref(kind, d)

    def fail(self, path: str, value: object, want: str) -> InputError:
        return InputError(f"{self.ref}: {path}={value!r}: {want}")

    def mapping(self, value: object, path: str) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(path, value, "must be an object")
        return value

    def listing(self, value: object, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(path, value, "must be a list")
        return value

    def string(self, value: object, path: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                raise self.fail(path, value, "is required")
            return None
        if not isinstance(value, str):
            raise self.fail(path, value, "must be a string")
        if required and not value:
            raise self.fail(path, value, "must not be empty")
        return value

    def boolean(self, value: object, path: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        raise self.fail(path, value, "must be true, false or unset")

    def address(self, value: object, path: str) -> IPAddress:
        text = self.string(value, path, required=True)
        assert text is not None
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise self.fail(path, value, "is not an IP address") from None

    def string_pairs(self, value: object, path: str) -> tuple[tuple[str, str], ...]:
        items = self.mapping(value, path)
        for k, v in items.items():
            if not isinstance(v, str):
                raise self.fail(f"{path}[{k!r}]", v, "must be a string (quote it in YAML)")
        return tuple(sorted(_pair(str(k), v) for k, v in items.items()))

    def meta(self) -> tuple[str, str, Mapping[str, Any]]:
        meta = self.mapping(self.d.get("metadata"), "metadata")
        name = self.string(meta.get("name"), "metadata.name", required=True)
        namespace = self.string(meta.get("namespace"), "metadata.namespace") or DEFAULT_NAMESPACE
        assert name is not None
        return shared(namespace), name, meta


def service_from_dict(d: Mapping[str, Any]) -> ServiceView:
    """A Service object -> ServiceView; `status.loadBalancer.ingress` kept for writers, never a VIP."""
    r = _Reader("Service", d)
    namespace, name, meta = r.meta()
    spec = r.mapping(d.get("spec"), "spec")
    families: list[IPFamily] = []
    for i, value in enumerate(r.listing(spec.get("ipFamilies"), "spec.ipFamilies")):
        if value not in (IPFamily.IPV4.value, IPFamily.IPV6.value):
            raise r.fail(f"spec.ipFamilies[{i}]", value, "must be IPv4 or IPv6")
        families.append(IPFamily(value))
    policy = r.string(spec.get("ipFamilyPolicy"), "spec.ipFamilyPolicy") or None
    if policy is not None and policy not in IP_FAMILY_POLICIES:
        raise r.fail("spec.ipFamilyPolicy", policy, f"must be one of {', '.join(IP_FAMILY_POLICIES)}")
    cluster_ips: list[IPAddress] = []
    raw_ips = spec.get("clusterIPs")
    ips_path = "spec.clusterIPs"
    if raw_ips is None and spec.get("clusterIP") is not None:
        raw_ips, ips_path = [spec.get("clusterIP")], "spec.clusterIP"
    for i, value in enumerate(r.listing(raw_ips, ips_path)):
        path = ips_path if ips_path == "spec.clusterIP" else f"{ips_path}[{i}]"
        if value in ("None", ""):  # headless Service, or not yet allocated
            continue
        cluster_ips.append(r.address(value, path))
    etp = r.string(spec.get("externalTrafficPolicy"), "spec.externalTrafficPolicy") or TRAFFIC_CLUSTER
    if etp not in (TRAFFIC_CLUSTER, TRAFFIC_LOCAL):
        raise r.fail("spec.externalTrafficPolicy", etp, "must be Cluster or Local")
    ports: list[ServicePort] = []
    for i, raw in enumerate(r.listing(spec.get("ports"), "spec.ports")):
        port = r.mapping(raw, f"spec.ports[{i}]")
        number = port.get("port")
        if not isinstance(number, int) or isinstance(number, bool) or not 0 < number < 65536:
            raise r.fail(f"spec.ports[{i}].port", number, "must be an integer 1-65535")
        ports.append(
            ServicePort(
                name=shared(r.string(port.get("name"), f"spec.ports[{i}].name") or ""),
                protocol=shared(r.string(port.get("protocol"), f"spec.ports[{i}].protocol") or "TCP"),
                port=number,
            )
        )
    status = r.mapping(d.get("status"), "status")
    lb_status = r.mapping(status.get("loadBalancer"), "status.loadBalancer")
    ingress: list[str] = []
    for i, raw in enumerate(r.listing(lb_status.get("ingress"), "status.loadBalancer.ingress")):
        entry = r.mapping(raw, f"status.loadBalancer.ingress[{i}]")
        ip = r.string(entry.get("ip"), f"status.loadBalancer.ingress[{i}].ip")
        if ip:
            ingress.append(ip)
    lb_ip = r.string(spec.get("loadBalancerIP"), "spec.loadBalancerIP")
    conditions = _own_conditions(status.get("conditions"))
    return ServiceView(
        namespace=namespace,
        name=shared(name),  # its EndpointSlices' kubernetes.io/service-name label says it again
        uid=r.string(meta.get("uid"), "metadata.uid") or "",
        type=shared(r.string(spec.get("type"), "spec.type") or "ClusterIP"),
        ip_families=tuple(families),
        ip_family_policy=shared(policy) if policy is not None else None,
        cluster_ips=tuple(cluster_ips),
        load_balancer_ip=lb_ip or None,
        load_balancer_class=r.string(spec.get("loadBalancerClass"), "spec.loadBalancerClass") or None,
        external_traffic_policy=shared(etp),
        annotations=r.string_pairs(meta.get("annotations"), "metadata.annotations"),
        ports=tuple(ports),
        resource_version=r.string(meta.get("resourceVersion"), "metadata.resourceVersion") or "",
        labels=r.string_pairs(meta.get("labels"), "metadata.labels"),
        status_ingress=tuple(ingress),
        status_conditions=conditions,
    )


CONDITION_PREFIX = "kube-vip.io/"


def _own_conditions(raw: object) -> tuple[StatusCondition, ...]:
    """kubevip's entries of `status.conditions`; others' entries are not ours to judge (an odd one never
    makes the Service unusable), and ours are rewritten when they look wrong."""
    if not isinstance(raw, list):
        return ()
    out: list[StatusCondition] = []
    for c in raw:
        if not isinstance(c, Mapping) or not str(c.get("type", "")).startswith(CONDITION_PREFIX):
            continue
        out.append(StatusCondition(*(_short(str(c.get(k) or "")) for k in (
            "type", "status", "reason", "message", "lastTransitionTime"))))
    return tuple(out)


def endpointslice_from_dict(d: Mapping[str, Any]) -> EndpointSliceView:
    """An EndpointSlice -> view; conditions defaulted as Kubernetes does; FQDN slices empty."""
    r = _Reader("EndpointSlice", d)
    namespace, name, meta = r.meta()
    labels = dict(r.string_pairs(meta.get("labels"), "metadata.labels"))
    address_type = r.string(d.get("addressType"), "addressType", required=True)
    if address_type not in ADDRESS_TYPES:
        raise r.fail("addressType", address_type, "must be IPv4, IPv6 or FQDN")
    endpoints: list[EndpointView] = []
    raw_endpoints = r.listing(d.get("endpoints"), "endpoints")
    if address_type != "FQDN":
        for i, raw in enumerate(raw_endpoints):
            ep = r.mapping(raw, f"endpoints[{i}]")
            addresses = r.listing(ep.get("addresses"), f"endpoints[{i}].addresses")
            if not addresses:
                raise r.fail(f"endpoints[{i}].addresses", ep.get("addresses"), "needs at least one address")
            # The addresses of one endpoint are fungible; like kube-proxy we use the first.
            address = r.address(addresses[0], f"endpoints[{i}].addresses[0]")
            cond = r.mapping(ep.get("conditions"), f"endpoints[{i}].conditions")
            ready = r.boolean(cond.get("ready"), f"endpoints[{i}].conditions.ready")
            serving = r.boolean(cond.get("serving"), f"endpoints[{i}].conditions.serving")
            terminating = r.boolean(cond.get("terminating"), f"endpoints[{i}].conditions.terminating")
            ready = True if ready is None else ready
            endpoints.append(
                EndpointView(
                    address=address,
                    family=IPFamily.of(address),
                    node=r.string(ep.get("nodeName"), f"endpoints[{i}].nodeName") or None,
                    ready=ready,
                    serving=ready if serving is None else serving,
                    terminating=False if terminating is None else terminating,
                )
            )
    return EndpointSliceView(
        namespace=namespace,
        name=name,
        service_name=labels.get(LABEL_SERVICE_NAME),  # interned with the labels: its Service's name
        address_type=shared(address_type),
        endpoints=tuple(endpoints),
    )


def endpoints_from_dict(d: Mapping[str, Any]) -> LegacyEndpointsView:
    """A legacy Endpoints object -> view; `addresses` are ready, `notReadyAddresses` are not."""
    r = _Reader("Endpoints", d)
    namespace, name, _ = r.meta()
    endpoints: list[EndpointView] = []
    for i, raw in enumerate(r.listing(d.get("subsets"), "subsets")):
        subset = r.mapping(raw, f"subsets[{i}]")
        for field, ready in (("addresses", True), ("notReadyAddresses", False)):
            for j, raw_addr in enumerate(r.listing(subset.get(field), f"subsets[{i}].{field}")):
                path = f"subsets[{i}].{field}[{j}]"
                entry = r.mapping(raw_addr, path)
                address = r.address(entry.get("ip"), f"{path}.ip")
                endpoints.append(
                    EndpointView(
                        address=address,
                        family=IPFamily.of(address),
                        node=r.string(entry.get("nodeName"), f"{path}.nodeName") or None,
                        ready=ready,
                        serving=ready,
                        terminating=False,
                    )
                )
    return LegacyEndpointsView(namespace=namespace, name=name, endpoints=tuple(endpoints))


def node_addresses_from_dict(d: Mapping[str, Any]) -> tuple[str, frozenset[IPAddress]]:
    """A Node -> (name, the IP addresses of `status.addresses`); Hostname entries and junk are skipped
    (the address policy only needs what could be mistaken for a VIP)."""
    r = _Reader("Node", d)
    meta = r.mapping(d.get("metadata"), "metadata")
    name = r.string(meta.get("name"), "metadata.name", required=True) or ""
    status = r.mapping(d.get("status"), "status")
    out: set[IPAddress] = set()
    for i, raw in enumerate(r.listing(status.get("addresses"), "status.addresses")):
        entry = r.mapping(raw, f"status.addresses[{i}]")
        text = entry.get("address")
        if isinstance(text, str):
            try:
                out.add(ipaddress.ip_address(text.strip()))
            except ValueError:
                continue
    return name, frozenset(out)


def service_cidrs_from_dict(d: Mapping[str, Any]) -> tuple[str, tuple[IPNetwork, ...]]:
    """A ServiceCIDR (networking.k8s.io) -> (name, `spec.cidrs`)."""
    r = _Reader("ServiceCIDR", d)
    meta = r.mapping(d.get("metadata"), "metadata")
    name = r.string(meta.get("name"), "metadata.name", required=True) or ""
    spec = r.mapping(d.get("spec"), "spec")
    out: list[IPNetwork] = []
    for i, value in enumerate(r.listing(spec.get("cidrs"), "spec.cidrs")):
        text = r.string(value, f"spec.cidrs[{i}]", required=True) or ""
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise r.fail(f"spec.cidrs[{i}]", value, "is not a CIDR") from None
    return name, tuple(out)
