"""How much a hostile `kube-vip.io/loadbalancerIPs` costs: the snapshot (every Service's decision, done
in a thread while the pass lock waits) with one N-entry annotation next to an ordinary Service.

    python bench/tenant_input.py            # N = 1000, 5000, 15000, 30000; JSON to bench/results/

The pass that announces the ordinary Service waits for this snapshot, so its time is the delay a tenant
can add to another Service's announcement (issue 16: must stay below a second at 15000 entries).
"""

from __future__ import annotations

import ipaddress
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kubevip.core.parse import service_from_dict
from kubevip.core.policy import AddressPolicy
from kubevip.core.selection import ClassFilter
from kubevip.core.world import ServiceRecord, World, snapshot


def hostile(n: int) -> str:
    """A mix of valid IPv4 and IPv6 addresses and junk, as a tenant could write it."""
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(str(ipaddress.IPv4Address(0x0A000000 + i)))
        elif i % 3 == 1:
            out.append(f"10.0.{i}.300")
        else:
            out.append(str(ipaddress.IPv6Address((0xFD00 << 112) + i)))
    return ",".join(out)


def service(name: str, vips: str, created: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": "tenant", "uid": name, "creationTimestamp": created,
                     "annotations": {"kube-vip.io/loadbalancerIPs": vips}},
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack",
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }


def measure(n: int, repeat: int = 3) -> dict[str, float | int]:
    policy = AddressPolicy(allowed=(ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")))
    w = World()
    for name, vips, created in (("big", hostile(n), "2026-01-01T00:00:00Z"),
                                ("other", "192.0.2.10", "2026-01-02T00:00:00Z")):
        view = service_from_dict(service(name, vips, created))
        w.services[view.key] = ServiceRecord(view, created)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        snap = snapshot(w, ClassFilter(), False, policy=policy)
        best = min(best, time.perf_counter() - t)
    big = snap.decisions["tenant/big"]
    return {
        "entries": n, "annotation_bytes": len(hostile(n)), "snapshot_seconds": round(best, 4),
        "vips": len(big.vips), "rejected": len(big.rejected), "warnings": len(snap.warnings["tenant/big"]),
    }


def main() -> None:
    rows = [measure(n) for n in (1000, 5000, 15000, 30000)]
    for r in rows:
        print(json.dumps(r))
    out = Path(__file__).parent / "results" / "tenant_input.json"
    out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
