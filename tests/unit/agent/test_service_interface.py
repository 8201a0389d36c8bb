"""`kube-vip.io/serviceInterface` from Services to rows (pure): where a VIP goes, a missing interface never
moves it elsewhere, shared addresses follow the earliest Service, BGP mode ignores the annotation."""

from __future__ import annotations

import ipaddress
import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.claims import VipPlan
from kubevip.core.conditions import missing_interface
from kubevip.core.interface import ANNOTATION_SERVICE_INTERFACE
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import Row, desired_rows, held_plans, missing_interfaces, placement
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily
from kubevip.core.world import SERVICE, Snapshot, World, apply_event, snapshot
from tests.unit.objects import holdings, service

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
DEFAULTS = {V4: "eth0", V6: "eth0"}
LATER = "2026-02-01T00:00:00Z"


def _ann(ifname: str | None) -> dict[str, str]:
    return {} if ifname is None else {ANNOTATION_SERVICE_INTERFACE: ifname}


def _snap(*svcs: dict[str, Any], service_interfaces: bool = True) -> Snapshot:
    w = World()
    for d in svcs:
        apply_event(w, SERVICE, False, service_from_dict(d), d["metadata"]["creationTimestamp"])
    return snapshot(w, ClassFilter(), False, service_interfaces=service_interfaces)


def _rows(snap: Snapshot, links: frozenset[str], defaults: dict[IPFamily, str] = DEFAULTS) -> set[str]:
    rows = desired_rows(snap.plans, holdings(snap.plans, _mine), "n1", defaults, links)
    return {f"{r.address}@{r.interface}" for r in rows}


def _mine(unit: str, eligible: frozenset[str] | None) -> str:
    return "n1"


def test_annotated_dual_stack_service_goes_on_its_interface_others_stay() -> None:
    snap = _snap(
        service("web", "192.0.2.1,2001:db8::1", families=("IPv4", "IPv6"), policy="PreferDualStack",
                annotations=_ann("eth1")),
        service("plain", "192.0.2.2"),
    )
    assert _rows(snap, frozenset({"eth1"})) == {"192.0.2.1@eth1", "2001:db8::1@eth1", "192.0.2.2@eth0"}
    held = held_plans(snap.plans, holdings(snap.plans, _mine), "n1")
    assert not missing_interfaces(held, frozenset({"eth1"}))


def test_missing_interface_means_not_announced_here_not_elsewhere() -> None:
    snap = _snap(
        service("web", "192.0.2.1,2001:db8::1", families=("IPv4", "IPv6"), policy="PreferDualStack",
                annotations=_ann("eth9")),
        service("plain", "192.0.2.2"),
    )
    assert _rows(snap, frozenset()) == {"192.0.2.2@eth0"}, "only the other Service, on its own interface"
    missing = missing_interfaces(held_plans(snap.plans, holdings(snap.plans, _mine), "n1"), frozenset())
    assert {(str(p.address), p.interface, p.services) for p in missing} == {
        ("192.0.2.1", "eth9", ("default/web",)), ("2001:db8::1", "eth9", ("default/web",)),
    }
    # A node that does not hold the VIP has nothing to warn about.
    others = holdings(snap.plans, lambda u, e: "n2")
    assert not missing_interfaces(held_plans(snap.plans, others, "n1"), frozenset())


def test_auto_and_empty_use_the_family_interface() -> None:
    for value in ("auto", "", " "):
        snap = _snap(service("web", "192.0.2.1", annotations=_ann(value)))
        assert _rows(snap, frozenset(), {V4: "eth3", V6: "eth4"}) == {"192.0.2.1@eth3"}


def test_bgp_mode_ignores_the_annotation() -> None:
    a = service("a", "192.0.2.1", ports=(("TCP", 53),), annotations=_ann("eth1"))
    b = service("b", "192.0.2.1", ports=(("UDP", 53),), annotations=_ann("eth2"), created=LATER)
    snap = _snap(a, b, service_interfaces=False)
    assert {p.interface for p in snap.plans} == {""}
    assert not snap.interface_conflicts
    assert _rows(snap, frozenset(), {V4: "lo", V6: "lo"}) == {"192.0.2.1@lo"}
    assert not any(_conflict_reasons(snap, key) for key in snap.warnings)


def _shared(a_if: str | None, b_if: str | None, c_if: str | None = None) -> list[dict[str, Any]]:
    """Three Services on one address (ports do not overlap), created in the order a, b, c."""
    specs = (("a", "TCP", 53, a_if), ("b", "UDP", 53, b_if), ("c", "TCP", 80, c_if))
    return [
        service(name, "192.0.2.10", ports=((proto, port),), annotations=_ann(ifname),
                created=f"2026-01-0{i + 1}T00:00:00Z")
        for i, (name, proto, port, ifname) in enumerate(specs)
    ]


def _conflict_reasons(snap: Snapshot, key: str) -> list[str]:
    return [c.message for c in snap.warnings[key] if c.reason == reasons.SERVICE_INTERFACE_CONFLICT]


def test_shared_address_earliest_service_wins_later_ones_warned() -> None:
    snap = _snap(*_shared("eth1", "eth2", "eth1"))
    (plan,) = snap.plans
    assert plan.interface == "eth1" and plan.services[0] == "default/a"
    assert _rows(snap, frozenset({"eth1", "eth2"})) == {"192.0.2.10@eth1"}
    assert not _conflict_reasons(snap, "default/a")
    assert not _conflict_reasons(snap, "default/c"), "same interface as the earliest: no conflict"
    (msg,) = _conflict_reasons(snap, "default/b")
    assert "default/a" in msg and "'eth1'" in msg and "'eth2'" in msg and ANNOTATION_SERVICE_INTERFACE in msg


def test_shared_address_unannotated_earliest_uses_node_choice_and_warns_annotated_later() -> None:
    snap = _snap(*_shared(None, "eth2", None))
    assert snap.plans[0].interface == ""
    assert _rows(snap, frozenset({"eth2"})) == {"192.0.2.10@eth0"}
    (msg,) = _conflict_reasons(snap, "default/b")
    assert "own interface choice" in msg
    # A later Service without the annotation asks for nothing: it follows the earliest silently.
    snap = _snap(*_shared("eth1", None, None))
    assert snap.plans[0].interface == "eth1"
    assert not snap.interface_conflicts


def test_shared_address_same_answer_in_every_order() -> None:
    svcs = _shared("eth1", "eth2", None)
    first = _snap(*svcs)
    for order in itertools.permutations(svcs):
        snap = _snap(*order)
        assert (snap.plans, snap.interface_conflicts, dict(snap.warnings)) == (
            first.plans, first.interface_conflicts, dict(first.warnings),
        )


def test_missing_interface_warning_names_annotation_value_service_and_node() -> None:
    c = missing_interface("default/b", "default/a", "eth9", ipaddress.ip_address("192.0.2.1"), "node-1")
    assert c.reason == reasons.SERVICE_INTERFACE_MISSING and c.service == "default/b"
    for part in (ANNOTATION_SERVICE_INTERFACE, "'eth9'", "default/a", "node-1", "192.0.2.1"):
        assert part in c.message
    assert "not a valid interface name" not in c.message
    bad = missing_interface("d/b", "d/a", "a/b", ipaddress.ip_address("192.0.2.1"), "n")
    assert "not a valid interface name" in bad.message


IFNAMES = ("", "eth0", "eth1", "eth2")
ADDRS = ("192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2")
addrs = st.sampled_from([ipaddress.ip_address(a) for a in ADDRS])
plans = st.builds(
    lambda addr, unit, ifname: VipPlan(addr, IPFamily.of(addr), unit, (f"default/{unit}",), None, ifname),
    addrs, st.sampled_from(["u1", "u2", "u3"]), st.sampled_from(IFNAMES),
)


@given(
    st.lists(plans, max_size=6, unique_by=lambda p: p.address),
    st.frozensets(st.sampled_from(["u1", "u2", "u3"])),
    st.frozensets(st.sampled_from(IFNAMES[1:])),
    st.fixed_dictionaries({V4: st.sampled_from(["eth0", "eth3"]), V6: st.sampled_from(["eth0", "eth4"])}),
)
def test_every_held_vip_is_placed_where_asked_or_reported_missing(
    ps: list[VipPlan], mine: frozenset[str], links: frozenset[str], defaults: dict[IPFamily, str]
) -> None:
    def holder(unit: str, eligible: frozenset[str] | None) -> str | None:
        return "n1" if unit in mine else "n2"

    rows = desired_rows(ps, holdings(ps, holder), "n1", defaults, links)
    missing = missing_interfaces(held_plans(ps, holdings(ps, holder), "n1"), links)
    by_addr = {p.address: p for p in ps}
    held = {p.address for p in ps if p.unit in mine}
    assert {r.address for r in rows} | {p.address for p in missing} == held
    assert not {r.address for r in rows} & {p.address for p in missing}
    for r in rows:
        p = by_addr[r.address]
        # Never another interface instead: the Service's own when asked, else the family's.
        assert r.interface == (p.interface or defaults[p.family])
        assert r == Row(p.address, placement(p, defaults, links) or "")
    for p in missing:
        assert p.interface and p.interface not in links
