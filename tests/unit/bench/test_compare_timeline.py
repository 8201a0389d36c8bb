"""Holder intervals, overlaps and failover times (bench/compare/timeline.py)."""

from pathlib import Path

from compare.stamps import stamp_of
from compare.timeline import (
    AddrEvent,
    Reply,
    Stamp,
    create_stages,
    failover_times,
    first_answer,
    holder_intervals,
    last_change,
    measure,
    overlap,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def test_intervals_from_events() -> None:
    ev = [
        AddrEvent(1.0, "a", "add", "10.0.0.9"),
        AddrEvent(3.0, "a", "del", "10.0.0.9"),
        AddrEvent(2.5, "b", "add", "10.0.0.9"),
        AddrEvent(2.0, "b", "add", "10.0.0.8"),
    ]
    got = holder_intervals(ev, "10.0.0.9", end=10.0)
    assert got == {"a": [(1.0, 3.0)], "b": [(2.5, 10.0)]}
    o = overlap(got)
    assert (o.episodes, round(o.total_s, 6), round(o.longest_s, 6)) == (1, 0.5, 0.5)


def test_handover_at_one_instant_is_not_an_overlap() -> None:
    assert overlap({"a": [(0.0, 1.0)], "b": [(1.0, 2.0)]}).episodes == 0


def test_window_clips() -> None:
    o = overlap({"a": [(0.0, 10.0)], "b": [(0.0, 10.0)]}, window=(4.0, 5.0))
    assert (o.episodes, o.total_s) == (1, 1.0)


def test_failover_seen_by_client() -> None:
    replies = [Reply(t / 100, "ipv4", "a") for t in range(0, 100)]
    replies += [Reply(1.5 + t / 100, "ipv4", "b") for t in range(0, 50)]
    took, gap = failover_times(replies, t0=1.0, old_node="a", family="ipv4")
    assert took is not None and gap is not None
    assert abs(took - 0.5) < 1e-9
    assert abs(gap - 0.51) < 1e-9
    assert failover_times(replies, 1.0, "a", "ipv6") == (None, None)
    assert first_answer(replies, 0.995, "ipv4") is not None


spans = st.lists(
    st.tuples(st.floats(0, 100), st.floats(0, 10)).map(lambda p: (p[0], p[0] + p[1])), max_size=4
)


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(st.dictionaries(st.sampled_from("abc"), spans))
def test_one_node_never_overlaps_itself(intervals: dict[str, list[tuple[float, float]]]) -> None:
    o = overlap(intervals)
    assert o.longest_s <= o.total_s + 1e-9
    if len(intervals) < 2:
        assert o == overlap({})


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(spans, spans)
def test_two_node_overlap_bounded_by_each_nodes_time(
    a: list[tuple[float, float]], b: list[tuple[float, float]]
) -> None:
    assert overlap({"a": a, "b": b}).total_s <= min(measure(a), measure(b)) + 1e-6


@settings(deadline=None)  # timing-free properties; the machine may be loaded
@given(spans, spans)
def test_two_nodes_overlap_is_symmetric(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> None:
    assert overlap({"a": a, "b": b}) == overlap({"b": b, "a": a})


def test_watcher_file_to_events(tmp_path: Path) -> None:
    import json

    from compare.runner import read_events

    lines = [
        {"t": 1.0, "node": "a", "op": "poll", "addrs": ["10.0.0.9"]},  # held before the watcher started
        {"t": 1.0, "node": "b", "op": "poll", "addrs": []},
        {"t": 2.0, "node": "b", "op": "add", "addr": "10.0.0.9"},
        {"t": 2.5, "node": "a", "op": "del", "addr": "10.0.0.9"},
        {"t": 3.0, "node": "a", "op": "poll", "addrs": []},
    ]
    path = tmp_path / "w.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    ev = read_events({"all": path})
    got = holder_intervals(ev, "10.0.0.9", end=4.0)
    assert got == {"a": [(1.0, 2.5)], "b": [(2.0, 4.0)]}
    assert overlap(got).total_s == 0.5


def test_the_restart_converged_at_the_last_vip_change_within_the_window() -> None:
    ev = [
        AddrEvent(0.5, "a", "del", "10.0.0.9"),  # before the restart: the VIPs were cleared
        AddrEvent(1.2, "a", "add", "10.0.0.9"),
        AddrEvent(1.3, "b", "add", "10.0.0.8"),
        AddrEvent(1.4, "c", "add", "10.0.0.8"),  # a second holder for a moment
        AddrEvent(1.45, "c", "del", "10.0.0.8"),
        AddrEvent(1.6, "a", "add", "10.0.0.7"),  # not one of the restart's VIPs
        AddrEvent(2.5, "a", "del", "10.0.0.9"),  # after the check passed
    ]
    assert last_change(ev, {"10.0.0.9", "10.0.0.8"}, since=1.0, until=2.0) == 1.45
    assert last_change(ev, {"10.0.0.9"}, since=1.0, until=2.0) == 1.2
    assert last_change(ev, {"10.0.0.6"}, since=1.0, until=2.0) is None


@given(st.lists(st.tuples(st.floats(0, 10), st.sampled_from(["x", "y", "z"])), max_size=20),
       st.floats(0, 10), st.floats(0, 10))
def test_last_change_is_the_latest_event_of_the_wanted_addresses_in_the_window(
    raw: list[tuple[float, str]], a: float, b: float
) -> None:
    since, until = min(a, b), max(a, b)
    ev = [AddrEvent(t, "n", "add", addr) for t, addr in raw]
    got = last_change(ev, {"x", "y"}, since, until)
    inside = [t for t, addr in raw if addr in ("x", "y") and since <= t <= until]
    assert got == (max(inside) if inside else None)


VIPS = {"ipv4": "192.0.2.7", "ipv6": "2001:db8::7"}


def test_create_stages_take_each_first_instant_after_the_post() -> None:
    stamps = [
        Stamp(0.5, "Service", "ADDED", "svc", "", 0),  # an earlier create of the same name
        Stamp(1.02, "Service", "ADDED", "svc", "", 0),
        Stamp(1.03, "Service", "ADDED", "other", "", 0),
        Stamp(1.04, "EndpointSlice", "ADDED", "svc", "IPv4", 0),  # no ready endpoint yet
        Stamp(1.05, "EndpointSlice", "ADDED", "svc", "IPv6", 2),
        Stamp(1.06, "EndpointSlice", "MODIFIED", "svc", "IPv4", 1),
        Stamp(1.09, "EndpointSlice", "MODIFIED", "svc", "IPv4", 3),
    ]
    events = [
        AddrEvent(0.9, "n1", "add", VIPS["ipv4"]),  # before the POST
        AddrEvent(1.07, "n2", "del", VIPS["ipv4"]),
        AddrEvent(1.08, "n2", "add", VIPS["ipv4"]),
        AddrEvent(1.10, "n1", "add", VIPS["ipv4"]),
    ]
    got = create_stages(stamps, events, "svc", VIPS, 1.0)
    rounded = {k: {f: round(x, 3) for f, x in per.items() if x == x} for k, per in got.items()}
    assert rounded == {
        "service": {"ipv4": 0.02, "ipv6": 0.02},
        "slice": {"ipv4": 0.06, "ipv6": 0.05},
        "address": {"ipv4": 0.08},
    }
    assert got["address"]["ipv6"] != got["address"]["ipv6"]  # NaN: never seen


def test_stamp_of_reads_the_slice_family_and_its_ready_endpoints() -> None:
    slice_event = {
        "type": "MODIFIED",
        "object": {
            "metadata": {"name": "svc-abcde", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": "IPv6",
            "endpoints": [{"conditions": {"ready": True}}, {"conditions": {"ready": False}}, {}],
        },
    }
    want = Stamp(2.0, "EndpointSlice", "MODIFIED", "svc", "IPv6", 1)
    assert stamp_of(2.0, "EndpointSlice", slice_event) == want
    service = {"type": "ADDED", "object": {"metadata": {"name": "svc"}}}
    assert stamp_of(3.0, "Service", service) == Stamp(3.0, "Service", "ADDED", "svc", "", 0)
    assert stamp_of(4.0, "Service", {"type": "BOOKMARK", "object": {"metadata": {}}}) is None
