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


# -- a family's interface looked up again only every IFACE_RETRY seconds (single-stack nodes) -------------


@given(st.none() | st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 120))
def test_lookup_due_only_when_never_tried_or_the_retry_has_passed(
    failed_at: int | None, now: int, retry: int
) -> None:
    from kubevip.net.interfaces import lookup_due

    assert lookup_due(failed_at, now, retry) == (failed_at is None or now - failed_at >= retry)
    if failed_at is not None:
        assert not lookup_due(failed_at, failed_at + retry / 2, retry)
        assert lookup_due(failed_at, failed_at + retry, retry)


def test_a_missing_family_is_looked_up_every_retry_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An IPv4-only node: IPv4 found once and kept; IPv6 looked up at start, then only when the retry is
    due (not on every call), one warning for the same error, an info line when it appears."""
    import logging

    from kubevip.ip import IPFamily
    from kubevip.net.interfaces import IFACE_RETRY, FamilyInterfaces

    now = [1000.0]
    calls: list[IPFamily] = []
    have = {IPFamily.IPV4: "eth0"}

    def lookup(fam: IPFamily) -> str:
        calls.append(fam)
        if fam not in have:
            raise InterfaceNotFoundError(f"no default route for {fam}")
        return have[fam]

    ifaces = FamilyInterfaces(lookup, "control-plane VIPs", clock=lambda: now[0])
    assert ifaces.pending()
    with caplog.at_level(logging.INFO, logger="kubevip.net.interfaces"):
        assert ifaces.resolve() == {IPFamily.IPV4: "eth0"}
        assert calls == [IPFamily.IPV4, IPFamily.IPV6]
        for step in (1.0, 10.0, IFACE_RETRY - 12.0):  # before the retry: nothing due, nothing looked up
            now[0] += step
            assert not ifaces.pending()
            assert ifaces.resolve() == {IPFamily.IPV4: "eth0"}
        assert len(calls) == 2
        now[0] += 1.0  # IFACE_RETRY after the failure: IPv6 (only) looked up again, same error: no warning
        assert ifaces.pending()
        ifaces.resolve()
        assert calls[2:] == [IPFamily.IPV6]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "IPv6 control-plane VIPs are not announced" in warnings[0].getMessage()
        have[IPFamily.IPV6] = "eth0"  # the family appears: found at the next due lookup, and said so
        now[0] += IFACE_RETRY
        assert ifaces.resolve() == {IPFamily.IPV4: "eth0", IPFamily.IPV6: "eth0"}
        assert not ifaces.pending()
        assert any("IPv6 control-plane VIPs go on eth0 now" in r.getMessage() for r in caplog.records)
