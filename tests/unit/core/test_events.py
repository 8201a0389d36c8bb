"""Normal Events: the token bucket never lets more through than its burst plus its rate, and waiting
as told always yields a token; one node reports for a Service; only a change as the cluster sees it is
news (a restart that takes the same VIPs again tells nothing)."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core.announced import ipv6_host
from kubevip.core.events import Aggregate, TokenBucket, is_news, recorded_holder, reports_for
from kubevip.core.parse import service_from_dict
from kubevip.core.rows import service_status
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily, NodeName, UnitId
from kubevip.core.world import SERVICE, Snapshot, World, apply_event, snapshot
from kubevip.ip import IPAddress
from tests.unit.objects import service

gaps = st.lists(st.floats(min_value=0.0, max_value=2.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=50)
@given(gaps, st.integers(1, 30), st.floats(min_value=0.1, max_value=50.0))
def test_takes_never_exceed_burst_plus_rate(steps: list[float], burst: int, rate: float) -> None:
    b = TokenBucket(burst, 0.0, rate, burst)
    now = 0.0
    taken: list[float] = []
    for gap in steps:
        now += gap
        after = b.take(now)
        if after is not None:
            b = after
            taken.append(now)
    for i, start in enumerate(taken):
        for j in range(i, len(taken)):
            assert j - i + 1 <= burst + (taken[j] - start) * rate + 1e-6


@settings(max_examples=50)
@given(gaps, st.integers(1, 30), st.floats(min_value=0.1, max_value=50.0))
def test_waiting_as_told_yields_a_token(steps: list[float], burst: int, rate: float) -> None:
    b = TokenBucket(burst, 0.0, rate, burst)
    now = 0.0
    for gap in steps:
        now += gap
        after = b.take(now)
        if after is None:
            w = b.wait(now)
            assert w > 0
            after = b.take(now + w + 1e-9)
            assert after is not None
            now += w + 1e-9
        else:
            assert b.wait(now) == 0.0
        b = after


def test_an_empty_bucket_refills_at_its_rate() -> None:
    b = TokenBucket(0.0, 10.0, 5.0, 25)
    assert b.take(10.0) is None and abs(b.wait(10.0) - 0.2) < 1e-9
    assert b.take(10.2) is not None
    assert b.refilled(100.0).tokens == 25  # never above the burst


def test_aggregate_counts_and_keeps_the_latest_message() -> None:
    a = Aggregate.one("node n1 started announcing 192.0.2.1", 100.0)
    a = a.add("node n1 started announcing x", 105.0)
    assert (a.count, a.first, a.last, a.message) == (2, 100.0, 105.0, "node n1 started announcing x")


def test_one_node_reports_for_a_service() -> None:
    assert reports_for("n1", "n1", None) and not reports_for("n2", "n1", "n2")
    # Nobody announces it now: the node vipHost still names (the one that just stopped), only it.
    assert reports_for("n2", None, "n2") and not reports_for("n1", None, "n2")
    assert not reports_for("n1", None, None)


NODES = ("n1", "n2", "n3")
nodes = st.sampled_from(NODES)
maybe_node = st.one_of(st.none(), nodes)
v4s = st.integers(1, 2**32 - 2).map(ipaddress.IPv4Address)
v6s = st.integers(1, 2**128 - 2).map(ipaddress.IPv6Address)
addresses: st.SearchStrategy[IPAddress] = st.one_of(v4s, v6s)
ingresses = st.lists(addresses, max_size=4)


@given(nodes, addresses, ingresses, maybe_node, maybe_node, st.booleans())
def test_a_withdrawal_is_news_unless_the_agent_shuts_down(
    me: str, a: IPAddress, ingress: list[IPAddress], host: str | None, host6: str | None, stopping: bool,
) -> None:
    assert is_news(False, me, a, [str(i) for i in ingress], host, host6, stopping) is not stopping


@given(nodes, addresses, ingresses, maybe_node, maybe_node, st.booleans())
def test_a_start_of_an_address_the_status_does_not_list_is_news(
    me: str, a: IPAddress, others: list[IPAddress], host: str | None, host6: str | None, stopping: bool,
) -> None:
    ingress = [str(i) for i in others if i != a]
    assert is_news(True, me, a, ingress, host, host6, stopping)


@given(nodes, addresses, ingresses, maybe_node, maybe_node, st.booleans())
def test_a_start_of_the_first_listed_address_is_quiet_exactly_when_its_annotation_names_this_node(
    me: str, a: IPAddress, others: list[IPAddress], host: str | None, host6: str | None, stopping: bool,
) -> None:
    ingress = [str(a)] + [str(i) for i in others if i != a]
    names = (host6 or host) if a.version == 6 else host
    # The shutdown flag is about withdrawals only: a start is judged by what the Service says.
    assert is_news(True, me, a, ingress, host, host6, stopping) is (names != me)


@given(nodes, v4s, v4s, st.booleans(), maybe_node)
def test_a_second_address_of_a_family_has_a_recorded_holder_only_in_the_first_ones_unit(
    me: str, first: ipaddress.IPv4Address, second: ipaddress.IPv4Address, same_unit: bool, host: str | None,
) -> None:
    if first == second:
        return
    units = {first: "u1", second: "u1" if same_unit else "u2"}
    ingress = [str(first), str(second)]
    assert recorded_holder(second, ingress, host, None, units) == (host if same_unit else None)
    assert is_news(True, me, second, ingress, host, None, False, units) is not (same_unit and host == me)


@given(nodes, v6s, nodes)
def test_an_address_is_compared_as_an_address_not_as_text(
    me: str, a: ipaddress.IPv6Address, other: str,
) -> None:
    spelled = [a.exploded, "not-an-address", ""]  # a status someone else wrote, spelled otherwise
    assert not is_news(True, me, a, spelled, me, None, False)
    assert is_news(True, me, a, spelled, other if other != me else None, None, False)


def test_vip_host_ipv6_names_the_ipv6_holder_when_set() -> None:
    v4, v6 = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1")
    both = [str(v4), str(v6)]
    assert recorded_holder(v4, both, "n1", "n2") == "n1" and recorded_holder(v6, both, "n1", "n2") == "n2"
    assert recorded_holder(v6, both, "n1", None) == "n1" and recorded_holder(v6, both, None, None) is None
    assert recorded_holder(v6, [str(v4)], "n1", "n2") is None  # not listed


def _dual_stack(order: tuple[str, str], per_address: bool) -> Snapshot:
    w = World()
    vips = {"IPv4": "192.0.2.1", "IPv6": "2001:db8::1"}
    svc = service("web", ",".join(vips[f] for f in order), families=order, policy="PreferDualStack")
    apply_event(w, SERVICE, False, service_from_dict(svc))
    return snapshot(w, ClassFilter(), False, per_address=per_address)


@settings(max_examples=100)
@given(st.sampled_from((("IPv4", "IPv6"), ("IPv6", "IPv4"))), st.booleans(), nodes, nodes, nodes)
def test_what_the_reporter_writes_makes_the_same_holders_start_again_quietly(
    order: tuple[str, str], per_address: bool, h4: str, h6: str, me: str,
) -> None:
    """The status and annotations the holders write (core.rows.service_status, announced.ipv6_host) are
    what a restart compares with: the node that held a VIP takes it again without news; any other node
    taking it is news (a move). One unit per Service (lease mode, per-Service units): exact. A unit per
    address with the IPv6 VIP first: vipHost names the IPv6 holder and nothing names the IPv4 one, so its
    start is news whoever takes it (an Event too many, never a move untold)."""
    snap = _dual_stack(order, per_address)
    key = next(iter(snap.decisions))
    d, plans = snap.decisions[key], snap.granted[key]
    assert len(plans) == 2
    by_family = {IPFamily.IPV4: h4, IPFamily.IPV6: h6}
    if not per_address:  # one unit: one holder for both families
        by_family[IPFamily.IPV6] = h4
    holdings: dict[UnitId, NodeName | None] = {p.unit: NodeName(by_family[p.family]) for p in plans}
    st_ = service_status([v.address for v in d.vips], plans, holdings)
    host6 = ipv6_host(d, plans, holdings, st_.host)
    units = {p.address: str(p.unit) for p in plans}
    for p in plans:
        held_by = by_family[p.family]
        unrecorded = per_address and order[0] == "IPv6" and p.family == IPFamily.IPV4
        quiet = me == held_by and not unrecorded
        assert is_news(True, me, p.address, st_.ingress, st_.host, host6, False, units) is not quiet
