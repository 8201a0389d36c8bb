"""Prometheus metrics with kube-vip's names, and the HTTP endpoint serving /metrics and /healthz."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kubevip import __version__

log = logging.getLogger(__name__)


class Metrics:
    """One registry per agent (tests build several); names follow kube-vip where kube-vip has one."""

    def __init__(self, node: str, registry: CollectorRegistry | None = None) -> None:
        self.node = node
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.build_info = Gauge(
            "kube_vip_build_info", "Build information", ["version", "build", "node"], registry=r
        )
        self.build_info.labels(__version__, "kubevip", node).set(1)
        self.is_leader = Gauge(
            "kube_vip_is_leader", "1 while this node holds the Lease", ["node", "lease_name"], registry=r
        )
        self.leader_transitions = Counter(
            "kube_vip_leader_election_transitions_total",
            "Leadership changes seen by this node",
            ["lease_name"],
            registry=r,
        )
        self.active_services = Gauge(
            "kube_vip_active_services", "Services this node announces", ["namespace"], registry=r
        )
        self.reconcile_errors = Counter(
            "kube_vip_service_reconcile_errors_total",
            "Service reconcile failures and rejected inputs",
            ["namespace", "name", "reason"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "kube_vip_service_reconcile_duration_seconds",
            "Time to converge a pass, once per namespace of the Services changed before it",
            ["namespace"],
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.service_events = Counter(
            "kube_vip_manager_all_services_events",
            "Service watch events by type",
            ["type"],
            registry=r,
        )
        # kube-vip's per-Service election metrics (svc_election, Lease mode): `name` is the Service's name
        # for its own Lease (kubevip-<name>), else the kube-vip.io/leaseName Lease's.
        self.election_loops = Gauge(
            "kube_vip_service_election_loops",
            "Live per-service leader election loops on this node; more than 1 per service means loops leaked",
            ["namespace", "name"], registry=r,
        )
        self.election_attempts = Counter(
            "kube_vip_service_election_attempts_total",
            "Election attempts made by the per-service leader election loop",
            ["namespace", "name"], registry=r,
        )
        self.election_errors = Counter(
            "kube_vip_service_election_errors_total",
            "Per-service leader election failures by reason",
            ["namespace", "name", "reason"], registry=r,
        )
        self.announced_vips = Gauge(
            "kubevip_announced_vips", "VIPs this node holds, per family", ["family"], registry=r
        )
        self.service_vips = Gauge(
            "kubevip_service_vips", "VIPs of the Services this agent serves, cluster-wide, per family"
            " (compare with kubevip_announced_vips summed over nodes)", ["family"], registry=r
        )
        self.bgp_session_info = Gauge(
            "kube_vip_manager_bgp_session_info", "1 for the current state of each BGP session (BGP mode)",
            ["state", "peer"], registry=r,
        )
        self.watch_restarts = Counter(
            "kubevip_watch_restarts_total", "Watch restarts by resource and cause", ["resource", "cause"],
            registry=r,
        )

        self.loop_lag = Gauge(
            "kubevip_event_loop_lag_seconds", "How late the agent's event loop woke up last", registry=r
        )

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


class Exposition(Protocol):
    """Anything with a registry to serve: the agent's `Metrics`, the IPAM controller's."""

    def exposition(self) -> bytes: ...


@dataclass
class MetricsServer:
    """Serves /metrics and /healthz on the agent's event loop; `healthy` decides /healthz."""

    metrics: Exposition
    host: str
    port: int
    healthy: Callable[[], bool] = lambda: True
    _runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Listen; returns the bound port (useful when port 0 was asked for)."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host or None, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = int(sockets[0].getsockname()[1]) if sockets else self.port
        log.info("metrics on %s:%d (/metrics, /healthz)", self.host or "*", bound)
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, _req: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _req: web.Request) -> web.Response:
        ok = self.healthy()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "unhealthy\n")
