"""Address changes sent to the kernel in batches: many RTM_NEWADDR / RTM_DELADDR requests per sendmsg,
each failure answered with its own error code and the rest by one acknowledgement per sendmsg; the
address dump, parsed into one small object per address; the one-interface lookup (RTM_GETLINK by
name or index) every batch starts with; each interface's kind (the DHCP macvlans to sweep); and the main
table's default routes (the interface that carries VIPs, the gateways the address policy protects).

pyroute2 spends about a millisecond of Python per request (building and parsing its message objects);
a pass that moves 2000 VIPs then holds the GIL for seconds. Its parsed dump messages are also reference
cycles (some 30 objects per address) that only the cyclic garbage collector frees: an agent holding
2000 VIPs, dumping its interface a few times a second, left ~300,000 such objects per collection and
paused for 0.7-1.5 s in each (docs/performance-history.md). The formats are fixed by the kernel ABI
(linux/netlink.h, linux/if_addr.h, linux/rtnetlink.h), so they are packed and parsed here directly.
The interface kinds and default routes are read here too, so that an agent in layer 2 mode never imports
pyroute2's IPRoute: that import is 33 ms of CPU, a fifth of an agent's start (issue 21, a restart of
every agent).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from kubevip.errors import NetworkError
from kubevip.ip import IPAddress
from kubevip.net.nlmsg import dump_replies, error_code, messages

NLMSG_HEADER = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, interface index
IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), device type, index, flags, change mask
RTATTR = struct.Struct("=HH")  # length, type
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst/src prefix length, tos, table, protocol, scope, type, flags
RTNEXTHOP = struct.Struct("=HBBi")  # length, flags, hops, interface index (one hop of RTA_MULTIPATH)
ERROR_CODE = struct.Struct("=i")
_FLAGS = struct.Struct("=H")
_FLAGS_AT = 6  # nlmsg_flags, after the length (4) and the type (2)

NLMSG_ERROR = 2
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_NEWADDR = 20
RTM_DELADDR = 21
RTM_GETADDR = 22
RTM_NEWROUTE = 24
RTM_GETROUTE = 26
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1  # inside IFLA_LINKINFO
IFNAMSIZ = 16  # with the terminating NUL
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_CACHEINFO = 6
IFA_FLAGS = 8
IFA_PROTO = 11
IFA_F_PERMANENT = 0x80
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_MULTIPATH = 9
RTA_TABLE = 15
RT_TABLE_MAIN = 254
INFINITY_LIFE_TIME = 0xFFFFFFFF
IFA_F_NODAD = 0x02  # an IPv6 VIP must answer at once, not sit "tentative" for DAD's 1-2 s
CACHEINFO = struct.Struct("=IIII")  # preferred lifetime, valid lifetime, created, updated (kernel's)
# IFA_CACHEINFO is always the last attribute of a request that carries one, so a precomputed request
# gets a new lifetime by patching its last 16 bytes (`with_lifetime`).
_LIFETIME_AT = -CACHEINFO.size

_T = TypeVar("_T")

# Requests per sendmsg: their errors (an error echoes the request) must fit the socket's default receive
# buffer, or the kernel drops them.
CHUNK = 256
ACK_TIMEOUT = 10.0


def _attr(kind: int, payload: bytes) -> bytes:
    size = RTATTR.size + len(payload)
    return RTATTR.pack(size, kind) + payload + b"\0" * (-size % 4)


def address_request(
    op: str,
    seq: int,
    index: int,
    ip: IPAddress,
    prefixlen: int,
    proto: int = 0,
    flags: int = 0,
    lifetime: int | None = None,
) -> bytes:
    """One RTM_NEWADDR or RTM_DELADDR request, asking for an ack. `op`: "add" (create, fail if present),
    "replace" (create or update in place: how a lifetime is extended), "del". `lifetime`: seconds of
    valid_lft = preferred_lft (None: permanent), for "add" and "replace".
    """
    packed = ip.packed
    attrs = _attr(IFA_LOCAL, packed) + _attr(IFA_ADDRESS, packed)
    if op in ("add", "replace"):
        kind = RTM_NEWADDR
        nl_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE
        nl_flags |= NLM_F_EXCL if op == "add" else NLM_F_REPLACE
        attrs += _attr(IFA_FLAGS, struct.pack("=I", flags))
        if proto:
            attrs += _attr(IFA_PROTO, bytes([proto]))
        if lifetime is not None:
            attrs += _attr(IFA_CACHEINFO, CACHEINFO.pack(lifetime, lifetime, 0, 0))
    elif op == "del":
        kind, nl_flags = RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK
    else:
        raise ValueError(f"unknown address operation {op!r}")
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    body = IFADDRMSG.pack(family, prefixlen, flags & 0xFF, 0, index) + attrs
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), kind, nl_flags, seq, 0) + body


def with_lifetime(template: bytes, seq: int, lifetime: int) -> bytes:
    """A copy of `template` (built by `address_request` with a lifetime) with another sequence number
    and lifetime: about a microsecond, where building the request again costs ten."""
    out = bytearray(template)
    struct.pack_into("=I", out, 8, seq)
    struct.pack_into("=II", out, len(out) + _LIFETIME_AT, lifetime, lifetime)
    return bytes(out)


def acknowledgements(data: bytes) -> dict[int, int]:
    """Sequence number -> errno (0: done) of every acknowledgement in one datagram from the kernel."""
    out: dict[int, int] = {}
    offset = 0
    while offset + NLMSG_HEADER.size <= len(data):
        length, kind, _flags, seq, _port = NLMSG_HEADER.unpack_from(data, offset)
        if length < NLMSG_HEADER.size:
            break
        if kind == NLMSG_ERROR:
            (code,) = ERROR_CODE.unpack_from(data, offset + NLMSG_HEADER.size)
            out[seq] = -code
        offset += (length + 3) & ~3
    return out


def _asking_ack(request: bytes, ack: bool) -> bytes:
    """`request` with NLM_F_ACK set or cleared (the same bytes when it already is)."""
    (flags,) = _FLAGS.unpack_from(request, _FLAGS_AT)
    want = flags | NLM_F_ACK if ack else flags & ~NLM_F_ACK
    if want == flags:
        return request
    out = bytearray(request)
    _FLAGS.pack_into(out, _FLAGS_AT, want)
    return bytes(out)


def run(
    sock: socket.socket, requests: Sequence[bytes], what: str, not_after: float | None = None,
) -> list[int]:
    """Send `requests` (numbered 1..n, as built) on a NETLINK_ROUTE socket; the errno of each, in order.

    Only the last request of each sendmsg asks for an acknowledgement: the kernel answers every failed
    request with its error whatever its flags, and handles a datagram's requests in order, so once the
    last one's answer is in, every request before it that has no error succeeded. An acknowledgement per
    request cost the kernel more than the change itself (a lifetime round over 200 VIPs: 4.4 ms of CPU
    with one each, 1.9 ms without; `bench/lifetimes.py`, docs/performance.md).

    `not_after` (time.monotonic()): no chunk is sent from that instant on; the requests not sent get
    ECANCELED. A lifetime extension re-creates an address the kernel removed, so it must not reach the
    kernel after its holder's fencing deadline, even when the process was stopped (SIGSTOP, a starved
    CPU) between deciding the round and sending it: the check is here, next to the send."""
    results: list[int | None] = [None] * len(requests)
    sock.settimeout(ACK_TIMEOUT)
    for start in range(0, len(requests), CHUNK):
        chunk = requests[start:start + CHUNK]
        if not_after is not None and time.monotonic() >= not_after:
            for i in range(start, len(requests)):
                results[i] = errno.ECANCELED
            break
        last = start + len(chunk)  # the sequence number of the chunk's last request
        try:
            sock.send(b"".join([_asking_ack(r, False) for r in chunk[:-1]] + [_asking_ack(chunk[-1], True)]))
            while results[last - 1] is None:
                for seq, code in acknowledgements(sock.recv(1 << 20)).items():
                    if start < seq <= last and results[seq - 1] is None:
                        results[seq - 1] = code
        except OSError as exc:
            raise NetworkError(f"{what}: netlink batch failed: {exc}") from exc
        for i in range(start, last - 1):
            if results[i] is None:
                results[i] = 0
    return [errno.EIO if r is None else r for r in results]


def _attrs(payload: bytes, off: int, end: int) -> list[tuple[int, bytes]]:
    """(type, value) of the attributes in payload[off:end] (rtattr and nlattr share the layout; the type
    without NLA_F_NESTED / NLA_F_NET_BYTEORDER); a truncated attribute ends the walk."""
    out = []
    while off + RTATTR.size <= end:
        size, kind = RTATTR.unpack_from(payload, off)
        if size < RTATTR.size or off + size > end:
            break
        out.append((kind & 0x3FFF, payload[off + RTATTR.size: off + size]))
        off += (size + 3) & ~3
    return out


def _packed_address(value: bytes) -> IPAddress | None:
    """An address attribute's bytes (4: IPv4, 16: IPv6) as an address; None for any other length."""
    if len(value) == 4:
        return ipaddress.IPv4Address(value)
    if len(value) == 16:
        return ipaddress.IPv6Address(value)
    return None


@dataclass(frozen=True, slots=True)
class DumpedAddress:
    """One address of a dump: the address (IFA_LOCAL, else IFA_ADDRESS), its prefix length, IFA_PROTO
    (None when the kernel sent none), whether it is permanent (no lifetime: IFA_F_PERMANENT, or an
    infinite or absent valid_lft), its interface index and scope."""

    ip: IPAddress
    prefixlen: int
    proto: int | None
    permanent: bool
    index: int = 0
    scope: int = 0


def parse_address(payload: bytes, index: int | None = None) -> DumpedAddress | None:
    """One RTM_NEWADDR message of a dump (after the netlink header); None when it has no address or
    belongs to another interface than `index`."""
    if len(payload) < IFADDRMSG.size:
        return None
    _family, prefixlen, flags, scope, got_index = IFADDRMSG.unpack_from(payload, 0)
    if index is not None and got_index != index:
        return None
    local = address = None
    proto: int | None = None
    valid: int | None = None
    for kind, value in _attrs(payload, IFADDRMSG.size, len(payload)):
        if kind == IFA_LOCAL:
            local = value
        elif kind == IFA_ADDRESS:
            address = value
        elif kind == IFA_FLAGS and len(value) >= 4:
            (flags,) = struct.unpack_from("=I", value)
        elif kind == IFA_PROTO and value:
            proto = value[0]
        elif kind == IFA_CACHEINFO and len(value) >= CACHEINFO.size:
            valid = CACHEINFO.unpack_from(value)[1]
    raw = local or address
    ip = _packed_address(raw) if raw is not None else None
    if ip is None:
        return None
    permanent = bool(flags & IFA_F_PERMANENT) or valid is None or valid == INFINITY_LIFE_TIME
    return DumpedAddress(ip, prefixlen, proto, permanent, got_index, scope)


def dump_request(seq: int) -> bytes:
    """RTM_GETADDR for every address of every family (the kernel filters by interface only with strict
    checking, so the caller filters)."""
    body = IFADDRMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), RTM_GETADDR, flags, seq, 0) + body


def address_dump(sock: socket.socket, index: int | None, what: str) -> list[DumpedAddress]:
    """Every address of interface `index` (None: of every interface), in the kernel's order, from one
    dump on a NETLINK_ROUTE socket.
    The dump is checked against the replies' sequence number; a failed dump raises NetworkError naming
    `what`."""
    sock.settimeout(ACK_TIMEOUT)
    try:
        sock.send(dump_request(1))
        found = []
        for payload in dump_replies(sock, 1, what):
            got = parse_address(payload, index)
            if got is not None:
                found.append(got)
        return found
    except OSError as exc:
        raise NetworkError(f"{what}: netlink dump failed: {exc}") from exc


def link_request(seq: int, key: str | int) -> bytes:
    """RTM_GETLINK for one interface, by name (IFLA_IFNAME) or by index."""
    if isinstance(key, int):
        body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, key, 0, 0)
    else:
        body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _attr(IFLA_IFNAME, key.encode() + b"\0")
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body


def parse_link(payload: bytes) -> tuple[int, str, bytes] | None:
    """(index, name, hardware address) of one RTM_NEWLINK message (after the netlink header); the address
    is empty for a device without one. None when truncated or nameless."""
    if len(payload) < IFINFOMSG.size:
        return None
    index = IFINFOMSG.unpack_from(payload, 0)[2]
    name: str | None = None
    mac = b""
    for kind, value in _attrs(payload, IFINFOMSG.size, len(payload)):
        if kind == IFLA_IFNAME:
            name = value.split(b"\0", 1)[0].decode(errors="replace")
        elif kind == IFLA_ADDRESS:
            mac = value
    return None if name is None else (index, name, mac)


def _links(sock: socket.socket, what: str, parse: Callable[[bytes], _T | None]) -> list[_T]:
    """`parse` of every RTM_NEWLINK of one dump of the namespace's interfaces (None: left out)."""
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
    request = NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    sock.settimeout(ACK_TIMEOUT)
    try:
        sock.send(request + body)
        return [got for payload in dump_replies(sock, 1, what) if (got := parse(payload)) is not None]
    except OSError as exc:
        raise NetworkError(f"{what}: netlink dump failed: {exc}") from exc


def link_dump(sock: socket.socket, what: str) -> list[tuple[int, str, bytes]]:
    """(index, name, hardware address) of every interface in the namespace, from one dump."""
    return _links(sock, what, parse_link)


def parse_link_kind(payload: bytes) -> tuple[str, str] | None:
    """(name, kind) of one RTM_NEWLINK message: the kind is IFLA_INFO_KIND inside IFLA_LINKINFO
    ("macvlan", "veth", "bridge"...; "" for a device without one, as a physical NIC). None when truncated
    or nameless."""
    if len(payload) < IFINFOMSG.size:
        return None
    name: str | None = None
    kind = ""
    for what, value in _attrs(payload, IFINFOMSG.size, len(payload)):
        if what == IFLA_IFNAME:
            name = value.split(b"\0", 1)[0].decode(errors="replace")
        elif what == IFLA_LINKINFO:
            for inner, info in _attrs(value, 0, len(value)):
                if inner == IFLA_INFO_KIND:
                    kind = info.split(b"\0", 1)[0].decode(errors="replace")
    return None if name is None else (name, kind)


def link_kinds(sock: socket.socket, what: str) -> list[tuple[str, str]]:
    """(name, kind) of every interface in the namespace, from one dump (`parse_link_kind`)."""
    return _links(sock, what, parse_link_kind)


def get_link(sock: socket.socket, key: str | int, what: str) -> tuple[int, str, bytes] | None:
    """One interface by name or index on a NETLINK_ROUTE socket: (index, name, hardware address), or None
    when there is no such interface. One request and one reply: pyroute2's link_lookup dumps every
    link of the namespace and parses each (about 8 ms per lookup here, once per netlink batch)."""
    if isinstance(key, str) and (not key or len(key.encode()) >= IFNAMSIZ or "\0" in key):
        return None  # no interface can have that name (the kernel would answer EINVAL)
    sock.settimeout(ACK_TIMEOUT)
    try:
        sock.send(link_request(1, key))
        while True:
            for kind, seq, payload in messages(sock.recv(65536)):
                if seq != 1:
                    continue
                if kind == NLMSG_ERROR:
                    code = error_code(payload)
                    if code == errno.ENODEV:
                        return None
                    raise NetworkError(f"{what}: {os.strerror(code)}")
                if kind == RTM_NEWLINK:
                    return parse_link(payload)
    except OSError as exc:
        raise NetworkError(f"{what}: netlink request failed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class DefaultRoute:
    """One default route (no destination prefix) of a routing table: its metric, its interface (for a
    multipath route the first hop's; 0 when it has none, as an unreachable route) and its gateways
    (RTA_GATEWAY of the route and of each hop)."""

    priority: int
    oif: int
    gateways: tuple[IPAddress, ...] = ()


def parse_default_route(payload: bytes, table: int = RT_TABLE_MAIN) -> DefaultRoute | None:
    """One RTM_NEWROUTE message of a dump (after the netlink header) when it is a default route of
    `table` (RTA_TABLE, else the header's 8-bit table); None for any other route or a truncated one."""
    if len(payload) < RTMSG.size:
        return None
    _family, dst_len, _src, _tos, got_table, _proto, _scope, _type, _flags = RTMSG.unpack_from(payload, 0)
    if dst_len:  # the kernel sends RTA_DST only with a prefix length, so this is every other route
        return None
    oif = priority = 0
    gateways: list[IPAddress] = []
    hops_oif = 0
    for kind, value in _attrs(payload, RTMSG.size, len(payload)):
        if kind == RTA_TABLE and len(value) >= 4:
            (got_table,) = struct.unpack_from("=I", value)
        elif kind == RTA_OIF and len(value) >= 4:
            (oif,) = struct.unpack_from("=I", value)
        elif kind == RTA_PRIORITY and len(value) >= 4:
            (priority,) = struct.unpack_from("=I", value)
        elif kind == RTA_GATEWAY and (gw := _packed_address(value)) is not None:
            gateways.append(gw)
        elif kind == RTA_MULTIPATH:
            off = 0
            while off + RTNEXTHOP.size <= len(value):
                size, _hflags, _hops, index = RTNEXTHOP.unpack_from(value, off)
                if size < RTNEXTHOP.size or off + size > len(value):
                    break
                if not hops_oif:
                    hops_oif = index
                for hkind, hvalue in _attrs(value, off + RTNEXTHOP.size, off + size):
                    if hkind == RTA_GATEWAY and (gw := _packed_address(hvalue)) is not None:
                        gateways.append(gw)
                off += (size + 3) & ~3
    if got_table != table:
        return None
    return DefaultRoute(priority, oif or hops_oif, tuple(gateways))


def route_dump_request(seq: int, family: int) -> bytes:
    """RTM_GETROUTE for every route of `family` (every table: the caller filters)."""
    body = RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return NLMSG_HEADER.pack(NLMSG_HEADER.size + len(body), RTM_GETROUTE, flags, seq, 0) + body


def default_routes(
    sock: socket.socket, family: int, what: str, table: int = RT_TABLE_MAIN
) -> list[DefaultRoute]:
    """The default routes of `family` (AF_INET, AF_INET6) in `table`, in the kernel's order, from one
    dump on a NETLINK_ROUTE socket; a failed dump raises NetworkError naming `what`."""
    sock.settimeout(ACK_TIMEOUT)
    try:
        sock.send(route_dump_request(1, family))
        return [got for payload in dump_replies(sock, 1, what)
                if (got := parse_default_route(payload, table)) is not None]
    except OSError as exc:
        raise NetworkError(f"{what}: netlink dump failed: {exc}") from exc
