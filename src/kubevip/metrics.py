"""Prometheus metrics with kube-vip's names, and the HTTP endpoint serving /metrics and /healthz."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from kubevip import __version__

if TYPE_CHECKING:
    from aiohttp import web_request, web_response, web_server

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
        # Every wake-up's lateness, so a stall between two scrapes is not lost (the gauge keeps only the
        # last): issue 21 counts the wake-ups later than 100 ms through a restart of 1000 Services.
        self.loop_delay = Histogram(
            "kubevip_event_loop_delay_seconds",
            "How late each wake-up of the agent's event loop was (sampled every 0.25 s)",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # The same lateness less the time the loop's thread waited on a run queue for a CPU meanwhile:
        # on a node whose CPUs are all busy a wake-up is late by that wait though the agent did nothing
        # wrong; what is left is the agent's own (its callbacks, its other threads holding the GIL).
        self.loop_blocked = Histogram(
            "kubevip_event_loop_blocked_seconds",
            "How late each wake-up of the agent's event loop was, less the time its thread waited for a"
            " CPU meanwhile (the agent's own part of kubevip_event_loop_delay_seconds)",
            registry=r,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def exposition(self) -> bytes:
        return bytes(generate_latest(self.registry))


# /healthz turns 503 once the event loop has not ticked for this long: the server runs on its own
# thread, so a stalled agent loop no longer fails the probe by itself (a loop stalled that long has
# fenced long ago, and a restart is the way out; the manifests' probe restarts after 3 failures).
LOOP_STALL = 10.0


class Heartbeat:
    """Ticked by the agent's event loop (`watch_loop`); read by /healthz from the server's thread."""

    def __init__(self, stall: float = LOOP_STALL) -> None:
        self.stall = stall
        self.last = time.monotonic()

    def beat(self) -> None:
        self.last = time.monotonic()

    def fresh(self) -> bool:
        return time.monotonic() - self.last < self.stall


async def watch_loop(metrics: Metrics, heartbeat: Heartbeat | None = None, period: float = 0.25,
                     warn: float = 1.0) -> None:
    """Measure how late the event loop wakes (a blocked loop delays Lease renewals and fencing), and
    tick `heartbeat`."""
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        w0 = runqueue_wait()
        if heartbeat is not None:
            heartbeat.beat()
        await asyncio.sleep(period)  # the measurement itself, not synchronisation
        lag = max(0.0, loop.time() - t0 - period)
        waited = cpu_wait(lag, w0, runqueue_wait())
        metrics.loop_lag.set(lag)
        metrics.loop_delay.observe(lag)
        metrics.loop_blocked.observe(lag - waited)
        if lag > warn:
            log.warning("event loop was blocked for %.2fs (%.2fs of it waiting for a CPU)", lag, waited)


_SCHEDSTAT = "/proc/thread-self/schedstat"


def runqueue_wait() -> float | None:
    """Seconds the calling thread has waited on a run queue for a CPU since it started (the second
    field of /proc/thread-self/schedstat), or None where the kernel keeps no such count."""
    try:
        fd = os.open(_SCHEDSTAT, os.O_RDONLY)
    except OSError:
        return None
    try:
        fields = os.read(fd, 128).split()
    finally:
        os.close(fd)
    try:
        return int(fields[1]) / 1e9
    except (IndexError, ValueError):
        return None


def cpu_wait(lag: float, before: float | None, after: float | None) -> float:
    """How much of a wake-up's `lag` the loop's thread spent waiting for a CPU, from its run-queue
    wait `before` the sleep and `after` the wake-up: at most the lag, 0 without a count. The wait is
    the whole tick's, so a tick that also waited before it was due credits the machine with up to
    that much more than the late part alone."""
    if before is None or after is None:
        return 0.0
    return min(lag, max(0.0, after - before))


class Exposition(Protocol):
    """Anything with a registry to serve: the agent's `Metrics`, the IPAM controller's."""

    def exposition(self) -> bytes: ...


class MetricsServer:
    """Serves /metrics and /healthz from a thread of its own, with its own event loop; `healthy`
    decides /healthz.

    Not on the agent's loop: the server listens on the node's address (hostNetwork), so anyone on the
    network can flood it, and every request handled on the agent's loop would delay Lease renewals and
    fencing (issue 16 measured a local flood pushing loop lag past the fencing margin). Here a flood
    costs the agent only GIL time; rendering /metrics reads the registry under prometheus_client's own
    locks, and `healthy` must be safe to call from this thread (it reads flags and timestamps).
    """

    def __init__(
        self, metrics: Exposition, host: str, port: int, healthy: Callable[[], bool] = lambda: True
    ) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self.healthy = healthy
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: web_server.Server | None = None
        self._listener: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        """Listen (from the server's own thread); returns the bound port (port 0 asks for any)."""
        bound: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._serve, args=(bound,), name="metrics-server", daemon=True)
        self._thread.start()
        port = await asyncio.wrap_future(bound)
        log.info("metrics on %s:%d (/metrics, /healthz; own thread)", self.host or "*", port)
        return port

    def _serve(self, bound: concurrent.futures.Future[int]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            bound.set_result(loop.run_until_complete(self._listen()))
        except BaseException as exc:
            bound.set_exception(exc)
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _listen(self) -> int:
        # Imported here, not with the module: aiohttp must come in through kubevip.kube, which imports
        # it without the system CA bundle (kubevip/kube/__init__.py). Every process that serves metrics
        # (agent, control plane, IPAM controller) has imported its API client by now.
        # aiohttp's low-level server (its docs: "Low Level Server"): two fixed routes need no
        # Application, router or AppRunner, and `aiohttp.web` would import all of them and mimetypes'
        # tables, 1.3 MB more per process than web_server and web_response (issue 21: RSS).
        from aiohttp import web_server

        self._server = web_server.Server(self._handle, access_log=None)
        self._listener = await asyncio.get_running_loop().create_server(
            self._server, self.host or None, self.port)
        sockets = self._listener.sockets
        return int(sockets[0].getsockname()[1]) if sockets else self.port

    async def _close(self) -> None:
        listener, server = self._listener, self._server
        if listener is not None:
            listener.close()
        if server is not None:
            server.pre_shutdown()
            await server.shutdown(1.0)
        if listener is not None:
            await listener.wait_closed()

    async def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if self._listener is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), loop))
        loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join)
        self._loop = self._thread = self._server = self._listener = None

    async def _handle(self, req: web_request.BaseRequest) -> web_response.Response:
        """GET (or HEAD) /metrics and /healthz; 404 elsewhere, 405 for other methods."""
        from aiohttp.web_response import Response  # loaded with web_server

        if req.path not in ("/metrics", "/healthz"):
            return Response(status=404, text="not found\n")
        if req.method not in ("GET", "HEAD"):
            return Response(status=405, text="method not allowed\n", headers={"Allow": "GET, HEAD"})
        if req.path == "/metrics":
            return Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})
        ok = self.healthy()
        return Response(status=200 if ok else 503, text="ok\n" if ok else "unhealthy\n")
