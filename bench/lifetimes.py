"""Cost of one kernel-lifetime extension round: N VIPs (half IPv4, half IPv6) on one interface of a
scratch network namespace get their lifetimes renewed in one batch of precomputed requests
(AddressManager.extend: RTM_NEWADDR + NLM_F_REPLACE + IFA_CACHEINFO), as the agent does after every
accepted Lease renewal. Reports wall time and CPU time per round (p50 / p95 / max) and the same for
the first round (which builds the requests). JSON goes to bench/results/lifetimes.json. Needs root.

`--family ipv4` or `ipv6` puts all N VIPs in one family: an IPv6 round costs O(N^2) in the kernel (each
IPv6 address change walks every IPv6 address of the namespace), IPv4 stays linear (docs/election.md).

Usage: python bench/lifetimes.py [--vips 2000] [--rounds 50] [--family both|ipv4|ipv6] [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from kubevip.net.addresses import AddressManager, VipAddress  # noqa: E402
from kubevip.net.namespace import Netns  # noqa: E402

RESULTS = REPO / "bench" / "results" / "lifetimes.json"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def quantiles(xs: list[float]) -> dict[str, float]:
    s = sorted(xs)
    return {
        "p50_ms": round(1000 * s[len(s) // 2], 2),
        "p95_ms": round(1000 * s[min(len(s) - 1, int(len(s) * 0.95))], 2),
        "max_ms": round(1000 * s[-1], 2),
    }


def run(vips: int, rounds: int, family: str = "both") -> dict[str, Any]:
    ns = f"kvbl{secrets.token_hex(3)}"
    _ip("netns", "add", ns)
    try:
        _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "eth1", "up")
        m = AddressManager("eth0", Netns(ns))
        half = {"both": vips // 2, "ipv4": vips, "ipv6": 0}[family]
        v4 = [ipaddress.IPv4Address(int(ipaddress.IPv4Address("10.200.0.0")) + i + 1) for i in range(half)]
        base6 = int(ipaddress.IPv6Address("fd00:200::"))
        v6 = [ipaddress.IPv6Address(base6 + i + 1) for i in range(vips - half)]
        all_vips: list[VipAddress] = [(v, 32) for v in v4] + [(v, 128) for v in v6]
        started = time.perf_counter()
        errors = m.add_many(((v, p) for v, p in all_vips), lifetime=30)
        add_s = time.perf_counter() - started
        assert not errors, list(errors.items())[:3]
        wall: list[float] = []
        cpu: list[float] = []
        first: dict[str, float] = {}
        for i in range(rounds + 1):
            lifetimes = {a: 20 + i % 5 for a in all_vips}
            w0, c0 = time.perf_counter(), time.process_time()
            errs = m.extend(lifetimes)
            w, c = time.perf_counter() - w0, time.process_time() - c0
            assert not errs, list(errs.items())[:3]
            if i == 0:
                first = {"wall_ms": round(1000 * w, 2), "cpu_ms": round(1000 * c, 2)}
            else:
                wall.append(w)
                cpu.append(c)
        return {
            "vips": vips,
            "family": family,
            "rounds": rounds,
            "add_with_lifetime_ms": round(1000 * add_s, 2),
            "first_round_builds_requests": first,
            "round_wall": quantiles(wall),
            "round_cpu": quantiles(cpu),
        }
    finally:
        _ip("netns", "del", ns)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vips", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--family", choices=("both", "ipv4", "ipv6"), default="both")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
        **run(args.vips, args.rounds, args.family),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
