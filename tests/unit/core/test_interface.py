"""`kube-vip.io/serviceInterface` in the core: read, trimmed, `auto` kept; never changes the verdict."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from kubevip.core.interface import (
    ANNOTATION_SERVICE_INTERFACE,
    MAX_NAME_BYTES,
    requested_interface,
    valid_interface_name,
)
from kubevip.core.parse import service_from_dict
from kubevip.core.plan import decide
from kubevip.core.views import ServiceView
from tests.unit.objects import service

NAME_CHARS = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_.@")
names = st.text(NAME_CHARS, min_size=1, max_size=MAX_NAME_BYTES).filter(lambda n: n not in (".", ".."))
odd = st.sampled_from(["", "auto", " eth1 ", "\teth1", "a b", "x" * 16, "a/b"])
values = st.one_of(names, odd, st.text())


def _svc(value: str | None, vips: str = "192.0.2.1,2001:db8::1") -> ServiceView:
    ann = {} if value is None else {ANNOTATION_SERVICE_INTERFACE: value}
    return service_from_dict(
        service("web", vips, families=("IPv4", "IPv6"), policy="PreferDualStack", annotations=ann)
    )


def test_unset_and_empty_mean_no_preference_auto_is_kept() -> None:
    for value in (None, "", "  "):
        assert requested_interface(_svc(value)) == ""
    assert requested_interface(_svc(" auto ")) == "auto"  # kube-vip's: the interface by subnet
    assert requested_interface(_svc(" eth1\n")) == "eth1"


@given(values)
def test_requested_is_the_trimmed_value_unless_unset(value: str) -> None:
    got = requested_interface(_svc(value))
    assert got == value.strip()
    assert got == got.strip()


@given(values, st.sampled_from(["192.0.2.1,2001:db8::1", "", "not-an-ip", "2001:db8::5"]))
def test_annotation_travels_as_data_and_never_changes_the_verdict(value: str, vips: str) -> None:
    plain = decide(_svc(None, vips), (), None, False)
    annotated = decide(_svc(value, vips), (), None, False)
    assert annotated.interface == requested_interface(_svc(value, vips))
    assert replace(annotated, interface="") == plain


@given(names)
def test_kernel_style_names_are_valid(name: str) -> None:
    assert valid_interface_name(name)


@given(names, st.sampled_from("/: \t\n"), st.integers(0, MAX_NAME_BYTES))
def test_names_with_a_forbidden_character_are_invalid(name: str, bad: str, at: int) -> None:
    assert not valid_interface_name(name[:at] + bad + name[at:])


@given(st.text(NAME_CHARS, min_size=MAX_NAME_BYTES + 1, max_size=40))
def test_names_longer_than_the_kernel_allows_are_invalid(name: str) -> None:
    assert not valid_interface_name(name)


def test_special_names() -> None:
    assert not valid_interface_name("")
    assert not valid_interface_name(".")
    assert not valid_interface_name("..")
    assert valid_interface_name("eth0.100")
    assert not valid_interface_name("é" * 8)  # 16 bytes: the limit counts bytes, not characters


def test_interface_by_subnet_most_specific_then_name() -> None:
    import ipaddress

    from kubevip.core.interface import interface_by_subnet

    i = ipaddress.ip_interface
    nets = [("eth0", i("192.0.2.5/24")), ("eth1", i("192.0.2.130/25")), ("lo", i("192.0.2.200/32")),
            ("eth2", i("2001:db8::5/64"))]
    assert interface_by_subnet(ipaddress.ip_address("192.0.2.10"), nets) == "eth0"
    assert interface_by_subnet(ipaddress.ip_address("192.0.2.140"), nets) == "eth1"  # /25 beats /24
    assert interface_by_subnet(ipaddress.ip_address("2001:db8::99"), nets) == "eth2"
    assert interface_by_subnet(ipaddress.ip_address("198.51.100.1"), nets) == ""
    # A host-length entry (the VIP itself on lo, a point-to-point peer) is no subnet: never chosen.
    assert interface_by_subnet(ipaddress.ip_address("192.0.2.200"), nets) == "eth1"
    host6 = [("lo", i("2001:db8::99/128")), ("eth2", i("2001:db8::5/64"))]
    assert interface_by_subnet(ipaddress.ip_address("2001:db8::99"), host6) == "eth2"
    assert interface_by_subnet(ipaddress.ip_address("2001:db8::99"), host6[:1]) == ""
    tie = [("b", ipaddress.ip_interface("10.0.0.1/8")), ("a", ipaddress.ip_interface("10.0.0.2/8"))]
    assert interface_by_subnet(ipaddress.ip_address("10.1.1.1"), tie) == "a"
    assert interface_by_subnet(ipaddress.ip_address("10.1.1.1"), list(reversed(tie))) == "a"


_v4_nets = st.tuples(st.sampled_from(["eth0", "eth1", "lo", "br0"]), st.integers(0, 2**32 - 1),
                     st.integers(8, 32))


@given(st.lists(_v4_nets, max_size=6), st.integers(0, 2**32 - 1))
def test_by_subnet_picks_the_most_specific_containing_subnet_in_any_order(
    raw: list[tuple[str, int, int]], addr: int
) -> None:
    import ipaddress

    from kubevip.core.interface import interface_by_subnet

    address = ipaddress.IPv4Address(addr)
    nets = [(n, ipaddress.ip_interface(f"{ipaddress.IPv4Address(a)}/{p}")) for n, a, p in raw]
    got = interface_by_subnet(address, nets)
    holding = [(i.network.prefixlen, n) for n, i in nets if i.network.prefixlen < 32 and address in i.network]
    if not holding:
        assert got == ""
    else:
        best = max(p for p, _ in holding)
        assert got == min(n for p, n in holding if p == best)
    assert interface_by_subnet(address, list(reversed(nets))) == got
