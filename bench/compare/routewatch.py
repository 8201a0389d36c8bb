"""Prints every host route the lab router installs in or removes from its kernel table (netlink events).

For the BGP rows: bird2 and FRR program the routes they learn into the router namespace's kernel table
as they learn them (`installs_routes`), so the instant a route appears there is the instant the router
took the UPDATE, without the polls of the daemon's CLI (tens of ms each) that rounded every create up.

Output, one JSON object per line on stdout: {"t": monotonic seconds, "op": "add"|"del", "dst": address}
for /32 and /128 routes only. Standard library only, so it starts fast.
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

try:
    from addrwatch import sockets_in  # run as a script: bench/compare is on the path
except ImportError:  # imported by the bench or its tests
    from compare.addrwatch import sockets_in

RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTA_DST = 1
GROUPS = 0x40 | 0x400  # RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE


def parse(buf: bytes) -> list[tuple[str, str]]:
    """("add" | "del", host address) for each host-route message in a netlink datagram."""
    out: list[tuple[str, str]] = []
    off = 0
    while off + 16 <= len(buf):
        length, mtype = struct.unpack_from("=IH", buf, off)
        if length < 16:
            break
        if mtype in (RTM_NEWROUTE, RTM_DELROUTE) and off + 28 <= len(buf):
            family, dst_len = buf[off + 16], buf[off + 17]
            bits = 32 if family == socket.AF_INET else 128
            attr = off + 16 + 12
            while dst_len == bits and attr + 4 <= off + length:
                alen, atype = struct.unpack_from("=HH", buf, attr)
                if alen < 4:
                    break
                if atype == RTA_DST:
                    raw = buf[attr + 4 : attr + alen]
                    addr = ipaddress.ip_address(raw)
                    out.append(("add" if mtype == RTM_NEWROUTE else "del", str(addr)))
                    break
                attr += (alen + 3) & ~3
        off += (length + 3) & ~3
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--netns", required=True, help="the router's namespace")
    args = ap.parse_args()
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ev, dumper = sockets_in(args.netns, GROUPS)
    dumper.close()
    out = sys.stdout
    out.write(json.dumps({"t": time.monotonic(), "op": "ready"}) + "\n")
    out.flush()
    while running:
        try:
            ready, _, _ = select.select([ev], [], [], 0.5)
        except InterruptedError:
            continue
        if not ready:
            continue
        t = time.monotonic()
        try:
            buf = ev.recv(1 << 20)
        except OSError:  # ENOBUFS: lost events show as a missing instant (NaN), never a wrong one
            continue
        for op, dst in parse(buf):
            out.write(json.dumps({"t": t, "op": op, "dst": dst}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
