"""BGP speaker latency against real routers (gobgpd, bird2, FRR) in network namespaces.

Per daemon it measures
  - announce: `Speaker.converge` called with one more VIP -> the prefix is in the router's RIB;
  - withdraw: `converge` without that VIP -> the prefix is gone from the RIB;
  - restart: ExaBGP killed while 1000 prefixes are announced -> all 1000 back in the RIB (supervisor
    back-off, ExaBGP start, session, re-feed of every prefix);
  - feed: the same 1000 prefixes fed to an established session (converge call and time to full RIB).
The RIB is polled through the daemon's CLI, so each figure includes up to one poll (its cost is
reported as `poll`). JSON goes to bench/results/bgp.json, a table is printed. Needs root.

Usage: python bench/bgp.py [--daemons gobgpd,bird2,frr] [--samples 30] [--prefixes 1000] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from distribution import summarize  # noqa: E402
from tests.net.bgp_topo import BgpTopology  # noqa: E402

from kubevip.bgp.advertisement import Advertisement  # noqa: E402
from kubevip.lab.routers import DAEMONS, Router  # noqa: E402

RESULTS = REPO / "bench" / "results" / "bgp.json"


def summary(values: list[float]) -> dict[str, float | int | None]:
    """min / median / p95 / max (nearest-rank p95) in ms; None when empty."""
    return summarize(values, p95="nearest-rank").as_dict(("min", "median", "p95", "max", "n"))


async def wait_rib(
    router: Router, version: int, pred: Any, limit: float = 120.0
) -> tuple[float, list[float]]:
    """Poll until pred(rib) holds; returns (monotonic time it was seen, poll durations in ms)."""
    polls: list[float] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        t = time.monotonic()
        rib = await router.rib(version)
        polls.append((time.monotonic() - t) * 1000)
        if pred(rib):
            return time.monotonic(), polls
    raise TimeoutError(f"{router.daemon}: RIB condition not reached in {limit}s")


async def bench_daemon(daemon: str, samples: int, prefixes: int) -> dict[str, Any]:
    topo = BgpTopology(nodes=1)
    try:
        router = topo.start_router(daemon, 4)
        node = topo.nodes[0]
        sp = topo.speaker(0, topo.settings(4))
        await sp.start()
        async with asyncio.timeout(60):
            await sp.wait_connected()
        # Wait for the session itself, not only for the API.
        deadline = time.monotonic() + 60
        while sp.peer_states.get(topo.router_ip(4)) != "up" and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

        announce: list[float] = []
        withdraw: list[float] = []
        polls: list[float] = []
        for i in range(samples):
            version = 4 if i % 2 == 0 else 6
            vip = (
                ipaddress.ip_address(f"10.99.1.{1 + i // 2}")
                if version == 4
                else ipaddress.ip_address(f"fd99:1::{1 + i // 2:x}")
            )
            net = ipaddress.ip_network(vip)
            adv = Advertisement(net, node.ip(version))
            t0 = time.monotonic()
            await sp.converge({adv})
            seen, p = await wait_rib(router, version, lambda rib, net=net: net in rib)
            announce.append((seen - t0) * 1000)
            polls += p
            t0 = time.monotonic()
            await sp.converge(set())
            seen, p = await wait_rib(router, version, lambda rib, net=net: net not in rib)
            withdraw.append((seen - t0) * 1000)
            polls += p

        # Feed N prefixes (half per family) to an established session.
        advs = set()
        for i in range(prefixes):
            if i % 2 == 0:
                vip: ipaddress.IPv4Address | ipaddress.IPv6Address = (
                    ipaddress.IPv4Address("10.100.0.0") + i // 2
                )
            else:
                vip = ipaddress.IPv6Address("fd99:2::") + i // 2
            advs.add(Advertisement(ipaddress.ip_network(vip), node.ip(vip.version)))
        n4 = sum(1 for a in advs if a.prefix.version == 4)
        n6 = len(advs) - n4

        async def full() -> float:
            s4, _ = await wait_rib(router, 4, lambda rib: len(rib) == n4)
            s6, _ = await wait_rib(router, 6, lambda rib: len(rib) == n6)
            return max(s4, s6)

        t0 = time.monotonic()
        await sp.converge(advs)
        feed_call = (time.monotonic() - t0) * 1000
        feed_full = (await full() - t0) * 1000

        # Kill ExaBGP: the router drops everything; the supervisor restarts and re-feeds.
        pid = sp.pid
        assert pid is not None
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        await wait_rib(router, 4, lambda rib: len(rib) == 0)
        gone = (time.monotonic() - t0) * 1000
        restart_full = (await full() - t0) * 1000
        await sp.close()
        return {
            "daemon": daemon,
            "session": "ipv4",
            "announce_ms": summary(announce),
            "withdraw_ms": summary(withdraw),
            "poll_ms": summary(polls),
            "prefixes": prefixes,
            "feed_converge_call_ms": feed_call,
            "feed_full_table_ms": feed_full,
            "restart_routes_gone_ms": gone,
            "restart_full_table_ms": restart_full,
        }
    finally:
        await topo.close()


def fmt(v: float | int | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--daemons", default=",".join(DAEMONS))
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--prefixes", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help="4 samples, 100 prefixes, gobgpd only")
    args = ap.parse_args()
    if args.smoke:
        args.samples, args.prefixes, args.daemons = 4, 100, "gobgpd"
    results = []
    for daemon in args.daemons.split(","):
        print(f"bench/bgp.py: {daemon} ...", file=sys.stderr)
        results.append(asyncio.run(bench_daemon(daemon, args.samples, args.prefixes)))
    doc = {
        "bench": "bgp",
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "exabgp": "5.0.15",
        "samples": args.samples,
        "results": results,
    }
    if not args.smoke:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    head = (
        "daemon",
        "announce med",
        "announce p95",
        "withdraw med",
        "withdraw p95",
        "poll med",
        f"feed {args.prefixes}",
        f"restart {args.prefixes}",
    )
    print(" | ".join(head))
    for r in results:
        print(
            " | ".join(
                [
                    r["daemon"],
                    fmt(r["announce_ms"]["median"]),
                    fmt(r["announce_ms"]["p95"]),
                    fmt(r["withdraw_ms"]["median"]),
                    fmt(r["withdraw_ms"]["p95"]),
                    fmt(r["poll_ms"]["median"]),
                    fmt(r["feed_full_table_ms"]),
                    fmt(r["restart_full_table_ms"]),
                ]
            )
        )
    print("(ms; feed/restart = time until the router holds every prefix)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
