"""Desired rows, diff/apply and status (pure), plus the whole pipeline's order independence."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core.claims import VipPlan
from kubevip.core.interface import AUTO
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.rows import (
    Row,
    ServiceStatus,
    apply,
    desired_rows,
    diff,
    needs_subnet_lookup,
    service_status,
    should_write,
    unit_eligibility,
)
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily
from kubevip.core.world import ENDPOINT_SLICE, SERVICE, World, apply_event, snapshot
from tests.unit.objects import holdings, service, slice_

IFACES = {IPFamily.IPV4: "eth0", IPFamily.IPV6: "eth0"}

rows = st.builds(
    Row,
    address=st.sampled_from([ipaddress.ip_address(a) for a in ("192.0.2.1", "192.0.2.2", "2001:db8::1")]),
    interface=st.sampled_from(["eth0", "eth1"]),
)


@given(st.frozensets(rows), st.frozensets(rows))
def test_diff_then_apply_reaches_desired(desired: frozenset[Row], actual: frozenset[Row]) -> None:
    ch = diff(desired, actual)
    assert apply(actual, ch) == desired
    assert diff(desired, apply(actual, ch)).empty  # idempotent: a second pass does nothing
    assert not set(ch.add) & set(actual)
    assert set(ch.remove) <= actual


def _me_if_eligible(me: str) -> Any:
    return lambda unit, eligible: me if eligible is None or me in eligible else None


def test_desired_rows_follow_holder() -> None:
    w = World()
    for d in (service("a", "192.0.2.1,2001:db8::1", families=("IPv4", "IPv6"), policy="PreferDualStack"),):
        apply_event(w, SERVICE, False, service_from_dict(d))
    snap = snapshot(w, ClassFilter(), False)
    mine = desired_rows(snap.plans, holdings(snap.plans, lambda u, e: "n1"), "n1", IFACES)
    assert {str(r.address) for r in mine} == {"192.0.2.1", "2001:db8::1"}
    assert desired_rows(snap.plans, holdings(snap.plans, lambda u, e: "n2"), "n1", IFACES) == frozenset()
    assert desired_rows(snap.plans, holdings(snap.plans, lambda u, e: None), "n1", IFACES) == frozenset()


def test_status_lists_only_held_vips_in_service_order() -> None:
    w = World()
    apply_event(
        w,
        SERVICE,
        False,
        service_from_dict(
            service(
                "a", "2001:db8::1,192.0.2.1", families=("IPv6", "IPv4"), policy="PreferDualStack", etp="Local"
            )
        ),
    )
    apply_event(w, ENDPOINT_SLICE, False, endpointslice_from_dict(slice_("a", "IPv6", [("fd00::1", "n2")])))
    snap = snapshot(w, ClassFilter(), False)
    d = snap.decisions["default/a"]
    st_ = service_status(
        [v.address for v in d.vips],
        snap.granted["default/a"],
        holdings(snap.plans, _me_if_eligible("n2")),
    )
    assert st_ == ServiceStatus(("2001:db8::1",), "n2")
    assert should_write(st_, (), None, "n2")
    assert not should_write(st_, ("2001:db8::1",), "n2", "n2")
    assert not should_write(st_, (), None, "n1")
    nobody = ServiceStatus((), None)
    assert should_write(nobody, ("2001:db8::1",), "n1", "n1")  # the last announcer clears
    assert not should_write(nobody, ("2001:db8::1",), "n2", "n1")


def _events() -> list[tuple[str, Any, str]]:
    """A small cluster's history: per key the versions in order; keys interleave freely."""
    return [
        (SERVICE, service("tcp", "192.0.2.10", ports=(("TCP", 53),), created="t1"), "t1"),
        (SERVICE, service("udp", "192.0.2.10", ports=(("UDP", 53),), created="t2"), "t2"),
        (SERVICE, service("clash", "192.0.2.10", ports=(("TCP", 53),), created="t3"), "t3"),
        (
            SERVICE,
            service(
                "dual",
                "192.0.2.20,2001:db8::20",
                families=("IPv4", "IPv6"),
                policy="PreferDualStack",
                etp="Local",
                created="t4",
            ),
            "t4",
        ),
        (ENDPOINT_SLICE, slice_("dual", "IPv4", [("10.0.0.1", "n1")]), ""),
        (ENDPOINT_SLICE, slice_("dual", "IPv6", [("fd00::1", "n2")]), ""),
        (SERVICE, service("seed", "192.0.2.30,2001:db8::30", created="t5"), "t5"),
    ]


def _apply(w: World, order: Sequence[int], deleted: bool = False) -> None:
    """Apply _events() in `order` (as deletions when `deleted`)."""
    ev = _events()
    for i in order:
        kind, obj, created = ev[i]
        view = service_from_dict(obj) if kind == SERVICE else endpointslice_from_dict(obj)
        apply_event(w, kind, deleted, view, "" if deleted else created)


def _converge(order: tuple[int, ...]) -> Any:
    w = World()
    _apply(w, order)
    snap = snapshot(w, ClassFilter(), False)
    per_node = {
        n: desired_rows(snap.plans, holdings(snap.plans, _me_if_eligible(n)), n, IFACES) for n in ("n1", "n2")
    }
    return snap.plans, snap.clashes, dict(snap.warnings), per_node


def test_same_events_in_every_order_same_result() -> None:
    n = len(_events())
    first = _converge(tuple(range(n)))
    # 7! = 5040 orders: every one of them.
    for order in itertools.permutations(range(n)):
        assert _converge(order) == first
    _, clashes, _, per_node = first
    assert [c.service for c in clashes] == ["default/clash"]
    assert {str(r.address) for r in per_node["n2"]} >= {"2001:db8::20"}
    assert "192.0.2.20" not in {str(r.address) for r in per_node["n2"]}


@settings(max_examples=50)
@given(st.permutations(list(range(7))), st.lists(st.integers(0, 6), max_size=3))
def test_delete_in_any_order_leaves_nothing(order: list[int], deleted: list[int]) -> None:
    w = World()
    _apply(w, order)
    _apply(w, order, deleted=True)
    assert not w.services and not w.slices
    assert snapshot(w, ClassFilter(), False).plans == ()


_NODES = ("n1", "n2", "n3")
_eligibles = st.one_of(st.none(), st.frozensets(st.sampled_from(_NODES)))


@given(st.lists(st.tuples(st.sampled_from(["u1", "u2"]), _eligibles), max_size=6))
def test_a_unit_is_eligible_only_where_each_of_its_vips_is(
    vips: list[tuple[str, frozenset[str] | None]],
) -> None:
    """Whoever holds a unit holds all its VIPs: a node is eligible for the unit exactly when every VIP of
    it allows the node (None: any node); None only when no VIP of it restricts."""
    plans = [VipPlan(ipaddress.ip_address(f"192.0.2.{i + 1}"), IPFamily.IPV4, unit, ("default/s",), eligible)
             for i, (unit, eligible) in enumerate(vips)]
    got = unit_eligibility(plans)
    assert set(got) == {u for u, _ in vips}
    for unit, eligible in got.items():
        sets = [e for u, e in vips if u == unit and e is not None]
        if not sets:
            assert eligible is None
            continue
        assert eligible is not None
        for n in _NODES:
            assert (n in eligible) == all(n in s for s in sets), (n, sets)


@pytest.mark.parametrize(("macvlan", "interface", "services_auto", "want"), [
    ("", AUTO, False, True), ("", AUTO, True, True), ("", "", True, True), ("", "", False, False),
    ("", "eth1", True, False), ("", "eth1", False, False), ("vip-x", AUTO, True, False),
    ("vip-x", "", True, False),
])
def test_which_vips_are_placed_by_their_subnet(
    macvlan: str, interface: str, services_auto: bool, want: bool,
) -> None:
    """`auto` (the annotation, or vip_servicesinterface=auto for a VIP without one) looks the subnet up;
    a named interface or a DHCP macvlan never does."""
    p = VipPlan(ipaddress.ip_address("192.0.2.1"), IPFamily.IPV4, "u", ("default/s",), None, interface,
                macvlan=macvlan)
    assert needs_subnet_lookup(p, services_auto) is want


def test_status_skips_unheld_and_ungranted_vips_and_keeps_the_later_ones() -> None:
    a, b, c = (ipaddress.ip_address(f"192.0.2.{i}") for i in (1, 2, 3))
    plans = [VipPlan(x, IPFamily.IPV4, f"u{x}", ("default/s",), None) for x in (a, c)]
    holds = {f"u{a}": None, f"u{c}": "n2"}
    assert service_status([a, b, c], plans, holds) == ServiceStatus(("192.0.2.3",), "n2")
    assert service_status([b, c], plans, holds) == ServiceStatus(("192.0.2.3",), "n2")


def test_the_last_announcer_clears_a_host_annotation_left_without_ingress() -> None:
    assert should_write(ServiceStatus((), None), (), "n1", "n1")
    assert not should_write(ServiceStatus((), None), (), None, "n1")
