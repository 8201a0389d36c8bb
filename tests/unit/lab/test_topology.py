"""The lab's addressing plan: unique, inside the reserved ranges, valid names, stable MACs."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.errors import ConfigError
from kubevip.lab import topology

lab_ids = st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True)
slots = st.integers(min_value=topology.SLOTS.start, max_value=topology.SLOTS.stop - 1)
node_counts = st.integers(min_value=1, max_value=topology.MAX_NODES)


@given(lab_ids, slots, node_counts)
def test_addresses_macs_names_unique_and_inside_lab_ranges(lab_id: str, slot: int, n: int) -> None:
    t = topology.plan(lab_id, slot, n)
    eps = (*t.nodes, t.client)
    v4 = [e.ipv4 for e in eps] + [t.uplink_ipv4, *t.vip_pool_v4]
    v6 = [e.ipv6 for e in eps] + [t.uplink_ipv6, *t.vip_pool_v6]
    assert len(set(v4)) == len(v4) and len(set(v6)) == len(v6)
    assert all(a in t.subnet_v4 and a in topology.IPV4_SPACE for a in v4)
    assert all(a in t.subnet_v6 and a in topology.IPV6_SPACE for a in v6)
    assert all(a.version == 4 for a in v4) and all(a.version == 6 for a in v6)
    macs = [e.mac for e in eps]
    assert len(set(macs)) == len(macs)
    # locally administered unicast: second-lowest bit of the first octet set, lowest clear
    assert all(int(m.split(":")[0], 16) & 0b11 == 0b10 for m in macs)
    names = list(t.netns_names)
    assert len(set(names)) == len(names) and all(lab_id in nm for nm in names)
    assert len(t.uplink) <= 15 and all(len(e.bridge_port) <= 15 for e in eps)


@given(lab_ids, slots, slots, node_counts)
def test_different_slots_never_share_addresses(lab_id: str, a: int, b: int, n: int) -> None:
    ta, tb = topology.plan(lab_id, a, n), topology.plan(lab_id, b, n)
    assert (a == b) == (ta.subnet_v4 == tb.subnet_v4)
    assert (a == b) == ta.subnet_v6.overlaps(tb.subnet_v6)
    assert topology.slot_of(ta.uplink_ipv4) == a


@given(slots, st.sampled_from([1, 11, 99, 100, 200, 249, 254]))
def test_both_families_of_a_host_read_alike(slot: int, host: int) -> None:
    assert str(topology.host_v4(slot, host)).endswith(f".{host}")
    assert str(topology.host_v6(slot, host)).endswith(f"::{host}")


@given(st.sets(slots, max_size=50))
def test_free_slot_is_the_lowest_unused(used: set[int]) -> None:
    s = topology.free_slot(used)
    assert s not in used and all(x in used for x in topology.SLOTS if x < s)


def test_all_slots_used_names_the_way_out() -> None:
    with pytest.raises(ConfigError, match="kubevip lab down"):
        topology.free_slot(set(topology.SLOTS))


@pytest.mark.parametrize("bad", ["", "UPPER", "with-dash", "elevenchars", "a b"])
def test_bad_lab_ids_are_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="lab id"):
        topology.validate_lab_id(bad)


def test_slot_of_outside_the_space_is_none() -> None:
    assert topology.slot_of(ipaddress.IPv4Address("10.0.0.1")) is None
    assert topology.slot_of(ipaddress.IPv4Address("198.19.255.1")) == 511


@pytest.mark.parametrize(("n", "ok"), [(0, False), (1, True), (topology.MAX_NODES, True),
                                       (topology.MAX_NODES + 1, False)])
def test_node_count_bounds(n: int, ok: bool) -> None:
    if ok:
        assert len(topology.plan("x", 1, n).nodes) == n
    else:
        with pytest.raises(ConfigError, match="nodes"):
            topology.plan("x", 1, n)
