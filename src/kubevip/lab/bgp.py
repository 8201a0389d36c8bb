"""The lab's BGP router: a namespace on the node subnet running gobgpd, bird2 or FRR, and a client behind it.

`kubevip lab up --bgp DAEMON` adds a router namespace (host .1 of the lab subnet, see topology.py) peered
with every node over IPv4 (MP-BGP carries both families), and a `bgp_client` namespace on its own link
behind the router, so scripts can read the router's RIB and test reachability of VIPs through it.
On a single-stack lab (`--stack ipv4|ipv6`) both namespaces have only that family, and the sessions run
over it (IPv6-only: over IPv6; the router id stays the 32-bit 198.18.S.1, which is only an id there).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubevip.errors import BgpError, LabError
from kubevip.ip import IPAddress
from kubevip.lab import procs, topology
from kubevip.lab.network import ENDPOINT_SYSCTLS, IPV6_OFF, LabNetwork
from kubevip.lab.routers import DAEMONS, Neighbor, Router, make_router, missing_prerequisites
from kubevip.lab.tcpprobe import probe_argv

ROUTER_AS = 65000
NODE_AS = 65001
# The client link lives only inside the router and client namespaces: documentation ranges, no clash.
CLIENT_LINK_V4 = ipaddress.IPv4Network("192.0.2.0/24")
CLIENT_LINK_V6 = ipaddress.IPv6Network("2001:db8:b9::/64")


PREREQS_SCRIPT = Path(__file__).resolve().parents[3] / "hack" / "prereqs.sh"


def ensure_prerequisites(
    daemon: str, install: Callable[[], bool] | None = None,
    missing: Callable[[str], list[tuple[str, str]]] = missing_prerequisites,
) -> list[str]:
    """Install what `daemon` lacks with hack/prereqs.sh (root, in a checkout), else LabError naming each
    missing program, user or group and its package; returns one line per action taken."""
    lacking = missing(daemon)
    if not lacking:
        return []
    what = ", ".join(f"{w} (package {p})" for w, p in lacking)
    installer = install if install is not None else _run_prereqs
    if installer():
        still = missing(daemon)
        if not still:
            return [f"installed what --bgp {daemon} needs: {what}"]
        what = ", ".join(f"{w} (package {p})" for w, p in still)
    pkgs = " ".join(sorted({p for _, p in lacking}))
    raise LabError(
        f"--bgp {daemon} needs {what}: install them with `sudo {PREREQS_SCRIPT}` "
        f"(or `apt-get install {pkgs}`), then run `kubevip lab up` again"
    )


def _run_prereqs() -> bool:
    """Run hack/prereqs.sh when it is there and we are root; False when it cannot run or failed."""
    if os.geteuid() != 0 or not PREREQS_SCRIPT.exists():
        return False
    res = subprocess.run([str(PREREQS_SCRIPT)], capture_output=True, text=True, timeout=1800, check=False)
    return res.returncode == 0


def _ip(*args: str) -> None:
    res = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {res.stderr.strip()}")


def _sysctl(netns: str, *settings: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", netns, "sysctl", "-q", "-e", "-w", *settings],
        capture_output=True,
        timeout=30,
        check=False,
    )


class LabBgp:
    """The router and bgp_client of one lab; state in <state_dir>/bgp.json."""

    def __init__(self, net: LabNetwork, state_dir: Path) -> None:
        self.net = net
        self.state_file = state_dir / "bgp.json"

    @property
    def router_netns(self) -> str:
        return f"kvl-{self.net.lab_id}-rt"

    @property
    def client_netns(self) -> str:
        return f"kvl-{self.net.lab_id}-bc"

    def state(self) -> dict[str, Any] | None:
        try:
            doc: dict[str, Any] = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        return doc

    def up(self, daemon: str) -> list[str]:
        """Create the router and client namespaces and start `daemon` (idempotent for the same daemon)."""
        if daemon not in DAEMONS:
            raise LabError(f"--bgp {daemon}: use one of {', '.join(DAEMONS)}")
        old = self.state()
        if old is not None:
            if old["daemon"] == daemon and all(procs.is_exe(p, e) for p, e in old["pids"]):
                return [f"BGP router ({daemon}) already running in {old['router']['netns']}"]
            self.down()
        installed = ensure_prerequisites(daemon)
        t = self.net.topo
        has4, has6 = 4 in t.families, 6 in t.families
        rv4 = topology.host_v4(t.slot, topology.ROUTER_HOST)
        rv6 = topology.host_v6(t.slot, topology.ROUTER_HOST)
        rt, bc = self.router_netns, self.client_netns
        for ns in (rt, bc):
            _ip("netns", "add", ns)
            if not has6:  # as in the lab's other namespaces: no IPv6 at all (before links exist)
                _sysctl(ns, *IPV6_OFF)
            _ip("-n", ns, "link", "set", "lo", "up")
            _sysctl(ns, *ENDPOINT_SYSCTLS)
        _sysctl(rt, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        port = f"rt{t.slot}"[:15]
        _ip("-n", t.bridge_netns, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", rt)
        _ip("-n", t.bridge_netns, "link", "set", port, "master", "br0", "up")
        if has4:
            _ip("-n", rt, "addr", "add", f"{rv4}/{t.subnet_v4.prefixlen}", "dev", "eth0")
        if has6:
            _ip("-n", rt, "addr", "add", f"{rv6}/{t.subnet_v6.prefixlen}", "dev", "eth0", "nodad")
        _ip("-n", rt, "link", "set", "eth0", "up")
        c_rt4, c_bc4 = CLIENT_LINK_V4.network_address + 1, CLIENT_LINK_V4.network_address + 2
        c_rt6, c_bc6 = CLIENT_LINK_V6.network_address + 1, CLIENT_LINK_V6.network_address + 2
        _ip("-n", rt, "link", "add", "client0", "type", "veth", "peer", "name", "eth0", "netns", bc)
        if has4:
            _ip("-n", rt, "addr", "add", f"{c_rt4}/24", "dev", "client0")
            _ip("-n", bc, "addr", "add", f"{c_bc4}/24", "dev", "eth0")
        if has6:
            _ip("-n", rt, "addr", "add", f"{c_rt6}/64", "dev", "client0", "nodad")
            _ip("-n", bc, "addr", "add", f"{c_bc6}/64", "dev", "eth0", "nodad")
        _ip("-n", rt, "link", "set", "client0", "up")
        _ip("-n", bc, "link", "set", "eth0", "up")
        if has4:
            _ip("-n", bc, "route", "add", "default", "via", str(c_rt4))
        if has6:
            _ip("-n", bc, "-6", "route", "add", "default", "via", str(c_rt6))
        # Nodes have no default route: replies to the bgp_client go back through the router.
        for n in self.net.nodes:
            if has4:
                _ip("-n", n.netns, "route", "replace", str(CLIENT_LINK_V4), "via", str(rv4))
            if has6:
                _ip("-n", n.netns, "-6", "route", "replace", str(CLIENT_LINK_V6), "via", str(rv6))
        # FRR runs as user frr: its directory must be reachable, so not under root's home.
        workdir = Path(f"/tmp/kubevip-lab-{self.net.lab_id}-bgp")
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(mode=0o711)
        workdir.chmod(0o711)
        # Sessions over IPv4 unless the lab is IPv6-only; MP-BGP carries whatever families there are.
        neighbors = [Neighbor(n.ipv4 if has4 else n.ipv6, NODE_AS) for n in self.net.nodes]
        if has4 and has6:
            # A second session per node over IPv6, for a second speaker on the node: the control-plane
            # agent (`lab up --control-plane N`) runs its own ExaBGP beside the Service agent's, and a
            # router keeps one session per neighbour address (cpvip.py).
            neighbors += [Neighbor(n.ipv6, NODE_AS) for n in self.net.nodes]
        else:
            # Single stack: the control-plane agent's session comes from a second address of the node
            # (topology.CP_SESSION_HOSTS, added by `lab up --control-plane`); idle until then.
            count = min(len(self.net.nodes), topology.CP_SESSION_HOSTS[1] - topology.CP_SESSION_HOSTS[0] + 1)
            neighbors += [Neighbor(topology.cp_session_address(t, i), NODE_AS) for i in range(count)]
        router = make_router(daemon, rt, workdir / daemon, ROUTER_AS, rv4, neighbors)

        def only(a: IPAddress) -> str | None:  # the status JSON's null for a family the lab lacks
            return str(a) if a.version in t.families else None

        doc: dict[str, Any] = {
            "daemon": daemon,
            "workdir": str(workdir),
            "pids": [],
            "router": {"netns": rt, "daemon": daemon, "asn": ROUTER_AS, "ipv4": only(rv4), "ipv6": only(rv6)},
            "bgp_client": {"netns": bc, "ipv4": only(c_bc4), "ipv6": only(c_bc6)},
            "bridge_port": port,
        }
        self.state_file.write_text(json.dumps(doc, indent=1))
        router.start()
        doc["pids"] = [[pid, _daemon_exe(pid)] for pid in router.pids]
        self.state_file.write_text(json.dumps(doc, indent=1))
        shown = ", ".join(a for a in (only(rv4), only(rv6)) if a)
        return [*installed,
                f"started BGP router {daemon} in {rt} ({shown}, AS {ROUTER_AS}); client {bc} behind it"]

    def agent_env(self) -> dict[str, str]:
        """Settings that put the lab's agents in BGP mode peered with the router ({} without a router):
        VIPs on lo, no ARP / NDP, IPv4 session carrying both families."""
        doc = self.state()
        if doc is None:
            return {}
        return {
            "vip_arp": "false",
            "bgp_enable": "true",
            "vip_interface": "lo",
            "bgp_as": str(NODE_AS),
            "bgp_peers": (f"{doc['router']['ipv4']}:{ROUTER_AS}" if doc["router"]["ipv4"]
                          else f"[{doc['router']['ipv6']}]:{ROUTER_AS}"),
            "bgp_hold_time": "9",
            "bgp_keepalive_interval": "3",
        }

    def control_plane_env(self, node_ipv6: IPAddress, index: int = 0) -> dict[str, str]:
        """Settings for a control-plane agent beside a Service agent ({} without a router). Dual stack:
        BGP over the node's IPv6 session (the Service agent has the IPv4 one) with its own router id, the
        low 32 bits of the node's IPv6 address. Single stack: over the session from the node's second
        address (`cp_session_address(index)`, bgp_sourceip, also the next hop), the router id the low 32
        bits of that address (an IPv6-only node has no IPv4 address to take one from)."""
        doc = self.state()
        if doc is None:
            return {}
        if doc["router"]["ipv4"] and doc["router"]["ipv6"]:
            return {
                **self.agent_env(),
                "bgp_peers": f"[{doc['router']['ipv6']}]:{ROUTER_AS}",
                "bgp_routerid": str(ipaddress.IPv4Address(int(node_ipv6) & 0xFFFFFFFF)),
            }
        source = topology.cp_session_address(self.net.topo, index)
        return {
            **self.agent_env(),
            "bgp_sourceip": str(source),
            "bgp_routerid": str(ipaddress.IPv4Address(int(source) & 0xFFFFFFFF)),
        }

    def reader(self) -> Router | None:
        """A handle on the running router, only to read its RIB (None without a router)."""
        doc = self.state()
        if doc is None:
            return None
        daemon = doc["daemon"]
        return make_router(
            daemon, doc["router"]["netns"], Path(doc["workdir"]) / daemon, ROUTER_AS,
            topology.host_v4(self.net.topo.slot, topology.ROUTER_HOST), [],
        )

    def wait_demo(self, vips: list[IPAddress], port: int, within: float = 60.0) -> list[str]:
        """Until the router's RIB holds every VIP and (if the daemon programs the kernel) the bgp_client
        reaches each on `port`; LabError naming what is missing at the deadline."""
        router = self.reader()
        doc = self.state()
        if router is None or doc is None:
            raise LabError("no BGP router in this lab: run `kubevip lab up --bgp DAEMON`")
        want = {ipaddress.ip_network(v) for v in vips}
        families = sorted({v.version for v in vips})
        deadline = time.monotonic() + within
        rib: dict[Any, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(BgpError):
                rib = {k: v for f in families for k, v in asyncio.run(router.rib(f)).items()}
            if want <= set(rib):
                break
            time.sleep(0.1)
        else:
            missing = sorted(map(str, want - set(rib)))
            raise LabError(f"the {doc['daemon']} router has no route for {missing}; "
                           f"see the agent logs in {self.state_file.parent}")
        lines = [f"router RIB: {p} via {', '.join(sorted(map(str, rib[p])))}" for p in sorted(want, key=str)]
        if not router.installs_routes:
            return [*lines, f"{doc['daemon']} programs no kernel routes: bgp_client reachability not checked"]
        for vip in vips:
            answer = ""
            while time.monotonic() < deadline and not answer:
                answer = self.probe(vip, port)
            if not answer:
                raise LabError(f"bgp_client cannot reach {vip}:{port} through the router")
            lines.append(f"bgp_client -> {vip}:{port} answered by {answer}")
        return lines

    def probe(self, vip: IPAddress, port: int, wait: float = 1.0) -> str:
        """From the bgp_client namespace: connect to vip:port, return the answer ("" when none)."""
        doc = self.state()
        if doc is None:
            return ""
        res = subprocess.run(
            ["ip", "netns", "exec", doc["bgp_client"]["netns"], *probe_argv(str(vip), port, wait)],
            capture_output=True, text=True, timeout=wait + 30, check=False,
        )
        return res.stdout.strip()

    def to_json(self) -> dict[str, Any]:
        """The `router` and `bgp_client` keys of `kubevip lab status -o json` (empty without --bgp)."""
        doc = self.state()
        return {} if doc is None else {"router": doc["router"], "bgp_client": doc["bgp_client"]}

    def down(self) -> list[str]:
        """Stop the daemon (by recorded PID, only if it still runs the same program) and remove both netns."""
        doc = self.state()
        if doc is None:
            return []
        removed = []
        for n in self.net.nodes:
            for fam, link in (("-4", CLIENT_LINK_V4), ("-6", CLIENT_LINK_V6)):
                subprocess.run(["ip", "-n", n.netns, fam, "route", "del", str(link)], capture_output=True,
                               check=False)
        for pid, exe in doc["pids"]:
            if exe and procs.kill_if_exe(pid, exe, grace=5):
                removed.append(f"BGP router pid {pid}")
        for ns in (doc["router"]["netns"], doc["bgp_client"]["netns"]):
            # Whatever still runs in our own namespaces was started for this lab (e.g. a PID recorded
            # before its exec): stop it by PID before the namespace goes.
            for pid in _netns_pids(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    removed.append(f"pid {pid} in {ns}")
            if subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False).returncode == 0:
                removed.append(f"netns {ns}")
        shutil.rmtree(doc["workdir"], ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        return removed


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _daemon_exe(pid: int, limit: float = 5.0) -> str:
    """The program `pid` runs once "ip netns exec" has exec'd the daemon ("" if it never does)."""
    ip_exe = str(Path(shutil.which("ip") or "/usr/sbin/ip").resolve())
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        exe = _exe(pid)
        if exe and exe != ip_exe:
            return exe
        time.sleep(0.02)
    return ""


def _netns_pids(ns: str) -> list[int]:
    res = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in res.stdout.split()]
