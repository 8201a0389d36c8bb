"""Wires the control-plane VIP into `kubevip manager`: its own API client (local API server), Lease, metrics.

The control plane gets its own client (own connection pool) and its own Lease, so the Service agent in
the same process can neither delay its renewals nor share its fate when a Service watch stalls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Callable
from urllib.parse import urlsplit

from kubevip.bgp.shared import SpeakerLike
from kubevip.config import AgentConfig
from kubevip.controlplane.agent import ControlPlaneVip
from kubevip.controlplane.bgp import DEFAULT_INTERFACE, CpAnnouncer
from kubevip.controlplane.health import livez_probe
from kubevip.controlplane.kernel import KernelVips
from kubevip.controlplane.settings import APISERVER_KUBECONFIG, APISERVER_LOCAL, ControlPlaneSettings
from kubevip.core.cpbgp import mode_for
from kubevip.election.leaseapi import LeaseApi
from kubevip.errors import ConfigError
from kubevip.ip import IPAddress
from kubevip.kube.client import ADMIN_CONF, kubeconfig_path
from kubevip.kube.kubeconfig import load_incluster, load_kubeconfig
from kubevip.kube.rest import RestClient
from kubevip.metrics import Heartbeat, Metrics, MetricsServer, watch_loop
from kubevip.signals import on_signals
from kubevip.tasks import spawn

log = logging.getLogger(__name__)


async def api_client(
    settings: ControlPlaneSettings, kubeconfig: str, k8s_config_file: str = ""
) -> RestClient:
    """A client with the kubeconfig's credentials, aimed per `cp_apiserver`.

    The kubeconfig is looked up like the Service agent's (kubevip.kube.client: `kubeconfig`/KUBECONFIG,
    then kube-vip's `k8s_config_file`, /etc/kubernetes/admin.conf, ~/.kube/config, in-cluster), so a
    kube-vip static pod that mounts admin.conf and sets no KUBECONFIG starts as it is.
    `local`: https://127.0.0.1:<port>, with the serving certificate still checked against the kubeconfig's
    server host (kubeadm puts the controlPlaneEndpoint, i.e. the VIP, into the certificate), so the agent
    elects through its own API server before the VIP exists and without trusting a loopback SAN.
    """
    path = kubeconfig_path(kubeconfig, k8s_config_file, os.environ, os.path.isfile)
    if path:
        access = load_kubeconfig(path)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        access = load_incluster()
    else:
        raise ConfigError("kubeconfig", "", "cp_enable=true needs a kubeconfig (kubeconfig, KUBECONFIG, "
                          f"k8s_config_file or {ADMIN_CONF}; a control-plane static pod mounts it)")
    original = str(urlsplit(access.server).hostname or "")
    if settings.apiserver != APISERVER_KUBECONFIG:
        server = settings.local_url() if settings.apiserver == APISERVER_LOCAL else settings.apiserver
        access = dataclasses.replace(access, server=server.rstrip("/"),
                                     tls_server_name=access.tls_server_name or original)
    log.info("control plane: elections and health checks through %s (certificate checked as %s)",
             access.server, access.tls_server_name or urlsplit(access.server).hostname)
    return RestClient(access)


def export_sessions(metrics: Metrics | None, speaker: SpeakerLike) -> None:
    """kube_vip_manager_bgp_session_info{state,peer} of the control plane's speaker (read at scrape)."""
    if metrics is None:
        return
    for peer in list(speaker.peer_states):
        for state in ("up", "connected", "down"):
            metrics.bgp_session_info.labels(state, str(peer)).set_function(_probe(speaker, peer, state))


def _probe(speaker: SpeakerLike, peer: IPAddress, state: str) -> Callable[[], float]:
    return lambda: 1.0 if speaker.peer_states.get(peer) == state else 0.0


class ControlPlaneProcess:
    """The control-plane VIP plus the client it owns; `shutdown()` withdraws, releases and closes."""

    def __init__(self, runner: ControlPlaneVip, api: RestClient) -> None:
        self.runner = runner
        self.api = api

    async def shutdown(self) -> None:
        try:
            await self.runner.shutdown()
        finally:
            await self.api.close()


async def open_control_plane(
    cfg: AgentConfig, metrics: Metrics | None = None, speaker: SpeakerLike | None = None,
) -> ControlPlaneProcess:
    """Build and start the control-plane VIP of `cfg` (cp_enable=true); in BGP mode through `speaker`
    when given (the process's shared speaker, bgp/shared.py), else its own."""
    s = cfg.control_plane
    if s is None or not s.enabled:
        raise ConfigError("cp_enable", "false", "the control-plane VIP is off: set cp_enable=true")
    api = await api_client(s, cfg.kubeconfig, cfg.k8s_config_file)
    node = cfg.node_name

    def observe(lease: str, leading: bool) -> None:
        if metrics is not None:
            metrics.is_leader.labels(node, lease).set(1 if leading else 0)
            metrics.leader_transitions.labels(lease).inc()

    async def probe() -> bool:
        return await livez_probe(api, s.health.path, s.health.timeout)

    net = cfg.net
    bgp: CpAnnouncer | None = None
    if cfg.bgp_settings is not None:
        # BGP mode: the VIPs go on vip_interface, else lo; no kernel lifetimes (a dead agent's routes go
        # with its BGP session, and ECMP mode has no Lease to extend them from).
        net = dataclasses.replace(net, interface=net.interface or DEFAULT_INTERFACE, kernel_lifetime=False)
        bgp = CpAnnouncer(cfg.bgp_settings, speaker=speaker, on_state=lambda sp: export_sessions(metrics, sp))
    mode = mode_for(cfg.election.enabled)
    runner = ControlPlaneVip(
        s, cfg.election, node, LeaseApi(api, request_timeout=cfg.election.timings.renew_deadline), probe,
        KernelVips(net), observer=observe, bgp=bgp, mode=mode,
    )
    if bgp is not None:
        log.info("control plane: VIPs announced over BGP, %s", "from every node whose local API server is "
                 "healthy (ECMP)" if mode == "ecmp" else "by the holder of the Lease only")
    try:
        await runner.start()
    except BaseException:
        await runner.shutdown()
        await api.close()
        raise
    return ControlPlaneProcess(runner, api)


async def run_control_plane(cfg: AgentConfig) -> int:
    """`kubevip manager` with cp_enable=true and svc_enable=false: run until SIGTERM, then release."""
    metrics = Metrics(cfg.node_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_signals(loop, (signal.SIGTERM, signal.SIGINT), stop.set)  # never lost (kubevip.signals)
    cp = await open_control_plane(cfg, metrics)
    server: MetricsServer | None = None
    try:
        if cfg.prometheus is not None:
            heartbeat = Heartbeat()
            spawn(cp.runner.guard, "loop-lag", watch_loop(metrics, heartbeat))
            server = MetricsServer(metrics, cfg.prometheus.host, cfg.prometheus.port,
                                   healthy=lambda: not cp.runner.guard.crashed and heartbeat.fresh())
            await server.start()
        log.info("control-plane VIP agent on node %s started (lease %s/%s)", cfg.node_name,
                 cfg.election.cp_lease_namespace, cfg.election.lease_name)
        await stop.wait()
        log.info("control-plane VIP agent on node %s stopping: withdraw, release, exit", cfg.node_name)
    finally:
        await cp.shutdown()
        if server is not None:
            await server.stop()
    return 0
