"""Control-plane VIP failover: holder loss -> first successful API request through the VIP, per family.

Three kube-apiservers in lab node namespaces (one etcd), a `cp_enable` agent next to each (default
timings: lease 1.5 s, renew deadline 1.0 s, retry 0.25 s; /livez every 0.5 s, 3 misses), and a prober
in the client namespace that starts a `GET /livez` through the IPv4 VIP and through the IPv6 VIP every
40 ms (4 staggered workers per family), each on a NEW TCP + TLS connection (as a fresh kubectl would),
300 ms timeout, TLS verified.
Scenarios, each ending when BOTH families answered again:

* `node-crash` -- the holder's agent is SIGKILLed and its node drops off the network (link down), so
  nothing on it can answer: the time a peer needs to notice, take the Lease and announce.
* `apiserver-kill` -- the holder's kube-apiserver is SIGKILLed; its agent fences (renewals fail) and a
  peer with a healthy API server takes over.
* `agent-term` -- the holder's agent gets SIGTERM: withdraw, release, a peer takes over.

Two numbers per family and run: `back` = from the loss to the completion of the first successful
request that STARTED after the first failed one (0 when no probe failed at all); `outage` = from the
start of that first failed request to the same success, i.e. what a client saw (after SIGTERM the old
holder keeps answering while it withdraws, so there `back` > `outage`). JSON goes to
bench/results/controlplane.json; a table is printed. Run as root:
`$(hack/venv.sh | tail -1)/bin/python bench/controlplane.py [--runs 10] [--smoke]`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from distribution import summarize  # noqa: E402

from kubevip.lab.controlplane import ControlPlane  # noqa: E402
from kubevip.lab.cpvip import ControlPlaneVipLab  # noqa: E402
from kubevip.lab.instance import find_bin_dir as bin_dir  # noqa: E402
from kubevip.lab.network import LabNetwork  # noqa: E402
from kubevip.lab.stack import connect_network  # noqa: E402

SCENARIOS = ("node-crash", "apiserver-kill", "agent-term")
PROBE_EVERY = 0.04
PROBE_TIMEOUT = 0.3
# Workers per family, staggered: requests keep starting while one hangs until its timeout (a single
# sequential prober would add up to PROBE_TIMEOUT of granularity). Few, so that the probes' TLS
# handshakes do not load the API servers under test.
PROBE_WORKERS = 4


# ---- the prober (runs inside the client namespace: `bench/controlplane.py --probe ...`) ----------------

def probe_main(url4: str, url6: str, token: str, ca: str) -> int:
    """Print `<family> <ok> <t_start> <t_end>` per request (CLOCK_MONOTONIC, shared by all namespaces)."""
    ctx = ssl.create_default_context(cafile=ca)
    lock = threading.Lock()

    period = PROBE_EVERY * PROBE_WORKERS
    t0 = time.monotonic()

    def loop(family: int, url: str, slot: int) -> None:
        next_at = t0 + slot * PROBE_EVERY
        while True:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += period
            start = time.monotonic()
            req = urllib.request.Request(url + "/livez", headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=PROBE_TIMEOUT, context=ctx) as resp:
                    ok = resp.read().strip() == b"ok"
            except OSError:
                ok = False
            end = time.monotonic()
            with lock:
                print(f"{family} {int(ok)} {start:.6f} {end:.6f}", flush=True)

    for fam, url in ((4, url4), (6, url6)):
        for slot in range(PROBE_WORKERS):
            threading.Thread(target=loop, args=(fam, url, slot), daemon=True).start()
    threading.Event().wait()
    return 0


class Prober:
    """The prober process plus a reader thread that keeps every success."""

    def __init__(self, lab: ControlPlaneVipLab) -> None:
        url4 = f"https://{lab.vip4}:6443"
        url6 = f"https://[{lab.vip6}]:6443"
        self.proc = lab.net.popen(
            lab.net.client.netns,
            [sys.executable, str(Path(__file__).resolve()), "--probe", url4, url6, lab.cp.admin_token,
             str(lab.ca)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.results: list[tuple[int, bool, float, float]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            fam, ok, start, end = line.split()
            with self._lock:
                self.results.append((int(fam), ok == "1", float(start), float(end)))

    def first_after(self, family: int, t: float) -> float | None:
        """End of the first successful request of `family` that started at or after `t`."""
        with self._lock:
            ends = [e for f, ok, s, e in self.results if f == family and ok and s >= t]
        return min(ends) if ends else None

    def first_failure_after(self, family: int, t: float, until: float) -> float | None:
        with self._lock:
            starts = [s for f, ok, s, _ in self.results if f == family and not ok and t <= s <= until]
        return min(starts) if starts else None

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# ---- the bench -----------------------------------------------------------------------------------------

def wait(cond: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise TimeoutError(what)


def sole_holder(lab: ControlPlaneVipLab, exclude: frozenset[str] = frozenset()) -> str | None:
    h = lab.holders()
    both = (h[4] & h[6]) - exclude
    return next(iter(both)) if len(both) == 1 and not ((h[4] | h[6]) - exclude - both) else None


def campaigning(lab: ControlPlaneVipLab, name: str) -> bool:
    """The agent's latest process got as far as campaigning (a candidate a hand-over can go to).

    Its log part starts at its "elections and health checks through" line; a part with "stopping" belongs
    to the process that was just stopped while its successor still boots (seconds on a loaded machine):
    counting that one as a candidate measured SIGTERM hand-overs with no peer ready.
    """
    try:
        text = lab.log_path(f"agent-{name}").read_text(errors="replace")
    except OSError:
        return False
    part = text[text.rfind("elections and health checks through"):]
    # The latest campaign started after the latest wait for the local API server (apiserver-kill runs).
    return part.rfind(": campaigning for") > part.rfind("waiting for the local API server") \
        and "stopping: withdraw" not in part


def steady(lab: ControlPlaneVipLab, prober: Prober) -> str:
    for n in lab.nodes:
        lab.net.run(n.netns, ["ip", "link", "set", n.interface, "up"])
        lab.start_apiserver(n.name)
        lab.start_agent(n.name)
    # A restarted agent needs seconds to boot on a loaded machine; measure hand-overs between agents
    # that are all candidates, not the boot time of the only one left.
    wait(lambda: all(campaigning(lab, n.name) for n in lab.nodes), 120, "every agent campaigning")
    holder: str = wait(lambda: sole_holder(lab), 120, "one holder of both VIPs")
    now = time.monotonic()
    wait(lambda: prober.first_after(4, now) and prober.first_after(6, now), 60, "probes answered")
    return holder


def one_run(lab: ControlPlaneVipLab, prober: Prober, scenario: str) -> dict[str, float]:
    holder = steady(lab, prober)
    node = lab.net.node(holder)
    t_loss = time.monotonic()
    if scenario == "node-crash":
        # The node drops off the network (its API server loses etcd too), then its agent dies.
        lab.net.run(node.netns, ["ip", "link", "set", node.interface, "down"])
        lab.agents[holder].signal(signal.SIGKILL)
    elif scenario == "apiserver-kill":
        lab.kill_apiserver(holder)
    else:
        lab.agents[holder].signal(signal.SIGTERM)
    new = wait(lambda: sole_holder(lab, frozenset({holder})), 60, f"a new holder after {scenario}")
    t_new = time.monotonic()
    out: dict[str, float] = {"new_holder_differs": float(new != holder)}
    # Every request that started before t_new has ended (timeout) and been read once a request that
    # started later than that has been read (the prober prints in completion order).
    settled = t_new + PROBE_TIMEOUT + 0.2
    for fam in (4, 6):
        wait(lambda f=fam: prober.first_after(f, settled), 60, f"IPv{fam} answered after {scenario}")
        failed = prober.first_failure_after(fam, t_loss, t_new)
        end = prober.first_after(fam, failed) if failed is not None else None
        out[f"ipv{fam}"] = 0.0 if end is None or failed is None else end - t_loss
        out[f"ipv{fam}_outage"] = 0.0 if end is None or failed is None else end - failed
        out[f"ipv{fam}_seen"] = float(failed is not None)
    # Repair: the agent restarts as kubelet would and removes what its predecessor left; only then does
    # the node come back on the network (no two nodes answering for the VIP in the next run).
    lab.agents[holder].kill()
    lab.start_agent(holder)
    wait(lambda: holder not in (lambda h: h[4] | h[6])(lab.holders()), 60, "stale VIPs removed")
    lab.net.run(node.netns, ["ip", "link", "set", node.interface, "up"])
    return out


def summary(values: list[float]) -> dict[str, float | int | None]:
    """This benchmark's JSON for one figure."""
    return summarize(values, p95="nearest-index").as_dict(("n", "min", "median", "p95", "max"))


def table(results: dict[str, Any]) -> str:
    rows = ["| scenario | runs (with an outage v4/v6) | IPv4 back (s) | IPv6 back (s) | IPv4 outage (s) "
            "| IPv6 outage (s) |",
            "|---|---|---|---|---|---|"]
    for sc, r in results["scenarios"].items():
        cells = []
        for key in ("ipv4", "ipv6", "ipv4_outage", "ipv6_outage"):
            s = r[key]
            cells.append(f"{s['median']:.2f} / {s['p95']:.2f} / {s['max']:.2f}")
        runs = f"{len(r['samples'])} ({r['ipv4']['n']}/{r['ipv6']['n']})"
        rows.append(f"| {sc} | {runs} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10, help="runs per scenario (apiserver-kill: half)")
    ap.add_argument("--smoke", action="store_true", help="2 runs per scenario, no JSON")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs) at the end")
    ap.add_argument("--probe", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        return probe_main(*args.probe)
    runs = 2 if args.smoke else args.runs
    work = Path(tempfile.mkdtemp(prefix="kvb-cp-"))
    (work / "cp").mkdir()
    cp = ControlPlane(bin_dir(), work / "cp", bind_address=ipaddress.ip_address("0.0.0.0"))
    cp.start()
    net = LabNetwork(f"b{secrets.token_hex(3)}", nodes=3, state_dir=work / "lab")
    results: dict[str, Any] = {"scenarios": {}, "settings": {
        "lease_duration": 1.5, "renew_deadline": 1.0, "retry_period": 0.25, "health_period": 0.5,
        "health_threshold": 3, "probe_every": PROBE_EVERY, "probe_timeout": PROBE_TIMEOUT,
        "probe_workers": PROBE_WORKERS}}
    try:
        net.up()
        connect_network(cp, net)
        for n in net.nodes:
            # Link down would otherwise delete the node's IPv6 addresses (and its on-link route).
            net.run(n.netns, ["sysctl", "-q", "-w", f"net.ipv6.conf.{n.interface}.keep_addr_on_down=1"])
        lab = ControlPlaneVipLab(cp, net, 3)
        lab.start()
        prober = Prober(lab)
        try:
            for sc in args.scenarios.split(","):
                n = max(2, runs // 2) if sc == "apiserver-kill" else runs
                samples = []
                for i in range(n):
                    r = one_run(lab, prober, sc)
                    print(f"{sc} run {i + 1}/{n}: back IPv4 {r['ipv4']:.2f}s IPv6 {r['ipv6']:.2f}s, outage "
                          f"{r['ipv4_outage']:.2f}s / {r['ipv6_outage']:.2f}s", flush=True)
                    samples.append(r)
                results["scenarios"][sc] = {
                    # A run where a family saw no failed probe at all is kept in `samples` but left out of
                    # that family's statistics (it would only make them look better).
                    **{k: summary([s[k] for s in samples if s[f"{k[:4]}_seen"]] or [0.0])
                       for k in ("ipv4", "ipv6", "ipv4_outage", "ipv6_outage")},
                    "no_failed_probe": {f: sum(1 for s in samples if not s[f"{f}_seen"])
                                        for f in ("ipv4", "ipv6")},
                    "samples": samples,
                }
        finally:
            prober.close()
            lab.stop()
    finally:
        net.down()
        cp.stop()
    results["load_average"] = os.getloadavg()
    if args.keep:
        print(f"logs in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    print(table(results))
    if not args.smoke:
        out = REPO / "bench/results/controlplane.json"
        out.write_text(json.dumps(results, indent=1))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
