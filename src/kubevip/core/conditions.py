"""Warning conditions of a Service (rejected addresses, unmet dual-stack, port clashes) as stable values.

Each condition becomes at most one Event: its name is derived from the condition, so a repeat (or the
same condition seen by every node) maps onto the Event that already exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from kubevip.core import reasons
from kubevip.core.claims import ANNOTATION_ALLOW_SHARED_IP, Clash, InterfaceConflict
from kubevip.core.compat import UNSUPPORTED_ANNOTATION, describe_annotations, unsupported_annotations
from kubevip.core.interface import ANNOTATION_SERVICE_INTERFACE, valid_interface_name
from kubevip.core.leases import ANNOTATION_LEASE_NAME, annotation_problem
from kubevip.core.plan import ServiceDecision
from kubevip.core.views import IPAddress, ServiceView
from kubevip.core.vips import Rejection

NORMAL = "Normal"
WARNING = "Warning"
# Normal Event reasons for a node's own announcements.
STARTED = "AnnouncingVIP"
STOPPED = "WithdrewVIP"
# Addresses named in one aggregated Warning; the rest are counted (a tenant controls how many there are).
SHOWN_ADDRESSES = 5


@dataclass(frozen=True, order=True)
class Condition:
    """One thing worth an Event about one Service; `reason` is a stable code (same as explain)."""

    service: str
    type: str
    reason: str
    message: str

    def event_name(self, uid: str) -> str:
        """Deterministic Event name, unique per (Service object, condition)."""
        text = f"{uid}\x00{self.type}\x00{self.reason}\x00{self.message}"
        h = hashlib.blake2b(text.encode(), digest_size=6)
        name = self.service.split("/", 1)[-1]
        return f"{name[:200]}.kubevip-{h.hexdigest()}"


def warnings(
    decision: ServiceDecision, clashes: Iterable[Clash], conflicts: Iterable[InterfaceConflict] = (),
    service: ServiceView | None = None,
) -> frozenset[Condition]:
    """Warnings for a Service of type LoadBalancer that this agent handles (`service`: its view, for
    the annotation warnings)."""
    out: set[Condition] = set()
    s = decision.service
    if decision.reason in (reasons.NOT_LOAD_BALANCER, reasons.IGNORED):
        return frozenset()
    if service is not None:
        if decision.reason == reasons.INVALID_LEASE_NAME:
            value = service.annotation(ANNOTATION_LEASE_NAME)
            out.add(Condition(
                s, WARNING, reasons.INVALID_LEASE_NAME,
                f"annotation {ANNOTATION_LEASE_NAME}={value!r} refused: {annotation_problem(service)};"
                " nothing announced",
            ))
        if unsupported := unsupported_annotations(service):
            # One Event per Service, naming every key: kube-vip would act on them, kubevip does not.
            out.add(Condition(
                s, WARNING, UNSUPPORTED_ANNOTATION,
                "kube-vip annotations not supported by kubevip, without effect: "
                + describe_annotations(k for k, _ in unsupported),
            ))
    by_reason: dict[str, list[Rejection]] = {}
    for r in decision.rejected:
        by_reason.setdefault(r.reason, []).append(r)
    for reason, rejections in by_reason.items():
        out.add(rejected_condition(s, reason, rejections))
    for prob in decision.dhcp_problems:
        out.add(Condition(
            s, WARNING, reasons.Reason.DHCP_ANNOTATION_INVALID,
            f"annotation {prob.annotation}={prob.value!r} refused: {prob.problem}; the default is used"
            " for the DHCP request",
        ))
    if decision.interface_refused:
        out.add(Condition(
            s, WARNING, reasons.SERVICE_INTERFACE_NOT_ALLOWED,
            f"annotation {ANNOTATION_SERVICE_INTERFACE}={decision.interface_refused!r} names an interface"
            " vip_allowed_interfaces does not allow; the node's own interface choice is used",
        ))
    if decision.reason == reasons.REQUIRE_DUAL_STACK_UNMET:
        have = ", ".join(f"{v.family.value} {v.address}" for v in decision.vips) or "none"
        out.add(Condition(
            s, WARNING, reasons.REQUIRE_DUAL_STACK_UNMET,
            f"ipFamilyPolicy RequireDualStack needs a VIP of each family (have: {have}); nothing announced",
        ))
    elif decision.reason == reasons.NO_VIP and decision.rejected:
        out.add(Condition(s, WARNING, reasons.NO_VIP, "no usable VIP; nothing announced"))
    for c in clashes:
        if c.service == s:
            if c.reason == reasons.CROSS_NAMESPACE_SHARING:
                why = ("in another namespace, and the two do not carry the same"
                       f" {ANNOTATION_ALLOW_SHARED_IP} value")
            else:
                why = "with an overlapping port"
            out.add(Condition(
                s, WARNING, c.reason,
                f"address {c.address} is used by the earlier Service {c.winner} {why}; it keeps the address",
            ))
    for ic in conflicts:
        if ic.service == s:
            used = repr(ic.used) if ic.used else "the node's own interface choice"
            out.add(Condition(
                s, WARNING, reasons.SERVICE_INTERFACE_CONFLICT,
                f"address {ic.address} is shared with the earlier Service {ic.winner}, which puts it on"
                f" {used}; annotation {ANNOTATION_SERVICE_INTERFACE}={ic.wanted!r} is not used for it",
            ))
    return frozenset(out)


def rejected_condition(service: str, reason: str, rejections: Sequence[Rejection]) -> Condition:
    """One Warning for every address of a Service refused for the same reason: a count, the first
    `SHOWN_ADDRESSES` addresses and the rule. Bounded whatever the annotation holds, and the same text
    on every node, so every node maps it onto one Event."""
    shown = ", ".join(repr(r.address[:64]) for r in rejections[:SHOWN_ADDRESSES])
    more = len(rejections) - SHOWN_ADDRESSES
    if more > 0:
        shown += f" and {more} more"
    rule = rejections[0].rule
    if len(rejections) == 1:
        text = f"address {shown} not used: {reason}"
    else:
        text = f"{len(rejections)} addresses not used: {reason}: {shown}"
    return Condition(service, WARNING, reason, f"{text} ({rule})" if rule else text)


def no_family_interface(service: str, address: IPAddress, node: str) -> Condition:
    """`node` holds `address` but has no interface of its family: it cannot announce it."""
    fam = "IPv4" if address.version == 4 else "IPv6"
    return Condition(
        service, WARNING, reasons.Reason.NO_INTERFACE_FOR_FAMILY,
        f"node {node} has no {fam} interface for {address} (no {fam} address on this node at all, or no "
        f"{fam} default route while neither vip_interface nor vip_servicesinterface is set): {address} is "
        "not announced from this node",
    )


def missing_interface(
    service: str, owner: str, interface: str, address: IPAddress, node: str
) -> Condition:
    """`owner`'s annotation names an interface `node` lacks: `address` (of `service`) is not announced."""
    hint = "" if valid_interface_name(interface) else " (not a valid interface name)"
    return Condition(
        service, WARNING, reasons.SERVICE_INTERFACE_MISSING,
        f"annotation {ANNOTATION_SERVICE_INTERFACE}={interface!r} of Service {owner} names an interface"
        f"{hint} that does not exist on node {node}; {address} is not announced from this node",
    )
