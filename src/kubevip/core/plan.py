"""The whole-Service verdict (families, VIPs, endpoints) and this node's share of it, per family."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kubevip.core import endpoints as eps
from kubevip.core import reasons
from kubevip.core.dhcp import AnnotationProblem, DhcpRequest, asks_dhcp, request_of
from kubevip.core.families import effective_policy, served_families
from kubevip.core.interface import requested_interface
from kubevip.core.leases import annotation_problem
from kubevip.core.policy import DEFAULT_POLICY, AddressPolicy, interface_allowed
from kubevip.core.views import (
    REQUIRE_DUAL_STACK,
    TRAFFIC_LOCAL,
    EndpointSliceView,
    EndpointView,
    IPAddress,
    IPFamily,
    LegacyEndpointsView,
    ServiceView,
)
from kubevip.core.vips import Rejection, VipChoice, candidates, choose, family_hints

ANNOTATION_IGNORE = "kube-vip.io/ignore"
# kube-vip announces an externalTrafficPolicy Cluster Service without endpoints only with this set to
# "true" (any case; pkg/endpoints shouldAllowReconcileWithoutEndpoints): otherwise traffic, attracted in
# BGP mode from the whole network, would reach no pod.
ANNOTATION_ALLOW_NO_ENDPOINTS = "kube-vip.io/allow-reconcile-without-endpoints"
ANN_EGRESS = "kube-vip.io/egress"
TYPE_LOAD_BALANCER = "LoadBalancer"

__all__ = [
    "NodeShare", "Rejection", "ServiceDecision", "VipChoice", "decide", "ignored", "node_share",
]


def ignored(service: ServiceView) -> bool:
    """kube-vip's rule for `kube-vip.io/ignore`, shared by the agent and `kubevip ipam`: exactly "true"
    (kube-vip compares the raw value; "True" or " true" leave the Service handled by both)."""
    return service.annotation(ANNOTATION_IGNORE) == "true"


def allows_no_endpoints(service: ServiceView) -> bool:
    """`kube-vip.io/allow-reconcile-without-endpoints`, read as kube-vip does (case-insensitive "true")."""
    return (service.annotation(ANNOTATION_ALLOW_NO_ENDPOINTS) or "").lower() == "true"


def egress_enabled(service: ServiceView) -> bool:
    """`kube-vip.io/egress: "true"` (core/egress.py)."""
    return (service.annotation(ANN_EGRESS) or "").strip().lower() == "true"


def endpoint_bound(service: ServiceView) -> bool:
    """True when a VIP may only be held by a node with a usable endpoint of its family: ETP Local, and
    egress (the pods' traffic leaves with the VIP, so the node holding it must run them, as in kube-vip)."""
    return service.external_traffic_policy == TRAFFIC_LOCAL or egress_enabled(service)


@dataclass(frozen=True, slots=True)
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
    # The families the Service asks DHCP for (`0.0.0.0`, core/dhcp.py), whether or not leased yet.
    dhcp: tuple[DhcpRequest, ...] = ()
    dhcp_problems: tuple[AnnotationProblem, ...] = ()

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


def _verdict(
    service: ServiceView, vips: tuple[VipChoice, ...], endpoints: Mapping[IPFamily, tuple[EndpointView, ...]],
    dhcp: tuple[IPFamily, ...] = (),
) -> str:
    if service.type != TYPE_LOAD_BALANCER:
        return reasons.NOT_LOAD_BALANCER
    if ignored(service):
        return reasons.IGNORED
    # A family asking DHCP counts as having its VIP: its holder must be elected to lease one, so the
    # verdict cannot wait for the lease (only that holder ever knows the address).
    if not vips and not dhcp:
        return reasons.NO_VIP
    families = {v.family for v in vips} | set(dhcp)
    if effective_policy(service) == REQUIRE_DUAL_STACK and families != set(IPFamily):
        return reasons.REQUIRE_DUAL_STACK_UNMET
    if annotation_problem(service):
        return reasons.INVALID_LEASE_NAME
    if (service.external_traffic_policy != TRAFFIC_LOCAL and not any(endpoints.values())
            and not allows_no_endpoints(service)):
        return reasons.NO_ENDPOINTS
    return reasons.ANNOUNCED


def decide(
    service: ServiceView,
    slices: Iterable[EndpointSliceView],
    legacy: LegacyEndpointsView | None,
    use_legacy: bool,
    policy: AddressPolicy = DEFAULT_POLICY,
    leased: Mapping[IPFamily, IPAddress] | None = None,
    dhcp_layer2: bool = True,
) -> ServiceDecision:
    """Families, VIPs (+ rejections), the whole-Service verdict and usable endpoints per family.

    Pure and order-independent: the same objects in any order give an equal decision. `policy` refuses
    addresses (and `kube-vip.io/serviceInterface` values) the operator does not allow. `leased`: the
    addresses this node's DHCP client holds for the Service (core/dhcp.py), per family. `dhcp_layer2`
    False (BGP mode): `0.0.0.0` is refused (`dhcp-needs-layer2`) and no DHCP is asked.
    """
    families = served_families(service, family_hints(service))
    vips, rejected = choose(service, families, policy, leased, dhcp_layer2)
    dhcp_families, _ = asks_dhcp(candidates(service)[0], families, dhcp_layer2)
    requests: list[DhcpRequest] = []
    problems: list[AnnotationProblem] = []
    for fam in dhcp_families:
        req, probs = request_of(service, fam)
        requests.append(req)
        problems.extend(p for p in probs if p not in problems)
    endpoints = eps.usable_endpoints(service, families, slices, legacy, use_legacy)
    reason = _verdict(service, vips, endpoints, dhcp_families)
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
        endpoints=endpoints,
        endpoint_source=eps.SOURCE_LEGACY if use_legacy else eps.SOURCE_SLICES,
        interface=interface,
        interface_refused=refused_interface,
        dhcp=tuple(requests),
        dhcp_problems=tuple(problems),
    )


def _share(
    decision: ServiceDecision, service: ServiceView, node: str, family: IPFamily, leasing: bool = False,
) -> NodeShare:
    if not decision.announce:
        return NodeShare(False, reasons.SERVICE_NOT_ANNOUNCED)
    if not decision.vips_of(family) and not leasing:
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


def node_share(
    decision: ServiceDecision, service: ServiceView, node: str, leasing: bool = False,
) -> Mapping[IPFamily, NodeShare]:
    """Per served family (primary first): does `node` take part? None when the Service is not announced.
    `leasing`: as if every family had its VIP already (a DHCP client runs where the leased VIP will be
    announced, before there is one)."""
    return MappingProxyType({f: _share(decision, service, node, f, leasing) for f in decision.families})
