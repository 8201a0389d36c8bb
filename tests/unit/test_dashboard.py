"""docs/dashboards/kubevip.json stays true: valid Grafana JSON whose queries name only metrics kubevip
exports (the agent's and `kubevip ipam`'s), and every IPAM and per-family VIP metric has a panel."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kubevip.core.views import IPFamily
from kubevip.ipam.allocator import PoolUsage
from kubevip.ipam.metrics import IpamMetrics
from kubevip.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "dashboards" / "kubevip.json"
NAME = re.compile(r"\b(kube_vip_[a-z_]+|kubevip_[a-z_]+)\b")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def exported() -> set[str]:
    agent = Metrics("n1")
    ipam = IpamMetrics(lambda: (PoolUsage("range-global", IPFamily.IPV4, 10, 2),))
    names: set[str] = set()
    for registry in (agent.registry, ipam.registry):
        for fam in registry.collect():
            names.add(fam.name)
    return names


def queried() -> set[str]:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] and doc["panels"]
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    return {m for e in exprs for m in NAME.findall(e)}


def test_queries_name_only_exported_metrics() -> None:
    have = exported()
    for name in queried():
        base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
        assert name in have or base in have, f"{name} is not exported by kubevip"


def test_pool_failure_and_family_metrics_have_panels() -> None:
    q = queried()
    for name in ("kubevip_ipam_pool_size", "kubevip_ipam_pool_used", "kubevip_ipam_pool_free",
                 "kubevip_ipam_allocation_failures_total", "kubevip_announced_vips", "kubevip_service_vips"):
        assert name in q
