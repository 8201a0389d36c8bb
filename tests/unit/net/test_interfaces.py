"""Interface choice per family: explicit settings win; else the family's default-route interface."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.errors import InterfaceNotFoundError
from kubevip.net.interfaces import choose_interface

names = st.sampled_from(["", "auto", "eth0", "eth1", "bond0"])
families = st.sampled_from([4, 6])


@given(families, st.booleans(), names, names, names, st.dictionaries(families, st.sampled_from(["e4", "e6"])))
def test_priority_order(
    family: int, for_service: bool, override: str, svc: str, vip: str, routes: dict[int, str]
) -> None:
    explicit = [n for n in ([override] + ([svc] if for_service else []) + [vip]) if n not in ("", "auto")]
    if explicit:
        expected: str | None = explicit[0]
    else:
        expected = routes.get(family)
    if expected is None:
        with pytest.raises(InterfaceNotFoundError, match=f"IPv{family}"):
            choose_interface(
                family,  # type: ignore[arg-type]
                for_service=for_service, vip_interface=vip, services_interface=svc, override=override,
                default_route=routes,
            )
    else:
        got = choose_interface(
            family,  # type: ignore[arg-type]
            for_service=for_service, vip_interface=vip, services_interface=svc, override=override,
            default_route=routes,
        )
        assert got == expected


def test_per_family_default_route_interfaces_differ() -> None:
    routes = {4: "eth4", 6: "eth6"}
    assert choose_interface(4, for_service=True, default_route=routes) == "eth4"
    assert choose_interface(6, for_service=True, default_route=routes) == "eth6"


def test_services_interface_ignored_for_control_plane() -> None:
    got = choose_interface(4, for_service=False, services_interface="svc0", default_route={4: "e"})
    assert got == "e"


def test_error_names_the_family_and_setting() -> None:
    with pytest.raises(InterfaceNotFoundError, match=r"IPv6.*vip_servicesinterface or vip_interface"):
        choose_interface(6, for_service=True, default_route={4: "eth0"})


@given(families, names, st.frozensets(families))
def test_named_interface_only_for_a_family_the_node_has(
    family: int, vip: str, present: frozenset[int]
) -> None:
    """A single-stack node: a named interface carries a family only if the node has an address of it;
    the refusal names the family (the agent turns it into a no-interface-for-family Warning)."""
    if vip in ("", "auto"):
        return
    if family in present:
        assert choose_interface(family, for_service=True, vip_interface=vip, present=present) == vip  # type: ignore[arg-type]
    else:
        with pytest.raises(InterfaceNotFoundError, match=f"no IPv{family} address at all"):
            choose_interface(family, for_service=True, vip_interface=vip, present=present)  # type: ignore[arg-type]
    # Not looked up: the name is used as before.
    assert choose_interface(family, for_service=True, vip_interface=vip) == vip  # type: ignore[arg-type]
