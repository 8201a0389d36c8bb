"""`kubevip lab up --control-plane N`: a kube-apiserver in each of N node namespaces, a control-plane agent
(`cp_enable`) next to each, and kubeconfigs that reach the cluster through the VIP on either family.

All N API servers share the lab's etcd (through `kubevip.lab.relay` on the uplink address, since etcd
listens on host loopback), its tokens and its service-account keys: one cluster, N+1 API servers. They
serve a certificate from a lab CA whose SANs hold both VIPs, the node addresses, 127.0.0.1 and ::1, so
kubectl through the VIP verifies TLS for real (no insecure-skip-tls-verify), and the agents check the
local API server's certificate against the VIP exactly as on a kubeadm node.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubevip import yamlout
from kubevip.errors import BgpError, LabError
from kubevip.ip import IPAddress
from kubevip.lab import procs, topology
from kubevip.lab.agents import AgentProcess
from kubevip.lab.bgp import LabBgp
from kubevip.lab.controlplane import ControlPlane, http_get
from kubevip.lab.network import LabNetwork
from kubevip.lab.ports import free_port
from kubevip.lab.topology import Endpoint

PORT = 6443
AGENT_METRICS = ":2113"  # not :2112, where a Service agent in the same namespace may listen
STATE_FILE = "cpvip.json"
# Flags of the host API server that the node API servers set differently.
_OWN_FLAGS = ("--etcd-servers=", "--bind-address=", "--secure-port=", "--advertise-address=", "--cert-dir=")


def vips(net: LabNetwork) -> dict[int, IPAddress]:
    """The control-plane VIPs, one per family the lab has (a single-stack lab: one address): the LAST
    address of each family's pool (tests take pool addresses from the front), so Service tests and the
    control plane never collide."""
    return {fam: last for fam, (_, last) in net.vip_pool.items()}


def node_address(net: LabNetwork, node: Endpoint) -> IPAddress:
    """The node's address of the lab's first family (IPv4 unless the lab is IPv6-only)."""
    return node.ipv4 if 4 in net.families else node.ipv6


def _host(ip: IPAddress) -> str:
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _url(ip: IPAddress, port: int = PORT) -> str:
    return f"https://[{ip}]:{port}" if ip.version == 6 else f"https://{ip}:{port}"


@dataclass
class ControlPlaneVipLab:
    """N API servers + N control-plane agents in the first N node namespaces of `net`."""

    cp: ControlPlane
    net: LabNetwork
    count: int = 3
    die_with_parent: bool = True
    agent_extra_env: dict[str, str] = field(default_factory=dict)
    # With a BGP router in the lab (`lab up --bgp`): "ecmp" (every healthy node announces) or "single"
    # (the Lease holder only); docs/controlplane.md, "BGP".
    bgp_mode: str = "ecmp"
    start_timeout: float = 180.0
    apiservers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    agents: dict[str, AgentProcess] = field(default_factory=dict, repr=False)
    relay: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    relay_port: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.count <= len(self.net.nodes):
            raise LabError(f"--control-plane {self.count}: the lab has {len(self.net.nodes)} nodes; "
                           f"use 1-{len(self.net.nodes)} (or more --nodes)")

    # ---- paths -----------------------------------------------------------------------------------------

    @property
    def dir(self) -> Path:
        return self.net.state_dir / "cpvip"

    @property
    def nodes(self) -> tuple[Endpoint, ...]:
        return self.net.nodes[: self.count]

    @property
    def families(self) -> tuple[int, ...]:
        """The lab's families: the control-plane VIP has one address of each (IPv4-only lab: IPv4 only)."""
        return self.net.families

    @property
    def vips(self) -> dict[int, IPAddress]:
        return vips(self.net)

    @property
    def vip4(self) -> ipaddress.IPv4Address | None:
        v = self.vips.get(4)
        assert v is None or isinstance(v, ipaddress.IPv4Address)
        return v

    @property
    def vip6(self) -> ipaddress.IPv6Address | None:
        v = self.vips.get(6)
        assert v is None or isinstance(v, ipaddress.IPv6Address)
        return v

    def kubeconfig(self, family: int) -> Path:
        """Admin kubeconfig through the VIP of `family` (use it inside the client namespace)."""
        return self.dir / f"admin-vip-ipv{family}.kubeconfig"

    @property
    def agent_kubeconfig(self) -> Path:
        return self.dir / "kube-vip.kubeconfig"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def log_path(self, what: str) -> Path:
        return self.dir / f"{what}.log"

    # ---- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """PKI, relay, API servers (waits until each is ready), kubeconfigs, agents."""
        if self.announced_by_bgp and len(self.families) == 1:
            self._add_session_addresses()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pki()
        self._start_relay()
        for n in self.nodes:
            self.start_apiserver(n.name, wait=False)
        for n in self.nodes:
            self.wait_apiserver(n.name)
        self._write_kubeconfigs()
        for n in self.nodes:
            self.start_agent(n.name)
        self._save()

    def stop(self) -> None:
        """Agents first (they withdraw and release), then API servers, then the relay."""
        for a in self.agents.values():
            a.signal(signal.SIGTERM)
        for a in self.agents.values():
            a.stop()
        for name in list(self.apiservers):
            self.stop_apiserver(name)
        if self.relay is not None:
            procs.terminate(self.relay)
            self.relay = None
        if self.announced_by_bgp and len(self.families) == 1:
            for n in self.nodes:
                s = topology.cp_session_address(self.net.topo, self.net.nodes.index(n))
                self.net.run(n.netns, ["ip", "addr", "del", f"{s}/{self.net.subnets[s.version].prefixlen}",
                                       "dev", n.interface], check=False)
        self._save()

    def __enter__(self) -> ControlPlaneVipLab:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---- API servers -----------------------------------------------------------------------------------

    def _apiserver_args(self, node: Endpoint) -> list[str]:
        base = [a for a in self.cp._apiserver_args() if not a.startswith(_OWN_FLAGS)]
        relay = self.net.api_address
        return [
            *base,
            f"--etcd-servers=http://{_host(relay)}:{self.relay_port}",
            # "::" serves both families, so the VIP of either reaches it; an IPv4-only lab has no IPv6.
            f"--bind-address={'::' if 6 in self.families else '0.0.0.0'}",
            f"--secure-port={PORT}",
            f"--advertise-address={node_address(self.net, node)}",
            f"--tls-cert-file={self.dir / 'apiserver.crt'}",
            f"--tls-private-key-file={self.dir / 'apiserver.key'}",
            f"--cert-dir={self.dir / ('pki-' + node.name)}",
        ]

    def start_apiserver(self, name: str, wait: bool = True) -> int:
        node = self.net.node(name)
        old = self.apiservers.get(name)
        if old is not None and old.poll() is None:
            return old.pid
        # Own UTS namespace with the node's hostname: kube-apiserver derives its identity Lease from the
        # hostname, and N servers with one identity would fight over it. Every step execs: one PID.
        argv = ["ip", "netns", "exec", node.netns, "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$@"', node.name, str(self.cp.bin_dir / "kube-apiserver"),
                *self._apiserver_args(node)]
        log = self.log_path(f"kube-apiserver-{name}").open("ab")
        try:
            popen = procs.in_spawner_thread(lambda: subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=not self.die_with_parent,
                preexec_fn=procs.die_with_parent if self.die_with_parent else None,
            ))
        finally:
            log.close()
        self.apiservers[name] = popen
        if wait:
            self.wait_apiserver(name)
        self._save()
        return popen.pid

    def kill_apiserver(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.apiservers.get(name)
        if p is not None and p.poll() is None:
            os.kill(p.pid, sig)
            p.wait(15)

    def stop_apiserver(self, name: str) -> None:
        p = self.apiservers.pop(name, None)
        if p is not None:
            procs.terminate(p)

    def apiserver_ready(self, name: str) -> bool:
        node = self.net.node(name)
        try:
            return self._get(_url(node_address(self.net, node)), "/readyz", timeout=2.0) == "ok"
        except LabError:
            return False

    def wait_apiserver(self, name: str) -> None:
        deadline = time.monotonic() + self.start_timeout
        while not self.apiserver_ready(name):
            p = self.apiservers.get(name)
            if p is not None and p.poll() is not None:
                raise LabError(f"kube-apiserver in {name} exited with {p.returncode}; last lines of "
                               f"{self.log_path('kube-apiserver-' + name)}:\n"
                               f"{procs.log_tail(self.log_path('kube-apiserver-' + name))}")
            if time.monotonic() > deadline:
                raise LabError(f"kube-apiserver in {name} not ready after {self.start_timeout:.0f}s:\n"
                               f"{procs.log_tail(self.log_path('kube-apiserver-' + name))}")
            time.sleep(0.2)

    # ---- agents ----------------------------------------------------------------------------------------

    def agent_env(self, node: Endpoint) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONUNBUFFERED": "1",
            "KUBECONFIG": str(self.agent_kubeconfig),
            "vip_nodename": node.name,
            "cp_enable": "true",
            "svc_enable": "false",
            "address": ",".join(str(v) for v in self.vips.values()),
            "port": str(PORT),
            "vip_arp": "true",
            "vip_interface": node.interface,
            "vip_leaderelection": "true",
            "prometheus_server": AGENT_METRICS,
        }
        bgp = self.bgp.control_plane_env(node.ipv6, self.net.nodes.index(node))
        if bgp:
            env.update(bgp)
            env["vip_leaderelection"] = "true" if self.bgp_mode == "single" else "false"
        env.update(self.agent_extra_env)
        return env

    @property
    def bgp(self) -> LabBgp:
        return LabBgp(self.net, self.net.state_dir)

    @property
    def announced_by_bgp(self) -> bool:
        return self.bgp.state() is not None

    def start_agent(self, name: str) -> int:
        node = self.net.node(name)
        a = self.agents.get(name)
        if a is None:
            a = self.agents[name] = AgentProcess(node, self.agent_env(node), self.log_path(f"agent-{name}"))
        pid = a.start(self.net)
        self._save()
        return pid

    def agent_logs(self, tail: int = 30) -> str:
        out = []
        for name in [n.name for n in self.nodes]:
            for what in (f"agent-{name}", f"kube-apiserver-{name}"):
                out.append(f"--- {what} ---\n{procs.log_tail(self.log_path(what), tail)}")
        return "\n".join(out)

    # ---- observation -----------------------------------------------------------------------------------

    def holders(self) -> dict[int, set[str]]:
        """Family -> nodes that have that family's control-plane VIP on an interface (any owner); a family
        the lab lacks maps to no node."""
        out: dict[int, set[str]] = {4: set(), 6: set()}
        want = {v: fam for fam, v in self.vips.items()}
        for n in self.net.nodes:
            # Every interface: in BGP mode the VIPs are on lo.
            res = self.net.run(n.netns, ["ip", "-j", "addr", "show"], check=False)
            for link in json.loads(res.stdout or "[]"):
                for a in link.get("addr_info", []):
                    fam = want.get(ipaddress.ip_address(a["local"]))
                    if fam is not None:
                        out[fam].add(n.name)
        return out

    def kubectl(self, family: int, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """kubectl inside the client namespace through the VIP of `family` (never raises on failure); with
        a BGP router, in the bgp_client namespace behind it."""
        argv = [str(self.cp.kubectl), "--kubeconfig", str(self.kubeconfig(family)),
                f"--request-timeout={max(1, int(timeout))}s", *args]
        doc = self.bgp.state()
        netns = doc["bgp_client"]["netns"] if doc is not None else self.net.client.netns
        try:
            return self.net.run(netns, argv, check=False, timeout=timeout + 5)
        except LabError as exc:
            return subprocess.CompletedProcess(argv, 124, "", str(exc))

    def status(self) -> dict[str, Any]:
        """The `control_plane` part of `kubevip lab status -o json`."""
        def only(fam: int, value: object) -> str | None:  # null for the family a single-stack lab lacks
            return str(value) if fam in self.families else None

        return {
            "stack": self.net.stack,
            "vip": {"ipv4": only(4, self.vip4), "ipv6": only(6, self.vip6)},
            "port": PORT,
            "kubeconfig_ipv4": only(4, self.kubeconfig(4)),
            "kubeconfig_ipv6": only(6, self.kubeconfig(6)),
            "ca": str(self.ca),
            "nodes": [n.name for n in self.nodes],
            # Added for BGP (issue 22): "arp" or "bgp", and with BGP "ecmp" or "single" (else null).
            "announce": "bgp" if self.announced_by_bgp else "arp",
            "bgp_mode": self.bgp_mode if self.announced_by_bgp else None,
            "client_netns": ((self.bgp.state() or {}).get("bgp_client", {}).get("netns")
                             or self.net.client.netns),
        }

    def rib(self) -> dict[int, frozenset[IPAddress]]:
        """With a BGP router: family -> next hops the router has for that family's control-plane VIP."""
        import asyncio

        router = self.bgp.reader()
        if router is None:
            return dict.fromkeys(self.families, frozenset())
        out: dict[int, frozenset[IPAddress]] = {}
        for fam, vip in self.vips.items():
            try:
                rib = asyncio.run(router.rib(fam))
            except BgpError:
                rib = {}
            out[fam] = rib.get(ipaddress.ip_network(vip), frozenset())
        return out

    def wait_bgp_reachable(self, within: float = 120.0) -> list[str]:
        """Until the router has the VIP of each family from every node it should (ECMP: all, single: one) and
        kubectl from the bgp_client answers through each VIP; LabError naming what is missing at the
        deadline."""
        deadline = time.monotonic() + within
        rib: dict[int, frozenset[IPAddress]] = {}
        want = len(self.nodes) if self.bgp_mode == "ecmp" else 1
        while time.monotonic() < deadline:
            rib = self.rib()
            if all(len(hops) == want for hops in rib.values()):
                break
            time.sleep(0.2)
        else:
            raise LabError(f"the router has no route for the control-plane VIPs ({rib}); agent logs:\n"
                           f"{self.agent_logs(10)}")
        lines = [f"router RIB: {vip} via {', '.join(sorted(map(str, rib[fam])))}"
                 for fam, vip in self.vips.items()]
        router = self.bgp.reader()
        if router is not None and not router.installs_routes:
            return [*lines, f"{router.daemon} programs no kernel routes: bgp_client reachability not checked"]
        for fam in self.families:
            res = self.kubectl(fam, "get", "--raw", "/readyz")
            while res.returncode != 0 and time.monotonic() < deadline:
                time.sleep(0.5)
                res = self.kubectl(fam, "get", "--raw", "/readyz")
            if res.returncode != 0:
                raise LabError(f"bgp_client cannot reach the API server through the IPv{fam} VIP: "
                               f"{res.stderr.strip()[-300:]}")
            lines.append(f"bgp_client -> API server through {self.vips[fam]}: "
                         f"{res.stdout.strip()}")
        return lines

    # ---- internals -------------------------------------------------------------------------------------

    def _pki(self) -> None:
        d = self.dir
        if (d / "apiserver.crt").exists():
            return
        sans = ["DNS:kubernetes", "DNS:kubernetes.default", "DNS:localhost", "IP:127.0.0.1", "IP:::1",
                *(f"IP:{v}" for v in self.vips.values())]
        sans += [f"IP:{ip}" for n in self.net.nodes for ip in self.net.topo.addresses(n)]
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(["req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
                  "-days", "30", "-subj", "/CN=kubevip-lab-ca"])
        _openssl(["req", *ec, "-keyout", str(d / "apiserver.key"), "-out", str(d / "apiserver.csr"),
                  "-subj", "/CN=kube-apiserver"])
        (d / "san.ext").write_text(f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\n")
        _openssl(["x509", "-req", "-in", str(d / "apiserver.csr"), "-CA", str(d / "ca.crt"),
                  "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-days", "30",
                  "-extfile", str(d / "san.ext"), "-out", str(d / "apiserver.crt")])
        for key in ("ca.key", "apiserver.key"):
            os.chmod(d / key, 0o600)

    def _add_session_addresses(self) -> None:
        """Single stack with a BGP router: the second address each control-plane node peers the router
        from (topology.CP_SESSION_HOSTS). IPv6: deprecated at once (preferred_lft 0), so the kernel never
        picks it as a source; the agent binds it. IPv4: a secondary address, never a default source."""
        for n in self.nodes:
            a = topology.cp_session_address(self.net.topo, self.net.nodes.index(n))
            plen = self.net.subnets[a.version].prefixlen
            extra = ["nodad", "preferred_lft", "0"] if a.version == 6 else []
            self.net.run(n.netns, ["ip", "addr", "replace", f"{a}/{plen}", "dev", n.interface, *extra])

    def _start_relay(self) -> None:
        if self.relay is not None and self.relay.poll() is None:
            return
        assert self.cp.ports is not None
        relay = str(self.net.api_address)  # the uplink address of the lab's first family
        self.relay_port = free_port(relay)
        log = self.log_path("etcd-relay").open("ab")
        argv = [sys.executable, "-m", "kubevip.lab.relay", relay, str(self.relay_port),
                "127.0.0.1", str(self.cp.ports.etcd_client)]
        try:
            self.relay = procs.in_spawner_thread(lambda: subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=not self.die_with_parent,
                preexec_fn=procs.die_with_parent if self.die_with_parent else None,
            ))
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while "relay" not in procs.log_tail(self.log_path("etcd-relay")):
            if self.relay.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"etcd relay did not start:\n{procs.log_tail(self.log_path('etcd-relay'))}")
            time.sleep(0.05)

    def _kubeconfig_doc(self, server: str, token: str, user: str) -> dict[str, Any]:
        ca = base64.b64encode(self.ca.read_bytes()).decode()
        return {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kubevip-lab-vip", "cluster": {"server": server,
                                                                 "certificate-authority-data": ca}}],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "vip", "context": {"cluster": "kubevip-lab-vip", "user": user}}],
            "current-context": "vip",
        }

    def _write_kubeconfigs(self) -> None:
        docs = {self.kubeconfig(fam): self._kubeconfig_doc(_url(vip), self.cp.admin_token, "admin")
                for fam, vip in self.vips.items()}
        # As admin.conf on a kubeadm node: the server is the VIP (controlPlaneEndpoint), of the first family.
        first = self.vips[self.families[0]]
        docs[self.agent_kubeconfig] = self._kubeconfig_doc(_url(first), self.cp.kubevip_token, "kube-vip")
        for path, doc in docs.items():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                yamlout.dump(doc, f)

    def _get(self, base: str, path: str, timeout: float) -> str:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        return http_get(base + path, self.cp.admin_token, timeout, ctx)

    def _save(self) -> None:
        """PIDs for `kubevip lab down` (processes in node namespaces also die with their namespace)."""
        doc = {
            "count": self.count,
            "relay": {"pid": self.relay.pid, "port": self.relay_port} if self.relay else None,
            "apiservers": {n: p.pid for n, p in self.apiservers.items() if p.poll() is None},
            "agents": {n: a.pid for n, a in self.agents.items() if a.running},
            "bgp_mode": self.bgp_mode,
        }
        tmp = self.dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.dir / STATE_FILE)


def _openssl(args: list[str]) -> None:
    res = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise LabError(f"openssl {' '.join(args[:2])} failed: {res.stderr.strip()[-500:]}")


def recorded(net: LabNetwork) -> dict[str, Any] | None:
    """What `lab up --control-plane` recorded for this lab, or None."""
    try:
        doc: dict[str, Any] = json.loads((net.state_dir / "cpvip" / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return doc


def stop_recorded(net: LabNetwork) -> list[str]:
    """Stop the relay recorded for this lab (checked by command line: a recycled PID is left alone).
    Agents and API servers run inside node namespaces and end with them (LabNetwork.down)."""
    doc = recorded(net) or {}
    relay = doc.get("relay") or {}
    pid = int(relay.get("pid") or 0)
    if pid and _is_relay(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        return [f"stopped etcd relay pid {pid}"]
    return []


def _is_relay(pid: int) -> bool:
    try:
        return b"kubevip.lab.relay" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def lab_status(net: LabNetwork, cp: ControlPlane) -> dict[str, Any] | None:
    """The `control_plane` key of `lab status -o json`, or None without `--control-plane`."""
    doc = recorded(net)
    if doc is None:
        return None
    mode = str(doc.get("bgp_mode") or "ecmp")
    return ControlPlaneVipLab(cp, net, int(doc.get("count") or 1), bgp_mode=mode).status()


def up(
    cp: ControlPlane, net: LabNetwork, count: int, extra_env: Mapping[str, str] | None = None,
    bgp_mode: str = "ecmp",
) -> list[str]:
    """`kubevip lab up --control-plane N`: start what is missing (idempotent: a running setup is kept)."""
    doc = recorded(net)
    if doc is not None:
        relay = doc.get("relay") or {}
        if (relay.get("pid") and _is_relay(int(relay["pid"])) and len(doc.get("agents") or {}) == count
                and doc.get("bgp_mode", "ecmp") == bgp_mode):
            return [f"control-plane VIP already running on {count} nodes"]
        stop_recorded(net)
    lab = ControlPlaneVipLab(cp, net, count, die_with_parent=False, agent_extra_env=dict(extra_env or {}),
                             bgp_mode=bgp_mode)
    started = time.monotonic()
    lab.start()
    lines = [
        f"control plane on {', '.join(n.name for n in lab.nodes)} in {time.monotonic() - started:.1f}s: "
        f"VIP {' / '.join(map(str, lab.vips.values()))} port {PORT}",
    ]
    if lab.announced_by_bgp:  # the router must have the VIPs, and the bgp_client reach the API server
        lines += lab.wait_bgp_reachable()
    client = lab.status()["client_netns"]
    lines.append(f"kubeconfigs through the VIP (inside {client}): "
                 f"{' '.join(str(lab.kubeconfig(f)) for f in lab.families)}")
    return lines


def _instance(lab_id: str) -> tuple[ControlPlane, LabNetwork]:
    from kubevip.lab.instance import LabInstance

    inst = LabInstance(lab_id)
    return ControlPlane.load(inst.state_dir), LabNetwork(lab_id, state_dir=inst.state_dir)


def instance_up(lab_id: str, count: int, bgp_mode: str = "ecmp") -> list[str]:
    """The `--control-plane N` step of `kubevip lab up` (after the lab itself is up)."""
    cp, net = _instance(lab_id)
    return up(cp, net, count, bgp_mode=bgp_mode)


def instance_status(lab_id: str) -> dict[str, Any] | None:
    cp, net = _instance(lab_id)
    return lab_status(net, cp)


def instance_down(lab_id: str) -> list[str]:
    from kubevip.lab.instance import LabInstance

    return stop_recorded(LabNetwork(lab_id, state_dir=LabInstance(lab_id).state_dir))
