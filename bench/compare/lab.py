"""The benchmark's view of the kubevip lab (`kubevip lab up|status -o json`) and its helpers in namespaces."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from compare.agents import NodeSpot
from compare.kubeapi import ApiError, Kube
from kubevip import yamlout

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PEER_DIR = REPO / "bench" / "peers" / "kube-vip"
PROBE_PORT = 17007


def kubevip_cli() -> str:
    """The `kubevip` entry point next to this interpreter (the venv), else on PATH."""
    cand = Path(sys.executable).with_name("kubevip")
    found = str(cand) if cand.exists() else shutil.which("kubevip")
    if not found:
        raise RuntimeError("kubevip entry point not found: run with the venv from hack/venv.sh")
    return found


@dataclass
class Lab:
    """One lab instance as `kubevip lab status -o json` describes it."""

    lab_id: str
    doc: dict[str, Any]
    admin: Kube = field(init=False)

    def __post_init__(self) -> None:
        self.admin = Kube(self.doc["kubeconfig"])

    @classmethod
    def up(cls, lab_id: str, nodes: int, bgp: str | None = None) -> Lab:
        """`kubevip lab up` without the lab's own agents, demo Service and IPAM controller: the benchmark
        starts the agent under test itself, and nothing else may talk to the API server meanwhile."""
        from kubevip.lab import agents as lab_agents
        from kubevip.lab import ipam as lab_ipam
        from kubevip.lab.instance import LabInstance

        inst = LabInstance(lab_id)
        inst.with_agents = False
        inst.up(nodes, bgp=bgp)
        lab_agents.stop_lab_processes(inst.state_dir)  # left from an earlier `kubevip lab up`
        lab_ipam.down(inst.state_dir)
        lab = cls(lab_id, inst.status())
        lab.admin.delete(f"/api/v1/namespaces/{lab_agents.DEMO_NAMESPACE}/services/{lab_agents.DEMO_SERVICE}")
        return lab

    def down(self) -> None:
        from kubevip.lab.instance import LabInstance

        LabInstance(self.lab_id).down()

    @property
    def nodes(self) -> list[NodeSpot]:
        return [
            NodeSpot(n["name"], n["netns"], n["interface"], n["ipv4"], n["ipv6"]) for n in self.doc["nodes"]
        ]

    @property
    def client_netns(self) -> str:
        return str(self.doc["client"]["netns"])

    def pool(self, family: str) -> list[str]:
        """Free on-link addresses the lab reserves for VIPs (`vip_pool`)."""
        import ipaddress

        first, last = (ipaddress.ip_address(a) for a in self.doc["vip_pool"][family].split("-"))
        return [str(ipaddress.ip_address(int(first) + i)) for i in range(int(last) - int(first) + 1)]

    def kubevip_kubeconfig(self) -> str:
        return str(self.doc["in_lab"]["kubevip_kubeconfig"])

    def kube_vip_kubeconfig(self, workdir: Path) -> str:
        """A kubeconfig for kube-vip: a ServiceAccount token bound to kube-vip's documented ClusterRole."""
        kubectl = self.doc["kubectl"]
        subprocess.run(
            [kubectl, "--kubeconfig", self.doc["kubeconfig"], "apply", "-f", str(PEER_DIR / "rbac.yaml")],
            check=True,
            capture_output=True,
        )
        tok = self.admin.request(
            "POST",
            "/api/v1/namespaces/kube-system/serviceaccounts/kvbench-kube-vip/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": 86400},
            },
        )
        base = yaml.safe_load(Path(self.doc["in_lab"]["kubeconfig"]).read_text())
        for u in base.get("users", []):
            u["user"] = {"token": tok["status"]["token"]}
        out = workdir / "kube-vip-upstream.kubeconfig"
        out.write_text(yamlout.dump(base))
        os.chmod(out, 0o600)
        return str(out)


@dataclass
class Helpers:
    """UDP responders and address watchers in every node namespace, started once per run."""

    lab: Lab
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    watch_files: dict[str, Path] = field(default_factory=dict)

    def start(self, poll_ms: float) -> None:
        for n in self.lab.nodes:
            self.procs.append(
                subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        n.netns,
                        sys.executable,
                        str(HERE / "responder.py"),
                        "--node",
                        n.name,
                        "--port",
                        str(PROBE_PORT),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.restart_watchers(poll_ms)

    def restart_watchers(self, poll_ms: float) -> None:
        """(Re)start the address watcher: one process with a netlink socket in every node namespace, so
        all events carry one clock; a slow poll keeps its cost low when thousands of VIPs exist."""
        for p in self.procs[len(self.lab.nodes) :]:
            _terminate(p)
        del self.procs[len(self.lab.nodes) :]
        path = self.workdir / f"addrwatch-{int(time.time() * 1000)}.jsonl"
        self.watch_files = {"all": path}
        with path.open("wb") as fh:
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "addrwatch.py"),
                        "--poll-ms",
                        str(poll_ms),
                        "--netns",
                        *(f"{n.name}={n.netns}" for n in self.lab.nodes),
                    ],
                    stdout=fh,
                    stderr=subprocess.DEVNULL,
                )
            )
        deadline = time.monotonic() + 60
        while path.stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.1)  # python starts slowly on a loaded machine; nothing is timed before this

    def stop(self) -> None:
        for p in self.procs:
            _terminate(p)
        self.procs.clear()


def _terminate(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def ensure_namespace(kube: Kube, name: str) -> None:
    try:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        kube.create("/api/v1/namespaces", body)
    except ApiError as exc:
        if exc.status != 409:
            raise
