"""`kubevip ipam` metrics: pool size, used and free addresses per pool and family (read from the table at
scrape time, so they cost nothing between scrapes), and allocation failures by reason and family."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kubevip.ipam.allocator import PoolUsage

Usage = Callable[[], tuple[PoolUsage, ...]]


class _PoolCollector(Collector):
    def __init__(self, usage: Usage) -> None:
        self.usage = usage

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self.usage()
        families = (
            ("kubevip_ipam_pool_size", "Addresses the pool can hand out (IPv4 .0 and .255 excluded)",
             "size"),
            ("kubevip_ipam_pool_used", "Addresses of the pool held by Services", "used"),
            ("kubevip_ipam_pool_free", "Addresses of the pool not held by any Service", "free"),
        )
        for name, doc, attr in families:
            g = GaugeMetricFamily(name, doc, labels=["pool", "family"])
            for u in rows:
                g.add_metric([u.key, u.family.value], float(getattr(u, attr)))
            yield g


class IpamMetrics:
    """One registry per controller; `usage` is the allocator's `usage` (called at scrape time)."""

    def __init__(self, usage: Usage, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.registry.register(_PoolCollector(usage))
        self.failures = Counter(
            "kubevip_ipam_allocation_failures_total",
            "Allocation problems newly found for a Service (once per Service and problem, as its Event)",
            ["reason", "family"], registry=self.registry,
        )

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))
