"""Which control-plane VIPs `address` + `dns_mode` give: examples and hypothesis properties."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.controlplane.dns import resolve
from kubevip.controlplane.resolve import DNS_MODES, Entry, choose, parse_addresses, picks
from kubevip.errors import ConfigError
from kubevip.ip import IPAddress

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
a4 = st.builds(V4, st.integers(0x0A000001, 0x0AFFFFFE))
a6 = st.builds(V6, st.integers(1, 2**64).map(lambda n: (0xFD00 << 112) + n))
answers = st.lists(st.one_of(a4, a6), max_size=6, unique=True)
modes = st.sampled_from(DNS_MODES)


def test_parse_forms() -> None:
    assert parse_addresses("") == ()
    assert parse_addresses("10.0.0.5") == (Entry(ip=V4("10.0.0.5")),)
    assert parse_addresses("[fd00::5]") == (Entry(ip=V6("fd00::5")),)
    assert parse_addresses("CP.Example.com.") == (Entry(name="cp.example.com"),)
    both = (Entry(name="cp4.example.com"), Entry(ip=V6("fd00::5")))
    assert parse_addresses("cp4.example.com,fd00::5") == both


@pytest.mark.parametrize(
    "raw", ["10.0.0.1,10.0.0.2", "fd00::1,fd00::2", "a,b,c", "-bad-.com", "224.0.0.1", "::"]
)
def test_parse_rejects(raw: str) -> None:
    with pytest.raises(ConfigError):
        parse_addresses(raw)


def test_modes_on_one_dual_stack_name() -> None:
    ans = [V6("fd00::9"), V4("10.0.0.9")]
    assert picks("first", ans) == (V6("fd00::9"),)
    assert picks("ipv4", ans) == (V4("10.0.0.9"),)
    assert picks("ipv6", ans) == (V6("fd00::9"),)
    assert picks("dual", ans) == (V4("10.0.0.9"), V6("fd00::9"))
    vs = choose([Entry(name="cp")], "dual", {"cp": ans})
    assert (vs.v4, vs.v6, vs.problems) == (V4("10.0.0.9"), V6("fd00::9"), ())
    assert vs.addresses == (V4("10.0.0.9"), V6("fd00::9"))


def test_missing_family_is_a_problem_not_a_guess() -> None:
    vs = choose([Entry(name="cp")], "ipv6", {"cp": [V4("10.0.0.9")]})
    assert vs.empty and vs.problems == ("cp: no ipv6 address (dns_mode=ipv6)",)


def test_literal_first_wins_the_family() -> None:
    vs = choose([Entry(ip=V4("10.0.0.1")), Entry(name="cp")], "dual", {"cp": [V4("10.0.0.2"), V6("fd00::2")]})
    assert (vs.v4, vs.v6) == (V4("10.0.0.1"), V6("fd00::2"))
    assert vs.problems == ("cp: IPv4 10.0.0.2 ignored, 10.0.0.1 came first",)


@given(answers, modes)
def test_picks_respect_the_mode(ans: list[IPAddress], mode: str) -> None:
    got = picks(mode, ans)
    assert all(a in ans for a in got)
    assert len({a.version for a in got}) == len(got)  # never two of one family
    if mode == "ipv4":
        assert all(a.version == 4 for a in got) and (bool(got) == any(a.version == 4 for a in ans))
    if mode == "ipv6":
        assert all(a.version == 6 for a in got) and (bool(got) == any(a.version == 6 for a in ans))
    if mode == "first":
        assert got == tuple(ans[:1])
    if mode == "dual":
        assert {a.version for a in got} == {a.version for a in ans}


@given(st.lists(st.one_of(a4.map(lambda a: Entry(ip=a)), a6.map(lambda a: Entry(ip=a)),
                          st.sampled_from(["a", "b"]).map(lambda n: Entry(name=n))), max_size=2),
       st.dictionaries(st.sampled_from(["a", "b"]), answers), modes)
def test_choose_takes_only_given_addresses_per_family(
    entries: list[Entry], ans: dict[str, list[IPAddress]], mode: str
) -> None:
    vs = choose(entries, mode, ans)
    offered = {e.ip for e in entries if e.ip is not None} | {a for n in ans.values() for a in n}
    assert vs.v4 is None or (vs.v4.version == 4 and vs.v4 in offered)
    assert vs.v6 is None or (vs.v6.version == 6 and vs.v6 in offered)
    # A literal listed first always wins its family.
    if entries and entries[0].ip is not None:
        assert entries[0].ip in vs.addresses
    assert choose(entries, mode, ans) == vs  # deterministic


async def test_resolve_looks_each_name_up_once() -> None:
    calls: list[str] = []

    async def lookup(name: str) -> list[IPAddress]:
        calls.append(name)
        return [V4("10.0.0.7"), V6("fd00::7")]

    vs = await resolve(parse_addresses("cp.example.com"), "dual", lookup)
    assert calls == ["cp.example.com"]
    assert vs.addresses == (V4("10.0.0.7"), V6("fd00::7"))
