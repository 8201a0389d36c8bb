"""A Service's status conditions, one per served family: `kube-vip.io/IPv4Announced` / `IPv6Announced`.

True while a node holds a VIP of that family; False with the reason code (core/reasons.py, in
metav1.Condition's CamelCase spelling) otherwise. The agent writing the Service's status writes these
too, and only when they change (docs/status.md).
"""

from __future__ import annotations

from collections.abc import Iterable

from kubevip.core import reasons
from kubevip.core.claims import VipPlan
from kubevip.core.plan import ServiceDecision
from kubevip.core.rows import Holdings
from kubevip.core.views import TRAFFIC_LOCAL, IPFamily, ServiceView, StatusCondition

CONDITION_TYPES: dict[IPFamily, str] = {
    IPFamily.IPV4: "kube-vip.io/IPv4Announced",
    IPFamily.IPV6: "kube-vip.io/IPv6Announced",
}
# kube-vip's `kube-vip.io/vipHost` names the holder of the Service's first VIP; this one names the holder
# of its first IPv6 VIP when that is another node (absent otherwise).
ANNOTATION_VIP_HOST_IPV6 = "kube-vip.io/vipHost-ipv6"


def family_conditions(
    decision: ServiceDecision | None,
    service: ServiceView,
    plans: Iterable[VipPlan],
    holdings: Holdings,
) -> tuple[StatusCondition, ...]:
    """The wanted conditions (without transition times), in the Service's family order."""
    if decision is None or decision.reason in (reasons.NOT_LOAD_BALANCER, reasons.IGNORED):
        return ()
    by_addr = {p.address: p for p in plans}
    out: list[StatusCondition] = []
    for family in decision.families:
        ctype = CONDITION_TYPES[family]
        vips = decision.vips_of(family)
        if not decision.announce:
            code, msg = decision.reason, f"the Service is not announced ({decision.reason})"
        elif not vips:
            code, msg = reasons.NO_VIP_FOR_FAMILY, f"no {family.value} VIP"
        else:
            # The message names the addresses, not their holders: a failover then rewrites vipHost only,
            # not every Service's conditions as well (the holder is in vipHost / vipHost-ipv6 and
            # `kubevip status`).
            held = [str(v.address) for v in vips
                    if (p := by_addr.get(v.address)) is not None and holdings.get(p.unit) is not None]
            if held:
                out.append(StatusCondition(ctype, "True", reasons.condition_reason(""),
                                           f"{', '.join(held)} announced"))
                continue
            if service.external_traffic_policy == TRAFFIC_LOCAL and not decision.endpoints.get(family):
                code, msg = reasons.NO_LOCAL_ENDPOINTS, f"no ready {family.value} endpoint on any node"
            else:
                code = reasons.NO_HOLDER
                msg = f"no node holds {', '.join(str(v.address) for v in vips)}"
        out.append(StatusCondition(ctype, "False", reasons.condition_reason(code), f"{msg} [{code}]"))
    return tuple(out)


def ipv6_host(
    decision: ServiceDecision | None,
    plans: Iterable[VipPlan],
    holdings: Holdings,
    vip_host: str | None,
) -> str | None:
    """The holder of the Service's first held IPv6 VIP when it is not the `vip_host` node, else None."""
    if decision is None or not decision.announce:
        return None
    by_addr = {p.address: p for p in plans}
    for v in decision.vips_of(IPFamily.IPV6):
        p = by_addr.get(v.address)
        holder = holdings.get(p.unit) if p is not None else None
        if holder is not None:
            return None if holder == vip_host else holder
    return None


def conditions_differ(wanted: Iterable[StatusCondition], current: Iterable[StatusCondition]) -> bool:
    """True when a write is needed: any of ours added, changed (ignoring transition time) or gone."""
    cur = {c.type: c for c in current}
    want = {c.type: c for c in wanted}
    if set(cur) != set(want):
        return True
    return any(not want[t].same(cur[t]) for t in want)


def with_transitions(
    wanted: Iterable[StatusCondition], current: Iterable[StatusCondition], now: str
) -> tuple[StatusCondition, ...]:
    """`wanted` with lastTransitionTime kept where the status did not change, else `now`."""
    cur = {c.type: c for c in current}
    out = []
    for c in wanted:
        old = cur.get(c.type)
        keep = old is not None and old.status == c.status and old.last_transition
        out.append(StatusCondition(c.type, c.status, c.reason, c.message,
                                   old.last_transition if keep and old is not None else now))
    return tuple(out)
