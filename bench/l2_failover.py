"""Layer-2 failover: move a VIP between two lab nodes N times while a client probes it every few ms.

For each family it reports the probe gap per move (last reply before the move -> first reply after it)
and the time from the new holder's first announcement to the client's neighbour entry pointing at the
new holder's MAC. JSON goes to bench/results/l2_failover.json, a table is printed. Needs root.

Usage: python bench/l2_failover.py [--moves 20] [--interval-ms 5] [--smoke] [--baseline]
  --smoke     2 moves per family, quick (CI could run it)
  --baseline  also one move per family WITHOUT any announcement (how long the client stays stuck)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import platform
import secrets
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from distribution import summarize  # noqa: E402

from kubevip.ip import IPAddress  # noqa: E402
from kubevip.lab.network import LabNetwork  # noqa: E402
from kubevip.net.addresses import AddressManager  # noqa: E402
from kubevip.net.announcer import Announcer, Sender, raw_sender  # noqa: E402
from kubevip.net.namespace import Netns  # noqa: E402

PORT = 40999
RESULTS = REPO / "bench" / "results" / "l2_failover.json"
PROBE = struct.Struct("!Qd")  # sequence, send time
REPLY = struct.Struct("!QdB")  # sequence, send time, node number


def summary(values: list[float]) -> dict[str, float | int | None]:
    """min / median / p95 / max (nearest-rank p95) of `values` in ms; None when empty."""
    return summarize(values, p95="nearest-rank").as_dict(("min", "median", "p95", "max", "n"))


class Echo(threading.Thread):
    """UDP echo inside one node namespace (wildcard bind: answers for the VIP whenever the node holds it)."""

    def __init__(self, netns: str, node_no: int) -> None:
        super().__init__(daemon=True)
        self.node_no = node_no
        self.socks = [Netns(netns).socket(af, socket.SOCK_DGRAM) for af in (socket.AF_INET, socket.AF_INET6)]
        self.socks[0].bind(("0.0.0.0", PORT))
        self.socks[1].setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        self.socks[1].bind(("::", PORT))
        self.stop = threading.Event()

    def run(self) -> None:
        import selectors

        sel = selectors.DefaultSelector()
        for s in self.socks:
            sel.register(s, selectors.EVENT_READ)
        while not self.stop.is_set():
            for key, _ in sel.select(0.1):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                data, peer = sock.recvfrom(64)
                if len(data) == PROBE.size:
                    seq, sent = PROBE.unpack(data)
                    sock.sendto(REPLY.pack(seq, sent, self.node_no), peer)
        for s in self.socks:
            s.close()


class Prober(threading.Thread):
    """Sends a probe every `interval` s from the client namespace and records (receive time, node)."""

    def __init__(self, netns: str, vip: IPAddress, interval: float) -> None:
        super().__init__(daemon=True)
        self.netns, self.vip, self.interval = netns, vip, interval
        self.replies: list[tuple[float, int]] = []
        self.stop = threading.Event()
        af = socket.AF_INET if self.vip.version == 4 else socket.AF_INET6
        self.sock = Netns(self.netns).socket(af, socket.SOCK_DGRAM)
        self.sock.setblocking(False)

    def run(self) -> None:
        seq = 0
        nxt = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= nxt:
                seq += 1
                # A failed send (e.g. neighbour resolution failed) is part of the gap: keep probing.
                with contextlib.suppress(OSError):
                    self.sock.sendto(PROBE.pack(seq, now), (str(self.vip), PORT))
                nxt += self.interval
            try:
                while True:
                    data = self.sock.recv(64)
                    if len(data) == REPLY.size:
                        self.replies.append((time.monotonic(), REPLY.unpack(data)[2]))
            except (BlockingIOError, ConnectionRefusedError):
                pass
            time.sleep(min(max(nxt - time.monotonic(), 0), 0.001))
        self.sock.close()


class NeighbourWatch(threading.Thread):
    """Polls the client's neighbour entry for the VIP every ~1 ms and records each MAC change."""

    def __init__(self, netns: str, vip: IPAddress) -> None:
        super().__init__(daemon=True)
        self.netns, self.vip = netns, vip
        self.changes: list[tuple[float, str | None]] = []
        self.stop = threading.Event()

    def current(self) -> str | None:
        return self.changes[-1][1] if self.changes else None

    def run(self) -> None:
        af = socket.AF_INET if self.vip.version == 4 else socket.AF_INET6
        with Netns(self.netns).iproute() as ipr:
            while not self.stop.is_set():
                mac = None
                for n in ipr.get_neighbours(family=af, dst=str(self.vip)):
                    mac = n.get_attr("NDA_LLADDR")
                if mac != self.current():
                    self.changes.append((time.monotonic(), mac))
                time.sleep(0.001)


def answered(prober: Prober, node: int, since: float) -> bool:
    return any(r[1] == node and r[0] > since for r in prober.replies[-50:])


class SendClock:
    """Wraps the real senders to note when each announcement actually left (monotonic time)."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, IPAddress]] = []

    def factory(self, ifname: str, version: int, ns: Netns) -> Sender:
        clock, real = self, raw_sender(ifname, version, ns)

        class Timed:
            def announce(self, ip: IPAddress, /) -> None:
                real.announce(ip)
                clock.sent.append((time.monotonic(), ip))

            def close(self) -> None:
                real.close()

        return Timed()

    def first_after(self, t: float) -> float:
        return min(ts for ts, _ in self.sent if ts >= t)


async def wait_for(cond: Any, within: float, what: str) -> float:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.002)
    return time.monotonic()


async def run_family(
    lab: LabNetwork, family: int, moves: int, interval: float, baseline: bool
) -> dict[str, Any]:
    vip = lab.vip(family, 10)
    nodes = lab.nodes[:2]
    managers = [AddressManager(n.interface, ns=Netns(n.netns)) for n in nodes]
    clocks = [SendClock() for _ in nodes]
    announcers = [
        Announcer(ns=Netns(n.netns), sender_factory=c.factory) for n, c in zip(nodes, clocks, strict=True)
    ]
    echoes = [Echo(n.netns, i) for i, n in enumerate(nodes)]
    for e in echoes:
        e.start()
    prober = Prober(lab.client.netns, vip, interval)
    watch = NeighbourWatch(lab.client.netns, vip)
    gaps: list[float] = []
    follow: list[float] = []
    first_reply: list[float] = []
    baseline_result: dict[str, Any] | None = None
    try:
        holder = 0
        await asyncio.to_thread(managers[holder].add, vip)
        await announcers[holder].start(vip, nodes[holder].interface)
        prober.start()
        watch.start()
        await wait_for(lambda: prober.replies and prober.replies[-1][1] == holder, 10, "first reply")
        for _ in range(moves):
            new = 1 - holder
            await asyncio.sleep(0.2)  # steady traffic before the move
            t_move = time.monotonic()
            await announcers[holder].stop(vip)
            await asyncio.to_thread(managers[holder].remove, vip)
            await asyncio.to_thread(managers[new].add, vip)
            t_added = time.monotonic()
            await announcers[new].start(vip, nodes[new].interface)
            t_announce = clocks[new].first_after(t_added)
            new_mac = nodes[new].mac
            t_follow = await wait_for(lambda m=new_mac: watch.current() == m, 10, "neighbour follows")
            t_reply = await wait_for(lambda n=new, t=t_move: answered(prober, n, t), 10, "replies")
            before = [r[0] for r in prober.replies if r[0] <= t_move]
            after = [r[0] for r in prober.replies if r[0] > t_move and r[1] == new]
            last_before = before[-1] if before else t_move
            gaps.append((min(after, default=t_reply) - last_before) * 1000)
            follow.append(max(0.0, t_follow - t_announce) * 1000)
            first_reply.append((min(after, default=t_reply) - t_announce) * 1000)
            holder = new
        if baseline:
            baseline_result = await baseline_move(lab, vip, holder, managers, announcers, prober, watch)
    finally:
        prober.stop.set()
        watch.stop.set()
        for e in echoes:
            e.stop.set()
        for a in announcers:
            await a.close()
        for m in managers:
            await asyncio.to_thread(m.ensure, set())
        for t in (prober, watch, *echoes):
            if t.is_alive():
                t.join(2)
    return {
        "vip": str(vip),
        "moves": moves,
        "probe_interval_ms": interval * 1000,
        "gap_ms": summary(gaps),
        "announce_to_neighbour_ms": summary(follow),
        "announce_to_first_reply_ms": summary(first_reply),
        "gaps_ms": [round(g, 3) for g in gaps],
        "follow_ms": [round(f, 3) for f in follow],
        "first_reply_ms": [round(f, 3) for f in first_reply],
        "baseline_without_announcement": baseline_result,
    }


async def baseline_move(
    lab: LabNetwork,
    vip: IPAddress,
    holder: int,
    managers: list[AddressManager],
    announcers: list[Announcer],
    prober: Prober,
    watch: NeighbourWatch,
    limit: float = 90.0,
) -> dict[str, Any]:
    """One move with no announcement at all: how long until the client reaches the new holder by itself."""
    new = 1 - holder
    await asyncio.sleep(0.2)
    t_move = time.monotonic()
    await announcers[holder].stop(vip)
    await asyncio.to_thread(managers[holder].remove, vip)
    await asyncio.to_thread(managers[new].add, vip)
    try:
        t_reply = await wait_for(lambda: answered(prober, new, t_move), limit, "baseline replies")
    except TimeoutError:
        return {"gap_ms": None, "note": f"client still stuck after {limit:.0f} s"}
    before = [r[0] for r in prober.replies if r[0] <= t_move]
    return {"gap_ms": round((t_reply - (before[-1] if before else t_move)) * 1000, 1)}


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def quad(s: dict[str, float | None]) -> str:
    return " / ".join(fmt(s[k]) for k in ("min", "median", "p95", "max"))


def table(results: dict[str, Any]) -> str:
    lines = [
        "| family | moves | probe every | probe gap (ms) | announcement -> client neighbour entry (ms) "
        "| announcement -> first reply (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for fam, r in results["families"].items():
        cells = [quad(r[k]) for k in ("gap_ms", "announce_to_neighbour_ms", "announce_to_first_reply_ms")]
        head = f"| {fam} | {r['moves']} | {r['probe_interval_ms']:.0f} ms | "
        lines.append(head + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Cells: min / median / p95 / max. The probe gap includes the bench's own remove+add in named "
        "namespaces; the neighbour entry is polled every ~1 ms (an upper bound)."
    )
    base = [(fam, r["baseline_without_announcement"]) for fam, r in results["families"].items()]
    if any(b for _, b in base):
        lines.append("")
        for fam, b in base:
            if b:
                note = f"- {fam} without any announcement: gap {fmt(b.get('gap_ms'))} ms {b.get('note', '')}"
                lines.append(note.rstrip())
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="kvt-l2bench-"))
    lab = LabNetwork(f"b{secrets.token_hex(3)}", nodes=2, state_dir=state)
    lab.up()
    try:
        families = {}
        for fam in (4, 6):
            families[f"IPv{fam}"] = await run_family(
                lab, fam, args.moves, args.interval_ms / 1000, args.baseline
            )
    finally:
        lab.down()
    return {
        "benchmark": "l2_failover",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "host_cpus": os.cpu_count(),
        "smoke": args.smoke,
        "families": families,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--moves", type=int, default=20)
    p.add_argument("--interval-ms", type=float, default=5.0)
    p.add_argument("--smoke", action="store_true", help="2 moves per family, no JSON written")
    p.add_argument("--baseline", action="store_true", help="also one move without announcement (slow)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.smoke:
        args.moves = 2
    if os.geteuid() != 0:
        print("l2_failover: needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    results = asyncio.run(main_async(args))
    if not args.smoke:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.out}")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
