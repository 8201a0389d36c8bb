"""Desired rows, diff/apply and status (pure), plus the whole pipeline's order independence."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.rows import (
    Row,
    ServiceStatus,
    apply,
    desired_rows,
    diff,
    service_status,
    should_write,
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
