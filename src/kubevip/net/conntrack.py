"""Forgetting connection-tracking entries of pods whose egress translation changed.

NAT is decided on a flow's first packet and kept in its conntrack entry: without this, a pod's flow that
began before the node held the VIP would keep leaving with the pod's address, and one translated on a
node that gave the VIP up would keep the old VIP. Deleting the entries whose original source is the pod
makes the next packet start a new entry under the current rules (kube-vip does the same). Flows towards
the pod (original source elsewhere) are not touched.

Raw ctnetlink (NETLINK_NETFILTER): a dump per family, then a delete per matching entry that hands the
kernel back the entry's own original tuple (and zone). pyroute2's Conntrack dumps IPv4 only and its
filtered IPv6 dump fails with EINVAL (pyroute2 0.9.7), so it is not used.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable, Iterator

from kubevip.core.views import IPAddress
from kubevip.errors import NetworkError
from kubevip.net.namespace import OWN, Netns
from kubevip.net.nlmsg import NLMSGHDR, dump_replies, error_code, messages

NETLINK_NETFILTER = 12
NFNL_SUBSYS_CTNETLINK = 1
IPCTNL_MSG_CT_GET = 1
IPCTNL_MSG_CT_DELETE = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
CTA_TUPLE_ORIG, CTA_ZONE = 1, 18
CTA_TUPLE_IP = 1
CTA_IP_V4_SRC, CTA_IP_V6_SRC = 1, 3
NLA_TYPE_MASK = 0x3FFF

_NFGENMSG = struct.Struct("=BBH")
_NLA = struct.Struct("=HH")


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type without flags, payload) of each netlink attribute."""
    off = 0
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size:
            return
        yield kind & NLA_TYPE_MASK, data[off + _NLA.size: off + length]
        off += (length + 3) & ~3


def _attr(kind: int, payload: bytes, nested: bool = False) -> bytes:
    head = _NLA.pack(_NLA.size + len(payload), kind | (0x8000 if nested else 0))
    return head + payload + bytes((4 - len(payload) % 4) % 4)


def _message(kind: int, flags: int, seq: int, family: int, body: bytes = b"") -> bytes:
    payload = _NFGENMSG.pack(family, 0, 0) + body
    return NLMSGHDR.pack(NLMSGHDR.size + len(payload), (NFNL_SUBSYS_CTNETLINK << 8) | kind, flags, seq, 0) \
        + payload


def _source(tuple_orig: bytes) -> IPAddress | None:
    for kind, value in _attrs(tuple_orig):
        if kind != CTA_TUPLE_IP:
            continue
        for k, v in _attrs(value):
            if k == CTA_IP_V4_SRC and len(v) == 4:
                return ipaddress.IPv4Address(v)
            if k == CTA_IP_V6_SRC and len(v) == 16:
                return ipaddress.IPv6Address(v)
    return None


def _matching(sock: socket.socket, family: int, seq: int, sources: set[IPAddress]) -> list[bytes]:
    """Delete-request bodies (original tuple + zone) of the entries whose original source is wanted."""
    sock.send(_message(IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq, family))
    out: list[bytes] = []
    for payload in dump_replies(sock, seq, "listing conntrack entries", 1 << 20):
        attrs = dict(_attrs(payload[_NFGENMSG.size:]))
        orig = attrs.get(CTA_TUPLE_ORIG)
        if orig is None or _source(orig) not in sources:
            continue
        body = _attr(CTA_TUPLE_ORIG, orig, nested=True)
        if CTA_ZONE in attrs:
            body += _attr(CTA_ZONE, attrs[CTA_ZONE])
        out.append(body)
    return out


def _delete(sock: socket.socket, family: int, body: bytes, seq: int) -> int:
    sock.send(_message(IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq, family, body))
    while True:
        for kind, got_seq, payload in messages(sock.recv(65536)):
            if got_seq == seq and kind == NLMSG_ERROR:
                return error_code(payload)


def forget_flows(sources: Iterable[IPAddress], ns: Netns = OWN) -> int:
    """Delete the conntrack entries whose original source is one of `sources`; how many (blocking: call
    it from a worker thread)."""
    wanted = set(sources)
    if not wanted:
        return 0
    deleted = 0
    sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        seq = 1
        for version, family in ((4, socket.AF_INET), (6, socket.AF_INET6)):
            mine = {a for a in wanted if a.version == version}
            if not mine:
                continue
            for body in _matching(sock, family, seq, mine):
                seq += 1
                code = _delete(sock, family, body, seq)
                if code == 0:
                    deleted += 1
                elif code != errno.ENOENT:  # ENOENT: expired meanwhile
                    raise NetworkError(f"deleting a conntrack entry: {os.strerror(code)}")
            seq += 1
    except OSError as exc:
        raise NetworkError(f"conntrack netlink in {ns}: {exc}") from exc
    finally:
        sock.close()
    return deleted
