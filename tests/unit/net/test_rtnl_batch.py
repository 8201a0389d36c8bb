"""Batched address requests: what pyroute2 (an independent parser) reads back from our bytes, and how
acknowledgements map back to requests."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from kubevip.net import rtnl_batch

addresses = st.one_of(
    st.ip_addresses(v=4).map(lambda a: (a, 32)), st.ip_addresses(v=6).map(lambda a: (a, 128))
)


@given(addresses, st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1), st.sampled_from(["add", "del"]))
def test_pyroute2_reads_back_what_we_packed(vip, seq, index, op) -> None:
    ip, plen = vip
    flags = rtnl_batch.IFA_F_NODAD if op == "add" and ip.version == 6 else 0
    data = rtnl_batch.address_request(op, seq, index, ip, plen, 248, flags)
    assert len(data) % 4 == 0
    msg = ifaddrmsg(data)
    msg.decode()
    assert msg["header"]["type"] == (rtnl_batch.RTM_NEWADDR if op == "add" else rtnl_batch.RTM_DELADDR)
    assert msg["header"]["sequence_number"] == seq and msg["header"]["length"] == len(data)
    assert msg["header"]["flags"] & rtnl_batch.NLM_F_ACK
    assert msg["family"] == (socket.AF_INET if ip.version == 4 else socket.AF_INET6)
    assert (msg["index"], msg["prefixlen"]) == (index, plen)
    assert ipaddress.ip_address(msg.get_attr("IFA_LOCAL")) == ip
    assert ipaddress.ip_address(msg.get_attr("IFA_ADDRESS")) == ip
    if op == "add":
        assert msg.get_attr("IFA_PROTO") == 248 and msg.get_attr("IFA_FLAGS") == flags
    else:
        assert msg.get_attr("IFA_PROTO") is None


def _ack(seq: int, code: int, echo: bytes = b"") -> bytes:
    body = struct.pack("=i", -code) + (echo or rtnl_batch.NLMSG_HEADER.pack(16, 20, 5, seq, 0))
    return rtnl_batch.NLMSG_HEADER.pack(16 + len(body), rtnl_batch.NLMSG_ERROR, 0, seq, 0) + body


def test_acknowledgements_map_sequence_numbers_to_errno() -> None:
    request = rtnl_batch.address_request("add", 7, 2, ipaddress.ip_address("192.0.2.1"), 32)
    data = _ack(3, 0) + _ack(7, errno.EEXIST, request) + _ack(9, errno.EINVAL)
    assert rtnl_batch.acknowledgements(data) == {3: 0, 7: errno.EEXIST, 9: errno.EINVAL}
    assert rtnl_batch.acknowledgements(b"") == {}


def test_unknown_operation_is_refused() -> None:
    with pytest.raises(ValueError, match="change"):
        rtnl_batch.address_request("change", 1, 1, ipaddress.ip_address("192.0.2.1"), 32)


@given(addresses, st.integers(1, 2**31 - 1), st.integers(1, 2**16), st.sampled_from(["add", "replace"]),
       st.integers(1, 2**31 - 1), st.integers(1, 86_400))
def test_lifetime_requests_and_their_patched_copies(vip, seq, index, op, seq2, seconds) -> None:
    """A request with a lifetime carries IFA_CACHEINFO (valid = preferred); `with_lifetime` patches the
    sequence number and lifetime of a precomputed one and nothing else."""
    ip, plen = vip
    data = rtnl_batch.address_request(op, seq, index, ip, plen, 248, 0, lifetime=1)
    patched = rtnl_batch.with_lifetime(data, seq2, seconds)
    assert patched == rtnl_batch.address_request(op, seq2, index, ip, plen, 248, 0, lifetime=seconds)
    msg = ifaddrmsg(patched)
    msg.decode()
    info = msg.get_attr("IFA_CACHEINFO")
    assert (info["ifa_valid"], info["ifa_preferred"]) == (seconds, seconds)
    assert msg["header"]["sequence_number"] == seq2
    assert msg.get_attr("IFA_PROTO") == 248
    flags = msg["header"]["flags"]
    assert flags & rtnl_batch.NLM_F_CREATE
    if op == "replace":
        assert flags & rtnl_batch.NLM_F_REPLACE and not flags & rtnl_batch.NLM_F_EXCL
    else:
        assert flags & rtnl_batch.NLM_F_EXCL and not flags & rtnl_batch.NLM_F_REPLACE


def test_permanent_add_has_no_cacheinfo() -> None:
    msg = ifaddrmsg(rtnl_batch.address_request("add", 1, 2, ipaddress.ip_address("192.0.2.1"), 32, 248))
    msg.decode()
    assert msg.get_attr("IFA_CACHEINFO") is None


def test_nothing_is_sent_from_not_after_on() -> None:
    """A batch whose deadline passed sends nothing and reports every request as ECANCELED."""
    import errno
    import time

    class NoSend:
        sent = 0

        def settimeout(self, t: float) -> None:
            pass

        def send(self, data: bytes) -> int:
            NoSend.sent += 1
            return len(data)

    reqs = [b"x"] * 3
    codes = rtnl_batch.run(NoSend(), reqs, "test", not_after=time.monotonic() - 1)  # type: ignore[arg-type]
    assert codes == [errno.ECANCELED] * 3 and NoSend.sent == 0


def _dumped(ip, plen, index, scope, attrs) -> bytes:  # type: ignore[no-untyped-def]
    """An RTM_NEWADDR dump message encoded by pyroute2 (the independent encoder), header stripped."""
    msg = ifaddrmsg()
    msg["header"]["type"] = rtnl_batch.RTM_NEWADDR
    msg["family"] = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    msg["prefixlen"], msg["index"], msg["scope"] = plen, index, scope
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data[rtnl_batch.NLMSG_HEADER.size:])


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(0, 128),
    st.integers(1, 2**16),
    st.sampled_from([0, 200, 253, 254]),
    st.one_of(st.none(), st.integers(1, 255)),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    st.booleans(),
)
def test_a_dumped_address_reads_as_pyroute2_encoded_it(  # type: ignore[no-untyped-def]
    ip, plen, index, scope, proto, valid, flags, local
) -> None:
    """Every field the agent reads from a dump: the address (IFA_LOCAL first, as IPv4 sends both),
    prefix, interface, scope, IFA_PROTO and permanence (IFA_F_PERMANENT in IFA_FLAGS, or an infinite or
    absent valid lifetime), whatever attributes the kernel sends or leaves out."""
    ip = ipaddress.ip_address(ip)
    plen = min(plen, ip.max_prefixlen)
    attrs: list[tuple[str, object]] = [("IFA_ADDRESS", str(ip))]
    if local:  # a point-to-point address: IFA_ADDRESS is the peer, IFA_LOCAL our own
        peer = ip + 1 if int(ip) < 2**ip.max_prefixlen - 1 else ip - 1
        attrs = [("IFA_ADDRESS", str(peer)), ("IFA_LOCAL", str(ip))]
    if flags is not None:
        attrs.append(("IFA_FLAGS", flags))
    if proto is not None:
        attrs.append(("IFA_PROTO", proto))
    if valid is not None:
        info = {"ifa_preferred": valid, "ifa_valid": valid, "cstamp": 1, "tstamp": 2}
        attrs.append(("IFA_CACHEINFO", info))
    got = rtnl_batch.parse_address(_dumped(ip, plen, index, scope, attrs))
    assert got is not None
    assert (got.ip, got.prefixlen, got.index, got.scope, got.proto) == (ip, plen, index, scope, proto)
    permanent = bool((flags or 0) & rtnl_batch.IFA_F_PERMANENT) or valid in (None, 0xFFFFFFFF)
    assert got.permanent is permanent
    assert rtnl_batch.parse_address(_dumped(ip, plen, index, scope, attrs), index) == got
    assert rtnl_batch.parse_address(_dumped(ip, plen, index, scope, attrs), index + 1) is None


def test_a_dumped_message_without_an_address_or_truncated_is_skipped() -> None:
    ip = ipaddress.ip_address("192.0.2.7")
    assert rtnl_batch.parse_address(_dumped(ip, 24, 3, 0, [("IFA_LABEL", "eth0")])) is None
    whole = _dumped(ip, 24, 3, 0, [("IFA_ADDRESS", str(ip))])
    assert rtnl_batch.parse_address(whole) is not None
    assert rtnl_batch.parse_address(whole[:6]) is None
    # an attribute that claims more bytes than the message has ends the walk, no exception
    assert rtnl_batch.parse_address(whole[:-2]) is None


def test_the_dump_request_asks_for_every_address() -> None:
    data = rtnl_batch.dump_request(5)
    length, kind, flags, seq, _ = rtnl_batch.NLMSG_HEADER.unpack_from(data)
    assert (length, kind, seq) == (len(data), rtnl_batch.RTM_GETADDR, 5)
    assert flags == rtnl_batch.NLM_F_REQUEST | rtnl_batch.NLM_F_DUMP
    body = rtnl_batch.IFADDRMSG.unpack_from(data, rtnl_batch.NLMSG_HEADER.size)
    assert body == (socket.AF_UNSPEC, 0, 0, 0, 0)


def _link_message(index: int, attrs: list[tuple[str, object]]) -> bytes:
    """An RTM_NEWLINK message encoded by pyroute2 (the independent encoder), header stripped."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["header"]["type"] = rtnl_batch.RTM_NEWLINK
    msg["index"], msg["flags"], msg["change"] = index, 0x1043, 0
    msg["attrs"] = attrs
    msg.encode()
    return bytes(msg.data[rtnl_batch.NLMSG_HEADER.size:])


@given(
    st.integers(1, 2**31 - 1),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=15),
    st.one_of(st.none(), st.binary(min_size=6, max_size=6)),  # pyroute2 encodes Ethernet addresses only
    st.integers(0, 9000),
    st.booleans(),
)
def test_a_link_reads_as_pyroute2_encoded_it(index, name, mac, mtu, name_first) -> None:  # type: ignore[no-untyped-def]
    """Index, name and hardware address, whatever other attributes come first or not at all."""
    attrs: list[tuple[str, object]] = [("IFLA_MTU", mtu)]
    if mac is not None:
        attrs.append(("IFLA_ADDRESS", ":".join(f"{b:02x}" for b in mac)))
    attrs.insert(0 if name_first else len(attrs), ("IFLA_IFNAME", name))
    assert rtnl_batch.parse_link(_link_message(index, attrs)) == (index, name, mac or b"")


@given(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=15),
    st.one_of(st.none(), st.sampled_from(["macvlan", "veth", "bridge", "vxlan"])),
    st.booleans(),
)
def test_a_link_kind_reads_as_pyroute2_encoded_it(name, kind, linkinfo_first) -> None:  # type: ignore[no-untyped-def]
    """The name and IFLA_INFO_KIND inside IFLA_LINKINFO ("" without one), whatever comes first."""
    attrs: list[tuple[str, object]] = [("IFLA_IFNAME", name), ("IFLA_MTU", 1500)]
    if kind is not None:
        info = ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", kind)]})
        attrs.insert(0 if linkinfo_first else len(attrs), info)
    assert rtnl_batch.parse_link_kind(_link_message(3, attrs)) == (name, kind or "")


def test_a_link_message_without_a_name_or_truncated_is_skipped() -> None:
    assert rtnl_batch.parse_link(_link_message(3, [("IFLA_MTU", 1500)])) is None
    assert rtnl_batch.parse_link(b"\0" * 8) is None
    assert rtnl_batch.parse_link_kind(_link_message(3, [("IFLA_MTU", 1500)])) is None
    assert rtnl_batch.parse_link_kind(b"\0" * 8) is None


def test_the_link_request_asks_for_one_interface_by_name_or_index() -> None:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    for key in ("eth0", 7):
        msg = ifinfmsg(rtnl_batch.link_request(5, key))
        msg.decode()
        assert msg["header"]["type"] == rtnl_batch.RTM_GETLINK and msg["header"]["sequence_number"] == 5
        assert not msg["header"]["flags"] & rtnl_batch.NLM_F_DUMP
        assert (msg["index"], msg.get_attr("IFLA_IFNAME")) == ((0, "eth0") if key == "eth0" else (7, None))


def test_a_name_no_interface_can_have_is_not_asked() -> None:
    class NoSend:
        def settimeout(self, t: float) -> None:
            pass

        def send(self, data: bytes) -> int:
            raise AssertionError("sent")

    for name in ("", "x" * 16, "a\0b"):
        assert rtnl_batch.get_link(NoSend(), name, "test") is None  # type: ignore[arg-type]


def test_only_the_last_request_of_each_sendmsg_asks_for_an_acknowledgement() -> None:
    """The kernel answers failures whatever the flags; successes are known from the chunk's last ack."""

    class Kernel:
        def __init__(self) -> None:
            self.sent: list[bytes] = []
            self.replies: list[bytes] = []

        def settimeout(self, t: float) -> None:
            pass

        def send(self, data: bytes) -> int:
            self.sent.append(data)
            for seq, flags in _requests(data):
                if seq % 5 == 0:
                    self.replies.append(_ack(seq, errno.EEXIST))
                elif flags & rtnl_batch.NLM_F_ACK:
                    self.replies.append(_ack(seq, 0))
            return len(data)

        def recv(self, n: int) -> bytes:
            return self.replies.pop(0)

    n = rtnl_batch.CHUNK + 3
    reqs = [rtnl_batch.address_request("add", i, 2, ipaddress.ip_address(f"10.1.{i // 256}.{i % 256}"), 32)
            for i in range(1, n + 1)]
    kernel = Kernel()
    codes = rtnl_batch.run(kernel, reqs, "test")  # type: ignore[arg-type]
    assert codes == [errno.EEXIST if i % 5 == 0 else 0 for i in range(1, n + 1)]
    asked = [[seq for seq, flags in _requests(d) if flags & rtnl_batch.NLM_F_ACK] for d in kernel.sent]
    assert asked == [[rtnl_batch.CHUNK], [n]]


def _requests(data: bytes) -> list[tuple[int, int]]:
    out, offset = [], 0
    while offset < len(data):
        length, _kind, flags, seq, _port = rtnl_batch.NLMSG_HEADER.unpack_from(data, offset)
        out.append((seq, flags))
        offset += length
    return out


def _route_message(family: int, dst_len: int, table: int, attrs: list[tuple[str, object]]) -> bytes:
    """An RTM_NEWROUTE dump message encoded by pyroute2 (the independent encoder), header stripped."""
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    msg = rtmsg()
    msg["header"]["type"] = rtnl_batch.RTM_NEWROUTE
    msg["family"], msg["dst_len"], msg["table"], msg["type"] = family, dst_len, min(table, 252), 1
    msg["attrs"] = [("RTA_TABLE", table), *attrs]
    msg.encode()
    return bytes(msg.data[rtnl_batch.NLMSG_HEADER.size:])


_hops = st.lists(
    st.tuples(st.integers(1, 2**31 - 1), st.one_of(st.none(), st.ip_addresses(v=4))), min_size=1, max_size=4
)


@given(
    st.sampled_from([254, 255, 100, 1000]),
    st.one_of(st.none(), st.integers(0, 2**32 - 1)),
    st.one_of(st.none(), st.integers(1, 2**31 - 1)),
    st.one_of(st.none(), st.ip_addresses(v=4)),
    st.one_of(st.none(), _hops),
    st.sampled_from([0, 8, 24, 32]),
)
def test_a_default_route_reads_as_pyroute2_encoded_it(  # type: ignore[no-untyped-def]
    table, metric, oif, gateway, hops, dst_len
) -> None:
    """Metric, interface (a multipath route's first hop's) and every gateway, of main-table default
    routes only: another table (also one above 255, which only RTA_TABLE names) or a prefix is no
    default route."""
    attrs: list[tuple[str, object]] = []
    if dst_len:
        attrs.append(("RTA_DST", "10.0.0.0"))
    if metric is not None:
        attrs.append(("RTA_PRIORITY", metric))
    if oif is not None:
        attrs.append(("RTA_OIF", oif))
    if gateway is not None:
        attrs.append(("RTA_GATEWAY", str(gateway)))
    if hops is not None:
        attrs.append(("RTA_MULTIPATH", [
            {"oif": i, "attrs": [("RTA_GATEWAY", str(g))] if g is not None else []} for i, g in hops
        ]))
    got = rtnl_batch.parse_default_route(_route_message(socket.AF_INET, dst_len, table, attrs))
    if dst_len or table != rtnl_batch.RT_TABLE_MAIN:
        assert got is None
        return
    want_gateways = ([gateway] if gateway is not None else []) + [g for _, g in hops or [] if g is not None]
    assert got == rtnl_batch.DefaultRoute(
        metric or 0, oif or (hops[0][0] if hops else 0), tuple(ipaddress.ip_address(g) for g in want_gateways)
    )
    assert rtnl_batch.parse_default_route(_route_message(socket.AF_INET, 0, table, attrs), table) == got


def test_an_ipv6_default_route_and_truncated_messages() -> None:
    data = _route_message(socket.AF_INET6, 0, 254, [("RTA_GATEWAY", "fe80::1"), ("RTA_OIF", 2)])
    assert rtnl_batch.parse_default_route(data) == rtnl_batch.DefaultRoute(
        0, 2, (ipaddress.ip_address("fe80::1"),)
    )
    assert rtnl_batch.parse_default_route(data[:8]) is None
    # an attribute that claims more bytes than the message has ends the walk, no exception
    assert rtnl_batch.parse_default_route(data[:-2]) == rtnl_batch.DefaultRoute(
        0, 0, (ipaddress.ip_address("fe80::1"),)
    )


def test_the_route_dump_request_asks_for_every_route_of_a_family() -> None:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    msg = rtmsg(rtnl_batch.route_dump_request(3, socket.AF_INET6))
    msg.decode()
    assert msg["header"]["type"] == rtnl_batch.RTM_GETROUTE and msg["header"]["sequence_number"] == 3
    assert msg["header"]["flags"] == rtnl_batch.NLM_F_REQUEST | rtnl_batch.NLM_F_DUMP
    assert (msg["family"], msg["dst_len"], msg["table"]) == (socket.AF_INET6, 0, 0)
