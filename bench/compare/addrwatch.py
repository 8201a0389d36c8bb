"""Runs inside one node namespace: prints every address add/delete (netlink events) and a periodic poll.

Output, one JSON object per line on stdout: {"t": monotonic seconds, "node", "op": "add"|"del"|"poll",
"addr" (add/del) or "addrs" (poll)}. Standard library only, so it starts fast under `ip netns exec`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import select
import signal
import socket
import struct
import sys
import time

RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_DONE, NLMSG_ERROR = 3, 2
IFA_ADDRESS, IFA_LOCAL = 1, 2
GROUPS = 0x10 | 0x100  # RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR


def parse(buf: bytes) -> list[tuple[int, str]]:
    """(message type, address) for each address message in a netlink datagram."""
    out: list[tuple[int, str]] = []
    off = 0
    while off + 16 <= len(buf):
        length, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", buf, off)
        if length < 16:
            break
        if mtype in (RTM_NEWADDR, RTM_DELADDR):
            family = buf[off + 16]
            attr = off + 16 + 8
            found: dict[int, bytes] = {}
            while attr + 4 <= off + length:
                alen, atype = struct.unpack_from("=HH", buf, attr)
                if alen < 4:
                    break
                found[atype] = buf[attr + 4 : attr + alen]
                attr += (alen + 3) & ~3
            raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
            if raw is not None:
                af = socket.AF_INET if family == socket.AF_INET else socket.AF_INET6
                out.append((mtype, str(ipaddress.ip_address(socket.inet_ntop(af, raw)))))
        off += (length + 3) & ~3
    return out


def dump() -> list[str]:
    """All addresses in this namespace now."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    try:
        req = struct.pack("=IHHII", 16 + 8, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
        req += struct.pack("=BBBBI", socket.AF_UNSPEC, 0, 0, 0, 0)
        s.send(req)
        addrs: list[str] = []
        while True:
            buf = s.recv(1 << 20)
            done = False
            off = 0
            while off + 16 <= len(buf):
                length, mtype = struct.unpack_from("=IH", buf, off)
                if mtype in (NLMSG_DONE, NLMSG_ERROR):
                    done = True
                off += (length + 3) & ~3
            addrs.extend(a for t, a in parse(buf) if t == RTM_NEWADDR)
            if done:
                return addrs
    finally:
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", required=True)
    ap.add_argument("--poll-ms", type=float, default=20.0)
    args = ap.parse_args()
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, GROUPS))
    out = sys.stdout
    period = args.poll_ms / 1000.0
    next_poll = time.monotonic()
    while running:
        now = time.monotonic()
        if now >= next_poll:
            out.write(json.dumps({"t": now, "node": args.node, "op": "poll", "addrs": dump()}) + "\n")
            out.flush()
            next_poll = now + period
        try:
            ready, _, _ = select.select([sock], [], [], max(0.0, next_poll - time.monotonic()))
        except InterruptedError:
            continue
        if ready:
            try:
                buf = sock.recv(1 << 20)
            except OSError:  # ENOBUFS: events were lost; the next poll still tells the truth
                continue
            t = time.monotonic()
            for mtype, addr in parse(buf):
                op = "add" if mtype == RTM_NEWADDR else "del"
                out.write(json.dumps({"t": t, "node": args.node, "op": op, "addr": addr}) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
