"""How each agent is started in a node namespace with matched settings, and its process handle."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubevip.lab.bgp import NODE_AS, ROUTER_AS

KUBEVIP = "kubevip"
KUBE_VIP = "kube-vip"
AGENTS = (KUBEVIP, KUBE_VIP)


@dataclass(frozen=True)
class Settings:
    """What both agents get, identically: layer 2 (ARP/NA), Service VIPs, Lease election and timings."""

    election: str = "service"  # "service": one Lease per Service; "global": plndr-svcs-lock
    # Seconds; kube-vip parses whole seconds only, kubevip takes fractions (its defaults 1.5 / 1.0 / 0.25).
    lease_duration_s: float = 5
    renew_deadline_s: float = 3
    retry_period_s: float = 1
    legacy_endpoints: bool = False
    metrics_port: int = 2112
    # BGP mode instead of layer 2 when set: the lab router's IPv4 address (one IPv4 session per node
    # carrying both families, MP-BGP), the same peer, ASes, timers and next hops for both agents.
    bgp_peer: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "election": self.election,
            "vip_leaseduration": self.lease_duration_s,
            "vip_renewdeadline": self.renew_deadline_s,
            "vip_retryperiod": self.retry_period_s,
            "enable_endpoints": self.legacy_endpoints,
            "vip_arp": not self.bgp_peer,
            "bgp_enable": bool(self.bgp_peer),
            "svc_enable": True,
            "cp_enable": False,
        }


@dataclass(frozen=True)
class NodeSpot:
    """Where an agent runs: the node's name, network namespace and lab interface."""

    name: str
    netns: str
    interface: str
    ipv4: str = ""
    ipv6: str = ""


def seconds_text(value: float) -> str:
    """`5` for whole seconds (kube-vip's parser takes integers only), `1.5` otherwise."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def agent_env(agent: str, settings: Settings, node: NodeSpot, kubeconfig: str) -> dict[str, str]:
    """The kube-vip style environment, the same variables and values for both agents."""
    if agent not in AGENTS:
        raise ValueError(f"unknown agent {agent!r}; expected one of {AGENTS}")
    env = {
        "vip_arp": "true",
        "svc_enable": "true",
        "cp_enable": "false",
        "vip_interface": node.interface,
        "vip_nodename": node.name,
        "vip_leaderelection": "true",
        "svc_election": "true" if settings.election == "service" else "false",
        "vip_leaseduration": seconds_text(settings.lease_duration_s),
        "vip_renewdeadline": seconds_text(settings.renew_deadline_s),
        "vip_retryperiod": seconds_text(settings.retry_period_s),
        "enable_endpoints": "true" if settings.legacy_endpoints else "false",
        "prometheus_server": f":{settings.metrics_port}",
        "KUBECONFIG": kubeconfig,
    }
    if settings.bgp_peer:
        env.update(bgp_env(settings, node))
    if agent == KUBE_VIP:
        # kube-vip reads its kubeconfig from k8s_config_file (or --k8sConfigPath), not KUBECONFIG.
        env["k8s_config_file"] = kubeconfig
    return env


def bgp_env(settings: Settings, node: NodeSpot) -> dict[str, str]:
    """BGP mode, identical for both agents: VIPs on lo, one peer (the lab router), the router id and
    both next hops fixed to the node's own addresses (kube-vip needs `mpbgp_nexthop` to announce IPv6
    over an IPv4 session; kubevip reads the same variables), hold time 9 s as in the lab."""
    return {
        "vip_arp": "false",
        "bgp_enable": "true",
        "vip_interface": "lo",
        "bgp_routerid": node.ipv4,
        "bgp_as": str(NODE_AS),
        "bgp_peers": f"{settings.bgp_peer}:{ROUTER_AS}",
        "bgp_hold_time": "9",
        "bgp_keepalive_interval": "3",
        "mpbgp_nexthop": "fixed",
        "mpbgp_ipv4": node.ipv4,
        "mpbgp_ipv6": node.ipv6,
    }


def agent_argv(agent: str, kube_vip_bin: str | None, kubevip_bin: str | None) -> list[str]:
    """The command line that starts the agent's manager."""
    if agent == KUBE_VIP:
        if not kube_vip_bin:
            raise ValueError("kube-vip binary missing: run bench/peers/kube-vip/build.sh")
        return [kube_vip_bin, "manager"]
    if not kubevip_bin:
        raise ValueError("kubevip entry point missing: install the checkout (hack/venv.sh)")
    return [kubevip_bin, "manager"]


@dataclass
class AgentProcess:
    """One running agent in one node namespace."""

    agent: str
    node: NodeSpot
    proc: subprocess.Popen[bytes]
    log: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


def start_agent(
    agent: str, node: NodeSpot, argv: list[str], env: Mapping[str, str], logdir: Path
) -> AgentProcess:
    """Starts argv inside node.netns; `ip netns exec` execs it, so the PID we hold is the agent's."""
    logdir.mkdir(parents=True, exist_ok=True)
    log = logdir / f"{agent}-{node.name}-{int(time.time() * 1000)}.log"
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "VIRTUAL_ENV")}
    base["PYTHONUNBUFFERED"] = "1"
    if os.environ.get("KVB_AGENT_PYTHONPATH"):  # A/B runs: the agents from another checkout's src
        base["PYTHONPATH"] = os.environ["KVB_AGENT_PYTHONPATH"]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", node.netns, *argv],
            env={**base, **env},
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return AgentProcess(agent, node, proc, log)
