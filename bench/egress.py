"""Egress SNAT / Service security packet rules at scale (docs/egress.md, docs/performance.md).

For N dual-stack egress Services (two local pods per family each, every VIP held here, Service security
on), measures:
- decide: `core.egress.node_rules` over all Services (the pure work of one agent pass);
- render: the `nft -f` script;
- apply: one `nft -f` transaction replacing the table in a fresh network namespace (first apply, and a
  re-apply after one Service changed); an unchanged ruleset is skipped by the driver (not timed);
- remove: dropping the table.
Then the cost for a pod's packets: UDP datagrams per second from a pod namespace through a forwarding
node namespace to a sink, with no table, and with the N-Service table (its pod's rule last).

JSON goes to bench/results/egress.json; a table is printed. Needs root and nft.
Usage: python bench/egress.py [--services 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from distribution import summarize

from kubevip.core.egress import ClusterNetworks, node_rules
from kubevip.core.parse import endpointslice_from_dict, service_from_dict
from kubevip.core.plan import ServiceDecision, decide
from kubevip.core.views import ServiceView
from kubevip.net.namespace import Netns
from kubevip.net.nftables import PacketRuleTable, render

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("KUBEVIP_BENCH_OUT", REPO / "bench" / "results" / "egress.json"))
NETS = ClusterNetworks(
    pod_cidrs=(ipaddress.ip_network("10.244.0.0/16"), ipaddress.ip_network("fd00:10:244::/56")),
    service_cidrs=(ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("fd00:10:96::/112")),
)


def services(n: int) -> tuple[list[tuple[ServiceView, ServiceDecision]], frozenset[Any]]:
    out: list[tuple[ServiceView, ServiceDecision]] = []
    held: set[Any] = set()
    for i in range(n):
        v4 = ipaddress.ip_address(f"198.19.{i // 250}.{i % 250 + 1}")
        v6 = ipaddress.ip_address(f"fd6b:7669:7fff::{i + 1:x}")
        held |= {v4, v6}
        view = service_from_dict({
            "metadata": {
                "name": f"s{i}", "namespace": "bench", "uid": f"u{i}",
                "annotations": {"kube-vip.io/egress": "true", "kube-vip.io/loadbalancerIPs": f"{v4},{v6}"},
            },
            "spec": {
                "type": "LoadBalancer", "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
                "externalTrafficPolicy": "Cluster", "ports": [{"name": "p", "port": 8080, "protocol": "TCP"}],
            },
        })
        pods4 = [f"10.244.{i // 100}.{2 * (i % 100) + k + 2}" for k in (0, 1)]
        pods6 = [f"fd00:10:244:{i // 100:x}::{2 * (i % 100) + k + 2:x}" for k in (0, 1)]
        slices = [
            endpointslice_from_dict({"metadata": {"name": f"s{i}-4", "namespace": "bench",
                                                  "labels": {"kubernetes.io/service-name": f"s{i}"}},
                                     "addressType": "IPv4",
                                     "endpoints": [{"addresses": [a], "nodeName": "me"} for a in pods4]}),
            endpointslice_from_dict({"metadata": {"name": f"s{i}-6", "namespace": "bench",
                                                  "labels": {"kubernetes.io/service-name": f"s{i}"}},
                                     "addressType": "IPv6",
                                     "endpoints": [{"addresses": [a], "nodeName": "me"} for a in pods6]}),
        ]
        out.append((view, decide(view, slices, None, False)))
    return out, frozenset(held)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def packet_rate(pod: str, target: str, port: int, seconds: float = 2.0) -> float:
    """Datagrams per second a pod sends (blocking sends; the sink namespace drops them at the socket)."""
    script = (
        "import socket,time,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);a=(sys.argv[1],int(sys.argv[2]))\n"
        "end=time.monotonic()+float(sys.argv[3]);n=0\n"
        "while time.monotonic()<end:\n"
        " for _ in range(100): s.sendto(b'x'*64,a)\n"
        " n+=100\n"
        "print(n/float(sys.argv[3]))\n"
    )
    argv = ["ip", "netns", "exec", pod, sys.executable, "-c", script, target, str(port), str(seconds)]
    res = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60)
    return float(res.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    tag = secrets.token_hex(3)
    pod, node, sink = f"beg-{tag}-pod", f"beg-{tag}-node", f"beg-{tag}-sink"
    names = ("decide_s", "render_s", "apply_first_s", "apply_change_s", "remove_s")
    figures: dict[str, list[float]] = {k: [] for k in names}
    rates: dict[str, list[float]] = {"no_table_pps": [], "with_table_pps": []}
    pairs, held = services(args.services)
    try:
        for ns in (pod, node, sink):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        sh("ip", "-n", node, "link", "add", "kp0", "type", "veth", "peer", "name", "eth0", "netns", pod)
        sh("ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", sink)
        sh("ip", "-n", node, "addr", "add", "10.244.9.1/32", "dev", "kp0")
        sh("ip", "-n", node, "addr", "add", "192.0.2.1/24", "dev", "eth0")
        sh("ip", "-n", sink, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        # The last Service's first pod address, so its packets walk the whole chain.
        i = args.services - 1
        last = f"10.244.{i // 100}.{2 * (i % 100) + 2}"
        sh("ip", "-n", pod, "addr", "add", f"{last}/32", "dev", "eth0")
        for ns, dev in ((node, "kp0"), (node, "eth0"), (pod, "eth0"), (sink, "eth0")):
            sh("ip", "-n", ns, "link", "set", dev, "up")
        sh("ip", "-n", node, "route", "add", f"{last}/32", "dev", "kp0")
        sh("ip", "-n", pod, "route", "add", "10.244.9.1/32", "dev", "eth0")
        sh("ip", "-n", pod, "route", "add", "default", "via", "10.244.9.1", "dev", "eth0")
        sink_sock = Netns(sink).socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink_sock.bind(("192.0.2.2", 9999))
        sink_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        table = PacketRuleTable(ns=Netns(node))
        for _ in range(args.runs):
            t0 = time.perf_counter()
            rules = node_rules(pairs, held, "me", NETS, True)
            t1 = time.perf_counter()
            render(rules)
            t2 = time.perf_counter()
            table.remove()
            t3 = time.perf_counter()
            table.apply(rules)
            t4 = time.perf_counter()
            figures["decide_s"].append(t1 - t0)
            figures["render_s"].append(t2 - t1)
            figures["apply_first_s"].append(t4 - t3)
            changed = node_rules(pairs[:-1], held, "me", NETS, True)
            t5 = time.perf_counter()
            table.apply(changed)
            figures["apply_change_s"].append(time.perf_counter() - t5)
            table.apply(rules)
            rates["with_table_pps"].append(packet_rate(pod, "192.0.2.2", 9999))
            t6 = time.perf_counter()
            table.remove()
            figures["remove_s"].append(time.perf_counter() - t6)
            rates["no_table_pps"].append(packet_rate(pod, "192.0.2.2", 9999))
        sink_sock.close()
        n_rules = len(rules.snat)
        n_guards = len(rules.guards)
    finally:
        for ns in (pod, node, sink):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    out: dict[str, Any] = {
        "services": args.services, "snat_rules": n_rules, "guarded_vips": n_guards, "runs": args.runs,
        "nft": subprocess.run(["nft", "--version"], capture_output=True, text=True).stdout.strip(),
        "cpus": os.cpu_count(),
    }
    for k, v in {**figures, **rates}.items():
        out[k] = summarize(v).as_dict(("n", "median", "p95", "min", "max"))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{args.services} dual-stack egress Services ({n_rules} SNAT rules, {n_guards} guarded VIPs), "
          f"{args.runs} runs; median (p95):")
    for k in (*figures, *rates):
        s = out[k]
        print(f"  {k:16} {s['median']:.4g} ({s['p95']:.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
