"""Pods with real network namespaces in the lab (`kubevip lab pod add/del`, docs/lab.md).

A pod is a namespace `kvl-<id>-pod-<hash>` wired to its node's namespace by a veth pair, the way a
point-to-point CNI plugin wires it: the pod has one IPv4 /32 and one IPv6 /128 from its node's
`spec.podCIDRs` (allocated by the controller-manager's node-ipam controller) and default routes through
the node, which holds the gateway addresses (the first host of each pod CIDR) on its end of the veth,
routes the pod's addresses to it and forwards. The client namespace and the other nodes get a route to
each node's pod CIDRs through that node, so pods and the lab network reach each other untranslated.
The Pod object is bound to the node and reported Ready with both addresses; a responder (TCP and UDP
8080, answering the pod's name) runs inside. State lives in `<state_dir>/pods.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from kubevip.errors import ConfigError, LabError
from kubevip.ip import IPNetwork
from kubevip.lab import pods
from kubevip.lab.client import connect
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import IPV6_OFF, LabNetwork
from kubevip.lab.stack import run_sync
from kubevip.lab.topology import Endpoint

PODS_FILE = "pods.json"
RESPONDER_PORT = 8080
POD_PORTS = (("tcp", RESPONDER_PORT, "TCP"), ("udp", RESPONDER_PORT, "UDP"))
# The pod CIDRs of a freshly registered Node come from the node-ipam controller a moment later.
POD_CIDR_WAIT = 60.0
POD_SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
)
NODE_FORWARDING = ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")



@dataclass(frozen=True)
class LabPod:
    """One lab pod; `to_json()` is the documented `lab pod add -o json` / `lab status` "pods" entry."""

    name: str
    namespace: str
    node: str
    netns: str
    ipv4: str | None  # None: the lab's stack has no such family
    ipv6: str | None
    veth: str
    responder_pid: int

    def to_json(self) -> dict[str, str | None]:
        return {"name": self.name, "namespace": self.namespace, "node": self.node, "netns": self.netns,
                "ipv4": self.ipv4, "ipv6": self.ipv6}


def parse_labels(text: str) -> dict[str, str]:
    """`k=v,k2=v2` (the `--labels` flag) as a dict; a clear error naming the bad entry."""
    out: dict[str, str] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--labels", item, "use key=value pairs separated by commas")
        out[key.strip()] = value.strip()
    return out


def _ids(lab_id: str, namespace: str, name: str) -> tuple[str, str]:
    """(netns, node-side veth name): fixed per pod, veth names fit 15 characters."""
    h = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:8]
    return f"kvl-{lab_id}-pod-{h}", f"kp{h}"


def listed(state_dir: Path) -> list[LabPod]:
    """The pods recorded for the lab whose state is in `state_dir`."""
    try:
        doc = json.loads((state_dir / PODS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [LabPod(**p) for p in doc]


def _save(state_dir: Path, entries: list[LabPod]) -> None:
    tmp = state_dir / f"{PODS_FILE}.tmp"
    tmp.write_text(json.dumps([asdict(p) for p in entries], indent=1))
    tmp.replace(state_dir / PODS_FILE)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """One pod change at a time per lab: two `lab pod add` must not pick the same address."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "pods.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


async def node_pod_cidrs(
    api: client.ApiClient, node: str, within: float = POD_CIDR_WAIT, families: tuple[int, ...] = (4, 6)
) -> dict[int, IPNetwork]:
    """The node's `spec.podCIDRs` per IP version (one of each of `families`), waiting (with a deadline)
    for the allocation."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + within
    while True:
        obj = await core.read_node(node)
        cidrs = [ipaddress.ip_network(c) for c in (obj.spec.pod_cidrs or [])]
        by_version: dict[int, IPNetwork] = {c.version: c for c in cidrs}
        if all(f in by_version for f in families):
            return by_version
        if time.monotonic() > deadline:
            raise LabError(f"node {node} has pod CIDRs {[str(c) for c in cidrs]}, not one per family of "
                           f"{families} "
                           f"after {within}s: is the controller-manager's node-ipam controller running?")
        await asyncio.sleep(0.2)


def _free_host(cidr: IPNetwork, taken: set[str]) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The lowest address after the gateway (host 1) that no recorded pod uses."""
    for i in range(2, min(cidr.num_addresses - 1, 1 << 16)):
        a = cidr.network_address + i
        if str(a) not in taken:
            return a
    raise LabError(f"pod CIDR {cidr} is full")


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def _wire(net: LabNetwork, node: Endpoint, netns: str, veth: str, cidrs: Mapping[int, IPNetwork],
          ips: Mapping[int, ipaddress.IPv4Address | ipaddress.IPv6Address]) -> None:
    """The pod's namespace and veth, an address and a default route per family of `ips` (the lab's)."""
    gws = {f: cidrs[f].network_address + 1 for f in ips}
    _run(["ip", "netns", "add", netns])
    _run(["ip", "-n", netns, "link", "set", "lo", "up"])
    # An IPv4-only lab's pods have no IPv6 at all, like its nodes (set before the veth exists).
    sysctls = POD_SYSCTLS if 6 in ips else IPV6_OFF
    _run(["ip", "netns", "exec", netns, "sysctl", "-q", "-e", "-w", *sysctls])
    _run(["ip", "-n", node.netns, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
          "netns", netns])
    _run(["ip", "netns", "exec", node.netns, "sysctl", "-q", "-e", "-w", *NODE_FORWARDING,
          f"net.ipv6.conf.{veth}.accept_dad=0", f"net.ipv6.conf.{veth}.accept_ra=0"])
    # The gateway addresses are the node's on every pod veth (as with the ptp CNI plugin): /32 and /128,
    # so they add no on-link route that would send other pods' traffic to the wrong veth.
    for f, gw in gws.items():
        _run(["ip", "-n", node.netns, "addr", "add", f"{gw}/{32 if f == 4 else 128}", "dev", veth,
              *(["nodad"] if f == 6 else [])])
    _run(["ip", "-n", node.netns, "link", "set", veth, "up"])
    for f, ip in ips.items():
        host = f"{ip}/{32 if f == 4 else 128}"
        _run(["ip", "-n", node.netns, "route", "replace", host, "dev", veth])
        _run(["ip", "-n", netns, "addr", "add", host, "dev", "eth0", *(["nodad"] if f == 6 else [])])
    _run(["ip", "-n", netns, "link", "set", "eth0", "up"])
    for f, gw in gws.items():
        _run(["ip", "-n", netns, f"-{f}", "route", "add", f"{gw}/{32 if f == 4 else 128}", "dev", "eth0"])
        _run(["ip", "-n", netns, f"-{f}", "route", "add", "default", "via", str(gw), "dev", "eth0"])
    # Everyone else on the lab bridge reaches this node's pods through the node.
    for other in (*net.nodes, net.client):
        if other.name == node.name:
            continue
        for f in ips:
            via = node.ipv4 if f == 4 else node.ipv6
            _run(["ip", "-n", other.netns, f"-{f}", "route", "replace", str(cidrs[f]), "via", str(via)])


def _start_responder(net: LabNetwork, netns: str, name: str, log: Path) -> int:
    with log.open("ab") as f:
        p = net.popen(netns, [sys.executable, "-m", "kubevip.lab.responder", name, str(RESPONDER_PORT)],
                      stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    return p.pid


def _is_responder(pid: int, name: str) -> bool:
    """Whether `pid` still is the pod's responder (a recorded PID may have been reused since)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kubevip.lab.responder" in argv and name.encode() in argv


def _stop(pid: int, name: str) -> None:
    if not _is_responder(pid, name):
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # not our child (another command started it): poll for it
                if not Path(f"/proc/{pid}").exists():
                    return
                done = 0
            if done:
                return
            time.sleep(0.05)


async def _create_objects(
    cp: ControlPlane, namespace: str, name: str, node: str, labels: Mapping[str, str],
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> None:
    async with connect(cp.admin_kubeconfig) as api:
        core = client.CoreV1Api(api)
        try:
            await core.create_namespace(cast(Any, {"metadata": {"name": namespace}}))
        except ApiException as exc:
            if exc.status != 409:
                raise
        await pods.create_pod(api, namespace, name, node, labels, ips, True, POD_PORTS)


async def _cidrs(cp: ControlPlane, node: str, families: tuple[int, ...]) -> dict[int, IPNetwork]:
    async with connect(cp.admin_kubeconfig) as api:
        return await node_pod_cidrs(api, node, families=families)


async def _delete_object(cp: ControlPlane, namespace: str, name: str) -> None:
    async with connect(cp.admin_kubeconfig) as api:
        await pods.delete_pod(api, namespace, name)


def add(
    cp: ControlPlane, net: LabNetwork, name: str, node: str, namespace: str = "default",
    labels: Mapping[str, str] | None = None,
) -> LabPod:
    """Create the pod's namespace, wiring, Pod object (Ready, an IP per family of the lab) and responder."""
    ep = net.node(node)
    families = net.families
    netns, veth = _ids(net.lab_id, namespace, name)
    with _locked(net.state_dir):
        entries = listed(net.state_dir)
        if any(p.name == name and p.namespace == namespace for p in entries):
            raise LabError(f"lab pod {namespace}/{name} exists: `kubevip lab pod del {name}` first")
        cidrs = run_sync(lambda: _cidrs(cp, node, families))
        taken = {a for p in entries if p.node == node for a in (p.ipv4, p.ipv6) if a}
        ips = {f: _free_host(cidrs[f], taken) for f in families}
        try:
            _wire(net, ep, netns, veth, cidrs, ips)
            pid = _start_responder(net, netns, name, net.state_dir / f"pod-{namespace}-{name}.log")
        except LabError:
            _run(["ip", "netns", "del", netns], check=False)
            raise
        pod = LabPod(name, namespace, node, netns, _s(ips.get(4)), _s(ips.get(6)), veth, pid)
        _save(net.state_dir, [*entries, pod])
    # The cluster's primary family first: the order of the node's pod CIDRs (IPv4 in the lab).
    run_sync(lambda: _create_objects(cp, namespace, name, node, labels or {}, list(ips.values())))
    return pod


def _s(value: object | None) -> str | None:
    return None if value is None else str(value)


def delete(cp: ControlPlane | None, net: LabNetwork, name: str, namespace: str = "default") -> LabPod:
    """Remove the pod's Pod object (when a control plane runs), responder and namespace."""
    with _locked(net.state_dir):
        entries = listed(net.state_dir)
        pod = next((p for p in entries if p.name == name and p.namespace == namespace), None)
        if pod is None:
            raise LabError(f"lab {net.lab_id} has no pod {namespace}/{name}")
        if cp is not None:
            run_sync(lambda: _delete_object(cp, namespace, name))
        _teardown(pod)
        _save(net.state_dir, [p for p in entries if p is not pod])
    return pod


def _teardown(pod: LabPod) -> None:
    _stop(pod.responder_pid, pod.name)
    # Deleting the namespace deletes the veth pair, and with it the node's routes through it.
    _run(["ip", "netns", "del", pod.netns], check=False)


def delete_all(state_dir: Path) -> list[str]:
    """`lab down`: every recorded pod's responder and namespace (the Pod objects die with the cluster)."""
    lines: list[str] = []
    with _locked(state_dir):
        for pod in listed(state_dir):
            _teardown(pod)
            lines.append(f"removed pod {pod.namespace}/{pod.name} ({pod.netns})")
        (state_dir / PODS_FILE).unlink(missing_ok=True)
    return lines
