"""Raw netlink framing shared by our hand-built requests (sock_diag, ctnetlink): header, message walk,
error code. pyroute2 covers the rest; these two families need requests it does not build (or builds
for IPv4 only)."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

from kubevip.errors import NetworkError

NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id


def messages(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of each netlink message in one datagram."""
    off = 0
    while off + NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _pid = NLMSGHDR.unpack_from(data, off)
        if length < NLMSGHDR.size:
            return
        yield kind, seq, data[off + NLMSGHDR.size: off + length]
        off += (length + 3) & ~3


def error_code(payload: bytes) -> int:
    """The errno of an NLMSG_ERROR payload (0: an acknowledgement)."""
    return -int(struct.unpack_from("=i", payload)[0])


NLMSG_ERROR = 2
NLMSG_DONE = 3


def dump_replies(sock: socket.socket, seq: int, what: str, bufsize: int = 65536) -> Iterator[bytes]:
    """The payloads of a dump's answers to request `seq` (already sent) until NLMSG_DONE; an error
    answer raises NetworkError naming `what`."""
    while True:
        for kind, got_seq, payload in messages(sock.recv(bufsize)):
            if got_seq != seq:
                continue
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                code = error_code(payload)
                if code:
                    raise NetworkError(f"{what}: {os.strerror(code)}")
                return
            yield payload
