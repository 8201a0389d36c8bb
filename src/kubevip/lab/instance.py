"""One named lab (`kubevip lab up/status/down`): control plane + network that outlive the command."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import kubevip
from kubevip.errors import LabError
from kubevip.lab import DEFAULT_LAB_ID, agents, controlplane, podnet, versions
from kubevip.lab import ipam as lab_ipam
from kubevip.lab.bgp import LabBgp
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork, default_state_dir
from kubevip.lab.stack import connect_network, node_admin_kubeconfig, node_kubeconfig

_CONTROLPLANE_DIR = Path(kubevip.__file__).resolve().parents[2] / "hack" / "controlplane"


def find_bin_dir(kubernetes: str | None = None) -> Path:
    """The control-plane binaries: of Kubernetes `kubernetes` (`lab up --kubernetes`) if given, else
    KUBEVIP_BIN_DIR, else what hack/controlplane/build.sh builds (or has cached) for KUBEVIP_KUBERNETES
    (default versions.DEFAULT_KUBERNETES)."""
    env = os.environ.get("KUBEVIP_BIN_DIR")
    if env and kubernetes is None:
        return Path(env)
    script = _CONTROLPLANE_DIR / "build.sh"
    if not script.exists():
        raise LabError("control-plane binaries unknown: set KUBEVIP_BIN_DIR to the output of "
                       "hack/controlplane/build.sh")
    argv = [str(script)]
    wanted, source = kubernetes, "--kubernetes"
    if wanted is None and os.environ.get(versions.ENV):
        wanted, source = os.environ[versions.ENV], versions.ENV
    if wanted is not None:  # checked here so the error names the flag, before any build starts
        argv.append(versions.choose(wanted, versions.available(script.parent), source))
    # Progress of a (long) first build goes straight to the user's terminal via stderr.
    res = subprocess.run(argv, stdout=subprocess.PIPE, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        raise LabError(f"{script} failed (exit {res.returncode}); see its output above")
    return Path(res.stdout.strip().splitlines()[-1])


class LabInstance:
    """The lab `lab_id` with its state in ~/.cache/kubevip/lab/<id>/ (or `state_dir`)."""

    def __init__(self, lab_id: str = DEFAULT_LAB_ID, state_dir: Path | None = None) -> None:
        self.lab_id = lab_id
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir(lab_id)
        # The agent (`kubevip manager`) in every node namespace plus the demo Service (lab/agents.py).
        self.with_agents = True

    def up(
        self, nodes: int, bin_dir: Path | None = None, bgp: str | None = None, kubernetes: str | None = None,
    ) -> list[str]:
        """Start what is missing; returns one line per thing started (or found running).

        `kubernetes` (e.g. "1.29") picks the control-plane build unless `bin_dir` is given.
        """
        if os.geteuid() != 0:
            raise LabError("kubevip lab up needs root: network namespaces need CAP_NET_ADMIN")
        net = LabNetwork(self.lab_id, nodes=nodes, state_dir=self.state_dir)
        if net.topology is not None and len(net.topology.nodes) != nodes:
            raise LabError(f"lab {self.lab_id} runs with {len(net.topology.nodes)} nodes; run "
                           f"`kubevip lab down` first to change it to {nodes}")
        cp = self._running_control_plane()
        lines: list[str] = []
        if cp is not None and kubernetes is not None:
            running = cp.server_version()
            wanted = versions.choose(kubernetes, versions.available(_CONTROLPLANE_DIR))
            if running.lstrip("v") != wanted:
                raise LabError(f"lab {self.lab_id} runs Kubernetes {running}; run `kubevip lab down` "
                               f"first to change it to {wanted}")
        if cp is None:
            controlplane.kill_recorded(self.state_dir)
            started = time.monotonic()
            cp = ControlPlane(
                bin_dir or find_bin_dir(kubernetes),
                self.state_dir,
                bind_address=ipaddress.IPv4Address("0.0.0.0"),
                die_with_parent=False,
            )
            cp.start()
            pids = ", ".join(f"{n}={p}" for n, p in cp.pids.items())
            lines.append(f"started control plane {cp.url} (Kubernetes {cp.server_version()}) in "
                         f"{time.monotonic() - started:.1f}s (pids {pids})")
        else:
            lines.append(f"control plane already running at {cp.url}")
        if net.up():
            t = net.topo
            lines.append(f"created lab network {t.subnet_v4} {t.subnet_v6}: "
                         f"{', '.join(n.netns for n in t.nodes)}, {t.client.netns}")
        else:
            lines.append(f"lab network already up ({net.topo.subnet_v4} {net.topo.subnet_v6})")
        connect_network(cp, net)
        if bgp:  # a BGP router namespace (gobgpd, bird2, frr) and a client behind it: docs/bgp.md
            lines += LabBgp(net, self.state_dir).up(bgp)
        lines.append(f"nodes registered: {', '.join(n.name for n in net.nodes)}")
        lines.append(f"kubeconfig: {cp.admin_kubeconfig}")
        lines.append(lab_ipam.up(cp, net.vip_pool, self.state_dir))
        if self.with_agents:
            lines += agents.lab_up(cp, net, self.state_dir)
        return lines

    def status(self) -> dict[str, Any]:
        """The documented `kubevip lab status -o json` document (docs/lab.md); LabError if not up."""
        cp = self._running_control_plane()
        net = LabNetwork(self.lab_id, state_dir=self.state_dir)
        if cp is None or not net.is_up():
            raise LabError(f"lab {self.lab_id} is not up (state in {self.state_dir}): run `kubevip lab up`")
        doc: dict[str, Any] = {
            "lab_id": self.lab_id,
            "kubeconfig": str(cp.admin_kubeconfig),
            "kubectl": str(cp.kubectl),
            "server": cp.url,
            "kubernetes_version": cp.server_version(),
            "kubevip_kubeconfig": str(cp.kubevip_kubeconfig),
            "in_lab": {
                "server": cp.url_via(net.uplink_ipv4),
                "kubeconfig": str(node_admin_kubeconfig(cp, net)),
                "kubevip_kubeconfig": str(node_kubeconfig(cp, net)),
            },
            "processes": controlplane.recorded_alive(self.state_dir),
        }
        doc.update(net.to_json())
        doc["ipam_pool"] = lab_ipam.pool_json(lab_ipam.ipam_pool(net.vip_pool))
        for node in doc["nodes"]:
            node["agent"] = agents.agent_status(self.state_dir, node["name"])
        doc.update(LabBgp(net, self.state_dir).to_json())
        doc["pods"] = [p.to_json() for p in podnet.listed(self.state_dir)]
        return doc

    def down(self) -> list[str]:
        """Stop the recorded processes, remove the recorded namespaces and links, delete the state dir."""
        lines = agents.stop_lab_processes(self.state_dir) if self.state_dir.exists() else []
        lines += podnet.delete_all(self.state_dir) if self.state_dir.exists() else []
        lines += lab_ipam.down(self.state_dir)
        lines += [f"stopped pid {p}" for p in controlplane.kill_recorded(self.state_dir)]
        lab_net = LabNetwork(self.lab_id, state_dir=self.state_dir)
        lines += [f"removed {r}" for r in LabBgp(lab_net, self.state_dir).down()]
        lines += [f"removed {r}" for r in LabNetwork(self.lab_id, state_dir=self.state_dir).down()]
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir)
            lines.append(f"removed {self.state_dir}")
        return lines or [f"lab {self.lab_id} was not up"]

    def running(self) -> tuple[ControlPlane, LabNetwork]:
        """The control plane and network of this lab; LabError saying how to start it when not up."""
        cp = self._running_control_plane()
        net = LabNetwork(self.lab_id, state_dir=self.state_dir)
        if cp is None or not net.is_up():
            raise LabError(f"lab {self.lab_id} is not up: run `kubevip lab up --id {self.lab_id}` first")
        return cp, net

    def _running_control_plane(self) -> ControlPlane | None:
        alive = controlplane.recorded_alive(self.state_dir)
        if set(alive) != set(controlplane.PROCESS_NAMES):
            return None
        cp = ControlPlane.load(self.state_dir)
        return cp if cp.ready() else None
