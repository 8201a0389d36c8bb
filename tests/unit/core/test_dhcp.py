"""core/dhcp.py and its place in the pipeline: which Services ask DHCP for which family, the MAC and client
id, the annotations written back, the lease timers; and a leased address flowing as a VIP."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.core import dhcp, reasons
from kubevip.core.claims import claims_of, dhcp_wants, resolve
from kubevip.core.conditions import warnings
from kubevip.core.parse import service_from_dict
from kubevip.core.plan import decide
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily
from kubevip.core.world import ServiceRecord, World, snapshot
from tests.unit.core import builders as b

V4 = IPFamily.IPV4
V6 = IPFamily.IPV6
keys = st.from_regex(r"[a-z][a-z0-9-]{0,20}/[a-z][a-z0-9-]{0,40}", fullmatch=True)
family_sets = st.sampled_from([(V4,), (V6,), (V4, V6), (V6, V4), ()])
texts = st.lists(st.sampled_from(["0.0.0.0", "::", "10.0.0.5", "2001:db8::5", "0.0.0.00", "x"]), max_size=6)


@given(texts, family_sets)
def test_dhcp_is_asked_only_for_a_served_family_and_never_v6(
    ts: list[str], families: tuple[IPFamily, ...],
) -> None:
    wanted, refused = dhcp.asks_dhcp(ts, families)
    assert set(wanted) <= set(families)
    assert V6 not in wanted  # no DHCPv6 client: never an IPv6 request
    assert wanted == ((V4,) if "0.0.0.0" in ts and V4 in families else ())
    for text, reason in refused.items():
        assert dhcp.is_dhcp_text(text)
        if text == "0.0.0.0":
            assert reason == reasons.FAMILY_NOT_SERVED and V4 not in families
        else:
            assert reason == (reasons.DHCPV6_UNSUPPORTED if V6 in families else reasons.FAMILY_NOT_SERVED)


@given(keys)
def test_derived_mac_is_stable_unicast_and_locally_administered(key: str) -> None:
    mac = dhcp.derive_mac(key)
    assert mac == dhcp.derive_mac(key)
    assert dhcp.parse_mac(mac) == mac
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert dhcp.client_id(mac) == bytes([1]) + bytes.fromhex(mac.replace(":", ""))
    name = dhcp.macvlan_name(key)
    assert len(name) <= 15 and name.startswith(dhcp.MACVLAN_PREFIX)


@settings(max_examples=25)
@given(st.lists(keys, min_size=2, max_size=30, unique=True))
def test_derived_macs_differ_between_services(ks: list[str]) -> None:
    assert len({dhcp.derive_mac(k) for k in ks}) == len(ks)


def test_parse_mac_refuses_multicast_zero_and_garbage() -> None:
    assert dhcp.parse_mac("02:00:00:00:00:01") == "02:00:00:00:00:01"
    assert dhcp.parse_mac("0A:BB:CC:DD:EE:FF") == "0a:bb:cc:dd:ee:ff"
    for bad in ("01:00:5e:00:00:01", "00:00:00:00:00:00", "02:00:00:00:00", "zz:00:00:00:00:01", ""):
        assert dhcp.parse_mac(bad) is None



def test_request_honours_annotations_and_reports_bad_ones() -> None:
    good = service_from_dict(b.service(lb_ip="0.0.0.0", annotations={
        dhcp.ANNOTATION_HWADDR: "02:11:22:33:44:55", dhcp.ANNOTATION_REQUESTED_IP: "10.0.0.9,2001:db8::9",
        dhcp.ANNOTATION_HOSTNAME: "web.example.org", dhcp.ANNOTATION_MACVLAN_NAME: "vip-web",
    }))
    req, probs = dhcp.request_of(good, V4)
    assert probs == ()
    assert (req.mac, req.mac_annotated, req.hostname, req.interface) == (
        "02:11:22:33:44:55", True, "web.example.org", "vip-web")
    assert req.requested == ipaddress.ip_address("10.0.0.9")
    bad = service_from_dict(b.service(lb_ip="0.0.0.0", annotations={
        dhcp.ANNOTATION_HWADDR: "ff:ff:ff:ff:ff:ff", dhcp.ANNOTATION_REQUESTED_IP: "nope",
        dhcp.ANNOTATION_HOSTNAME: "bad_host\x00", dhcp.ANNOTATION_MACVLAN_NAME: "this-name-is-far-too-long",
    }))
    req, probs = dhcp.request_of(bad, V4)
    assert {p.annotation for p in probs} == {
        dhcp.ANNOTATION_HWADDR, dhcp.ANNOTATION_REQUESTED_IP, dhcp.ANNOTATION_HOSTNAME,
        dhcp.ANNOTATION_MACVLAN_NAME,
    }
    assert (req.mac, req.mac_annotated, req.hostname, req.requested) == (
        dhcp.derive_mac("default/web"), False, "", None)
    assert req.interface == dhcp.macvlan_name("default/web")


def test_each_unusable_dhcp_annotation_is_one_exact_problem_and_the_default_is_used() -> None:
    long = "x" * 70  # a tenant's value is quoted at most 64 characters long
    bad = service_from_dict(b.service(lb_ip="0.0.0.0", annotations={
        dhcp.ANNOTATION_HWADDR: long, dhcp.ANNOTATION_REQUESTED_IP: long,
        dhcp.ANNOTATION_HOSTNAME: long + "_", dhcp.ANNOTATION_MACVLAN_NAME: long,
    }))
    req, probs = dhcp.request_of(bad, V4)
    assert probs == (
        dhcp.AnnotationProblem(dhcp.ANNOTATION_HWADDR, "x" * 64, "not a unicast MAC aa:bb:cc:dd:ee:ff"),
        dhcp.AnnotationProblem(dhcp.ANNOTATION_REQUESTED_IP, "x" * 64, "not an IP address"),
        dhcp.AnnotationProblem(dhcp.ANNOTATION_HOSTNAME, "x" * 64, "not an RFC 1123 host name"),
        dhcp.AnnotationProblem(dhcp.ANNOTATION_MACVLAN_NAME, "x" * 64, "not an interface name"),
    )
    assert (req.requested, req.hostname, req.interface) == (None, "", dhcp.macvlan_name("default/web"))


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.5", "127.0.0.9"])
def test_a_requested_address_that_is_not_unicast_is_never_asked_for(address: str) -> None:
    view = service_from_dict(b.service(lb_ip="0.0.0.0", annotations={dhcp.ANNOTATION_REQUESTED_IP: address}))
    req, probs = dhcp.request_of(view, V4)
    assert req.requested is None
    assert probs == (dhcp.AnnotationProblem(dhcp.ANNOTATION_REQUESTED_IP, address, "not a unicast address"),)


def test_without_annotations_the_request_carries_no_host_name_and_no_address() -> None:
    req, probs = dhcp.request_of(service_from_dict(b.service(lb_ip="0.0.0.0")), V4)
    assert (req.hostname, req.requested, req.mac_annotated, probs) == ("", None, False, ())


def test_requested_addresses_skip_what_does_not_parse_and_keep_the_first_of_each_family() -> None:
    a = ipaddress.ip_address
    got = dhcp.requested_addresses("nope, 10.0.0.7,fd00::7,10.0.0.8")
    assert got == {V4: a("10.0.0.7"), V6: a("fd00::7")}
    assert dhcp.requested_addresses(None) == {} and dhcp.requested_addresses("") == {}


def test_server_timers_are_used_whenever_they_are_in_order_edges_included() -> None:
    assert dhcp.lease_times(0.0, 10.0, renewal=3.0) == dhcp.LeaseTimes(0.0, 3.0, 8.75, 10.0)
    assert dhcp.lease_times(0.0, 10.0, renewal=0.0, rebinding=0.0) == dhcp.LeaseTimes(0.0, 0.0, 0.0, 10.0)
    assert dhcp.lease_times(0.0, 10.0, renewal=0.5, rebinding=0.5) == dhcp.LeaseTimes(0.0, 0.5, 0.5, 10.0)
    assert dhcp.lease_times(0.0, 10.0, renewal=0.0) == dhcp.LeaseTimes(0.0, 0.0, 8.75, 10.0)
    assert dhcp.lease_times(0.0, 10.0, renewal=0.5) == dhcp.LeaseTimes(0.0, 0.5, 8.75, 10.0)
    assert dhcp.lease_times(0.0, 10.0, renewal=10.0, rebinding=10.0) == dhcp.LeaseTimes(0.0, 10.0, 10.0, 10.0)


def test_annotations_written_keep_the_other_family_and_only_what_differs() -> None:
    req, _ = dhcp.request_of(service_from_dict(b.service(lb_ip="0.0.0.0")), V4)
    leased = ipaddress.ip_address("10.0.0.7")
    out = dhcp.annotations_to_write(req, leased, {dhcp.ANNOTATION_REQUESTED_IP: "10.0.0.1,2001:db8::1"})
    assert out == {dhcp.ANNOTATION_HWADDR: req.mac, dhcp.ANNOTATION_REQUESTED_IP: "10.0.0.7,2001:db8::1"}
    same = {dhcp.ANNOTATION_HWADDR: req.mac, dhcp.ANNOTATION_REQUESTED_IP: "10.0.0.7"}
    assert dhcp.annotations_to_write(req, leased, dict(same)) == {}


lease_s = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@given(st.floats(min_value=0, max_value=1e6), lease_s, st.none() | lease_s, st.none() | lease_s,
       st.floats(0, 3e6))
def test_lease_phases_are_ordered_and_the_vip_goes_exactly_at_expiry(
    obtained: float, lease: float, t1: float | None, t2: float | None, dt: float,
) -> None:
    times = dhcp.lease_times(obtained, lease, t1, t2)
    assert times.obtained <= times.t1 <= times.t2 <= times.expires == obtained + lease
    now = obtained + dt
    ph = dhcp.phase(times, now)
    assert dhcp.holds_vip(times, now) == (now < times.expires)
    order = [dhcp.Phase.BOUND, dhcp.Phase.RENEWING, dhcp.Phase.REBINDING, dhcp.Phase.EXPIRED]
    later = dhcp.phase(times, now + 1.0)
    assert order.index(later) >= order.index(ph)
    assert dhcp.withdraw_in(times, now) == max(0.0, times.expires - now)


def test_rfc_default_timers() -> None:
    t = dhcp.lease_times(100.0, 120.0)
    assert (t.t1, t.t2, t.expires) == (160.0, 205.0, 220.0)
    assert dhcp.phase(t, 159.9) is dhcp.Phase.BOUND
    assert dhcp.phase(t, 160.0) is dhcp.Phase.RENEWING
    assert dhcp.phase(t, 205.0) is dhcp.Phase.REBINDING
    assert dhcp.phase(t, 220.0) is dhcp.Phase.EXPIRED
    # A server's T1 after T2 is ignored (no renewal after rebinding began).
    odd = dhcp.lease_times(0.0, 100.0, renewal=90.0, rebinding=50.0)
    assert (odd.t1, odd.t2) == (50.0, 50.0)


# -- the pipeline -------------------------------------------------------------------------------------


@given(st.sampled_from([
    ({"lb_ip": "0.0.0.0"}, ["IPv4"], "SingleStack"),
    ({"lb_ips": "0.0.0.0"}, ["IPv4"], "SingleStack"),
    ({"lb_ips": "0.0.0.0,2001:db8::5"}, ["IPv4", "IPv6"], "RequireDualStack"),
    ({"lb_ips": "0.0.0.0"}, ["IPv6"], "SingleStack"),
    ({"lb_ips": "0.0.0.0,::"}, ["IPv4"], "SingleStack"),
    ({"lb_ips": "::"}, ["IPv6", "IPv4"], "PreferDualStack"),
]), st.none() | st.just("10.0.0.7"))
def test_decision_dhcp_families_and_the_leased_vip(
    case: tuple[dict[str, str], list[str], str], lease: str | None,
) -> None:
    kw, fams, policy = case
    s = service_from_dict(b.service(families=fams, policy=policy, **kw))
    leased = {V4: ipaddress.ip_address(lease)} if lease else None
    d = decide(s, (), None, False, leased=leased)
    asked = "0.0.0.0" in (kw.get("lb_ip") or kw.get("lb_ips") or "")
    assert [r.family for r in d.dhcp] == ([V4] if asked and V4 in d.families else [])
    assert all(r.family is V4 for r in d.dhcp)  # an IPv4-only request, whatever the Service
    dhcp_vips = [v for v in d.vips if v.source == dhcp.SOURCE_DHCP]
    if d.dhcp and lease:
        assert [str(v.address) for v in dhcp_vips] == [lease]
        claims = claims_of(s, "t0", d)
        dc = [c for c in claims if c.dhcp]
        assert [c.macvlan for c in dc] == [d.dhcp[0].interface]
    else:
        assert dhcp_vips == []
    if d.dhcp:
        assert d.announce
    if "::" in (kw.get("lb_ips") or "").split(","):
        code = reasons.DHCPV6_UNSUPPORTED if V6 in d.families else reasons.FAMILY_NOT_SERVED
        assert any(r.address == "::" and r.reason == code for r in d.rejected)


@given(st.booleans(), st.booleans(), st.none() | st.sampled_from(["10.0.0.7", "10.0.0.8"]))
def test_the_dhcp_unit_does_not_depend_on_the_lease(
    per_address: bool, local: bool, lease: str | None,
) -> None:
    """The node elected to lease is the node that holds the leased VIP: one unit before and after."""
    s = service_from_dict(b.service(lb_ip="0.0.0.0", etp="Local" if local else "Cluster"))
    before = decide(s, (), None, False)
    wants = dhcp_wants(s, "t0", before, per_address)
    if local:  # no endpoints: ETP Local is still announced, its eligible set is empty
        assert all(w.eligible == frozenset() for w in wants)
    assert len(wants) == 1
    if lease:
        after = decide(s, (), None, False, leased={V4: ipaddress.ip_address(lease)})
        plans, _ = resolve(claims_of(s, "t0", after), per_address)
        assert [p.unit for p in plans] == [wants[0].unit]
        assert dhcp_wants(s, "t0", after, per_address) == wants


def test_snapshot_elects_dhcp_units_and_policy_refuses_a_bad_lease() -> None:
    w = World()
    s = service_from_dict(b.service(lb_ip="0.0.0.0"))
    w.services[s.key] = ServiceRecord(s, "t0")
    snap = snapshot(w, ClassFilter(), False)
    assert snap.plans == () and len(snap.dhcp) == 1
    assert set(snap.units) == {snap.dhcp[0].unit}
    w.leased[s.key] = {V4: ipaddress.ip_address("10.0.0.7")}
    snap = snapshot(w, ClassFilter(), False)
    assert [str(p.address) for p in snap.plans] == ["10.0.0.7"]
    assert snap.plans[0].macvlan == dhcp.macvlan_name(s.key) and snap.plans[0].interface == ""
    w.leased[s.key] = {V4: ipaddress.ip_address("255.255.255.255")}  # a broken server's offer
    snap = snapshot(w, ClassFilter(), False)
    assert snap.plans == ()
    assert any(r.reason == reasons.LIMITED_BROADCAST for r in snap.decisions[s.key].rejected)


@given(st.booleans(), st.sampled_from(["", "auto", "eth9"]))
def test_a_leased_vip_goes_on_its_macvlan_or_nowhere(present: bool, service_interface: str) -> None:
    from kubevip.core.claims import VipPlan
    from kubevip.core.rows import needs_subnet_lookup, placement

    plan = VipPlan(ipaddress.ip_address("10.0.0.7"), V4, "dhcp:default/web/IPv4", ("default/web",), None,
                   service_interface, macvlan="kvdabc")
    links = frozenset({"kvdabc", "eth9"} if present else {"eth9"})
    got = placement(plan, {V4: "eth0"}, links, {plan.address: "eth0"}, True)
    assert got == ("kvdabc" if present else None)
    assert not needs_subnet_lookup(plan, True)


client_keys = st.sampled_from(["a", "b", "c", "d"])
bindings = st.sampled_from(["mac1", "mac2"])


@given(st.dictionaries(client_keys, bindings), st.dictionaries(client_keys, bindings),
       st.sets(client_keys), st.booleans())
def test_client_changes_release_only_what_nobody_asks(
    running: dict[str, str], asked: dict[str, str], held: set[str], stopping: bool,
) -> None:
    ch = dhcp.client_changes(running, asked, held, stopping)
    assert not (ch.release & ch.keep)
    assert ch.release | ch.keep <= set(running)
    for k in ch.release:  # the address goes back only when no Service asks for it any more
        assert k not in asked and not stopping
    if stopping:
        assert ch.start == frozenset() and ch.release == frozenset()
        assert ch.keep == frozenset(running)
        return
    after = (set(running) - ch.release - ch.keep) | ch.start
    assert after == {k for k in held if k in asked}, "exactly the held, asked keys run afterwards"
    for k in set(running) & after - ch.start:
        assert running[k] == asked[k], "a client left running is bound as asked"
    for k in ch.keep:  # failover (held elsewhere) or a new binding: the lease survives for the next client
        assert k in asked
    for k in set(running) & set(held) & set(asked):  # nothing to change: the client is left alone
        if running[k] == asked[k]:
            assert k not in ch.start | ch.keep | ch.release, "a client bound as asked is never restarted"


# -- BGP mode (docs/dhcp.md): DHCP VIPs are layer 2; `0.0.0.0` is refused, naming the setting ----------

lb_texts = st.lists(st.sampled_from(["0.0.0.0", "::", "10.0.0.5", "2001:db8::5", "x"]), max_size=4,
                    unique=True)


@given(lb_texts, st.sampled_from([["IPv4"], ["IPv6"], ["IPv4", "IPv6"]]), st.none() | st.just("10.0.0.7"))
def test_bgp_mode_refuses_dhcp_and_costs_nothing_else(
    ts: list[str], fams: list[str], lease: str | None,
) -> None:
    """Without layer 2 no DHCP request is made, even with a lease known; `0.0.0.0` on a Service serving
    IPv4 is refused with `dhcp-needs-layer2`, whose Warning names bgp_enable; every other entry is decided
    exactly as in layer 2."""
    policy = "PreferDualStack" if len(fams) > 1 else "SingleStack"
    s = service_from_dict(b.service(families=fams, policy=policy, lb_ips=",".join(ts) or None))
    leased = {V4: ipaddress.ip_address(lease)} if lease else None
    l2 = decide(s, (), None, False, leased=leased)
    bgp = decide(s, (), None, False, leased=leased, dhcp_layer2=False)
    assert bgp.dhcp == ()
    assert [v for v in bgp.vips if v.source == dhcp.SOURCE_DHCP] == []
    assert [v for v in bgp.vips] == [v for v in l2.vips if v.source != dhcp.SOURCE_DHCP]
    refused = [r for r in bgp.rejected if r.reason == reasons.DHCP_NEEDS_LAYER2]
    asked_v4 = "0.0.0.0" in ts and V4 in bgp.families
    assert [r.address for r in refused] == (["0.0.0.0"] if asked_v4 else [])
    assert set(bgp.rejected) - set(refused) == set(l2.rejected)
    warns = [c for c in warnings(bgp, (), (), s) if c.reason == reasons.DHCP_NEEDS_LAYER2]
    assert len(warns) == (1 if asked_v4 else 0)
    assert all("bgp_enable=true" in c.message and "'0.0.0.0'" in c.message for c in warns)


def test_bgp_mode_snapshot_elects_no_dhcp_unit() -> None:
    w = World()
    s = service_from_dict(b.service(lb_ip="0.0.0.0"))
    w.services[s.key] = ServiceRecord(s, "t0")
    snap = snapshot(w, ClassFilter(), False, service_interfaces=False, dhcp_layer2=False)
    assert snap.dhcp == () and snap.units == {} and snap.plans == ()
    assert reasons.DHCP_NEEDS_LAYER2 in {c.reason for c in snap.warnings[s.key]}


def test_the_derived_mac_and_macvlan_name_never_change_between_releases() -> None:
    """Pinned: the server knows a Service by this MAC (and client id), and every node must name the
    macvlan alike; a new derivation would give the Service a new address after an upgrade."""
    assert dhcp.derive_mac("default/web") == "ae:ef:2f:05:e2:51"
    assert dhcp.macvlan_name("default/web") == "kvd82b3ade9d00"
