"""Bounded work and output per Service, whatever a tenant writes into `kube-vip.io/loadbalancerIPs`.

Timing lives in bench/tenant_input.py (docs/performance.md); here only the structure that keeps it
linear and bounded: at most MAX_PER_FAMILY VIPs per family, one Warning per reason with a count, the
same Warnings on every node, and another Service's decision untouched."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core import reasons
from kubevip.core.conditions import SHOWN_ADDRESSES
from kubevip.core.parse import service_from_dict
from kubevip.core.selection import ClassFilter
from kubevip.core.vips import MAX_PER_FAMILY
from kubevip.core.world import ServiceRecord, World, snapshot
from tests.unit.objects import service


def _hostile(n: int) -> str:
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(str(ipaddress.IPv4Address(0x0A000000 + i)))
        elif i % 3 == 1:
            out.append(f"10.0.{i}.300")
        else:
            out.append(str(ipaddress.IPv6Address((0xFD00 << 112) + i)))
    return ",".join(out)


def _world(*objs: dict) -> World:  # type: ignore[type-arg]
    w = World()
    for o in objs:
        v = service_from_dict(o)
        w.services[v.key] = ServiceRecord(v, o["metadata"]["creationTimestamp"])
    return w


def test_a_15000_entry_annotation_costs_its_own_service_only() -> None:
    big = service("big", _hostile(15000), families=("IPv4", "IPv6"), policy="PreferDualStack")
    other = service("other", "192.0.2.10", created="2026-01-02T00:00:00Z")
    snap = snapshot(_world(big, other), ClassFilter(), False)
    alone = snapshot(_world(other), ClassFilter(), False)
    d = snap.decisions["default/big"]
    assert sum(v.family.value == "IPv4" for v in d.vips) == MAX_PER_FAMILY
    assert sum(v.family.value == "IPv6" for v in d.vips) == MAX_PER_FAMILY
    warns = snap.warnings["default/big"]
    assert {c.reason for c in warns} == {reasons.NOT_AN_IP, reasons.TOO_MANY_ADDRESSES}
    assert all(len(c.message) < 1000 for c in warns)
    (junk,) = [c for c in warns if c.reason == reasons.NOT_AN_IP]
    assert junk.message.startswith("5000 addresses not used: not-an-ip:") and "and 4995 more" in junk.message
    # the other Service is decided and granted exactly as if the big one did not exist
    assert snap.decisions["default/other"] == alone.decisions["default/other"]
    assert snap.granted["default/other"] == alone.granted["default/other"]


@settings(max_examples=50)
@given(st.lists(st.sampled_from(["10.0.0.300", "no ip", "fd00::zz", "224.0.0.1", "127.0.0.1", "a.b"]),
                min_size=1, max_size=40))
def test_one_warning_per_reason_with_a_count(entries: list[str]) -> None:
    snap = snapshot(_world(service("s", ",".join(entries))), ClassFilter(), False)
    warns = [c for c in snap.warnings["default/s"] if c.reason != reasons.NO_VIP]
    by_reason = {c.reason: c for c in warns}
    assert len(by_reason) == len(warns)
    for reason, cond in by_reason.items():
        n = len({e for e in entries if _reason(e) == reason})
        if n == 1:
            assert cond.message.startswith("address ")
        else:
            assert cond.message.startswith(f"{n} addresses not used: {reason}")
            assert cond.message.count("'") <= 2 * SHOWN_ADDRESSES


def _reason(text: str) -> str:
    return {"224.0.0.1": reasons.MULTICAST, "127.0.0.1": reasons.LOOPBACK, "a.b": reasons.DNS_NAME}.get(
        text, reasons.NOT_AN_IP)
