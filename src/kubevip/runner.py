"""`kubevip manager` main: connect, serve metrics, run the agent, and on SIGTERM withdraw, release, exit."""

from __future__ import annotations

import asyncio
import io
import logging
import signal

from kubevip import heap
from kubevip.agent.reconciler import Agent
from kubevip.bgp import shared as bgp_shared
from kubevip.config import AgentConfig
from kubevip.errors import ConfigError
from kubevip.kube.client import connect_pair
from kubevip.metrics import Heartbeat, Metrics, MetricsServer, watch_loop
from kubevip.signals import on_signals
from kubevip.tasks import spawn

log = logging.getLogger(__name__)

# The metrics and health servers start once the agent's first pass is done, or this many seconds after
# its start at the latest (an agent that cannot reach the API server still answers /healthz).
SERVE_AFTER = 1.0


def dump_tasks() -> None:
    """SIGUSR1: log where every asyncio task waits (diagnosing a stuck agent without a debugger)."""
    for task in asyncio.all_tasks():
        buf = io.StringIO()
        task.print_stack(limit=8, file=buf)
        log.warning("task %s:\n%s", task.get_name(), buf.getvalue())


async def first_pass_or_stop(agent: Agent, stop: asyncio.Event, limit: float) -> None:
    """Return once the agent's first pass is done, a stop was asked for or `limit` seconds passed."""
    waits = [asyncio.ensure_future(agent.ready.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waits, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run_agent(cfg: AgentConfig) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    cp_on = cfg.control_plane is not None and cfg.control_plane.enabled
    if not cfg.services and cp_on:
        from kubevip.controlplane.main import run_control_plane

        return await run_control_plane(cfg)
    if not cfg.services:
        raise ConfigError("svc_enable", "false", "kubevip manager serves Services: set svc_enable=true "
                          "(and/or cp_enable=true for the control-plane VIP)")
    heap.configure()
    heap.settle()  # the imported modules
    api, election_api = await connect_pair(cfg.kubeconfig, cfg.k8s_config_file)
    metrics = Metrics(cfg.node_name)
    # One BGP speaker for both parts (bgp/shared.py): a router keeps one session per neighbour address.
    shared = bgp_shared.for_settings(cfg.bgp_settings) if cp_on and cfg.bgp_settings is not None else None
    agent = Agent(cfg, api, metrics=metrics, election_api=election_api,
                  bgp_speaker=shared.part("services") if shared is not None else None)
    cp_speaker = shared.part("control-plane") if shared is not None else None
    heartbeat = Heartbeat()

    def healthy() -> bool:  # called from the metrics server's thread
        return not agent.guard.crashed and heartbeat.fresh()

    servers: list[MetricsServer] = []
    if cfg.prometheus is not None:
        servers.append(MetricsServer(metrics, cfg.prometheus.host, cfg.prometheus.port, healthy=healthy))
    if cfg.health_port is not None:
        servers.append(MetricsServer(metrics, "", cfg.health_port, healthy=healthy))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    on_signals(loop, (signal.SIGTERM, signal.SIGINT), stop.set)  # never lost (kubevip.signals)
    on_signals(loop, (signal.SIGUSR1,), dump_tasks)
    cp = None
    try:
        if cp_on:  # own client and Lease (kubevip.controlplane.main): neither part can block the other
            from kubevip.controlplane.main import open_control_plane

            cp = await open_control_plane(cfg, metrics, cp_speaker)
        spawn(agent.guard, "loop-lag", watch_loop(metrics, heartbeat))  # before start: it may take a while
        await agent.start()
        # After the first pass, not before: a server's first start imports aiohttp's server (6 ms of CPU,
        # in its own thread but holding the GIL), and on a restart of every agent the lists, the election
        # and the first pass need not share the CPU with that (issue 21). A port already taken still
        # stops the agent here, through `finally`.
        await first_pass_or_stop(agent, stop, SERVE_AFTER)
        for server in servers:
            await server.start()
        # Once the cluster is loaded and the first pass done: freeze what that created, and from 10 s on
        # trim the C heap every 10 s (kubevip.heap).
        spawn(agent.guard, "tend-heap", heap.tend(agent.ready.wait))
        log.info("agent on node %s started (mode %s, election %s)", cfg.node_name, cfg.mode,
                 cfg.election.mode if cfg.election.enabled else "off")
        await stop.wait()
        log.info("agent on node %s stopping: withdraw, release, exit", cfg.node_name)
    finally:
        # Services first: their release goes to the API server through the control-plane VIP (the
        # kubeconfig names it), so the VIP must still be here; then the control plane lets it go.
        try:
            await agent.shutdown()
        finally:
            if cp is not None:
                await cp.shutdown()
        for server in servers:
            await server.stop()
        await api.close()
        await election_api.close()
    return 0
