"""`kubevip manager` main: connect, serve metrics, run the agent, and on SIGTERM withdraw, release, exit."""

from __future__ import annotations

import asyncio
import logging
import signal

from kubevip.agent.reconciler import Agent
from kubevip.config import AgentConfig
from kubevip.errors import ConfigError
from kubevip.kube.client import connect
from kubevip.metrics import Metrics, MetricsServer

log = logging.getLogger(__name__)


async def run_agent(cfg: AgentConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    if not cfg.services:
        raise ConfigError("svc_enable", "false", "kubevip manager serves Services: set svc_enable=true")
    api = await connect(cfg.kubeconfig)
    metrics = Metrics(cfg.node_name)
    agent = Agent(cfg, api, metrics=metrics)
    server: MetricsServer | None = None
    if cfg.prometheus is not None:
        server = MetricsServer(metrics, cfg.prometheus.host, cfg.prometheus.port,
                               healthy=lambda: not agent.guard.crashed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if server is not None:
            await server.start()
        await agent.start()
        log.info("agent on node %s started (mode %s, election %s)", cfg.node_name, cfg.mode,
                 cfg.election.mode if cfg.election.enabled else "off")
        await stop.wait()
        log.info("agent on node %s stopping: withdraw, release, exit", cfg.node_name)
    finally:
        await agent.shutdown()
        if server is not None:
            await server.stop()
        await api.close()
    return 0
