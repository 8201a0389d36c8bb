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


@pytest.mark.parametrize(("stack", "families"), [("dual", (4, 6)), ("ipv4", (4,)), ("ipv6", (6,))])
def test_a_stack_configures_only_its_families(stack: str, families: tuple[int, ...]) -> None:
    t = topology.plan("x", 3, 2, stack)
    assert t.stack == stack and t.families == families
    for ep in (*t.nodes, t.client):
        assert [a.version for a in t.addresses(ep)] == list(families)
        assert t.configured(ep.ipv4) == (ep.ipv4 if 4 in families else None)
        assert t.configured(ep.ipv6) == (ep.ipv6 if 6 in families else None)
    # IPv6-only nodes reach the API server over the uplink's IPv6 address; otherwise over IPv4.
    assert t.api_address == (t.uplink_ipv4 if 4 in families else t.uplink_ipv6)
    # Names, addresses and MACs of the plan do not depend on the stack (teardown finds them all).
    assert t.netns_names == topology.plan("x", 3, 2).netns_names
    assert t.nodes == topology.plan("x", 3, 2).nodes


def test_unknown_stack_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"stack.*dual, ipv4, ipv6"):
        topology.plan("x", 1, 1, "ipv5")


@given(lab_ids, slots, node_counts)
def test_an_ipv6_only_lab_holds_its_slot_through_its_ipv6_addresses(lab_id: str, slot: int, n: int) -> None:
    t = topology.plan(lab_id, slot, n, "ipv6")
    assert topology.slot_of(t.uplink_ipv6) == slot
    assert all(topology.slot_of(e.ipv6) == slot for e in (*t.nodes, t.client))


def test_slot_of_ipv6_outside_the_space_is_none() -> None:
    assert topology.slot_of(ipaddress.IPv6Address("fd00::1")) is None
    assert topology.slot_of(ipaddress.IPv6Address("fe80::1")) is None


@given(lab_ids, slots, node_counts, st.sampled_from(["ipv4", "ipv6"]))
def test_control_plane_session_addresses_are_of_the_lab_family_and_clash_with_nothing(
    lab_id: str, slot: int, n: int, stack: str
) -> None:
    """A single-stack lab's second node addresses (the control-plane agents' BGP sessions): the lab's
    family, in its subnet, distinct from each other and from every address the lab plans (nodes, client,
    uplink, router, VIP pool, the DHCP server and its range)."""
    from kubevip.lab import dhcpserver

    t = topology.plan(lab_id, slot, n, stack)
    fam = t.families[0]
    limit = topology.CP_SESSION_HOSTS[1] - topology.CP_SESSION_HOSTS[0] + 1
    sessions = [topology.cp_session_address(t, i) for i in range(min(n, limit))]
    host = topology.host_v4 if fam == 4 else topology.host_v6
    pool = t.vip_pool_v4 if fam == 4 else t.vip_pool_v6
    taken = {a for e in (*t.nodes, t.client) for a in t.addresses(e)} | {
        host(slot, h) for h in (topology.ROUTER_HOST, topology.UPLINK_HOST, dhcpserver.SERVER_HOST,
                                *range(dhcpserver.RANGE_HOSTS[0], dhcpserver.RANGE_HOSTS[1] + 1))}
    assert len(set(sessions)) == len(sessions)
    subnet = t.subnet_v4 if fam == 4 else t.subnet_v6
    assert all(a.version == fam and a in subnet for a in sessions)
    assert not set(sessions) & taken
    assert not any(pool[0] <= a <= pool[1] for a in sessions)
    if n > limit:
        with pytest.raises(ValueError, match="first 40 nodes"):
            topology.cp_session_address(t, limit)
