"""The whole-Service verdict (families, VIPs, endpoints) and this node's share of it, per family."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kubevip.core import endpoints as eps
from kubevip.core import reasons
from kubevip.core.families import effective_policy, served_families
from kubevip.core.interface import requested_interface
from kubevip.core.policy import DEFAULT_POLICY, AddressPolicy, interface_allowed
from kubevip.core.views import (
    REQUIRE_DUAL_STACK,
    TRAFFIC_LOCAL,
    EndpointSliceView,
    EndpointView,
    IPFamily,
    LegacyEndpointsView,
    ServiceView,
)
from kubevip.core.vips import Rejection, VipChoice, choose, well_formed

ANNOTATION_IGNORE = "kube-vip.io/ignore"
ANN_EGRESS = "kube-vip.io/egress"
TYPE_LOAD_BALANCER = "LoadBalancer"

__all__ = ["NodeShare", "Rejection", "ServiceDecision", "VipChoice", "decide", "node_share"]


def egress_enabled(service: ServiceView) -> bool:
    """`kube-vip.io/egress: "true"` (core/egress.py)."""
    return (service.annotation(ANN_EGRESS) or "").strip().lower() == "true"


def endpoint_bound(service: ServiceView) -> bool:
    """True when a VIP may only be held by a node with a usable endpoint of its family: ETP Local, and
    egress (the pods' traffic leaves with the VIP, so the node holding it must run them, as in kube-vip)."""
    return service.external_traffic_policy == TRAFFIC_LOCAL or egress_enabled(service)


@dataclass(frozen=True)
class ServiceDecision:
    """What a Service should get cluster-wide; `reason` is "" when announced, else a code from reasons."""

    service: str
    families: tuple[IPFamily, ...]
    vips: tuple[VipChoice, ...]
    rejected: tuple[Rejection, ...]
    announce: bool
    reason: str
    # Usable endpoints only; keys are exactly the served families, primary first.
    endpoints: Mapping[IPFamily, tuple[EndpointView, ...]] = field(hash=False)
    endpoint_source: str = eps.SOURCE_SLICES
    # `kube-vip.io/serviceInterface`, trimmed; "" when unset or `auto` (the agent's own choice applies).
    interface: str = ""
    # The annotation's interface when `vip_allowed_interfaces` does not allow it (then `interface` is "").
    interface_refused: str = ""

    @property
    def primary(self) -> IPFamily | None:
        return self.families[0] if self.families else None

    def vips_of(self, family: IPFamily) -> tuple[VipChoice, ...]:
        """The VIPs of one family, in order."""
        return tuple(v for v in self.vips if v.family == family)


@dataclass(frozen=True)
class NodeShare:
    """Whether one node takes part in one family of a Service, and why (or why not)."""

    announce: bool
    reason: str


def _verdict(service: ServiceView, families: tuple[IPFamily, ...], vips: tuple[VipChoice, ...]) -> str:
    if service.type != TYPE_LOAD_BALANCER:
        return reasons.NOT_LOAD_BALANCER
    if (service.annotation(ANNOTATION_IGNORE) or "").strip().lower() == "true":
        return reasons.IGNORED
    if not vips:
        return reasons.NO_VIP
    if effective_policy(service) == REQUIRE_DUAL_STACK and {v.family for v in vips} != set(IPFamily):
        return reasons.REQUIRE_DUAL_STACK_UNMET
    return reasons.ANNOUNCED


def decide(
    service: ServiceView,
    slices: Iterable[EndpointSliceView],
    legacy: LegacyEndpointsView | None,
    use_legacy: bool,
    policy: AddressPolicy = DEFAULT_POLICY,
) -> ServiceDecision:
    """Families, VIPs (+ rejections), the whole-Service verdict and usable endpoints per family.

    Pure and order-independent: the same objects in any order give an equal decision. `policy` refuses
    addresses (and `kube-vip.io/serviceInterface` values) the operator does not allow.
    """
    families = served_families(service, well_formed(service))
    vips, rejected = choose(service, families, policy)
    reason = _verdict(service, families, vips)
    interface = requested_interface(service)
    refused_interface = ""
    if interface and not interface_allowed(policy, interface):
        interface, refused_interface = "", interface
    return ServiceDecision(
        service=service.key,
        families=families,
        vips=vips,
        rejected=rejected,
        announce=reason == reasons.ANNOUNCED,
        reason=reason,
        endpoints=eps.usable_endpoints(service, families, slices, legacy, use_legacy),
        endpoint_source=eps.SOURCE_LEGACY if use_legacy else eps.SOURCE_SLICES,
        interface=interface,
        interface_refused=refused_interface,
    )


def _share(decision: ServiceDecision, service: ServiceView, node: str, family: IPFamily) -> NodeShare:
    if not decision.announce:
        return NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED)
    if not decision.vips_of(family):
        return NodeShare(False, reasons.NO_VIP_FOR_FAMILY)
    if not endpoint_bound(service):
        return NodeShare(True, reasons.ANNOUNCED)
    primary = decision.families[0]
    if decision.endpoint_source == eps.SOURCE_LEGACY and family != primary:
        # Legacy Endpoints list only the primary family; its pods are the secondary family's pods too.
        if node in eps.nodes(decision.endpoints.get(primary, ())):
            return NodeShare(True, reasons.PRIMARY_FAMILY_NODES)
        return NodeShare(False, reasons.NO_LOCAL_ENDPOINTS_PRIMARY_FAMILY)
    if node in eps.nodes(decision.endpoints.get(family, ())):
        return NodeShare(True, reasons.ANNOUNCED)
    return NodeShare(False, reasons.NO_LOCAL_ENDPOINTS)


def node_share(decision: ServiceDecision, service: ServiceView, node: str) -> Mapping[IPFamily, NodeShare]:
    """Per served family (primary first): does `node` take part? None when the Service is not announced."""
    return MappingProxyType({f: _share(decision, service, node, f) for f in decision.families})
