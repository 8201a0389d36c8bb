"""Prints every address add/delete (netlink events) and a periodic poll, for one or many namespaces.

Output, one JSON object per line on stdout: {"t": monotonic seconds, "node", "op": "add"|"del"|"poll",
"addr" (add/del) or "addrs" (poll)}. Standard library only, so it starts fast under `ip netns exec`.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import json
import os
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
CLONE_NEWNET = 0x40000000


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


def dump(sock: socket.socket | None = None) -> list[str]:
    """All addresses in the namespace of `sock` (a fresh socket in ours when None)."""
    s = sock or socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
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
        if sock is None:
            s.close()


def sockets_in(netns: str, groups: int = GROUPS) -> tuple[socket.socket, socket.socket]:
    """(event socket subscribed to `groups`, dump socket) created inside /run/netns/<netns>; a netlink
    socket stays bound to the namespace it was created in, so one process can watch every node with one
    clock."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
        try:
            ev = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            ev.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            ev.bind((0, groups))
            dumper = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        finally:
            libc.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
        os.close(target)
    return ev, dumper


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", help="watch this process's namespace, reporting it as NODE")
    ap.add_argument("--netns", nargs="*", default=[], help="NODE=NETNS pairs: watch them all, one clock")
    ap.add_argument("--poll-ms", type=float, default=20.0)
    ap.add_argument(
        "--changes-only",
        action="store_true",
        help="no 'add' line for an address already present (a lifetime extension is an RTM_NEWADDR too)",
    )
    args = ap.parse_args()
    present: dict[str, set[str]] = {}
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watched: dict[int, tuple[str, socket.socket, socket.socket | None]] = {}
    for pair in args.netns:
        node, _, netns = pair.partition("=")
        ev, dumper = sockets_in(netns)
        watched[ev.fileno()] = (node, ev, dumper)
    if args.node:
        ev = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        ev.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        ev.bind((0, GROUPS))
        watched[ev.fileno()] = (args.node, ev, None)
    out = sys.stdout
    period = args.poll_ms / 1000.0
    next_poll = time.monotonic()
    while running:
        now = time.monotonic()
        if now >= next_poll:
            for node, _, dumper in watched.values():
                t = time.monotonic()
                addrs = dump(dumper)
                present[node] = set(addrs)
                out.write(json.dumps({"t": t, "node": node, "op": "poll", "addrs": addrs}) + "\n")
            out.flush()
            next_poll = now + period
        try:
            ready, _, _ = select.select(list(watched), [], [], max(0.0, next_poll - time.monotonic()))
        except InterruptedError:
            continue
        t = time.monotonic()
        for fd in ready:
            node, ev, _ = watched[fd]
            try:
                buf = ev.recv(1 << 20)
            except OSError:  # ENOBUFS: events were lost; the next poll still tells the truth
                continue
            for mtype, addr in parse(buf):
                op = "add" if mtype == RTM_NEWADDR else "del"
                if args.changes_only:
                    have = present.setdefault(node, set())
                    if op == "add" and addr in have:
                        continue
                    (have.add if op == "add" else have.discard)(addr)
                out.write(json.dumps({"t": t, "node": node, "op": op, "addr": addr}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
