"""Runs inside the client namespace: sends a UDP probe to each target every few ms and logs who answers.

Targets are FAMILY=ADDRESS (e.g. ipv4=10.0.0.200). Output, one line per answer on stdout:
"<monotonic t> <family> <node>"; runs until SIGTERM. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import select
import signal
import socket
import struct
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("targets", nargs="+", help="FAMILY=ADDRESS")
    ap.add_argument("--port", type=int, default=17007)
    ap.add_argument("--interval-ms", type=float, default=5.0)
    args = ap.parse_args()
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    socks: list[tuple[str, socket.socket, tuple[str, int]]] = []
    for spec in args.targets:
        family, _, addr = spec.partition("=")
        af = socket.AF_INET6 if ":" in addr else socket.AF_INET
        s = socket.socket(af, socket.SOCK_DGRAM)
        s.setblocking(False)
        socks.append((family, s, (addr, args.port)))
    by_fd = {s.fileno(): fam for fam, s, _ in socks}
    sock_of = {s.fileno(): s for _, s, _ in socks}
    period = args.interval_ms / 1000.0
    seq = 0
    next_send = time.monotonic()
    out = sys.stdout
    # Readiness marker: the driver starts its clock only after the prober is sending.
    out.write(f"# ready {time.monotonic():.6f}\n")
    out.flush()
    while running:
        now = time.monotonic()
        if now >= next_send:
            seq += 1
            payload = struct.pack("!Q", seq)
            for _, s, dest in socks:
                # No route / neighbour failure while the VIP moves: just a lost probe.
                with contextlib.suppress(OSError):
                    s.sendto(payload, dest)
            next_send = now + period
        try:
            ready, _, _ = select.select(list(sock_of), [], [], max(0.0, next_send - time.monotonic()))
        except InterruptedError:
            continue
        t = time.monotonic()
        for fd in ready:
            while True:
                try:
                    data = sock_of[fd].recv(512)
                except (BlockingIOError, OSError):
                    break
                node = data[9:].decode(errors="replace") if len(data) > 9 else "?"
                out.write(f"{t:.6f} {by_fd[fd]} {node}\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
