"""Small frozen views of Kubernetes objects: the only shapes the pure core reasons about.

The shapes kept per Service (these views, and the claims, plans and decisions derived from them) are
slotted dataclasses: no per-instance attribute table, about 0.7 KB less per Service (issue 21, RSS at
1000 Services).
"""

from __future__ import annotations

from dataclasses import dataclass

from kubevip.ip import IPAddress, IPFamily, IPNetwork, NodeName, ServiceKey, UnitId

# Re-exported: the core's modules import them from here.
__all__ = ["IPAddress", "IPFamily", "IPNetwork", "NodeName", "ServiceKey", "UnitId"]

# Sort key that puts IPv4 before IPv6; used only where no primary-first order exists.
FAMILY_ORDER: dict[IPFamily, int] = {IPFamily.IPV4: 0, IPFamily.IPV6: 1}

SINGLE_STACK = "SingleStack"
PREFER_DUAL_STACK = "PreferDualStack"
REQUIRE_DUAL_STACK = "RequireDualStack"
IP_FAMILY_POLICIES = (SINGLE_STACK, PREFER_DUAL_STACK, REQUIRE_DUAL_STACK)

TRAFFIC_CLUSTER = "Cluster"
TRAFFIC_LOCAL = "Local"


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One entry of `spec.ports`."""

    name: str
    protocol: str
    port: int


@dataclass(frozen=True, slots=True)
class StatusCondition:
    """One entry of a Service's `status.conditions` (metav1.Condition), as written or to be written."""

    type: str
    status: str  # "True" | "False"
    reason: str
    message: str
    last_transition: str = ""  # RFC 3339; kept while the status does not change

    def same(self, other: StatusCondition) -> bool:
        """Equal but for the transition time: no write needed."""
        return (self.type, self.status, self.reason, self.message) == (
            other.type, other.status, other.reason, other.message)


@dataclass(frozen=True, slots=True)
class ServiceView:
    """A Service as the core needs it; `ip_family_policy` None means unset (treated as SingleStack)."""

    namespace: str
    name: str
    uid: str
    type: str
    ip_families: tuple[IPFamily, ...]
    ip_family_policy: str | None
    cluster_ips: tuple[IPAddress, ...]
    load_balancer_ip: str | None
    load_balancer_class: str | None
    external_traffic_policy: str
    annotations: tuple[tuple[str, str], ...]
    ports: tuple[ServicePort, ...]
    resource_version: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    # Current `status.loadBalancer.ingress[].ip` values: for status writers to diff; never a VIP source.
    status_ingress: tuple[str, ...] = ()
    # Current `status.conditions` of kubevip's types (`kube-vip.io/*`): for the writer to diff.
    status_conditions: tuple[StatusCondition, ...] = ()

    @property
    def key(self) -> ServiceKey:
        return ServiceKey(f"{self.namespace}/{self.name}")

    def annotation(self, key: str) -> str | None:
        """The value of annotation `key`, or None when absent."""
        for k, v in self.annotations:
            if k == key:
                return v
        return None

    def label(self, key: str) -> str | None:
        """The value of label `key`, or None when absent."""
        for k, v in self.labels:
            if k == key:
                return v
        return None


@dataclass(frozen=True, slots=True)
class EndpointView:
    """One endpoint address with Kubernetes conditions already defaulted (unset ready = True, ...)."""

    address: IPAddress
    family: IPFamily
    node: str | None
    ready: bool
    serving: bool
    terminating: bool


@dataclass(frozen=True, slots=True)
class EndpointSliceView:
    """An EndpointSlice; `service_name` comes from the `kubernetes.io/service-name` label."""

    namespace: str
    name: str
    service_name: str | None
    address_type: str
    endpoints: tuple[EndpointView, ...]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class LegacyEndpointsView:
    """A legacy Endpoints object (named like its Service)."""

    namespace: str
    name: str
    endpoints: tuple[EndpointView, ...]

    @property
    def key(self) -> ServiceKey:
        return ServiceKey(f"{self.namespace}/{self.name}")
