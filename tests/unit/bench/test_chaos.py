"""The soak's bookkeeping (bench/chaos.py): address timeline from the sampler, two-holder stretches,
removal times, attribution of incidents to faults, the union of gaps."""

from __future__ import annotations

from chaos import Fault, Timeline, attribute, bound_for, status_problem, union_length
from hypothesis import given
from hypothesis import strategies as st

V4, V6 = "198.18.1.101", "fd6b:7669:7000:1::1:0"
VIPS = {V4, V6}


def ev(t: float, node: str, op: str, addr: str) -> dict[str, object]:
    return {"t": t, "node": node, "op": op, "addr": addr}


def poll(t: float, node: str, *addrs: str) -> dict[str, object]:
    return {"t": t, "node": node, "op": "poll", "addrs": list(addrs)}


def test_union_counts_overlaps_once() -> None:
    assert union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == 4
    assert union_length([]) == 0


@given(st.lists(st.tuples(st.floats(0, 100), st.floats(0, 10)), max_size=20))
def test_union_is_between_the_longest_and_the_sum(raw: list[tuple[float, float]]) -> None:
    iv = [(a, a + d) for a, d in raw]
    u = union_length(iv)
    assert max((b - a for a, b in iv), default=0) - 1e-9 <= u <= sum(b - a for a, b in iv) + 1e-9


def test_a_vip_on_two_nodes_is_a_double_with_both_names() -> None:
    tl = Timeline.build(
        [
            ev(1.0, "node1", "add", V4),
            ev(2.0, "node2", "add", V4),
            ev(2.5, "node1", "del", V4),
            ev(3.0, "node1", "add", V6),
            poll(10.0, "node1", V6),
            poll(10.0, "node2", V4),
        ],
        VIPS,
    )
    assert tl.doubles() == [(V4, 2.0, 2.5, ("node1", "node2"))]
    assert tl.holders(2.2) == {V4: {"node1", "node2"}}
    assert tl.holders(4.0) == {V4: {"node2"}, V6: {"node1"}}


def test_a_hand_over_without_overlap_is_no_double() -> None:
    # The old holder's delete and the new holder's add in the same instant: leaving counts first.
    tl = Timeline.build(
        [ev(1.0, "node1", "add", V4), ev(2.0, "node1", "del", V4), ev(2.0, "node2", "add", V4)], VIPS
    )
    assert tl.doubles() == []


def test_a_lost_delete_is_corrected_by_the_next_dump() -> None:
    tl = Timeline.build(
        [
            ev(1.0, "node1", "add", V4),
            ev(2.0, "node2", "add", V4),
            poll(2.2, "node1"),
            poll(3.0, "node2", V4),
        ],
        VIPS,
    )
    assert tl.doubles() == [(V4, 2.0, 2.2, ("node1", "node2"))]


def test_addresses_outside_the_vips_are_ignored() -> None:
    tl = Timeline.build([ev(1.0, "node1", "add", "10.0.0.1"), ev(1.0, "node2", "add", "10.0.0.1")], VIPS)
    assert tl.doubles() == []


def test_removal_time_per_vip_and_still_there() -> None:
    tl = Timeline.build(
        [
            ev(1.0, "node1", "add", V4),
            ev(1.0, "node1", "add", V6),
            ev(5.5, "node1", "del", V4),
            ev(20.0, "node1", "del", V6),
        ],
        VIPS,
    )
    assert tl.left("node1", 4.0, 10.0) == {V4: 1.5, V6: None}
    assert tl.left("node2", 4.0, 10.0) == {}


def fault(kind: str, start: float, end: float) -> Fault:
    return Fault(kind, "", None, start, end, 0.0, "")


def test_incidents_go_to_the_fault_whose_window_holds_them() -> None:
    a, b = fault("kill", 10.0, 15.0), fault("churn", 30.0, 30.0)
    assert attribute([a, b], 12.0) is a
    assert attribute([a, b], 24.0) is a  # within the tail after the fault ended
    assert attribute([a, b], 26.0) is None
    assert attribute([a, b], 31.0) is b
    assert attribute([a, b], 5.0) is None


def test_bounds_name_the_crash_goal_and_the_outage() -> None:
    assert bound_for("kill", "3 s", 3.0, (1.5, 1.0, 0.25))[0] == 2.0
    assert bound_for("apiserver", "restart", 12.0, (1.5, 1.0, 0.25))[0] == 12.0 + 5.5
    assert bound_for("proxy", "empty", 5.0, (1.5, 1.0, 0.25))[0] == 0.0
    assert bound_for("churn", "move svc-1", 0.1, (1.5, 1.0, 0.25))[0] == 0.0


def test_status_problems_are_told_from_an_unsettled_kernel() -> None:
    assert not status_problem("svc-1: 198.18.1.135 held by []; ingress lists 198.18.1.135, held by []")
    assert not status_problem("svc-1: fd6b::1 held by ['node1', 'node2']")
    assert status_problem("svc-1: vipHost node3, kernel ['node2']")
    assert status_problem("svc-1: ingress lacks 198.18.1.181, held by ['node1']")
