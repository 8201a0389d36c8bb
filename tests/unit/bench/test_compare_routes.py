"""The router's kernel-table events (bench/compare/routewatch.py) and what the BGP rows take from them
(bench/compare/rib.py)."""

from __future__ import annotations

import ipaddress
import math
import socket
import struct

from compare.rib import RouteEvent, first_after
from compare.routewatch import RTM_DELROUTE, RTM_NEWROUTE, parse
from hypothesis import given
from hypothesis import strategies as st


def route_msg(mtype: int, dst: str, prefixlen: int | None = None, extra_attr: bool = True) -> bytes:
    """One rtnetlink route message as the kernel sends it: header, rtmsg, attributes (RTA_TABLE first)."""
    ip = ipaddress.ip_address(dst)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    plen = ip.max_prefixlen if prefixlen is None else prefixlen
    rtm = struct.pack("=BBBBBBBBI", family, plen, 0, 0, 254, 12, 0, 1, 0)
    attrs = struct.pack("=HHI", 8, 15, 254) if extra_attr else b""  # RTA_TABLE
    raw = ip.packed
    attrs += struct.pack("=HH", 4 + len(raw), 1) + raw + b"\0" * (-len(raw) % 4)  # RTA_DST
    body = rtm + attrs
    return struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body


def test_host_routes_of_both_families_in_one_datagram() -> None:
    buf = route_msg(RTM_NEWROUTE, "192.0.2.10") + route_msg(RTM_DELROUTE, "2001:db8::10")
    assert parse(buf) == [("add", "192.0.2.10"), ("del", "2001:db8::10")]


def test_other_prefixes_and_messages_are_skipped() -> None:
    buf = (route_msg(RTM_NEWROUTE, "192.0.2.0", 24) + route_msg(RTM_NEWROUTE, "2001:db8::", 64)
           + struct.pack("=IHHII", 16, 3, 0, 0, 0))  # NLMSG_DONE
    assert parse(buf) == []
    assert parse(route_msg(RTM_NEWROUTE, "192.0.2.1", extra_attr=False)) == [("add", "192.0.2.1")]


def test_first_event_after_the_start() -> None:
    ev = [RouteEvent(1.0, "add", "a"), RouteEvent(2.5, "add", "a"), RouteEvent(3.0, "del", "a"),
          RouteEvent(2.2, "add", "b")]
    assert first_after(ev, "add", "a", 2.0) == 0.5  # the earlier add belongs to a previous run
    assert first_after(ev, "del", "a", 2.0) == 1.0
    assert math.isnan(first_after(ev, "del", "b", 2.0))


@given(st.lists(st.tuples(st.floats(0, 100), st.sampled_from(["add", "del"]), st.sampled_from("ab"))),
       st.floats(0, 100))
def test_first_after_is_never_negative_and_never_before_an_event(raw: list[tuple[float, str, str]],
                                                               since: float) -> None:
    ev = [RouteEvent(*r) for r in raw]
    got = first_after(ev, "add", "a", since)
    expected = [t - since for t, op, d in raw if op == "add" and d == "a" and t >= since]
    assert (math.isnan(got) and not expected) or (got >= 0 and got == min(expected))
