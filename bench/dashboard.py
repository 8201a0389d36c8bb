"""Render docs/dashboards/kubevip.json's main panels with matplotlib from a running lab's /metrics.

Not a Grafana screenshot: a stand-in drawn from the same metrics the dashboard queries, scraped from the
lab's agents (`:2112` in each node namespace) and its `kubevip ipam` while a scenario runs: Services
without VIPs get addresses from the IPAM pool until it is exhausted, the agent holding most VIPs stops
(failover) and comes back, then most Services go.

    ./hack/kubevip lab up --id dash
    python -m bench.dashboard --id dash          # writes docs/dashboards/kubevip-lab.png + results JSON
    ./hack/kubevip lab down --id dash
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from kubevip.lab.instance import LabInstance

ROOT = Path(__file__).resolve().parents[1]
WANTED = (
    "kubevip_ipam_pool_used", "kubevip_ipam_pool_free", "kubevip_ipam_pool_size",
    "kubevip_ipam_allocation_failures_total", "kubevip_announced_vips", "kubevip_service_vips",
)
Sample = tuple[float, str, str, dict[str, str], float]  # time, source, name, labels, value


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return []
    return [
        (s.name, dict(s.labels), float(s.value))
        for fam in text_string_to_metric_families(text) for s in fam.samples if s.name in WANTED
    ]


class Scraper(threading.Thread):
    def __init__(self, targets: dict[str, str], period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.targets, self.period = targets, period
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self.done = threading.Event()
        self.marks: list[tuple[float, str]] = []
        self.seen: dict[str, list[tuple[str, dict[str, str]]]] = {}

    def mark(self, what: str) -> None:
        self.marks.append((time.monotonic() - self.t0, what))

    def run(self) -> None:
        while not self.done.is_set():
            t = time.monotonic() - self.t0
            for source, url in self.targets.items():
                got = scrape(url)
                if got:
                    self.seen[source] = [(n, lab) for n, lab, _ in got]
                # A source that does not answer (its agent stopped) draws a gap, not its last value.
                self.samples += [(t, source, n, lab, v) for n, lab, v in got] or [
                    (t, source, n, lab, math.nan) for n, lab in self.seen.get(source, [])
                ]
            self.done.wait(self.period)


def kubectl(doc: dict[str, Any], *args: str, stdin: str | None = None) -> str:
    res = subprocess.run([doc["kubectl"], "--kubeconfig", doc["kubeconfig"], *args], input=stdin,
                         capture_output=True, text=True, check=True)
    return res.stdout


def service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack",
                     "ipFamilies": ["IPv4", "IPv6"], "allocateLoadBalancerNodePorts": False,
                     "ports": [{"port": 8080, "protocol": "TCP"}]}}


def latest(s: Scraper, name: str, **labels: str) -> float:
    vals = [v for _, _, n, lab, v in s.samples
            if n == name and all(lab.get(k) == x for k, x in labels.items())]
    return vals[-1] if vals else 0.0


def wait(s: Scraper, what: str, ok: Any, within: float = 90.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if ok():
            return
        time.sleep(0.5)
    raise SystemExit(f"bench/dashboard: {what} not reached within {within}s")


def scenario(lab: LabInstance, doc: dict[str, Any], s: Scraper, n_first: int, n_more: int) -> None:
    s.mark("start")
    time.sleep(5)
    items = [service(f"dash-{i}") for i in range(n_first)]
    s.mark(f"{n_first} dual-stack Services")
    kubectl(doc, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    wait(s, "first allocations", lambda: latest(s, "kubevip_ipam_pool_used", family="IPv4") >= n_first)
    time.sleep(8)
    items = [service(f"dash-{i}") for i in range(n_first, n_first + n_more)]
    before = latest(s, "kubevip_ipam_allocation_failures_total")
    s.mark(f"+{n_more}: pool exhausted")
    kubectl(doc, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    wait(s, "exhaustion counted", lambda: latest(s, "kubevip_ipam_allocation_failures_total") > before)
    time.sleep(8)
    def held(node: str) -> float:
        last: dict[str, float] = {}
        for _, src, name, lab, v in s.samples:
            if src == node and name == "kubevip_announced_vips":
                last[lab["family"]] = v
        return sum(last.values())

    busiest = max(doc["nodes"], key=lambda n: held(n["name"]))
    pid = busiest["agent"]["pid"]
    subprocess.run(["kill", "-TERM", str(pid)], check=True)
    s.mark(f"agent on {busiest['name']} stopped")
    time.sleep(12)
    lab.up(len(doc["nodes"]))  # starts the missing agent again
    s.mark(f"agent on {busiest['name']} back")
    time.sleep(10)
    s.mark("15 Services deleted")
    kubectl(doc, "delete", "service", *[f"dash-{i}" for i in range(n_first + n_more - 15, n_first + n_more)])
    time.sleep(12)


def plot(s: Scraper, out: Path, lab_id: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))

    def series(name: str, key: Any) -> dict[str, tuple[list[float], list[float]]]:
        out_: dict[str, tuple[list[float], list[float]]] = {}
        for t, src, n, lab, v in s.samples:
            if n == name:
                xs, ys = out_.setdefault(key(src, lab), ([], []))
                xs.append(t)
                ys.append(v)
        return out_

    def panel(ax: Any, title: str, data: dict[str, tuple[list[float], list[float]]], unit: str = "") -> None:
        for label, (xs, ys) in sorted(data.items()):
            ax.plot(xs, ys, label=label, drawstyle="steps-post")
        for t, _ in s.marks[1:]:
            ax.axvline(t, color="grey", lw=0.6, ls=":")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds")
        if unit:
            ax.set_ylabel(unit)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)

    used = series("kubevip_ipam_pool_used", lambda src, lab: f"{lab['pool']} {lab['family']}")
    size = series("kubevip_ipam_pool_size", lambda src, lab: f"{lab['pool']} {lab['family']}")
    ratio = {k: (xs, [u / max(1.0, sz) for u, sz in zip(ys, size[k][1], strict=False)])
             for k, (xs, ys) in used.items() if k in size}
    panel(axes[0][0], "Pool usage (kubevip_ipam_pool_used / size)", ratio, "share")
    panel(axes[0][1], "Free addresses (kubevip_ipam_pool_free)",
          series("kubevip_ipam_pool_free", lambda src, lab: f"{lab['pool']} {lab['family']}"))
    panel(axes[0][2], "Allocation failures (kubevip_ipam_allocation_failures_total)",
          series("kubevip_ipam_allocation_failures_total",
                 lambda src, lab: f"{lab['reason']} {lab['family']}"))
    panel(axes[1][0], "VIPs held per node and family (kubevip_announced_vips)",
          series("kubevip_announced_vips", lambda src, lab: f"{src} {lab['family']}"))
    panel(axes[1][1], "Service VIPs wanted, per family (kubevip_service_vips)",
          series("kubevip_service_vips", lambda src, lab: f"{lab['family']} ({src})"))
    ax = axes[1][2]
    ax.axis("off")
    ax.text(0, 1, "Scenario (dotted lines):\n" + "\n".join(f"  {t:5.0f} s  {w}" for t, w in s.marks),
            va="top", fontsize=9, family="monospace")
    fig.suptitle(f"kubevip dashboard panels, rendered with matplotlib from lab '{lab_id}' /metrics "
                 "(a stand-in for docs/dashboards/kubevip.json, not a Grafana screenshot)", fontsize=11)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--id", required=True, help="a running lab (kubevip lab up --id ID)")
    p.add_argument("--out", default=str(ROOT / "docs" / "dashboards" / "kubevip-lab.png"))
    p.add_argument("--results", default=str(ROOT / "bench" / "results" / "dashboard-lab.json"))
    p.add_argument("--services", type=int, default=20)
    p.add_argument("--more", type=int, default=10)
    args = p.parse_args()
    lab = LabInstance(args.id)
    doc = lab.status()
    targets = {n["name"]: f"http://{n['ipv4']}:2112/metrics" for n in doc["nodes"]}
    targets["ipam"] = doc["ipam_metrics"]
    s = Scraper(targets)
    s.start()
    try:
        scenario(lab, doc, s, args.services, args.more)
    finally:
        s.done.set()
        s.join()
        kubectl(doc, "delete", "service", "--ignore-not-found",
                *[f"dash-{i}" for i in range(args.services + args.more)])
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps({"lab": args.id, "marks": s.marks, "samples": s.samples}) + "\n")
    plot(s, Path(args.out), args.id)
    print(f"wrote {args.out} and {args.results} ({len(s.samples)} samples)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
