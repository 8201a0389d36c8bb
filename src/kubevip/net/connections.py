"""Abort the TCP connections a VIP move left dead on this node (sock_diag SOCK_DESTROY).

Linux keeps TCP sockets when an address comes or goes, and a VIP move kills connections silently:

* the VIP LEFT this node: a local client that reached it here lost its server end (with source = VIP
  its segments are martians at the new holder; with source = the node address nothing answers it);
* the VIP ARRIVED here: a client that reached it at the previous holder now gets that holder's segments
  dropped as martians (their source is our own address now), and its own go to our stack.

A watch only waits for data, so it hangs until TCP or an idle timeout gives up (minutes). Aborting the
dead sockets makes each owner see the error at once and reconnect. Aborting the server ends BEFORE the
address goes also tells remote clients: the kernel's RST still leaves with the VIP as source.
Needs CAP_NET_ADMIN and CONFIG_INET_DIAG_DESTROY (enabled in Debian, Ubuntu, Fedora and RHEL kernels).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from kubevip.errors import NetworkError
from kubevip.ip import IPAddress
from kubevip.net.namespace import OWN, Netns
from kubevip.net.nlmsg import NLMSGHDR, dump_replies, error_code, messages

Endpoint = tuple[IPAddress, int]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
# Every TCP state except LISTEN (a server bound to the VIP keeps listening: the address may come back),
# TIME_WAIT and NEW_SYN_RECV (not full sockets; nothing waits on them).
_TCP_LISTEN, _TCP_TIME_WAIT, _TCP_NEW_SYN_RECV = 10, 6, 12
STATES = 0xFFFF & ~((1 << _TCP_LISTEN) | (1 << _TCP_TIME_WAIT) | (1 << _TCP_NEW_SYN_RECV))

# inet_diag_req_v2: family, protocol, ext, pad, states; inet_diag_sockid: sport, dport (big endian),
# src[16], dst[16], ifindex, cookie[8].
_REQ = struct.Struct("=BBBBI")
_SOCKID = struct.Struct(">HH16s16s")
_SOCKID_TAIL = struct.Struct("=I8s")
_MSG_HEAD = struct.Struct("=BBBB")


@dataclass(frozen=True)
class SockId:
    """One TCP socket as the kernel names it (family, ports, raw addresses, interface, cookie)."""

    family: int
    sport: int
    dport: int
    src: bytes
    dst: bytes
    ifindex: int
    cookie: bytes

    def pack(self) -> bytes:
        return _SOCKID.pack(self.sport, self.dport, self.src, self.dst) + _SOCKID_TAIL.pack(
            self.ifindex, self.cookie)

    def ends(self) -> tuple[Endpoint, Endpoint]:
        """(local, remote), IPv4-mapped IPv6 addresses as IPv4 (a server on `::` shows them so)."""
        return (_address(self.family, self.src), self.sport), (_address(self.family, self.dst), self.dport)


def _address(family: int, raw: bytes) -> IPAddress:
    if family == socket.AF_INET:
        return ipaddress.IPv4Address(raw[:4])
    ip = ipaddress.IPv6Address(raw)
    return ip.ipv4_mapped or ip


def dead_after_move(sockets: Iterable[tuple[Endpoint, Endpoint]], vip: IPAddress, arrived: bool
                    ) -> set[tuple[Endpoint, Endpoint]]:
    """The connections (local, remote) a move of `vip` left dead on this node.

    Left: every one with the VIP at either end. Arrived: the ones to the VIP whose server end is not on
    this node (they reached the previous holder); connections made here since the VIP arrived have
    their server end here and stay."""
    conns = set(sockets)
    if not arrived:
        return {c for c in conns if vip in (c[0][0], c[1][0])}
    return {c for c in conns if c[1][0] == vip and (c[1], c[0]) not in conns}


def _message(kind: int, flags: int, seq: int, family: int, states: int, sockid: bytes) -> bytes:
    body = _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, states) + sockid
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def _dump(sock: socket.socket, family: int, seq: int) -> list[SockId]:
    empty = _SOCKID.pack(0, 0, bytes(16), bytes(16)) + _SOCKID_TAIL.pack(0, bytes(8))
    sock.send(_message(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, family, STATES, empty))
    out: list[SockId] = []
    for payload in dump_replies(sock, seq, "listing TCP sockets (sock_diag)"):
        fam = _MSG_HEAD.unpack_from(payload)[0]
        sport, dport, src, dst = _SOCKID.unpack_from(payload, _MSG_HEAD.size)
        ifindex, cookie = _SOCKID_TAIL.unpack_from(payload, _MSG_HEAD.size + _SOCKID.size)
        out.append(SockId(fam, sport, dport, src, dst, ifindex, cookie))
    return out


def _destroy(sock: socket.socket, sid: SockId, seq: int) -> int:
    """0, or the errno the kernel answered (ENOENT: gone meanwhile)."""
    sock.send(_message(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, sid.family, STATES, sid.pack()))
    while True:
        for kind, got_seq, payload in messages(sock.recv(65536)):
            if got_seq == seq and kind == NLMSG_ERROR:
                return error_code(payload)


def abort_connections(vip: IPAddress, arrived: bool, ns: Netns = OWN) -> int:
    """Blocking: abort the TCP connections that `vip` arriving on / leaving this node left dead
    (`dead_after_move`); returns how many.

    Raises NetworkError when the kernel cannot (no CONFIG_INET_DIAG_DESTROY, no CAP_NET_ADMIN)."""
    sock = ns.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    aborted = 0
    try:
        sock.settimeout(5.0)
        sock.bind((0, 0))
        families = (socket.AF_INET, socket.AF_INET6) if vip.version == 4 else (socket.AF_INET6,)
        found = [sid for seq, family in enumerate(families, 1) for sid in _dump(sock, family, seq)]
        by_ends = {sid.ends(): sid for sid in found}
        for seq, ends in enumerate(sorted(dead_after_move(by_ends, vip, arrived), key=str), 10):
            code = _destroy(sock, by_ends[ends], seq)
            if code == 0:
                aborted += 1
            elif code != errno.ENOENT:
                raise NetworkError(
                    f"cannot abort the TCP connections of {vip} ({os.strerror(code)}): the kernel needs "
                    "CONFIG_INET_DIAG_DESTROY and the agent CAP_NET_ADMIN; without, a client on this node "
                    "that used the VIP hangs until its own timeout after the VIP moves")
    except OSError as exc:
        raise NetworkError(f"sock_diag netlink in {ns}: {exc}") from exc
    finally:
        sock.close()
    return aborted
