"""The soak's client (bench/chaos.py): runs inside the lab's client namespace and probes every VIP over UDP.

Targets are read from a file (one address a line) that the driver rewrites as Services come and go; it is
re-read when its mtime changes. Every `--interval-ms` each target gets one datagram carrying the target's
number; an answer that echoes it (bench/compare/responder.py) counts. One unconnected socket per family:
a responder bound to the wildcard answers from whatever source address the node's routing picks (its
own, not the VIP), so a socket connected to the VIP would drop the answers. Output, one JSON object a line:

  {"ev": "ready", "t"}                              sending has begun
  {"ev": "first", "vip", "added", "t"}              a new target answered for the first time
  {"ev": "gap", "vip", "from", "to"}                answered again after more than --gap-ms of silence
                                                    (from = last answer before, to = first answer after)
  {"ev": "open", "vip", "from", "to"}               a target removed (or the prober stopped) while silent
  {"ev": "never", "vip", "added", "to"}             a target removed before it ever answered
  {"ev": "stall", "from", "to"}                     this process itself did not run for > 250 ms (a gap
                                                    overlapping it may be the prober's, not the VIP's)
  {"ev": "tick", "t", "targets", "silent"}          every 5 s

Times are time.monotonic() (one clock with the driver and the address sampler on this host). Standard
library only, so it starts fast under `ip netns exec`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass

ID = struct.Struct("!Q")


@dataclass
class Target:
    id: int
    addr: tuple[str, int]
    added: float
    last: float | None = None


def read_targets(path: str) -> set[str]:
    try:
        with open(path) as f:
            return {str(ipaddress.ip_address(line.strip())) for line in f if line.strip()}
    except (OSError, ValueError):
        return set()  # being rewritten: the next look sees the whole file (the driver renames it in place)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", required=True)
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--gap-ms", type=float, default=300.0)
    args = ap.parse_args()
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    out = sys.stdout

    def emit(**doc: object) -> None:
        out.write(json.dumps(doc) + "\n")

    period = args.interval_ms / 1000.0
    gap = args.gap_ms / 1000.0
    targets: dict[str, Target] = {}
    by_id: dict[int, str] = {}
    socks = {
        4: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        6: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM),
    }
    for sk in socks.values():
        sk.setblocking(False)
    serial = 0
    mtime = -1.0
    next_look = next_send = next_tick = time.monotonic()
    last_loop = time.monotonic()
    emit(ev="ready", t=time.monotonic())
    out.flush()
    while running:
        now = time.monotonic()
        if now - last_loop > 0.25:
            emit(ev="stall", **{"from": last_loop, "to": now})
        last_loop = now
        if now >= next_look:
            next_look = now + 0.2
            with contextlib.suppress(OSError):
                m = os.stat(args.targets).st_mtime
                if m != mtime:
                    mtime = m
                    wanted = read_targets(args.targets)
                    for vip in set(targets) - wanted:
                        t = targets.pop(vip)
                        by_id.pop(t.id, None)
                        if t.last is None:
                            emit(ev="never", vip=vip, added=t.added, to=now)
                        elif now - t.last > gap:
                            emit(ev="open", vip=vip, **{"from": t.last, "to": now})
                    for vip in wanted - set(targets):
                        serial += 1
                        targets[vip] = Target(serial, (vip, args.port), now)
                        by_id[serial] = vip
        if now >= next_send:
            for t in targets.values():
                # No route / neighbour failure / ICMP error of the previous probe: just a lost probe.
                with contextlib.suppress(OSError):
                    socks[6 if ":" in t.addr[0] else 4].sendto(ID.pack(t.id), t.addr)
            next_send = now + period
        if now >= next_tick:
            silent = sum(1 for t in targets.values() if t.last is None or now - t.last > gap)
            emit(ev="tick", t=now, targets=len(targets), silent=silent)
            next_tick = now + 5.0
        out.flush()
        try:
            ready, _, _ = select.select(
                list(socks.values()), [], [], max(0.0, min(next_send, next_look) - now)
            )
        except InterruptedError:
            continue
        t_rx = time.monotonic()
        for sk in ready:
            while True:
                try:
                    data = sk.recv(256)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue  # a queued ICMP error: not an answer
                if len(data) < ID.size:
                    continue
                vip = by_id.get(ID.unpack_from(data)[0])
                if vip is None:
                    continue  # an answer to a target removed meanwhile
                tgt = targets[vip]
                if tgt.last is None:
                    emit(ev="first", vip=vip, added=tgt.added, t=t_rx)
                elif t_rx - tgt.last > gap:
                    emit(ev="gap", vip=vip, **{"from": tgt.last, "to": t_rx})
                tgt.last = t_rx
    end = time.monotonic()
    for vip, t in targets.items():
        if t.last is None:
            emit(ev="never", vip=vip, added=t.added, to=end)
        elif end - t.last > gap:
            emit(ev="open", vip=vip, **{"from": t.last, "to": end})
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
