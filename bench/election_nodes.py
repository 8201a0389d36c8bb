"""Lease writes as the cluster grows in nodes: many nodes' worth of electors, cheaply, in one process.

Runs `python -m kubevip.election --nodes N` (N identities sharing one client, no kernel, no agent)
against a private kube-apiserver for each N, in the scalable mode (one liveness Lease per node plus
claims) and the lease mode (every node a candidate of one Lease), and measures the Lease writes and
reads per second from the API server's own `apiserver_request_total`, next to what the model in
docs/performance.md ("Cost in nodes") predicts, and the CPU the electors cost.

Usage: python bench/election_nodes.py [--nodes 3,6,12,50,100] [--units 100] [--window 10]
    [--modes scalable,lease] [--profiles default,goal,economy,kubelet]
Profiles are election timings (lease / renew / retry / liveness period, docs/election.md "Liveness
period"); the lease mode runs only at `default`. JSON: bench/results/election_nodes.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from kubevip.tasks import bounded

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from election import lease_requests, metrics  # noqa: E402  (bench/election.py)

from kubevip.election.timings import Timings  # noqa: E402
from kubevip.lab.controlplane import ControlPlane  # noqa: E402
from kubevip.lab.instance import find_bin_dir as bin_dir  # noqa: E402

RESULTS = REPO / "bench" / "results" / "election_nodes.json"
KUBELET_NODE_LEASE_RENEW_S = 10.0  # the kubelet renews its kube-node-lease Lease every 10 s
PROFILES = {
    "default": Timings(),
    "goal": Timings(1.5, 1.0, 0.25, liveness=0.6),
    "economy": Timings(6.0, 4.0, 0.5, liveness=2.0),
    "kubelet": Timings(15.0, 10.0, 2.0, liveness=7.5),
}


def model(mode: str, nodes: int, units: int, t: Timings) -> float:
    """Steady Lease writes per second the design predicts (no unit changing hands).

    scalable: every node renews its liveness Lease once per liveness period; claims are written only
    when a unit changes hands. lease: only the holder of the one Lease renews it. Per-Service Leases
    (svc_election) would be `units / retry_period`, flat in nodes.
    """
    if mode == "scalable":
        return nodes / t.liveness_period
    return 1 / t.retry_period


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timing_args(t: Timings) -> list[str]:
    out = ["--lease-duration", str(t.lease_duration), "--renew-deadline", str(t.renew_deadline),
           "--retry-period", str(t.retry_period)]
    return out + ([] if t.liveness is None else ["--liveness-period", str(t.liveness)])


def losses(log: Path) -> int:
    """Times an elector withdrew everything (liveness deadline passed or Lease lost): the cost of too
    few renewal attempts on a loaded API server."""
    text = log.read_text(errors="replace")
    return text.count("liveness renew deadline passed") + text.count("liveness lost")


async def measure(
    cp: ControlPlane, work: Path, mode: str, nodes: int, units: int, window: float, t: Timings,
    profile: str = "default",
) -> dict[str, object]:
    ns = f"kvn-{mode[:4]}-{nodes}-{time.monotonic_ns() % 100000}"
    cp.kubectl_run("create", "namespace", ns)
    args = ["--kubeconfig", str(cp.admin_kubeconfig), "--namespace", ns, "--identity", "n",
            "--nodes", str(nodes), "--quiet", "--mode", mode, *timing_args(t)]
    args += ["--count", str(units), "--template", f"{ns}/svc-{{i}}"] if mode == "scalable" else [
        "--lease", "plndr-svcs-lock"]
    log_path = work / f"{ns}.log"
    log = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kubevip.election", *args, stdout=asyncio.subprocess.PIPE, stderr=log,
    )
    try:
        assert proc.stdout is not None
        await bounded(proc.stdout.readline(), 60)  # {"event": "ready"}
        # Warm-up (a measurement period, not a synchronisation): first claims are not steady state.
        await asyncio.sleep(2 * t.lease_duration + 3)
        w0, r0 = lease_requests(await metrics(cp))
        c0, t0, lost0 = cpu_s(proc.pid), time.monotonic(), losses(log_path)
        # Rare renewals need a longer window to be counted at all.
        await asyncio.sleep(max(window, 4 * t.liveness_period))
        w1, r1 = lease_requests(await metrics(cp))
        lost = losses(log_path) - lost0
        dt = time.monotonic() - t0
        cpu = (cpu_s(proc.pid) - c0) / dt
        return {
            "mode": mode, "profile": profile, "nodes": nodes, "units": units, "window_s": round(dt, 2),
            "timings": {"lease_duration": t.lease_duration, "renew_deadline": t.renew_deadline,
                        "retry_period": t.retry_period, "liveness_period": t.liveness_period},
            "lease_writes_per_s": round((w1 - w0) / dt, 2),
            "lease_reads_per_s": round((r1 - r0) / dt, 2),
            "model_writes_per_s": round(model(mode, nodes, units, t), 2),
            "kubelet_node_leases_per_s": round(nodes / KUBELET_NODE_LEASE_RENEW_S, 2),
            "electors_cpu_fraction": round(cpu, 3),
            "liveness_losses_in_window": lost,
            "alive": proc.returncode is None,
        }
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await bounded(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()
        cp.kubectl_run("delete", "namespace", ns, "--wait=false")


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", default="3,6,12,50,100")
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--modes", default="scalable,lease")
    ap.add_argument("--profiles", default="default,goal,economy,kubelet")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    rows: list[dict[str, object]] = []
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="kvb-election-nodes-") as tmp:
        work = Path(tmp)
        cp = ControlPlane(bin_dir(), work / "cp")
        cp.start()
        try:
            for mode in args.modes.split(","):
                for profile in args.profiles.split(",") if mode == "scalable" else ["default"]:
                    t = PROFILES[profile]
                    for n in (int(x) for x in args.nodes.split(",")):
                        row = await measure(cp, work, mode, n, args.units, args.window, t, profile)
                        row["load_average_1m"] = round(os.getloadavg()[0], 1)
                        load.append(os.getloadavg()[0])
                        rows.append(row)
                        print(json.dumps(row), flush=True)
        finally:
            cp.stop()
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_min_max": [round(min(load), 1), round(max(load), 1)],
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
