"""Raw netlink framing shared by our hand-built requests (sock_diag, ctnetlink): header, message walk,
error code. pyroute2 covers the rest; these two families need requests it does not build (or builds
for IPv4 only)."""

from __future__ import annotations

import struct
from collections.abc import Iterator

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
