"""Warning conditions of a Service (rejected addresses, unmet dual-stack, port clashes) as stable values.

Each condition becomes at most one Event: its name is derived from the condition, so a repeat (or the
same condition seen by every node) maps onto the Event that already exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from kubevip.core import reasons
from kubevip.core.claims import PORT_CLASH, Clash, InterfaceConflict
from kubevip.core.compat import UNSUPPORTED_ANNOTATION, describe_annotations, unsupported_annotations
from kubevip.core.interface import ANNOTATION_SERVICE_INTERFACE, valid_interface_name
from kubevip.core.leases import ANNOTATION_LEASE_NAME, annotation_problem
from kubevip.core.plan import ServiceDecision
from kubevip.core.views import IPAddress, ServiceView

NORMAL = "Normal"
WARNING = "Warning"
# Normal Event reasons for a node's own announcements.
STARTED = "AnnouncingVIP"
STOPPED = "WithdrewVIP"


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
    for r in decision.rejected:
        out.add(Condition(s, WARNING, r.reason, f"address {r.address!r} not used: {r.reason}"))
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
            out.add(Condition(
                s, WARNING, PORT_CLASH,
                f"address {c.address} is used by the earlier Service {c.winner} with an overlapping port;"
                " it keeps the address",
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


def no_family_interface(service: str, address: IPAddress, node: str) -> Condition:
    """`node` holds `address` but has no interface of its family: it cannot announce it."""
    fam = "IPv4" if address.version == 4 else "IPv6"
    return Condition(
        service, WARNING, reasons.Reason.NO_INTERFACE_FOR_FAMILY,
        f"node {node} has no {fam} interface for {address} (no {fam} default route, and neither "
        f"vip_interface nor vip_servicesinterface is set): {address} is not announced from this node",
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
