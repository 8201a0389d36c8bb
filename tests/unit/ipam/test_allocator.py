"""Properties of the allocation table: no duplicates, per-family policy, stability, release."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from kubevip.core.policy import AddressPolicy
from kubevip.core.views import IPFamily
from kubevip.ipam.allocator import (
    ADDRESS_CONFLICT,
    ADDRESS_REFUSED,
    NO_POOL,
    OUTSIDE_EVERY_POOL,
    POOL_EXHAUSTED,
    POOL_MALFORMED,
    REQUIRE_DUAL_STACK_UNMET,
    Allocator,
    Problem,
    Request,
)
from kubevip.ipam.pools import parse_configmap

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
ip = ipaddress.ip_address

# Small, overlapping pools so that exhaustion and cross-namespace overlap happen often.
CONFIGS = [
    {"range-global": "10.0.0.1-10.0.0.4,fd00::1-fd00::3", "cidr-a": "10.0.0.0/30",
     "range-b": "fd00::2-fd00::5"},
    {"cidr-global": "10.0.0.252/30,fd00::/126", "search-order": "desc"},
    {"range-global": "10.0.0.254-10.0.1.2", "range-a": "fd00::1-fd00::2", "allow-share-a": "true",
     "allow-share-b": "true"},
]
NAMESPACES = ("a", "b", "c")
FAMILY_CHOICES = [(V4,), (V6,), (V4, V6), (V6, V4)]


class AllocatorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.alloc = Allocator(parse_configmap(CONFIGS[0]))
        self.requests: dict[tuple[str, str], Request] = {}
        self.last: dict[tuple[str, str], tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]] = {}
        self.sharing_ever = False

    @rule(
        ns=st.sampled_from(NAMESPACES), name=st.sampled_from("pqrstu"), fams=st.sampled_from(FAMILY_CHOICES),
        require=st.booleans(), ports=st.frozensets(st.sampled_from([("TCP", 80), ("TCP", 443), ("UDP", 53)]),
                                                   min_size=1, max_size=2),
    )
    def ensure(self, ns: str, name: str, fams: tuple[IPFamily, ...], require: bool,
               ports: frozenset[tuple[str, int]]) -> None:
        key = (ns, name)
        before = dict((IPFamily.of(a), a) for a in self.alloc.holding(key))
        req = Request(ns, name, fams, require_all=require and len(fams) == 2, ports=ports)
        out = self.alloc.ensure(req)
        self.requests[key] = req
        self.last[key] = out.addresses
        got = {IPFamily.of(a): a for a in out.addresses}
        # Families: only requested ones, at most one each, in request order.
        assert len(got) == len(out.addresses)
        assert set(got) <= set(fams)
        assert [IPFamily.of(a) for a in out.addresses] == [f for f in fams if f in got]
        # Stability: an address of a still-requested family is kept, unless it is shared and the
        # Service's new ports clash with an earlier holder's (then it moves; the other keeps it).
        for f, a in before.items():
            if f in fams:
                if got.get(f) != a:
                    assert a in out.released and self.alloc.holders(a)
            else:
                assert a in out.released
        # RequireDualStack: a Service that had nothing gets both or nothing.
        if req.require_all and not before:
            assert len(out.addresses) in (0, 2)
        # PreferDualStack / SingleStack: a missing family is explained by a problem.
        for f in fams:
            if f not in got:
                assert any(p.family in (f, None) for p in out.problems)
        # New addresses come from the pool the namespace's lookup names, never .0/.255.
        for a in out.added:
            pool = self.alloc.config.lookup(ns, IPFamily.of(a)).pool
            assert pool is not None and a in pool
            assert not (a.version == 4 and a.packed[-1] in (0, 255))
        assert out.complete == (len(out.addresses) == len(fams))
        # The controller ensures displaced Services again: they move off the clashing address.
        for other in out.displaced:
            again = self.alloc.ensure(self.requests[other])
            self.last[other] = again.addresses
            assert not again.displaced

    @precondition(lambda self: bool(self.requests))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.requests)))
        held = self.alloc.holding(key)
        freed = self.alloc.release(key)
        assert freed == held
        del self.requests[key]
        self.last.pop(key, None)
        for a in freed:
            assert key not in self.alloc.holders(a)

    @rule(i=st.integers(0, len(CONFIGS) - 1))
    def reconfigure(self, i: int) -> None:
        self.alloc.set_config(parse_configmap(CONFIGS[i]))
        self.sharing_ever |= any(k.startswith("allow-share") for k in CONFIGS[i])

    @invariant()
    def no_address_twice_unless_sharing_allowed(self) -> None:
        seen: dict[object, list[tuple[str, str]]] = {}
        for key in self.alloc.services():
            for a in self.alloc.holding(key):
                seen.setdefault(a, []).append(key)
        for a, keys in seen.items():
            assert self.alloc.holders(a) == frozenset(keys)
            if len(keys) > 1:
                assert self.sharing_ever, f"{a} given to {keys} although no namespace allows sharing"
                ports = [self.requests[k].ports for k in keys if k in self.requests]
                for i, p in enumerate(ports):
                    for q in ports[i + 1:]:
                        assert not (p & q), f"{a} shared by {keys} with overlapping ports"

    @invariant()
    def table_matches_outcomes(self) -> None:
        for key, addrs in self.last.items():
            assert self.alloc.holding(key) == addrs


AllocatorMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestAllocatorMachine = AllocatorMachine.TestCase


def _alloc(data: dict[str, str]) -> Allocator:
    return Allocator(parse_configmap(data))


@given(st.integers(1, 60), st.sampled_from(["", "desc"]))
def test_fills_a_pool_exactly_then_reports_exhaustion(n: int, order: str) -> None:
    alloc = _alloc({"range-global": "10.0.0.250-10.0.1.10", "search-order": order})
    usable = [a for a in ipaddress.summarize_address_range(ip("10.0.0.250"), ip("10.0.1.10"))
              for a in a if a.packed[-1] not in (0, 255)]
    got = []
    for i in range(min(n, len(usable))):
        out = alloc.ensure(Request("ns", f"s{i}", (V4,)))
        got.extend(out.added)
    expected = usable if order == "" else list(reversed(usable))
    assert got == expected[: len(got)]
    if n >= len(usable):
        out = alloc.ensure(Request("ns", "extra", (V4,)))
        assert out.addresses == () and [p.reason for p in out.problems] == [POOL_EXHAUSTED]


@given(st.lists(st.integers(0, 19), min_size=1, max_size=20, unique=True))
def test_released_addresses_come_back(to_release: list[int]) -> None:
    alloc = _alloc({"cidr-global": "10.0.0.0/27"})  # 30 usable minus .0: 31 addresses
    first = {i: alloc.ensure(Request("ns", f"s{i}", (V4,))).addresses[0] for i in range(20)}
    freed = {first[i] for i in to_release}
    for i in to_release:
        assert alloc.release(("ns", f"s{i}")) == (first[i],)
    again = {alloc.ensure(Request("ns", f"n{i}", (V4,))).addresses[0] for i in range(len(to_release))}
    # Ascending search: the lowest free addresses are the ones just released.
    assert again == freed


def test_prefer_dual_stack_adds_the_second_family_when_one_frees() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.2,fd00::1-fd00::1"})
    a = alloc.ensure(Request("ns", "a", (V6,)))
    b = alloc.ensure(Request("ns", "b", (V4, V6)))
    assert [IPFamily.of(x) for x in b.addresses] == [V4]
    assert not b.complete and [p.reason for p in b.problems] == [POOL_EXHAUSTED]
    alloc.release(("ns", "a"))
    b2 = alloc.ensure(Request("ns", "b", (V4, V6)))
    assert b2.addresses == (b.addresses[0], a.addresses[0]) and b2.complete


def test_require_dual_stack_is_all_or_nothing() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.2,fd00::1-fd00::1"})
    alloc.ensure(Request("ns", "a", (V6,)))
    out = alloc.ensure(Request("ns", "b", (V4, V6), require_all=True))
    assert out.addresses == ()
    assert {p.reason for p in out.problems} == {POOL_EXHAUSTED, REQUIRE_DUAL_STACK_UNMET}
    assert alloc.in_use() == 1  # the IPv4 it tried was given back


def test_dual_to_single_releases_single_to_dual_adds() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.2,fd00::1-fd00::2"})
    dual = alloc.ensure(Request("ns", "a", (V4, V6)))
    single = alloc.ensure(Request("ns", "a", (V6,)))
    assert single.addresses == (dual.addresses[1],) and single.released == (dual.addresses[0],)
    back = alloc.ensure(Request("ns", "a", (V6, V4)))
    assert back.addresses[0] == dual.addresses[1] and IPFamily.of(back.addresses[1]) is V4


def test_overlapping_namespace_and_global_pools_never_collide() -> None:
    # kube-vip's provider checks namespace pools only against the namespace's Services; we do not.
    alloc = _alloc({"cidr-a": "10.0.0.0/29", "cidr-global": "10.0.0.0/29"})
    got = [alloc.ensure(Request(ns, f"s{i}", (V4,))).addresses for i in range(3) for ns in ("a", "b")]
    flat = [a for addrs in got for a in addrs]
    assert len(flat) == len(set(flat)) == 6


def test_foreign_addresses_are_never_handed_out_and_conflicts_reported() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    assert alloc.hold(("user", "pinned"), [ip("10.0.0.1")], owned=False) == ()
    assert alloc.ensure(Request("ns", "a", (V4,))).addresses == (ip("10.0.0.2"),)
    problems = alloc.hold(("other", "dup"), [ip("10.0.0.2")], owned=False)
    assert [p.reason for p in problems] == [ADDRESS_CONFLICT]
    assert alloc.ensure(Request("ns", "b", (V4,))).addresses == (ip("10.0.0.3"),)


def test_sharing_only_with_disjoint_ports_and_both_namespaces_allowing() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true"})
    x = alloc.ensure(Request("a", "x", (V4,), ports=frozenset({("TCP", 80)})))
    y = alloc.ensure(Request("a", "y", (V4,), ports=frozenset({("TCP", 443)})))
    z = alloc.ensure(Request("a", "z", (V4,), ports=frozenset({("TCP", 80)})))
    w = alloc.ensure(Request("b", "w", (V4,), ports=frozenset({("UDP", 53)})))
    assert x.addresses == y.addresses
    assert z.addresses != x.addresses and w.addresses not in (x.addresses, z.addresses)


def test_kept_address_outside_every_pool_is_reported_not_moved() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    first = alloc.ensure(Request("ns", "a", (V4,))).addresses
    alloc.set_config(parse_configmap({"range-global": "10.9.0.1-10.9.0.3"}))
    out = alloc.ensure(Request("ns", "a", (V4,)))
    assert out.addresses == first and [p.reason for p in out.problems] == [OUTSIDE_EVERY_POOL]


@pytest.mark.parametrize(("data", "reason"), [({}, NO_POOL), ({"cidr-ns": "junk"}, POOL_MALFORMED)])
def test_no_address_reasons(data: dict[str, str], reason: str) -> None:
    out = _alloc(data).ensure(Request("ns", "a", (V4, V6)))
    assert out.addresses == () and {p.reason for p in out.problems} == {reason}


def test_big_ipv6_pool_is_not_scanned_whole() -> None:
    alloc = _alloc({"cidr-global": "fd00::/64"})
    addrs = [alloc.ensure(Request("ns", f"s{i}", (V6,))).addresses[0] for i in range(100)]
    assert len(set(addrs)) == 100 and addrs[0] == ip("fd00::")


def test_sharing_across_namespaces_needs_both_to_allow() -> None:
    """Namespaces a and c allow sharing, b does not: nothing of b is ever shared, in either direction."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.4", "allow-share-a": "true", "allow-share-c": "true"})
    tcp80, udp53 = frozenset({("TCP", 80)}), frozenset({("UDP", 53)})
    ax = alloc.ensure(Request("a", "x", (V4,), ports=tcp80)).addresses
    bw = alloc.ensure(Request("b", "w", (V4,), ports=udp53)).addresses
    assert bw != ax, "b forbids sharing: its Service gets an address of its own"
    cy = alloc.ensure(Request("c", "y", (V4,), ports=frozenset({("TCP", 443)}))).addresses
    assert cy == ax, "a and c both allow sharing, ports disjoint: c shares a's address"
    # a/u clashes with a/x on ax (TCP 80) and must not share b's address although its ports are free.
    au = alloc.ensure(Request("a", "u", (V4,), ports=tcp80)).addresses
    assert au not in (ax, bw)
    assert alloc.holders(bw[0]) == frozenset({("b", "w")})


def test_an_annotated_address_shared_into_a_forbidding_namespace_is_a_conflict() -> None:
    """Addresses already in annotations (start-up, hand edits): sharing needs both namespaces to allow it,
    checked from either side; with both allowing and disjoint ports it is no conflict."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true", "allow-share-c": "true"})
    ax = alloc.ensure(Request("a", "x", (V4,), ports=frozenset({("TCP", 80)}))).addresses
    udp = frozenset({("UDP", 53)})
    assert [p.reason for p in alloc.hold(("b", "w"), ax, ports=udp, owned=True)] == [ADDRESS_CONFLICT]
    alloc.release(("b", "w"))
    assert alloc.hold(("c", "v"), ax, ports=udp, owned=True) == ()


# -- cases found by mutation testing (hack/mutation, docs/testing.md) --------------------------------

TCP80, TCP443, UDP53 = frozenset({("TCP", 80)}), frozenset({("TCP", 443)}), frozenset({("UDP", 53)})


def test_holding_other_addresses_frees_the_old_ones() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    assert alloc.hold(("u", "p"), [ip("10.0.0.1")], owned=True) == ()
    assert alloc.is_owned(("u", "p"))
    assert alloc.hold(("u", "p"), [ip("10.0.0.2")], owned=False) == ()
    assert not alloc.is_owned(("u", "p")) and alloc.holding(("u", "p")) == (ip("10.0.0.2"),)
    assert alloc.holders(ip("10.0.0.1")) == frozenset()
    assert alloc.ensure(Request("ns", "a", (V4,))).addresses == (ip("10.0.0.1"),)


def test_a_conflict_found_by_hold_names_the_holder_and_both_sides_see_it() -> None:
    """A clash of ports, and a holder in a namespace that forbids sharing, are conflicts from either side
    (the earlier holder re-recorded with the same address sees the later one)."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true"})
    (a,) = alloc.ensure(Request("a", "x", (V4,), ports=TCP80)).addresses
    assert alloc.hold(("a", "y"), [a], ports=TCP80, owned=True) == (
        Problem(ADDRESS_CONFLICT, V4, f"{a} is also held by a/x"),
    )
    alloc.release(("a", "y"))
    assert alloc.hold(("b", "w"), [a], ports=UDP53, owned=False) != ()
    assert alloc.hold(("a", "x"), [a], ports=TCP80, owned=True) == (
        Problem(ADDRESS_CONFLICT, V4, f"{a} is also held by b/w"),
    )


def test_held_ports_count_for_sharing() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true"})
    assert alloc.hold(("a", "x"), [ip("10.0.0.1")], ports=TCP80, owned=True) == ()
    assert alloc.ensure(Request("a", "y", (V4,), ports=TCP80)).addresses == (ip("10.0.0.2"),)
    assert alloc.ensure(Request("a", "z", (V4,), ports=TCP443)).addresses == (ip("10.0.0.1"),)


def test_a_sharer_whose_ports_come_to_clash_moves_and_the_earlier_holder_stays() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true"})
    (a,) = alloc.ensure(Request("a", "x", (V4,), ports=TCP80)).addresses
    assert alloc.ensure(Request("a", "y", (V4,), ports=TCP443)).addresses == (a,)
    again = alloc.ensure(Request("a", "y", (V4,), ports=TCP443))
    assert again.addresses == (a,) and again.released == () and again.added == ()  # no clash: stays
    # x re-recorded from its annotation, same address: it keeps its place as the earlier holder.
    assert alloc.hold(("a", "x"), [a], ports=TCP80, owned=True) == ()
    out = alloc.ensure(Request("a", "y", (V4,), ports=TCP80 | TCP443))
    assert out.addresses != (a,) and a in out.released and out.addresses
    assert alloc.holders(a) == frozenset({("a", "x")})


@pytest.mark.parametrize("order", ["", "desc"])
def test_shared_allocation_walks_exactly_the_pool(order: str) -> None:
    """Sharing-enabled namespaces search with their own scan: both directions, every address of the
    block and nothing outside it; a skipped .0 does not end the search."""
    alloc = _alloc({"range-global": "10.0.0.5-10.0.0.7", "cidr-b": "10.0.1.0/30", "allow-share-a": "true",
                    "allow-share-b": "true", "search-order": order})
    got = [alloc.ensure(Request("a", f"s{i}", (V4,), ports=TCP80)).addresses for i in range(4)]
    expected = [(ip(f"10.0.0.{n}"),) for n in (5, 6, 7)]
    assert got == (expected if order == "" else expected[::-1]) + [()]
    first_b = alloc.ensure(Request("b", "t", (V4,), ports=TCP80)).addresses
    # Only .0 and .255 are skipped (kube-vip's rule), not a /30's broadcast address.
    assert first_b == ((ip("10.0.1.1"),) if order == "" else (ip("10.0.1.3"),))


def test_released_addresses_come_back_in_descending_order_too() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.6", "search-order": "desc"})
    first = [alloc.ensure(Request("ns", f"s{i}", (V4,))).addresses[0] for i in range(3)]
    assert first == [ip("10.0.0.6"), ip("10.0.0.5"), ip("10.0.0.4")]
    alloc.release(("ns", "s0"))
    assert alloc.ensure(Request("ns", "n", (V4,))).addresses == (ip("10.0.0.6"),)


def test_the_address_policy_is_asked_for_the_services_own_namespace() -> None:
    """With per-namespace pools as the address policy, namespace a may only have 10.0.0.2: every search
    (plain, shared, a freed hole) and every kept address is judged for the Service's own namespace."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true"})
    pools = parse_configmap({"cidr-a": "10.0.0.2/32", "range-global": "10.0.0.1-10.0.0.3"})
    alloc.set_policy(AddressPolicy(from_pools=True, pools=pools))
    assert alloc.ensure(Request("b", "y", (V4,))).addresses == (ip("10.0.0.1"),)
    assert alloc.ensure(Request("a", "x", (V4,))).addresses == (ip("10.0.0.2"),)
    alloc.release(("b", "y"))  # 10.0.0.1 becomes a hole of the scan
    alloc.release(("a", "x"))
    assert alloc.ensure(Request("a", "x", (V4,))).addresses == (ip("10.0.0.2"),)
    assert alloc.ensure(Request("a", "s", (V4,), ports=TCP80)).addresses == (ip("10.0.0.2"),)
    alloc.hold(("a", "z"), [ip("10.0.0.3")], owned=True)
    out = alloc.ensure(Request("a", "z", (V4,), ports=TCP443))
    assert ip("10.0.0.3") in out.released and out.addresses == (ip("10.0.0.2"),)
    assert [(p.reason, p.family) for p in out.problems] == [(ADDRESS_REFUSED, V4)]


def test_every_refused_kept_address_is_replaced() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3,fd00::1-fd00::3"})
    both = alloc.ensure(Request("ns", "d", (V4, V6))).addresses
    alloc.set_policy(AddressPolicy(node_addresses=frozenset(both)))  # a Node took them both
    out = alloc.ensure(Request("ns", "d", (V4, V6)))
    assert set(out.released) == set(both) and not set(out.addresses) & set(both) and len(out.addresses) == 2
    assert [(p.reason, p.family) for p in out.problems] == [(ADDRESS_REFUSED, V4), (ADDRESS_REFUSED, V6)]


def test_a_steady_service_has_no_problem_and_an_outside_address_names_its_family() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    first = alloc.ensure(Request("ns", "a", (V4,)))
    assert alloc.ensure(Request("ns", "a", (V4,))) == replace(first, added=())
    alloc.set_config(parse_configmap({"range-global": "10.9.0.1-10.9.0.3"}))
    (p,) = alloc.ensure(Request("ns", "a", (V4,))).problems
    assert (p.reason, p.family) == (OUTSIDE_EVERY_POOL, V4) and str(first.addresses[0]) in p.message


def test_require_dual_stack_gets_both_when_both_are_free() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.2,fd00::1-fd00::1"})
    out = alloc.ensure(Request("ns", "b", (V4, V6), require_all=True))
    assert out.addresses == (ip("10.0.0.1"), ip("fd00::1")) and out.problems == () and out.complete


def test_a_second_address_of_a_family_is_let_go() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    alloc.hold(("ns", "a"), [ip("10.0.0.1"), ip("10.0.0.2")], owned=True)
    out = alloc.ensure(Request("ns", "a", (V4,)))
    assert out.addresses == (ip("10.0.0.1"),) and out.released == (ip("10.0.0.2"),)
    assert alloc.holders(ip("10.0.0.2")) == frozenset()


def test_each_problem_names_its_family_and_what_to_fix() -> None:
    """The Warning Event and the failures metric's family label of each way to get no address."""
    out = _alloc({"cidr-ns": "junk"}).ensure(Request("ns", "a", (V6,)))
    (p,) = out.problems
    assert (p.reason, p.family) == (POOL_MALFORMED, V6) and "'cidr-ns'" in p.message and "IPv6" in p.message
    out = _alloc({"range-global": "10.0.0.1-10.0.0.1"}).ensure(Request("team", "a", (V4, V6)))
    (p,) = out.problems
    assert (p.reason, p.family) == (NO_POOL, V6) and "'team'" in p.message and "range-global" in p.message
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.1,fd00::1-fd00::1"})
    alloc.ensure(Request("ns", "first", (V6,)))
    out = alloc.ensure(Request("ns", "b", (V4, V6), require_all=True))
    assert [(p.reason, p.family) for p in out.problems] == [
        (POOL_EXHAUSTED, V6), (REQUIRE_DUAL_STACK_UNMET, None)]
    assert "'range-global'" in out.problems[0].message and "fd00::1-fd00::1" in out.problems[0].message
    assert out.problems[1].message == (
        "RequireDualStack needs an address of every family; none allocated until all are free")


def test_a_conflict_names_every_other_holder() -> None:
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    a = ip("10.0.0.1")
    alloc.hold(("x", "one"), [a], owned=False)
    alloc.hold(("y", "two"), [a], owned=False)
    (p,) = alloc.hold(("z", "three"), [a], owned=False)
    assert (p.reason, p.family, p.message) == (ADDRESS_CONFLICT, V4, "10.0.0.1 is also held by x/one, y/two")


@pytest.mark.parametrize("order", ["", "desc"])
def test_several_blocks_are_searched_in_the_pools_order(order: str) -> None:
    """kube-vip's search order over a pool of several ranges: ascending from the first range's start,
    descending from the last range's end, and each range to its last (first) address."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.2,10.0.0.5-10.0.0.6", "search-order": order})
    got = [alloc.ensure(Request("ns", f"s{i}", (V4,))).addresses for i in range(5)]
    expected = [(ip(f"10.0.0.{n}"),) for n in (1, 2, 5, 6)]
    assert got == (expected if order == "" else expected[::-1]) + [()]


def test_a_first_search_skips_addresses_refused_for_the_services_namespace() -> None:
    """The policy allows namespace a only 10.0.0.2: its very first search (no hole, nothing held) must
    not take 10.0.0.1, which another namespace may have."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3"})
    pools = parse_configmap({"cidr-a": "10.0.0.2/32", "range-global": "10.0.0.1-10.0.0.3"})
    alloc.set_policy(AddressPolicy(from_pools=True, pools=pools))
    assert alloc.ensure(Request("a", "x", (V4,))).addresses == (ip("10.0.0.2"),)


def test_an_earlier_holder_whose_ports_grow_names_the_sharer_it_now_clashes_with() -> None:
    """The earlier holder keeps the shared address; the later one whose ports now overlap is named in
    `displaced`, so the controller ensures it again and it moves (one address, one port, one Service)."""
    alloc = _alloc({"range-global": "10.0.0.1-10.0.0.3", "allow-share-a": "true"})
    (shared,) = alloc.ensure(Request("a", "x", (V4,), ports=TCP80)).addresses
    assert alloc.ensure(Request("a", "y", (V4,), ports=TCP443)).addresses == (shared,)
    out = alloc.ensure(Request("a", "x", (V4,), ports=TCP80 | TCP443))
    assert out.addresses == (shared,) and out.displaced == (("a", "y"),)
    moved = alloc.ensure(Request("a", "y", (V4,), ports=TCP443))
    assert moved.addresses != (shared,) and alloc.holders(shared) == frozenset({("a", "x")})
