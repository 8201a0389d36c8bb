"""Agents (`kubevip manager`) and responders as processes inside the lab's node namespaces.

Used by `kubevip lab up` and by the end-to-end tests; every process is tracked by the PID we started.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubevip.errors import LabError
from kubevip.ip import IPAddress
from kubevip.lab import podrun
from kubevip.lab.bgp import LabBgp
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork
from kubevip.lab.tcpprobe import probe_argv
from kubevip.lab.topology import Endpoint

RESPONDER_PORT = 8080
PIDS_FILE = "agents.json"


def agent_env(node: Endpoint, kubeconfig: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the agent on `node`: kube-vip variables, layer 2, scalable election."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONUNBUFFERED": "1",
        "KUBECONFIG": str(kubeconfig),
        "vip_nodename": node.name,
        "svc_enable": "true",
        "vip_arp": "true",
        "vip_interface": node.interface,
        "vip_leaderelection": "true",
        "vip_electionmode": "scalable",
        "prometheus_server": ":2112",
    }
    env.update(extra or {})
    return env


def policy_env(lab: LabNetwork) -> dict[str, str]:
    """The lab's address policy: Service VIPs only from the lab's VIP pool (docs/security.md)."""
    cidrs = [
        str(n) for first, last in lab.vip_pool.values()
        for n in ipaddress.summarize_address_range(first, last)
    ]
    return {"vip_allowed_cidrs": ",".join(cidrs)}


@dataclass
class AgentProcess:
    """One agent process in one node namespace."""

    node: Endpoint
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    # What runs before the agent's argv inside the namespace (lab/podrun.py: the service-account mount
    # and setpriv with the manifest's capabilities); empty: the agent runs as the lab's root.
    prefix: tuple[str, ...] = ()

    def start(self, lab: LabNetwork) -> int:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc.pid
        log = self.log_path.open("ab")
        self.starts += 1
        self.proc = lab.popen(
            self.node.netns,
            [*self.prefix, sys.executable, "-m", "kubevip", "manager"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (withdraw, release, exit), SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGUSR1)  # the agent logs its tasks' stacks: why it did not stop
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
            self.kill()
            return self.proc.wait(5)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)


@dataclass
class Fleet:
    """An agent per lab node (or per chosen node)."""

    lab: LabNetwork
    kubeconfig: Path
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    agents: dict[str, AgentProcess] = field(default_factory=dict)

    def add(self, node: Endpoint) -> AgentProcess:
        a = AgentProcess(
            node, agent_env(node, self.kubeconfig, {**policy_env(self.lab), **self.extra_env}),
            self.log_dir / f"agent-{node.name}.log",
        )
        self.agents[node.name] = a
        return a

    def start(self, nodes: tuple[Endpoint, ...] | None = None) -> None:
        for n in nodes or self.lab.nodes:
            (self.agents.get(n.name) or self.add(n)).start(self.lab)

    def stop(self) -> None:
        for a in self.agents.values():
            a.signal(signal.SIGTERM)
        for a in self.agents.values():
            a.stop()

    def logs(self, tail: int = 40) -> str:
        out = []
        for name, a in self.agents.items():
            try:
                lines = a.log_path.read_text(errors="replace").splitlines()[-tail:]
            except OSError:
                lines = []
            out.append(f"--- agent {name} (pid {a.pid}, starts {a.starts}) ---\n" + "\n".join(lines))
        return "\n".join(out)


def start_responder(lab: LabNetwork, node: Endpoint, log_dir: Path, port: int = RESPONDER_PORT) -> int:
    """The responder in one node's namespace (answers with the node's name), logging to log_dir; its pid."""
    with (log_dir / f"responder-{node.name}.log").open("ab") as log:
        p = lab.popen(
            node.netns,
            [sys.executable, "-m", "kubevip.lab.responder", node.name, str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return p.pid


def start_responders(lab: LabNetwork, log_dir: Path, port: int = RESPONDER_PORT) -> dict[str, int]:
    """A responder per node namespace (answers with the node's name); returns node -> pid."""
    return {n.name: start_responder(lab, n, log_dir, port) for n in lab.nodes}


def stop_responders(pids: Mapping[str, int]) -> None:
    """Stop the responders `start_responders` started, by their PIDs, and reap them."""
    for pid in pids.values():
        try:
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def record(state_dir: Path, pids: Mapping[str, Mapping[str, int]]) -> None:
    (state_dir / PIDS_FILE).write_text(json.dumps(pids, indent=1, sort_keys=True))


def recorded(state_dir: Path) -> dict[str, dict[str, int]]:
    try:
        data = json.loads((state_dir / PIDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): {str(a): int(b) for a, b in v.items()} for k, v in data.items()}


def wait_gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


# -- `kubevip lab up`: agents, responders and the demo Service ------------------------------------------

DEMO_NAMESPACE = "default"
DEMO_SERVICE = "demo"


def demo_service(net: LabNetwork) -> dict[str, object]:
    """A Service with one VIP per family of the lab from its pool, answered by every node's responder:
    PreferDualStack on a dual-stack lab, SingleStack of the lab's family otherwise."""
    vips = demo_vips(net)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": DEMO_SERVICE,
            "namespace": DEMO_NAMESPACE,
            # Responders stand in for pods (no EndpointSlices): kube-vip's opt-in to announce anyway.
            "annotations": {"kube-vip.io/loadbalancerIPs": ",".join(map(str, vips)),
                            "kube-vip.io/allow-reconcile-without-endpoints": "true"},
        },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": "PreferDualStack" if len(vips) > 1 else "SingleStack",
            "ipFamilies": [f"IPv{a.version}" for a in vips],
            "selector": {"app": DEMO_SERVICE},
            "allocateLoadBalancerNodePorts": False,
            "ports": [
                {"name": "demo", "protocol": "TCP", "port": RESPONDER_PORT, "targetPort": RESPONDER_PORT}
            ],
        },
    }


def demo_vips(net: LabNetwork) -> list[IPAddress]:
    """The demo Service's VIPs: the first pool address of each family the lab has (IPv4 first)."""
    return [net.vip(f, 0) for f in net.families]


def demo_json(net: LabNetwork) -> dict[str, object]:
    """`lab status -o json` "demo": the demo Service and the addresses it holds (not in `vip_pool`);
    a family the lab lacks is null."""
    doc: dict[str, object] = {"namespace": DEMO_NAMESPACE, "name": DEMO_SERVICE, "port": RESPONDER_PORT,
                              "ipv4": None, "ipv6": None}
    doc.update({f"ipv{a.version}": str(a) for a in demo_vips(net)})
    return doc


# What agent_env adds for a process on the host; a Pod gets these from its image and the kubelet.
_PROCESS_ENV = ("PATH", "PYTHONUNBUFFERED", "KUBECONFIG", "vip_nodename")


def start_lab_processes(cp: ControlPlane, net: LabNetwork, state_dir: Path) -> list[str]:
    """Start what is not running: a responder, a token rotator and an agent per node (idempotent); one
    line per action. The agents run as the DaemonSet `kubevip manifest daemonset` renders for the lab's
    settings says (lab/podrun.py): its env, only its capabilities, a projected token the lab rotates."""
    pids = recorded(state_dir)
    lines: list[str] = []
    for n in net.nodes:
        mine = pids.setdefault(n.name, {})
        if not (mine.get("responder") and alive(mine["responder"])):
            mine["responder"] = start_responder(net, n, state_dir)
        if mine.get("agent") and alive(mine["agent"]):
            lines.append(f"agent on {n.name} already running (pid {mine['agent']})")
            continue
        # With `lab up --bgp` the agents run in BGP mode peered with the lab router (lab/bgp.py).
        settings = {k: v for k, v in agent_env(n, Path(), {**policy_env(net), **LabBgp(net, state_dir)
                                                          .agent_env()}).items() if k not in _PROCESS_ENV}
        run = podrun.prepare(cp, net, n, podrun.lab_manifest(n.interface, settings), state_dir)
        if not (mine.get("token") and alive(mine["token"])):
            run.token.write_static()
            run.token.rotate()
            mine["token"] = start_rotator(run.token, state_dir)
        a = AgentProcess(n, run.env, state_dir / f"agent-{n.name}.log", prefix=run.prefix)
        mine["agent"] = a.start(net)
        lines.append(f"started agent on {n.name} (pid {mine['agent']}, log {a.log_path})")
    record(state_dir, pids)
    return lines


def start_rotator(token: podrun.ProjectedToken, state_dir: Path) -> int:
    """The kubelet's token refresh for one agent, as a process that outlives `lab up` (`lab down` stops
    it); its pid."""
    with (state_dir / f"token-{token.owner}.log").open("ab") as log:
        p = subprocess.Popen(
            [sys.executable, "-m", "kubevip.lab.podrun", "rotate", str(token.cp.state_dir), str(token.dir),
             token.owner, token.namespace],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return p.pid


def stop_lab_processes(state_dir: Path) -> list[str]:
    """SIGTERM the recorded agents (they withdraw their VIPs) and responders; SIGKILL what lingers."""
    lines: list[str] = []
    pids = recorded(state_dir)
    for node, procs in sorted(pids.items()):
        for what, pid in sorted(procs.items()):
            if not alive(pid):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_gone(pid, 10.0):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            lines.append(f"stopped {what} on {node} (pid {pid})")
    with contextlib.suppress(FileNotFoundError):
        (state_dir / PIDS_FILE).unlink()
    return lines


def agent_status(state_dir: Path, node: str) -> dict[str, object]:
    """`{"running": bool, "pid": int | None}` for `lab status -o json`."""
    pid = recorded(state_dir).get(node, {}).get("agent")
    return {"running": bool(pid and alive(pid)), "pid": pid}


def probe_tcp(net: LabNetwork, address: str, port: int, wait: float = 1.0) -> str | None:
    """From the client namespace: connect to address:port and return the answer (the node's name)."""
    res = net.run(net.client.netns, probe_argv(address, port, wait), check=False)
    return res.stdout.strip() or None


def wait_demo(net: LabNetwork, within: float = 60.0) -> dict[str, str | None]:
    """Until every demo VIP answers at the client (or the deadline): family -> answering node."""
    targets = {f"ipv{a.version}": str(a) for a in demo_vips(net)}
    got: dict[str, str | None] = dict.fromkeys(targets)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and not all(got.values()):
        for fam, addr in targets.items():
            if not got[fam]:
                got[fam] = probe_tcp(net, addr, RESPONDER_PORT)
    return got


def lab_up(cp: ControlPlane, net: LabNetwork, state_dir: Path) -> list[str]:
    """The agent part of `kubevip lab up`: demo Service, responders, agents; then wait for the demo."""
    cp.kubectl_run("apply", "-f", "-", stdin=json.dumps(demo_service(net)))
    vips = demo_vips(net)
    lines = [
        f"demo Service {DEMO_NAMESPACE}/{DEMO_SERVICE}: VIPs {' and '.join(map(str, vips))} "
        f"port {RESPONDER_PORT}"
    ]
    lines += start_lab_processes(cp, net, state_dir)
    bgp = LabBgp(net, state_dir)
    if bgp.state() is not None:  # BGP mode: the demo is reached through the router
        return lines + bgp.wait_demo(vips, RESPONDER_PORT)
    got = wait_demo(net)
    for addr in vips:
        node = got[f"ipv{addr.version}"]
        if node is None:
            raise LabError(
                f"demo Service does not answer on {addr} from the client namespace; "
                f"see the agent logs in {state_dir}"
            )
        lines.append(f"client -> {addr}:{RESPONDER_PORT} answered by {node}")
    return lines
