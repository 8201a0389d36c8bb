"""Service status conditions per family and vipHost-ipv6 (core/announced.py), reason spelling."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.announced import (
    CONDITION_TYPES,
    conditions_differ,
    family_conditions,
    ipv6_host,
    with_transitions,
)
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily, StatusCondition
from kubevip.core.world import ENDPOINT_SLICE, SERVICE, World, apply_event, snapshot
from tests.unit.objects import service, slice_

# metav1.Condition: reason must match this (k8s.io/apimachinery/pkg/apis/meta/v1/validation).
REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")


def test_every_code_has_a_valid_distinct_condition_reason() -> None:
    spelled = {reasons.condition_reason(c) for c in (*reasons.ALL, "")}
    assert len(spelled) == len(set(reasons.ALL)) + 1
    assert all(REASON.match(r) for r in spelled)
    assert reasons.condition_reason("no-vip-for-family") == "NoVipForFamily"
    assert reasons.condition_reason("") == "Announced"


def _setup(svc: dict[str, Any], *slices: dict[str, Any]) -> tuple[Any, Any, Any]:
    w = World()
    apply_event(w, SERVICE, False, service_from_dict(svc))
    for s in slices:
        apply_event(w, ENDPOINT_SLICE, False, endpointslice_from_dict(s))
    snap = snapshot(w, ClassFilter(), False, per_address=True)  # a unit per VIP: families may differ
    key = next(iter(snap.decisions))
    return snap.decisions[key], w.services[key].view, snap.granted.get(key, ())


def holders(plans: Any, by_family: dict[IPFamily, str | None]) -> dict[str, str | None]:
    """Holdings (unit -> holder): the holder of each unit by its VIP's family."""
    return {p.unit: by_family.get(p.family) for p in plans}


DUAL = service("web", "192.0.2.1,2001:db8::1", families=("IPv4", "IPv6"), policy="PreferDualStack")


def test_each_family_true_with_its_holder_and_ipv6_host_only_when_it_differs() -> None:
    d, view, plans = _setup(DUAL)
    h = holders(plans, {IPFamily.IPV4: "n1", IPFamily.IPV6: "n2"})
    conds = family_conditions(d, view, plans, h)
    assert [(c.type, c.status, c.reason) for c in conds] == [
        (CONDITION_TYPES[IPFamily.IPV4], "True", "Announced"),
        (CONDITION_TYPES[IPFamily.IPV6], "True", "Announced"),
    ]
    assert conds[0].message == "192.0.2.1 announced" and conds[1].message == "2001:db8::1 announced"
    # Another holder, the same conditions: a failover does not rewrite them.
    moved = holders(plans, {IPFamily.IPV4: "n3", IPFamily.IPV6: "n3"})
    assert family_conditions(d, view, plans, moved) == conds
    assert ipv6_host(d, plans, h, "n1") == "n2"
    assert ipv6_host(d, plans, holders(plans, {IPFamily.IPV4: "n1", IPFamily.IPV6: "n1"}), "n1") is None


def test_false_with_the_reason_code() -> None:
    d, view, plans = _setup(service("web", "192.0.2.1", families=("IPv4", "IPv6"),
                                           policy="PreferDualStack"))
    conds = family_conditions(d, view, plans, holders(plans, {IPFamily.IPV4: None}))
    assert [(c.status, c.reason) for c in conds] == [("False", "NoHolder"), ("False", "NoVipForFamily")]
    assert conds[1].message.endswith("[no-vip-for-family]")
    d, view, plans = _setup(service("web", "192.0.2.1", families=("IPv4", "IPv6"),
                                           policy="RequireDualStack"))
    conds = family_conditions(d, view, plans, holders(plans, {}))
    assert {c.reason for c in conds} == {"RequireDualStackUnmet"}
    d, view, plans = _setup(service("web", "192.0.2.1", etp="Local"))
    (c,) = family_conditions(d, view, plans, holders(plans, {}))
    assert c.reason == "NoLocalEndpoints"
    assert c.message == "no ready IPv4 endpoint on any node [no-local-endpoints]"
    local = service("web", "192.0.2.1", etp="Local")
    d, view, plans = _setup(local, slice_("web", "IPv4", [("10.0.0.1", "n1")]))
    (c,) = family_conditions(d, view, plans, holders(plans, {}))
    assert c.reason == "NoHolder"
    d, view, plans = _setup(service("web", "192.0.2.1", type_="ClusterIP"))
    assert family_conditions(d, view, plans, holders(plans, {})) == ()


conditions = st.lists(st.builds(
    StatusCondition, st.sampled_from(list(CONDITION_TYPES.values())), st.sampled_from(["True", "False"]),
    st.sampled_from(["Announced", "NoHolder"]), st.sampled_from(["a", "b"]), st.sampled_from(["", "t0"]),
), max_size=2, unique_by=lambda c: c.type)


@given(conditions, conditions)
def test_transitions_kept_unless_status_flips_and_a_write_settles(
    wanted: list[StatusCondition], current: list[StatusCondition]
) -> None:
    written = with_transitions(wanted, current, "t1")
    cur = {c.type: c for c in current}
    for c in written:
        old = cur.get(c.type)
        if old is not None and old.status == c.status and old.last_transition:
            assert c.last_transition == old.last_transition
        else:
            assert c.last_transition == "t1"
    assert not conditions_differ(wanted, written)  # written only on change: once written, settled
    assert conditions_differ(wanted, current) == (
        {c.type for c in wanted} != set(cur) or any(not c.same(cur[c.type]) for c in wanted)
    )


def test_messages_name_every_vip_under_the_family_condition_type() -> None:
    """Two VIPs of a family: the condition (of that family's type) names both, held or not; `ipv6_host`
    answers None, not an error, with no decision yet or a VIP that has no plan (not granted)."""
    d, view, plans = _setup(service("web", "192.0.2.1,192.0.2.2"))
    (held,) = family_conditions(d, view, plans, holders(plans, {IPFamily.IPV4: "n1"}))
    assert (held.type, held.status, held.message) == (
        CONDITION_TYPES[IPFamily.IPV4], "True", "192.0.2.1, 192.0.2.2 announced",
    )
    (lost,) = family_conditions(d, view, plans, holders(plans, {}))
    assert (lost.type, lost.status, lost.reason, lost.message) == (
        CONDITION_TYPES[IPFamily.IPV4], "False", "NoHolder", "no node holds 192.0.2.1, 192.0.2.2 [no-holder]",
    )
    d, _, plans = _setup(DUAL)
    assert ipv6_host(None, plans, holders(plans, {IPFamily.IPV6: "n2"}), "n1") is None
    assert ipv6_host(d, (), {}, "n1") is None
