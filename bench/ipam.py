"""IPAM benchmark: allocations per second of the pure allocator, and time to allocate N Services from scratch.

Pure figures need nothing. With --api, a private control plane is started (hack/controlplane/build.sh),
N Services are created while the controller is stopped, then `kubevip ipam`'s controller is started and
timed until every Service carries its addresses (table rebuild + one PATCH per Service).
JSON goes to bench/results/ipam.json; a table is printed; --doc refreshes the IPAM section of
docs/performance.md.

Usage: python bench/ipam.py [--services 10000] [--api] [--api-services 1000] [--doc]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from kubevip.core.views import IPFamily  # noqa: E402
from kubevip.ipam.allocator import Allocator, Request  # noqa: E402
from kubevip.ipam.pools import parse_configmap  # noqa: E402
from kubevip.lab.instance import find_bin_dir as bin_dir  # noqa: E402

V4, V6 = IPFamily.IPV4, IPFamily.IPV6
POOLS = {"cidr-global": "10.64.0.0/14,fd00:64::/108"}
DOC = REPO / "docs/performance.md"
BEGIN, END = "<!-- ipam:begin -->", "<!-- ipam:end -->"
SECTION = """## IPAM (`bench/ipam.py`)

Pure figures: the allocator alone (`kubevip.ipam.allocator`), pools `cidr-global: 10.64.0.0/14,fd00:64::/108`,
best of 3 runs. "Release + re-allocate" frees a random Service and allocates it again, 10,000 times, in a
full table (freed addresses are kept in a heap behind a scan watermark, so no walk over used ones).
Sharing scans held addresses for disjoint ports and is linear in the number of held addresses.
API figures (`--api`): a private kube-apiserver + etcd on this machine; the Services exist before the
controller starts, then the time from controller start (list, table rebuild) to the last PATCH is
measured: one merge patch per Service; decisions are made one at a time, add-only PATCHes run 16 in
flight. The API figure is bound by the API server's CPU (2 cores, shared with other work while measuring;
creating the Services runs at a similar rate). 10,000 Services at that rate take about 3 minutes
(`--api-services 10000`; creating them alone takes about 8 minutes here, so the default is 1,000).
Decisions alone (the pure rows) are about 100 times faster.

"""


def timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def pure(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cfg = parse_configmap(POOLS)

    def scratch(families: tuple[IPFamily, ...]) -> Allocator:
        alloc = Allocator(cfg)
        for i in range(n):
            out = alloc.ensure(Request("ns", f"s{i}", families))
            assert out.complete
        return alloc

    for label, fams in (("IPv4 SingleStack", (V4,)), ("dual-stack", (V4, V6))):
        best = min(timed(lambda fams=fams: scratch(fams)) for _ in range(3))
        rows.append({"figure": f"allocate {n} Services from scratch, {label} (pure)", "seconds": best,
                     "services_per_s": n / best, "addresses_per_s": n * len(fams) / best})

    alloc = scratch((V4, V6))
    rnd = random.Random(1)
    churn = n

    def do_churn() -> None:
        for _ in range(churn):
            i = rnd.randrange(n)
            alloc.release(("ns", f"s{i}"))
            alloc.ensure(Request("ns", f"s{i}", (V4, V6)))

    t = timed(do_churn)
    rows.append({"figure": f"release + re-allocate in a table of {n} dual-stack Services (pure)",
                 "seconds": t, "services_per_s": churn / t, "addresses_per_s": 2 * churn / t})

    held = {("ns", f"s{i}"): alloc.holding(("ns", f"s{i}")) for i in range(n)}

    def rebuild() -> None:
        fresh = Allocator(cfg)
        for key, addrs in held.items():
            fresh.hold(key, addrs, owned=True)

    t = min(timed(rebuild) for _ in range(3))
    rows.append({"figure": f"rebuild the table from {n} dual-stack Services (restart, pure)", "seconds": t,
                 "services_per_s": n / t, "addresses_per_s": 2 * n / t})

    shared_n = min(n, 2000)
    share_cfg = parse_configmap({**POOLS, "allow-share-global": "true"})

    def shared() -> None:
        a = Allocator(share_cfg)
        for i in range(shared_n):
            a.ensure(Request("ns", f"s{i}", (V4,), ports=frozenset({("TCP", 1000 + i % 50)})))

    t = min(timed(shared) for _ in range(3))
    rows.append({"figure": f"allocate {shared_n} Services with allow-share (50 ports) (pure)", "seconds": t,
                 "services_per_s": shared_n / t, "addresses_per_s": shared_n / t})
    return rows


async def api_run(n: int) -> list[dict[str, Any]]:
    from kubernetes_asyncio import client

    from kubevip.ipam.controller import IpamController, IpamSettings
    from kubevip.ipam.service import ANNOTATION_IPS
    from kubevip.kube.client import connect
    from kubevip.lab.client import api_client
    from kubevip.lab.controlplane import ControlPlane

    with tempfile.TemporaryDirectory(prefix="kvb-ipam-") as tmp:
        cp = ControlPlane(bin_dir(), Path(tmp))
        cp.start()
        try:
            api = await api_client(cp.admin_kubeconfig)
            try:
                core = client.CoreV1Api(api)
                ns = "bench-ipam"
                await core.create_namespace({"metadata": {"name": ns}})
                await core.create_namespaced_config_map(
                    ns, {"metadata": {"name": "kubevip", "namespace": ns}, "data": POOLS})
                sem = asyncio.Semaphore(32)

                async def create(i: int) -> None:
                    body = {"metadata": {"name": f"s{i}"}, "spec": {
                        "type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                        "ipFamilies": ["IPv4", "IPv6"],
                        "allocateLoadBalancerNodePorts": False, "ports": [{"port": 80, "protocol": "TCP"}]}}
                    async with sem:
                        await core.create_namespaced_service(ns, body)

                t0 = time.perf_counter()
                await asyncio.gather(*(create(i) for i in range(n)))
                created = time.perf_counter() - t0
                async with await connect(cp.admin_kubeconfig) as rest:  # what the controller runs with
                    ctl = IpamController(rest, IpamSettings(configmap="kubevip", namespace=ns))
                    t0 = time.perf_counter()
                    await ctl.start()
                    await ctl.wait_idle()
                    took = time.perf_counter() - t0
                    await ctl.close()
                res = await core.list_namespaced_service(ns)
                done = sum(1 for s in res.items
                           if len(((s.metadata.annotations or {}).get(ANNOTATION_IPS) or "").split(",")) == 2)
                assert done == n, f"only {done}/{n} Services allocated"
            finally:
                await api.close()
        finally:
            cp.stop()
    return [
        {"figure": f"create {n} dual-stack Services (API server, 32 in flight; for scale)",
         "seconds": created, "services_per_s": n / created, "addresses_per_s": None},
        {"figure": f"allocate {n} existing dual-stack Services from scratch (controller start to done, API)",
         "seconds": took, "services_per_s": n / took, "addresses_per_s": 2 * n / took},
    ]


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| figure | seconds | Services/s | addresses/s |", "|---|---:|---:|---:|"]
    for r in rows:
        aps = f"{r['addresses_per_s']:,.0f}" if r["addresses_per_s"] else "-"
        lines.append(f"| {r['figure']} | {r['seconds']:.3f} | {r['services_per_s']:,.0f} | {aps} |")
    return "\n".join(lines)


def write_doc(result: dict[str, Any]) -> None:
    body = (f"{BEGIN}\nMeasured {result['date']} on {result['host']} ({result['cpus']} CPUs, Python "
            f"{result['python']}), `python bench/ipam.py{result['args']}`:\n\n{table(result['rows'])}\n{END}")
    text = DOC.read_text() if DOC.exists() else "# Performance\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + body + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + SECTION + body + "\n"
    DOC.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000, help="Services, pure figures (default 10000)")
    ap.add_argument("--api", action="store_true", help="also measure against a real API server")
    ap.add_argument("--api-services", type=int, default=1000, help="Services, API figure (default 1000)")
    ap.add_argument("--doc", action="store_true", help="refresh the IPAM section of docs/performance.md")
    args = ap.parse_args()
    rows = pure(args.services)
    if args.api:
        rows += asyncio.run(api_run(args.api_services))
    argv = " ".join(sys.argv[1:])
    result = {
        "date": datetime.date.today().isoformat(), "host": platform.node(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "args": f" {argv}" if argv else "", "rows": rows,
    }
    out = REPO / "bench/results/ipam.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(f"\nwrote {out}")
    if args.doc:
        write_doc(result)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
