"""Leader-election benchmark on a real control plane: failover times and Lease write load per node.

Runs `python -m kubevip.election` processes against a private kube-apiserver (started here) and
reports: crash (SIGKILL) and graceful (SIGTERM) failover, median and p95 over many runs, for the
kube-vip compatible Lease mode and the scalable mode; and writes to Leases per node per second
(from the API server's own apiserver_request_total) for 1, 100 and 1000 units in per-Service mode
vs scalable mode. JSON goes to bench/results/election.json; a table is printed.

Usage: python bench/election.py [--runs 20] [--window 15] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distribution import summarize  # noqa: E402
from tests.cluster.election_fleet import Fleet  # noqa: E402

from kubevip.election.timings import Timings  # noqa: E402
from kubevip.errors import LabError  # noqa: E402
from kubevip.lab.controlplane import ControlPlane  # noqa: E402
from kubevip.lab.instance import find_bin_dir as bin_dir  # noqa: E402

WRITE_VERBS = {"POST", "PUT", "PATCH", "DELETE", "APPLY"}
KUBE_VIP_TIMINGS = [
    "--lease-duration",
    "15",
    "--renew-deadline",
    "10",
    "--retry-period",
    "2",
    "--skew-margin",
    "0",
]


def summary(values: list[float]) -> dict[str, float | int | None]:
    """This benchmark's JSON for one failover figure."""
    return summarize(values, p95="nearest-index").as_dict(("runs", "median", "p95", "min", "max"))


async def settle() -> None:
    """Let a freshly spawned peer watch the holder for a while before the next failure, as peers in
    production do: a peer that has never seen the Lease must wait a full duration from its first look,
    which would measure start-up, not failover.
    """
    await asyncio.sleep(2 * Timings().lease_duration)


async def lease_failover(cp: ControlPlane, work: Path, runs: int, graceful: bool) -> list[float]:
    """Two electors on one Lease; kill (or terminate) the leader; time until the peer starts leading."""
    unit = f"bench-{'term' if graceful else 'kill'}-{os.getpid()}"
    fleet = Fleet(cp, work, "kube-system", ["--lease", unit])
    out: list[float] = []
    try:
        await fleet.spawn("n0-0")
        await fleet.spawn("n1-0")
        for i in range(runs):
            await fleet.wait_for(lambda: len(fleet.leaders(unit)) == 1, 30, "a leader")
            await settle()
            (leader,) = fleet.leaders(unit)
            t0 = time.monotonic()
            if graceful:
                await fleet.terminate(leader)
            else:
                await fleet.kill(leader)

            def taken(t0: float = t0) -> bool:
                return any(e.kind == "started" and e.unit == unit and e.mono >= t0 for e in fleet.events)

            await fleet.wait_for(taken, 30, "a new leader")
            start = min(
                e.mono for e in fleet.events if e.kind == "started" and e.unit == unit and e.mono >= t0
            )
            out.append(start - t0)
            await fleet.spawn(f"{leader.split('-')[0]}-{i + 1}")
    finally:
        await fleet.close()
    return out


async def scalable_failover(
    cp: ControlPlane, work: Path, runs: int, graceful: bool, units: int = 20
) -> list[float]:
    """Three scalable electors with `units` units; stop the node holding most; time until all are held."""
    keys = [f"bench/{os.getpid()}-{'t' if graceful else 'k'}-{i}" for i in range(units)]
    args = ["--mode", "scalable"]
    for k in keys:
        args += ["--unit", k]
    fleet = Fleet(cp, work, "kube-system", args)
    out: list[float] = []
    try:
        for n in ("a-0", "b-0", "c-0"):
            await fleet.spawn(n)
        for i in range(runs):
            await fleet.wait_for(lambda: all(len(fleet.leaders(k)) == 1 for k in keys), 30, "all held")
            await settle()
            counts: dict[str, int] = {}
            for k in keys:
                (h,) = fleet.leaders(k)
                counts[h] = counts.get(h, 0) + 1
            victim = max(counts, key=lambda n: counts[n])
            orphans = [k for k in keys if victim in fleet.leaders(k)]
            t0 = time.monotonic()
            if graceful:
                await fleet.terminate(victim)
            else:
                await fleet.kill(victim)

            def done(orphans: list[str] = orphans) -> bool:
                return all(len(fleet.leaders(k)) == 1 for k in orphans)

            await fleet.wait_for(done, 30, "orphans held again")
            last = max(
                min(e.mono for e in fleet.events if e.kind == "started" and e.unit == k and e.mono >= t0)
                for k in orphans
            )
            out.append(last - t0)
            await fleet.spawn(f"{victim.split('-')[0]}-{i + 1}")
    finally:
        await fleet.close()
    return out


def lease_requests(text: str) -> tuple[float, float]:
    """(writes, reads) to Leases counted by apiserver_request_total so far."""
    writes = reads = 0.0
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{") or 'resource="leases"' not in line:
            continue
        verb = re.search(r'verb="([A-Z]+)"', line)
        value = float(line.rsplit(" ", 1)[1])
        if verb and verb.group(1) in WRITE_VERBS:
            writes += value
        else:
            reads += value
    return writes, reads


async def metrics(cp: ControlPlane) -> str:
    """The API server's metrics; retried, as a loaded machine can make one TLS handshake time out."""
    for attempt in range(5):
        try:
            return await asyncio.to_thread(cp.metrics_text)
        except LabError:
            if attempt == 4:
                raise
            await asyncio.sleep(1)
    raise AssertionError("unreachable")


async def write_rate(
    cp: ControlPlane, work: Path, mode: str, count: int, timing: list[str], window: float, nodes: int = 2
) -> dict[str, float]:
    tag = f"{mode}-{count}-{os.getpid()}-{time.monotonic_ns() % 100000}"
    if mode == "lease":
        args = ["--quiet", "--count", str(count), "--template", f"kubevip-{tag}-{{i}}", *timing]
    else:
        args = [
            "--quiet",
            "--mode",
            "scalable",
            "--count",
            str(count),
            "--template",
            f"{tag}/svc-{{i}}",
            *timing,
        ]
    ns = f"kvb-{tag}"
    cp.kubectl_run("create", "namespace", ns)
    fleet = Fleet(cp, work, ns, args)
    try:
        for n in range(nodes):
            await fleet.spawn(f"node-{n}")
        lease_duration = (
            float(timing[timing.index("--lease-duration") + 1]) if timing else Timings().lease_duration
        )
        await asyncio.sleep(
            lease_duration + 5
        )  # warm-up: initial acquisitions and claims are not steady state
        alive = all(el.proc.returncode is None for el in fleet.electors.values())
        try:
            w0, r0 = lease_requests(await metrics(cp))
            t0 = time.monotonic()
            await asyncio.sleep(window)
            w1, r1 = lease_requests(await metrics(cp))
        except LabError as exc:
            # The API server no longer answers its own metrics within 5 s: saturated by this load.
            return {"saturated": True, "error": str(exc)[:200], "nodes": nodes, "electors_alive": alive}
        dt = time.monotonic() - t0
        return {
            "writes_per_node_per_s": (w1 - w0) / dt / nodes,
            "reads_per_node_per_s": (r1 - r0) / dt / nodes,
            "nodes": nodes,
            "window_s": dt,
            "saturated": False,
            "electors_alive": alive,
        }
    finally:
        await fleet.close()
        cp.kubectl_run("delete", "namespace", ns, "--wait=false")


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--window", type=float, default=15.0)
    ap.add_argument("--quick", action="store_true", help="5 runs, 1/100 units, 8 s windows")
    ap.add_argument("--only", choices=("failover", "writes"), help="run one half (the JSON keeps the other)")
    args = ap.parse_args()
    runs = 5 if args.quick else args.runs
    window = 8.0 if args.quick else args.window
    counts = [1, 100] if args.quick else [1, 100, 1000]
    t = Timings()
    result: dict[str, object] = {
        "timings": {
            "lease_duration": t.lease_duration,
            "renew_deadline": t.renew_deadline,
            "retry_period": t.retry_period,
            "skew_margin": t.skew_margin,
        },
        "machine": {"cpus": os.cpu_count()},
    }
    with tempfile.TemporaryDirectory(prefix="kvb-election-") as tmp:
        work = Path(tmp)
        cp = ControlPlane(bin_dir(), work / "cp")
        cp.start()
        try:
            failover: dict[str, dict[str, object]] = {}
            modes = (
                [] if args.only == "writes" else [("lease", lease_failover), ("scalable", scalable_failover)]
            )
            for mode, fn in modes:
                failover[mode] = {}
                for kind in ("crash", "graceful"):
                    values = await fn(cp, work, runs, kind == "graceful")
                    s = summary(values)
                    failover[mode][kind] = {**s, "samples": values}
                    print(f"failover {mode:8} {kind:8} median {s['median']}s p95 {s['p95']}s", flush=True)
            if failover:
                result["failover"] = failover
            writes: list[dict[str, object]] = []
            plans = [
                ("lease", "kube-vip 15/10/2", KUBE_VIP_TIMINGS, counts),
                ("lease", "ours", [], [1, 10, 100] if not args.quick else [1, 10]),
                ("scalable", "ours", [], counts),
            ]
            for mode, label, timing, cs in [] if args.only == "failover" else plans:
                for c in cs:
                    r = await write_rate(cp, work, mode, c, timing, window)
                    writes.append({"mode": mode, "timings": label, "units": c, **r})
                    print(f"writes {mode:8} {label:17} units {c:5}: {cell(r)}", flush=True)
            if writes:
                result["writes"] = writes
        finally:
            cp.stop()
    out = REPO / "bench/results/election.json"
    if args.only and out.exists():
        result = {**json.loads(out.read_text()), **result}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"wrote {out}")
    return 0


def print_table(result: dict[str, object]) -> None:
    print("\n| mode | failover | median (s) | p95 (s) | runs |\n|---|---|---|---|---|")
    fo = result.get("failover", {})
    assert isinstance(fo, dict)
    for mode, kinds in fo.items():
        for kind, s in kinds.items():
            print(f"| {mode} | {kind} | {s['median']:.3f} | {s['p95']:.3f} | {s['runs']} |")
    print(
        "\n| mode | timings | units | Lease writes / node / s | Lease reads / node / s |"
        "\n|---|---|---|---|---|"
    )
    ws = result.get("writes", [])
    assert isinstance(ws, list)
    for w in ws:
        print(f"| {w['mode']} | {w['timings']} | {w['units']} | {cell(w)} |")


def cell(w: dict[str, object]) -> str:
    if w.get("saturated"):
        return "API server saturated | -"
    return f"{w['writes_per_node_per_s']:.2f} | {w['reads_per_node_per_s']:.2f}"


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
