"""Netlink framing: messages are walked at 4-byte alignment; an error payload carries -errno."""

from __future__ import annotations

import struct

from kubevip.net.nlmsg import NLMSGHDR, error_code, messages


def _msg(kind: int, seq: int, payload: bytes) -> bytes:
    raw = NLMSGHDR.pack(NLMSGHDR.size + len(payload), kind, 0, seq, 0) + payload
    return raw + b"\0" * (-len(raw) % 4)


def test_messages_walk_aligned_and_stop_at_a_short_header() -> None:
    data = _msg(16, 1, b"abc") + _msg(2, 2, struct.pack("=i", -17)) + b"\x01\x00"
    got = list(messages(data))
    assert [(k, s) for k, s, _ in got] == [(16, 1), (2, 2)]
    assert got[0][2] == b"abc"
    assert error_code(got[1][2]) == 17


def test_a_corrupt_length_ends_the_walk() -> None:
    assert list(messages(NLMSGHDR.pack(3, 16, 0, 1, 0))) == []
