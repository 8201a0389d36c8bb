"""Endpoints per served family: slice selection and merging, legacy Endpoints, usable = ready or fallback."""

from __future__ import annotations

from kubevip.core.endpoints import _merge, usable, usable_endpoints
from kubevip.core.parse import endpoints_from_dict, endpointslice_from_dict, service_from_dict
from kubevip.core.views import EndpointView, IPFamily
from tests.unit.core import builders as b

V4, V6 = IPFamily.IPV4, IPFamily.IPV6


def addrs(eps: tuple[EndpointView, ...]) -> list[str]:
    return [str(e.address) for e in eps]


def test_slices_selected_by_label_and_namespace_fqdn_ignored() -> None:
    svc = service_from_dict(b.service(families=["IPv4"]))
    slices = [endpointslice_from_dict(d) for d in (
        b.endpointslice("web-a", "IPv4", [b.ep("10.0.0.1")]),
        b.endpointslice("web-b", "IPv4", [b.ep("10.0.0.2")]),                 # several slices per family
        b.endpointslice("other-a", "IPv4", [b.ep("10.0.0.3")], service_name="other"),
        b.endpointslice("web-c", "IPv4", [b.ep("10.0.0.4")], namespace="elsewhere"),
        b.endpointslice("web-d", "IPv4", [b.ep("10.0.0.5")], service_name=None),
        b.endpointslice("web-e", "FQDN", [b.ep("db.example.com")]),
    )]
    got = usable_endpoints(svc, (V4,), slices, None, use_legacy=False)
    assert list(got) == [V4]
    assert addrs(got[V4]) == ["10.0.0.1", "10.0.0.2"]


def test_unserved_family_dropped_whichever_object_carries_it() -> None:
    svc = service_from_dict(b.service(families=["IPv4"]))
    slices = [endpointslice_from_dict(d) for d in (
        b.endpointslice("web-4", "IPv4", [b.ep("10.0.0.1"), b.ep("fd00::9")]),  # mislabelled address
        b.endpointslice("web-6", "IPv6", [b.ep("fd00::1")]),
    )]
    assert addrs(usable_endpoints(svc, (V4,), slices, None, False)[V4]) == ["10.0.0.1"]
    legacy = endpoints_from_dict(b.endpoints([("fd00::1", "n1"), ("10.0.0.1", "n1")]))
    got = usable_endpoints(svc, (V4,), [], legacy, True)
    assert list(got) == [V4] and addrs(got[V4]) == ["10.0.0.1"]


def test_legacy_ignored_when_slices_chosen_and_vice_versa() -> None:
    svc = service_from_dict(b.service(families=["IPv4"]))
    slices = [endpointslice_from_dict(b.endpointslice("web-a", "IPv4", [b.ep("10.0.0.1")]))]
    legacy = endpoints_from_dict(b.endpoints([("10.0.0.2", "n1")]))
    assert addrs(usable_endpoints(svc, (V4,), slices, legacy, False)[V4]) == ["10.0.0.1"]
    assert addrs(usable_endpoints(svc, (V4,), slices, legacy, True)[V4]) == ["10.0.0.2"]
    other = endpoints_from_dict(b.endpoints([("10.0.0.3", "n1")], name="other"))
    assert usable_endpoints(svc, (V4,), slices, other, True)[V4] == ()


def test_usable_ready_else_serving_terminating() -> None:
    def view(ready: bool, serving: bool, terminating: bool, n: int) -> EndpointView:
        import ipaddress
        return EndpointView(ipaddress.ip_address(f"10.0.0.{n}"), V4, "n1", ready, serving, terminating)

    ready = view(True, True, False, 1)
    draining = view(False, True, True, 2)
    dead = view(False, False, True, 3)
    unready = view(False, False, False, 4)
    assert usable([ready, draining, dead, unready]) == (ready,)
    assert usable([draining, dead, unready]) == (draining,)
    assert usable([dead, unready]) == ()


def test_same_address_in_two_slices_collapses_to_healthiest() -> None:
    svc = service_from_dict(b.service(families=["IPv4"]))
    slices = [endpointslice_from_dict(d) for d in (
        b.endpointslice("web-a", "IPv4", [b.ep("10.0.0.1", node="n1", ready=False)]),
        b.endpointslice("web-b", "IPv4", [b.ep("10.0.0.1", node="n1", ready=True)]),
    )]
    got = usable_endpoints(svc, (V4,), slices, None, False)[V4]
    assert len(got) == 1 and got[0].ready


def test_keys_are_served_families_even_without_endpoints() -> None:
    svc = service_from_dict(b.service(families=["IPv6", "IPv4"], policy="PreferDualStack"))
    got = usable_endpoints(svc, (V6, V4), [], None, False)
    assert list(got) == [V6, V4] and got[V6] == () and got[V4] == ()


def test_the_healthiest_report_of_an_address_wins_whatever_the_order() -> None:
    """One address reported twice (two slices, a pod moving): which report wins decides which node hosts
    the endpoint, so which node announces a Local VIP; it must not depend on the order of the slices."""
    import ipaddress
    import itertools

    a = ipaddress.ip_address("10.0.0.7")

    def view(node: str | None, ready: bool, serving: bool, terminating: bool) -> EndpointView:
        return EndpointView(a, V4, node, ready, serving, terminating)

    cases = [
        # ready beats serving-and-terminating beats neither
        ([view("n1", False, True, True), view("n2", True, True, False),
          view("n3", False, False, False)], "n2"),
        # not ready either way: the one not terminating is the healthier
        ([view("n1", False, True, True), view("n3", False, True, False)], "n3"),
        # same conditions: a report naming a node beats one naming none
        ([view(None, True, True, False), view("n1", True, True, False)], "n1"),
    ]
    for reports, node in cases:
        for order in itertools.permutations(reports):
            got = _merge(order)
            assert [e.node for e in got] == [node], (order, got)
