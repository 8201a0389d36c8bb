"""What IPAM makes of one Service: whose addresses they are, what to ask for, and what to write back.

Pure: ServiceView in, small decisions out. The families come from the core's family decision
(`kubevip.core.families`), so IPAM and the agent never disagree on which families a Service serves.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum
from typing import Any

from kubevip.core.families import effective_policy, served_families
from kubevip.core.selection import ClassFilter, class_reason
from kubevip.core.views import REQUIRE_DUAL_STACK, IPAddress, ServiceView
from kubevip.ipam.allocator import Outcome, PortKey, Request

ANNOTATION_IPS = "kube-vip.io/loadbalancerIPs"
ANNOTATION_INTERFACE = "kube-vip.io/serviceInterface"
ANNOTATION_IGNORE = "kube-vip.io/ignore"
# kube-vip's cloud provider marks the Services it allocated for with this label; we use the same one so
# Services it allocated for are adopted (kept, not re-allocated) when an operator switches to kubevip.
LABEL_KEY = "implementation"
LABEL_VALUE = "kube-vip"
# One class rule for the agent and IPAM (kube-vip's lb_class_only / lb_class_name): core.selection.
DEFAULT_CLASS = ClassFilter().name


class Kind(Enum):
    """How IPAM treats a Service."""

    NONE = "none"  # not ours and holds no address: nothing to track
    FOREIGN = "foreign"  # addresses set by a user or another tool: reserved, never changed
    OURS = "ours"  # we allocate (and may already have allocated) its addresses


@dataclass(frozen=True)
class Classified:
    kind: Kind
    addresses: tuple[IPAddress, ...]  # what the object says it holds now
    labelled: bool  # carries our label (we wrote it, or kube-vip's cloud provider did)
    # Entries of a user's annotation (or spec.loadBalancerIP) that are not IP addresses.
    invalid: tuple[str, ...] = ()


def parse_ips(text: str | None) -> tuple[IPAddress, ...]:
    """The IP entries of a comma list; DNS names and junk are skipped (they reserve nothing)."""
    return split_ips(text)[0]


def split_ips(text: str | None) -> tuple[tuple[IPAddress, ...], tuple[str, ...]]:
    """The IP entries of a comma list, and the non-empty entries that are not IP addresses."""
    out: list[IPAddress] = []
    junk: list[str] = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(ipaddress.ip_address(part))
        except ValueError:
            junk.append(part)
    return tuple(dict.fromkeys(out)), tuple(dict.fromkeys(junk))


def ports_of(view: ServiceView) -> frozenset[PortKey]:
    return frozenset((p.protocol, p.port) for p in view.ports)


def classify(view: ServiceView, classes: ClassFilter) -> Classified:
    """Ours, foreign (a user or another tool chose the address) or nothing to track."""
    labelled = view.label(LABEL_KEY) == LABEL_VALUE
    annotated = view.annotation(ANNOTATION_IPS)
    # Older kube-vip cloud providers wrote only spec.loadBalancerIP.
    addresses, invalid = split_ips(annotated if annotated is not None else view.load_balancer_ip)
    if view.type != "LoadBalancer":
        return Classified(Kind.NONE, (), labelled)
    eligible = not class_reason(view, classes) and view.annotation(ANNOTATION_IGNORE) != "true"
    # A user's value that is not all addresses (`10.0.0.300,fd00::zz`) is still the user's: it is kept
    # as written (with a Warning), never replaced by an allocation.
    if eligible and (labelled or not (addresses or invalid)):
        return Classified(Kind.OURS, addresses if labelled else (), labelled)
    if addresses or invalid:
        return Classified(Kind.FOREIGN, addresses, labelled, () if labelled else invalid)
    return Classified(Kind.NONE, (), labelled)


def request_for(view: ServiceView) -> Request:
    """The families the core says the Service serves (primary first); RequireDualStack needs all."""
    families = served_families(view)
    return Request(
        namespace=view.namespace,
        name=view.name,
        families=families,
        require_all=effective_policy(view) == REQUIRE_DUAL_STACK and len(families) > 1,
        ports=ports_of(view),
    )


def allocation_patch(
    view: ServiceView, outcome: Outcome, interface: str | None,
) -> dict[str, Any] | None:
    """The merge patch recording `outcome` on the Service, or None when the object already says it.

    It carries `metadata.resourceVersion`, so the API server refuses it if the Service changed since we
    read it (we then re-read and decide again).
    """
    ips = ",".join(str(a) for a in outcome.addresses)
    annotations: dict[str, str | None] = {}
    labels: dict[str, str | None] = {}
    spec: dict[str, str | None] = {}
    if outcome.addresses:
        if view.annotation(ANNOTATION_IPS) != ips:
            annotations[ANNOTATION_IPS] = ips
        if view.label(LABEL_KEY) != LABEL_VALUE:
            labels[LABEL_KEY] = LABEL_VALUE
        if interface and view.annotation(ANNOTATION_INTERFACE) is None:
            annotations[ANNOTATION_INTERFACE] = interface
        single = str(outcome.addresses[0]) if len(outcome.addresses) == 1 else None
        if view.load_balancer_ip != single:
            spec["loadBalancerIP"] = single
    elif view.label(LABEL_KEY) == LABEL_VALUE:
        # Everything released (dual -> nothing cannot happen, but an exhausted move can): clear ours.
        if view.annotation(ANNOTATION_IPS) is not None:
            annotations[ANNOTATION_IPS] = None
        labels[LABEL_KEY] = None
        if view.load_balancer_ip is not None:
            spec["loadBalancerIP"] = None
    if not (annotations or labels or spec):
        return None
    return _patch(view, annotations, labels, spec)


def release_patch(view: ServiceView) -> dict[str, Any] | None:
    """Remove our label, annotation and spec.loadBalancerIP from a Service that is no longer ours."""
    if view.label(LABEL_KEY) != LABEL_VALUE:
        return None
    annotations: dict[str, str | None] = {}
    if view.annotation(ANNOTATION_IPS) is not None:
        annotations[ANNOTATION_IPS] = None
    spec: dict[str, str | None] = {}
    if view.type == "LoadBalancer" and view.load_balancer_ip is not None:
        spec["loadBalancerIP"] = None
    return _patch(view, annotations, {LABEL_KEY: None}, spec)


def _patch(
    view: ServiceView, annotations: dict[str, str | None], labels: dict[str, str | None],
    spec: dict[str, str | None],
) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": view.resource_version}
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    patch: dict[str, Any] = {"metadata": meta}
    if spec:
        patch["spec"] = spec
    return patch
