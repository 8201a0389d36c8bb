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
from kubevip.ip import IPNetwork
from kubevip.lab import DEFAULT_LAB_ID, agents, controlplane, podnet, topology, versions
from kubevip.lab import ipam as lab_ipam
from kubevip.lab.bgp import LabBgp, ensure_prerequisites
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork, default_state_dir
from kubevip.lab.routers import DAEMONS
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


def option_differences(
    lab_id: str, nodes: int | None, bgp: str | None, kubernetes: str | None,
    want_nodes: int, want_bgp: str | None, want_kubernetes: str | None,
    stack: str | None = None, want_stack: str = topology.DEFAULT_STACK,
) -> str:
    """"" when `lab up` with the wanted options fits the running lab, else a message saying what
    differs and how to change it (`lab up` never rebuilds a running lab: agents, Services and addresses
    would all change under the user's feet). No --bgp / --kubernetes means "whatever runs"."""
    diffs: list[str] = []
    if nodes is not None and nodes != want_nodes:
        diffs.append(f"--nodes {nodes} (asked {want_nodes})")
    if want_bgp and want_bgp != bgp:
        diffs.append(f"{'--bgp ' + bgp if bgp else 'no BGP router (agents announce by ARP/NDP)'} "
                     f"(asked --bgp {want_bgp})")
    if want_kubernetes and kubernetes and kubernetes.lstrip("v") != want_kubernetes:
        diffs.append(f"Kubernetes {kubernetes} (asked --kubernetes {want_kubernetes})")
    if stack is not None and stack != want_stack:  # no --stack means dual: never "whatever runs"
        diffs.append(f"--stack {stack} (asked --stack {want_stack})")
    if not diffs:
        return ""
    wanted = [f"--nodes {want_nodes}"]
    wanted += [f"--bgp {b}" for b in [want_bgp or bgp] if b]
    wanted += [f"--kubernetes {k}" for k in [want_kubernetes] if k]
    wanted += [f"--stack {want_stack}" for _ in [1] if want_stack != topology.DEFAULT_STACK]
    return (f"lab {lab_id} already runs with {'; '.join(diffs)}. `kubevip lab up` does not rebuild a"
            f" running lab: run `kubevip lab down --id {lab_id}`, then `kubevip lab up --id {lab_id}"
            f" {' '.join(wanted)}` (or repeat `up` with the lab's own options)")


def _stack_of(service_cidrs: tuple[IPNetwork, ...]) -> str:
    """The `--stack` a control plane was started with, from its Service CIDRs."""
    families = tuple(sorted({c.version for c in service_cidrs}))
    return next((name for name, fams in topology.STACKS.items() if fams == families), topology.DEFAULT_STACK)


class LabInstance:
    """The lab `lab_id` with its state in ~/.cache/kubevip/lab/<id>/ (or `state_dir`)."""

    def __init__(self, lab_id: str = DEFAULT_LAB_ID, state_dir: Path | None = None) -> None:
        self.lab_id = lab_id
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir(lab_id)
        # The agent (`kubevip manager`) in every node namespace plus the demo Service (lab/agents.py).
        self.with_agents = True

    def up(
        self, nodes: int, bin_dir: Path | None = None, bgp: str | None = None, kubernetes: str | None = None,
        stack: str = topology.DEFAULT_STACK,
    ) -> list[str]:
        """Start what is missing; returns one line per thing started (or found running).

        `kubernetes` (e.g. "1.29") picks the control-plane build unless `bin_dir` is given.
        `stack` ("dual", "ipv4", "ipv6") picks the families of the network, control plane and demo.
        """
        topology.validate_stack(stack)
        families = topology.STACKS[stack]
        net = LabNetwork(self.lab_id, nodes=nodes, state_dir=self.state_dir, stack=stack)
        cp = self._running_control_plane()
        lines: list[str] = []
        running_bgp = (LabBgp(net, self.state_dir).state() or {}).get("daemon")
        if net.topology is not None or cp is not None:
            running_k8s = cp.server_version() if cp is not None else None
            wanted_k8s = (
                versions.choose(kubernetes, versions.available(_CONTROLPLANE_DIR)) if kubernetes else None
            )
            # The network records its stack; a control plane alone says it through its Service CIDRs.
            running_stack = net.topology.stack if net.topology is not None else (
                _stack_of(cp.service_cidrs) if cp is not None else None)
            differ = option_differences(
                self.lab_id, len(net.topology.nodes) if net.topology is not None else None, running_bgp,
                running_k8s, nodes, bgp, wanted_k8s, running_stack, stack,
            )
            if cp is not None and not differ and _stack_of(cp.service_cidrs) != stack:
                differ = option_differences(self.lab_id, None, None, None, nodes, None, None,
                                            _stack_of(cp.service_cidrs), stack)
            if differ:
                raise LabError(differ)
            if running_bgp and not bgp:
                lines.append(f"BGP router {running_bgp} kept (this lab was started with --bgp {running_bgp};"
                             f" `kubevip lab down --id {self.lab_id}` to drop it)")
        # After the checks above (they only read state), so that they answer without root too.
        if os.geteuid() != 0:
            raise LabError("kubevip lab up needs root: network namespaces need CAP_NET_ADMIN")
        if bgp:  # before anything starts: a missing daemon or user must not leave half a lab behind
            if bgp not in DAEMONS:
                raise LabError(f"--bgp {bgp}: use one of {', '.join(DAEMONS)}")
            lines += ensure_prerequisites(bgp)
        if cp is None:
            controlplane.kill_recorded(self.state_dir)
            started = time.monotonic()
            service_cidrs, cluster_cidrs = controlplane.cidrs_of(families)
            cp = ControlPlane(
                bin_dir or find_bin_dir(kubernetes),
                self.state_dir,
                # "::" also accepts IPv4 (127.0.0.1 from the host): the nodes of an IPv6-only lab
                # reach it over the uplink's IPv6 address.
                bind_address=ipaddress.ip_address("0.0.0.0" if 4 in families else "::"),
                service_cidrs=service_cidrs,
                cluster_cidrs=cluster_cidrs,
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
            lines.append(f"created lab network ({t.stack}) {' '.join(map(str, net.subnets.values()))}: "
                         f"{', '.join(n.netns for n in t.nodes)}, {t.client.netns}")
        else:
            lines.append(f"lab network already up ({net.topo.stack}: "
                         f"{' '.join(map(str, net.subnets.values()))})")
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
                "server": cp.url_via(net.api_address),
                "kubeconfig": str(node_admin_kubeconfig(cp, net)),
                "kubevip_kubeconfig": str(node_kubeconfig(cp, net)),
            },
            "processes": controlplane.recorded_alive(self.state_dir),
        }
        doc.update(net.to_json())
        if self.with_agents:
            # The demo Service holds the first address of each family: `vip_pool` offers only the rest,
            # so a script taking VIPs from it never collides with the demo (contract: docs/lab.md).
            doc["demo"] = agents.demo_json(net)
            doc["vip_pool"] = {
                "ipv4": None, "ipv6": None,  # same keys on every stack: a family the lab lacks is null
                **{f"ipv{f}": f"{first + 1}-{last}" for f, (first, last) in sorted(net.vip_pool.items())},
            }
        doc["ipam_pool"] = {"ipv4": None, "ipv6": None,
                            **lab_ipam.pool_json(lab_ipam.ipam_pool(net.vip_pool))}
        if (metrics := lab_ipam.metrics_url(self.state_dir)) is not None:
            doc["ipam_metrics"] = metrics
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
