"""Cost of layer-2 announcements on the agent's event loop: N VIPs (half IPv4, half IPv6) started together
on one Announcer, then refreshed every `--rate-ms` (kube-vip's `vip_arpRate`, 3000 ms). Reports the CPU
and wall time of starting them all, the process's CPU share while only refreshes run (after the
takeover burst), frames and thread jobs per second, and the time to stop them all.

By default the senders do nothing, so the figures are the announcer's own scheduling (tasks, futures,
the hand-over to its thread). `--real` sends real gratuitous ARPs and unsolicited NAs on a veth of a
scratch network namespace (needs root; the frames stay in that namespace).

Usage: python bench/announcer.py [--vips 200,2000,10000] [--rate-ms 3000] [--window 9] [--real] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from kubevip.ip import IPAddress  # noqa: E402
from kubevip.net.announcer import BURST, Announcer, Sender, raw_sender  # noqa: E402
from kubevip.net.namespace import OWN, Netns  # noqa: E402

RESULTS = REPO / "bench" / "results" / "announcer.json"


class NullSender:
    def announce(self, ip: IPAddress, /) -> None:
        pass

    def close(self) -> None:
        pass


def vips_of(n: int) -> list[IPAddress]:
    half = n // 2
    v4 = [ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.200.0.0")) + i + 1) for i in range(half)]
    base6 = int(ipaddress.IPv6Address("fd00:200::"))
    v6 = [ipaddress.IPv6Address(base6 + i + 1) for i in range(n - half)]
    return [*v4, *v6]


async def measure(
    n: int, rate_ms: int, window: float, ns: Netns | None, burst: tuple[float, ...] = BURST,
) -> dict[str, Any]:
    def factory(ifname: str, version: int, netns: Netns) -> Sender:
        return raw_sender(ifname, version, netns) if ns is not None else NullSender()

    ann = Announcer(rate_ms=rate_ms, ns=ns or OWN, burst=burst, sender_factory=factory)
    vips = vips_of(n)
    c0, w0 = time.process_time(), time.monotonic()
    start_many = getattr(ann, "start_many", None)  # the agent's call; before it, a task per VIP
    if start_many is not None:
        await start_many([(v, "eth0") for v in vips])
    else:
        await asyncio.gather(*(ann.start(v, "eth0") for v in vips))
    start_cpu, start_wall = time.process_time() - c0, time.monotonic() - w0
    await asyncio.sleep(max(burst) + 0.5)  # the takeover burst is over: refreshes only from here
    batches0 = getattr(ann, "batches", None)
    sent0 = sum(ann.sent.values())
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window)
    wall = time.monotonic() - w0
    cpu = time.process_time() - c0
    frames = sum(ann.sent.values()) - sent0
    batches = getattr(ann, "batches", None)
    c0, w0 = time.process_time(), time.monotonic()
    await ann.close()
    return {
        "vips": n,
        "start_all_cpu_s": round(start_cpu, 3),
        "start_all_wall_s": round(start_wall, 3),
        "steady_cpu_percent": round(100 * cpu / wall, 2),
        "frames_per_s": round(frames / wall, 1),
        "jobs_per_s": None if batches is None or batches0 is None else round((batches - batches0) / wall, 2),
        "close_wall_s": round(time.monotonic() - w0, 3),
    }


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vips", default="200,2000,10000")
    ap.add_argument("--rate-ms", type=int, default=3000)
    ap.add_argument("--window", type=float, default=9.0)
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    name = f"kvba{secrets.token_hex(3)}"
    ns = Netns(name) if args.real else None
    if args.real:
        _ip("netns", "add", name)
    try:
        if args.real:
            _ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "eth1", "up")
        rows = []
        for n in (int(x) for x in args.vips.split(",")):
            row = asyncio.run(measure(n, args.rate_ms, args.window, ns))
            print(json.dumps(row), flush=True)
            rows.append(row)
    finally:
        if args.real:
            _ip("netns", "del", name)
    out = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "python": platform.python_version(),
        "rate_ms": args.rate_ms,
        "senders": "raw (veth in a scratch namespace)" if args.real else "null",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
