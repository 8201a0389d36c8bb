"""DHCP VIP lease timing with a real dnsmasq (docs/dhcp.md), outside CI (the expiry takes dnsmasq's minimum
lease of 2 minutes).

Two namespaces on one veth: dnsmasq (T1 = 3 s, T2 = 6 s, lease 120 s) and a "node" running kubevip's
DHCP driver (agent/dhcp.py) for one Service want, as the agent does, on a macvlan with the Service's MAC.
It measures: the time to the first lease, the renewal interval (against T1), and, with the server stopped,
when the leased address leaves `World.leased` (the VIP's withdrawal) against the lease's expiry, and that
a `dhcp-lease-expired` Warning is raised. JSON goes to bench/results/dhcp.json. Needs root and dnsmasq.

Usage: python bench/dhcp.py [--renewals 3]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

RESULTS = REPO / "bench" / "results" / "dhcp.json"
SERVER = "192.0.2.1"


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True, timeout=30)


async def inner(args: argparse.Namespace) -> dict[str, Any]:
    """Runs inside the node namespace: the driver, one want, the measurements."""
    from kubevip.agent.dhcp import DhcpDriver
    from kubevip.core import dhcp as core
    from kubevip.core.claims import DhcpWant
    from kubevip.core.parse import service_from_dict
    from kubevip.core.views import IPFamily
    from kubevip.core.world import ServiceRecord, World
    from kubevip.net.namespace import OWN
    from kubevip.tasks import TaskGroupGuard

    svc = service_from_dict({
        "metadata": {"name": "bench", "namespace": "default", "annotations": {}},
        "spec": {"type": "LoadBalancer", "loadBalancerIP": "0.0.0.0", "ipFamilies": ["IPv4"]},
    })
    world = World()
    world.services[svc.key] = ServiceRecord(svc, "t0")
    req, _ = core.request_of(svc, IPFamily.IPV4)
    want = DhcpWant(req, "dhcp:bench", None, "eth0")
    changes: list[tuple[float, str | None]] = []

    def touched(keys: set[str]) -> None:
        # What the reconciler does with a lease: the address on the macvlan (the server's unicast ACKs to
        # a renewal need it to resolve the client), and off again when the lease goes.
        addr = world.leased.get(svc.key, {}).get(IPFamily.IPV4)
        changes.append((time.monotonic(), str(addr) if addr else None))
        if addr:
            subprocess.run(["ip", "addr", "replace", f"{addr}/32", "dev", req.interface], capture_output=True)
        else:
            subprocess.run(["ip", "addr", "flush", "dev", req.interface], capture_output=True)
        asyncio.get_running_loop().create_task(driver.after_pass([req.interface]))  # the ARP guard

    guard = TaskGroupGuard("bench")
    driver = DhcpDriver("bench-node", OWN, world, touched, None, guard)
    t0 = time.monotonic()
    await driver.sync([want], lambda u: True, {IPFamily.IPV4: "eth0"})

    async def until(cond: Any, within: float) -> float:
        end = time.monotonic() + within
        while time.monotonic() < end:
            if cond():
                return time.monotonic()
            await asyncio.sleep(0.05)
        raise TimeoutError("condition not met")

    bound_at = await until(lambda: world.leased.get(svc.key), 30)
    renew_times: list[float] = []
    for _ in range(args.renewals):
        n = driver.renewals
        renew_times.append(await until(lambda n=n: driver.renewals > n, 30))
    intervals = [b - a for a, b in zip([bound_at, *renew_times], renew_times, strict=False)]
    run = next(iter(driver._runs.values()))  # a benchmark reads the driver's state
    assert run.times is not None
    expires = run.times.expires
    print("stopping the server", flush=True)
    await asyncio.to_thread(Path(args.stop_flag).write_text, "stop")
    gone = await until(lambda: not world.leased.get(svc.key), 200)
    warned = any(c.reason == "dhcp-lease-expired" for cs in driver.warnings().values() for c in cs)
    await driver.close()
    await guard.close()
    return {
        "first_lease_s": round(bound_at - t0, 3),
        "t1_s": 3, "lease_s": 120,
        "renewal_intervals_s": [round(x, 3) for x in intervals],
        "withdrawn_after_expiry_s": round(gone - expires, 3),
        "warning": warned,
    }


def outer(args: argparse.Namespace) -> None:
    if shutil.which("dnsmasq") is None:
        sys.exit("dnsmasq not found: hack/prereqs.sh")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # run the clean-up below
    tag = secrets.token_hex(3)
    srv, node = f"kvdb-{tag}-s", f"kvdb-{tag}-n"
    work = Path(tempfile.mkdtemp(prefix="kubevip-dhcp-bench-"))
    flag = work / "stop"
    dnsmasq: subprocess.Popen[bytes] | None = None
    try:
        sh("ip", "netns", "add", srv)
        sh("ip", "netns", "add", node)
        sh("ip", "link", "add", f"kvdb{tag}", "netns", srv, "type", "veth", "peer", "name", "eth0",
           "netns", node)
        sh("ip", "-n", srv, "link", "set", f"kvdb{tag}", "name", "eth0")
        sh("ip", "-n", srv, "addr", "add", f"{SERVER}/24", "dev", "eth0")
        sh("ip", "-n", node, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        for ns in (srv, node):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        dnsmasq = subprocess.Popen([
            "ip", "netns", "exec", srv, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=0",
            "--interface=eth0", "--bind-interfaces", "--no-ping", "--dhcp-authoritative",
            "--dhcp-range=192.0.2.50,192.0.2.59,255.255.255.0,2m", "--dhcp-option=option:T1,3",
            "--dhcp-option=option:T2,6", f"--dhcp-leasefile={work / 'leases'}", "--pid-file=",
            "--user=root", "--group=root",
        ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child = subprocess.Popen(
            ["ip", "netns", "exec", node, sys.executable, __file__, "--inner",
             "--renewals", str(args.renewals), "--stop-flag", str(flag), "--out", str(work / "out.json")],
        )
        while child.poll() is None:
            if flag.exists() and dnsmasq.poll() is None:
                dnsmasq.terminate()
                dnsmasq.wait(10)
            time.sleep(0.1)
        if child.returncode != 0:
            sys.exit(f"bench failed ({child.returncode})")
        result = json.loads((work / "out.json").read_text())
    finally:
        if dnsmasq is not None and dnsmasq.poll() is None:
            dnsmasq.terminate()
            dnsmasq.wait(10)
        for ns in (srv, node):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    doc = {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "what": "DHCPv4 VIP lease timing, dnsmasq 2.90, T1 3 s, T2 6 s, lease 120 s",
        **result,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


def main() -> None:
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--renewals", type=int, default=3)
    p.add_argument("--keep", action="store_true", help="keep the work directory (dnsmasq's lease file)")
    p.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--stop-flag", default="", help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inner:
        result = asyncio.run(inner(args))
        Path(args.out).write_text(json.dumps(result))
        return
    outer(args)


if __name__ == "__main__":
    main()
