"""The lab network: a bridge namespace, N node namespaces and a client namespace, the stack's families.

Topology (slot s, see topology.py): every namespace has `eth0` with 198.18.s.H/24 and fd6b:7669:7000:s::H/64
on one bridge (namespace kvl-<id>-br). The host joins the bridge through `kvl-<id>` (host number 254) so
node namespaces reach the API server; nothing has a default route, so nothing leaves the lab.
With `--stack ipv4` the lab namespaces have IPv6 disabled (not even link-local addresses); with
`--stack ipv6` no IPv4 address is configured on the lab network (loopback keeps 127.0.0.1).
"""

from __future__ import annotations

import asyncio
import fcntl
import ipaddress
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from kubevip.errors import LabError
from kubevip.ip import IPAddress
from kubevip.lab import registry, topology
from kubevip.lab.topology import Endpoint, Topology
from kubevip.tasks import bounded

# Let neighbour caches follow gratuitous ARP / unsolicited NA (VIP moves), skip DAD (addresses usable
# at once), and ignore router advertisements (no route may appear that leads out of the lab).
# An IPv4-only lab: no IPv6 at all in its namespaces (set before links exist, so they inherit it).
IPV6_OFF = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
ENDPOINT_SYSCTLS = (
    "net.ipv4.conf.all.arp_accept=1",
    "net.ipv4.conf.default.arp_accept=1",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_untracked_na=1",
    "net.ipv6.conf.default.accept_untracked_na=1",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
)


def default_state_dir(lab_id: str) -> Path:
    base = os.environ.get("KUBEVIP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubevip"
    )
    return Path(base) / "lab" / lab_id


class LabNetwork:
    """One lab instance's namespaces and links; `up()` creates them, `down()` removes exactly those."""

    def __init__(
        self, lab_id: str, nodes: int = 3, state_dir: Path | None = None, reap_with_owner: bool = False,
        stack: str = topology.DEFAULT_STACK,
    ) -> None:
        """`reap_with_owner`: if this process dies without down(), the next lab started removes this one.
        `stack` applies when up() creates the network; a recorded network keeps its own stack."""
        self.lab_id = topology.validate_lab_id(lab_id)
        self.node_count = nodes
        self.stack = topology.validate_stack(stack)
        self.reap_with_owner = reap_with_owner
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir(lab_id)
        self.topology: Topology | None = None
        self._load()

    # ---- the plan, once up ---------------------------------------------------------------------------

    @property
    def topo(self) -> Topology:
        if self.topology is None:
            raise LabError(f"lab {self.lab_id} is not up: call up() first")
        return self.topology

    @property
    def nodes(self) -> tuple[Endpoint, ...]:
        return self.topo.nodes

    @property
    def client(self) -> Endpoint:
        return self.topo.client

    @property
    def families(self) -> tuple[int, ...]:
        """The IP versions this lab has: (4, 6), (4,) or (6,)."""
        return self.topo.families

    @property
    def uplink_ipv4(self) -> ipaddress.IPv4Address:
        """The host's IPv4 address on the lab bridge (configured unless the lab is IPv6-only)."""
        return self.topo.uplink_ipv4

    @property
    def api_address(self) -> IPAddress:
        """The host's address node namespaces reach the API server at (IPv4 unless IPv6-only)."""
        return self.topo.api_address

    @property
    def uplink_ipv6(self) -> ipaddress.IPv6Address:
        return self.topo.uplink_ipv6

    @property
    def subnets(self) -> dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The subnet of each family the lab has."""
        all_: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network] = {
            4: self.topo.subnet_v4, 6: self.topo.subnet_v6}
        return {f: all_[f] for f in self.families}

    @property
    def vip_pool(self) -> dict[int, tuple[IPAddress, IPAddress]]:
        """Free node-subnet addresses per family the lab has (4, 6) as (first, last), for use as VIPs."""
        all_: dict[int, tuple[IPAddress, IPAddress]] = {4: self.topo.vip_pool_v4, 6: self.topo.vip_pool_v6}
        return {f: all_[f] for f in self.families}

    def vip(self, family: int, index: int = 0) -> IPAddress:
        """The index-th address of the VIP pool of `family` (4 or 6)."""
        if family not in self.families:
            raise LabError(f"lab {self.lab_id} is {self.topo.stack}: it has no IPv{family} VIPs")
        first, last = self.vip_pool[family]
        if int(first) + index > int(last):
            raise LabError(f"VIP pool of IPv{family} has only {int(last) - int(first) + 1} addresses")
        return first + index

    def node(self, name: str) -> Endpoint:
        for n in self.nodes:
            if n.name == name:
                return n
        raise LabError(f"lab {self.lab_id} has no node {name!r} (nodes: {[n.name for n in self.nodes]})")

    # ---- lifecycle -----------------------------------------------------------------------------------

    def up(self) -> bool:
        """Create the lab if it is not complete; returns True if something was created (idempotent)."""
        if self.topology is not None and self.is_up():
            return False
        if self.topology is not None:
            self.down()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with _global_lock():
            _reap_orphans()
            slot = topology.free_slot(_used_slots())
            topo = topology.plan(self.lab_id, slot, self.node_count, self.stack)
            # Record before creating: a crash half-way still leaves a complete list for down().
            self.topology = topo
            self._save()
            if self.reap_with_owner:
                registry.register(self.lab_id, self.state_dir)
            try:
                self._create(topo)
            except LabError:
                self.down()
                raise
        return True

    def down(self) -> list[str]:
        """Remove every namespace and link this lab recorded (also after a crash); returns what it removed."""
        removed: list[str] = []
        topo = self.topology
        if topo is not None:
            present = _list_netns()
            # Pod namespaces (lab/podnet.py) first: their veths hang off the node namespaces.
            pods = [ns for ns in present if ns.startswith(f"kvl-{self.lab_id}-pod-")]
            existing = pods + [ns for ns in topo.netns_names if ns in set(present)]
            for ns in existing:
                _kill_netns_processes(ns)
            # The uplink first: once its peer's namespace is deleted the kernel removes it
            # asynchronously, and a delete racing with that would fail.
            if _link_exists(topo.uplink):
                _exec(["ip", "link", "del", topo.uplink], check=False)
                removed.append(f"link {topo.uplink}")
            for ns in existing:
                _ip("netns", "del", ns)
                removed.append(f"netns {ns}")
        self.topology = None
        (self.state_dir / "network.json").unlink(missing_ok=True)
        registry.unregister(self.lab_id)
        return removed

    def is_up(self) -> bool:
        """True when every recorded namespace and the uplink exist."""
        if self.topology is None:
            return False
        existing = set(_list_netns())
        return all(ns in existing for ns in self.topology.netns_names) and _link_exists(self.topology.uplink)

    # ---- running things inside the lab ---------------------------------------------------------------

    def run(
        self, netns: str, argv: Sequence[str], check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside `netns` and return its output (LabError with stderr if check and it fails)."""
        return _exec(["ip", "netns", "exec", netns, *argv], check=check, timeout=timeout)

    async def run_async(
        self, netns: str, argv: Sequence[str], check: bool = True, deadline: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """`run` without blocking the event loop (killed after `deadline` seconds)."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", netns, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = await bounded(proc.communicate(), deadline)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise LabError(f"{' '.join(argv)} in {netns} did not finish in {deadline}s") from None
        res = subprocess.CompletedProcess(list(argv), proc.returncode or 0, out.decode(), err.decode())
        if check and res.returncode != 0:
            raise LabError(f"{' '.join(argv)} in {netns} failed ({res.returncode}): {res.stderr.strip()}")
        return res

    def popen(self, netns: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start a long-running process inside `netns`; down() kills whatever still runs in the lab."""
        return subprocess.Popen(["ip", "netns", "exec", netns, *argv], **kwargs)

    # ---- status ----------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The network part of `kubevip lab status -o json` (see docs/lab.md): a family the lab's stack
        lacks keeps its keys, with `null` values."""
        return network_json(self.topo)

    # ---- internals -----------------------------------------------------------------------------------

    def _create(self, t: Topology) -> None:
        for ns in t.netns_names:
            _ip("netns", "add", ns)
            if 6 not in t.families and ns != t.bridge_netns:
                # Before any link exists: lo loses ::1, and links created later start without IPv6.
                _sysctl(ns, *IPV6_OFF)
            _ip("-n", ns, "link", "set", "lo", "up")
        br = t.bridge_netns
        # The bridge namespace only switches frames: no addresses, no IPv6 autoconf noise on its ports.
        _sysctl(br, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        _ip("-n", br, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "mcast_snooping", "0")
        _ip("-n", br, "link", "set", "br0", "up")
        for ep in (*t.nodes, t.client):
            self._attach(t, ep)
        # The host side: on-link with the nodes, so they reach the API server; no forwarding added.
        _ip("link", "add", t.uplink, "address", topology.mac(t.slot, topology.UPLINK_HOST), "type", "veth",
            "peer", "name", "uplink", "address", topology.mac(t.slot, topology.UPLINK_HOST, 1), "netns", br)
        _sysctl(None, f"net.ipv6.conf.{t.uplink}.accept_dad=0", f"net.ipv6.conf.{t.uplink}.accept_ra=0")
        if 4 in t.families:
            _ip("addr", "add", f"{t.uplink_ipv4}/{t.subnet_v4.prefixlen}", "dev", t.uplink)
        if 6 in t.families:
            _ip("addr", "add", f"{t.uplink_ipv6}/{t.subnet_v6.prefixlen}", "dev", t.uplink, "nodad")
        else:  # not even a link-local address towards the lab
            _sysctl(None, f"net.ipv6.conf.{t.uplink}.disable_ipv6=1")
        _ip("link", "set", t.uplink, "up")
        _ip("-n", br, "link", "set", "uplink", "master", "br0", "up")

    def _attach(self, t: Topology, ep: Endpoint) -> None:
        host = int(ep.ipv4) - int(t.subnet_v4.network_address)
        _ip("-n", t.bridge_netns, "link", "add", ep.bridge_port, "address", topology.mac(t.slot, host, 1),
            "type", "veth", "peer", "name", ep.interface, "address", ep.mac, "netns", ep.netns)
        _sysctl(ep.netns, *ENDPOINT_SYSCTLS)
        _sysctl(ep.netns, f"net.ipv4.conf.{ep.interface}.arp_accept=1",
                f"net.ipv6.conf.{ep.interface}.accept_untracked_na=1",
                f"net.ipv6.conf.{ep.interface}.accept_dad=0", f"net.ipv6.conf.{ep.interface}.accept_ra=0")
        if 6 not in t.families:
            _sysctl(ep.netns, *IPV6_OFF, f"net.ipv6.conf.{ep.interface}.disable_ipv6=1")
        elif 4 not in t.families:
            # The kernel drops IPv6 addresses when a link goes down (IPv4 ones stay): on an IPv6-only
            # node a link bounced by a test or benchmark would come back without any way to the API
            # server. A real host's network manager re-adds them; the lab keeps them instead.
            _sysctl(ep.netns, f"net.ipv6.conf.{ep.interface}.keep_addr_on_down=1")
        if 4 in t.families:
            _ip("-n", ep.netns, "addr", "add", f"{ep.ipv4}/{t.subnet_v4.prefixlen}", "dev", ep.interface)
        if 6 in t.families:
            _ip("-n", ep.netns, "addr", "add", f"{ep.ipv6}/{t.subnet_v6.prefixlen}", "dev", ep.interface,
                "nodad")
        _ip("-n", ep.netns, "link", "set", ep.interface, "up")
        _ip("-n", t.bridge_netns, "link", "set", ep.bridge_port, "master", "br0", "up")

    def _save(self) -> None:
        t = self.topo
        doc = {"lab_id": t.lab_id, "slot": t.slot, "nodes": len(t.nodes), "stack": t.stack,
               "netns": list(t.netns_names), "links": [t.uplink]}
        tmp = self.state_dir / "network.json.tmp"
        tmp.write_text(json.dumps(doc, indent=1))
        tmp.replace(self.state_dir / "network.json")

    def _load(self) -> None:
        try:
            doc = json.loads((self.state_dir / "network.json").read_text())
        except (OSError, ValueError):
            return
        # Labs recorded before `--stack` existed were dual-stack.
        stack = str(doc.get("stack", topology.DEFAULT_STACK))
        self.topology = topology.plan(doc["lab_id"], int(doc["slot"]), int(doc["nodes"]), stack)
        self.node_count = int(doc["nodes"])
        self.stack = stack


def network_json(t: Topology) -> dict[str, Any]:
    """The network keys of `lab status -o json` for topology `t` (pure, so the nulls are unit-tested)."""

    def s(value: object | None) -> str | None:
        return None if value is None else str(value)

    def pool(first: IPAddress, last: IPAddress) -> str | None:
        return f"{first}-{last}" if first.version in t.families else None

    return {
        "stack": t.stack,
        "nodes": [
            {"name": n.name, "netns": n.netns, "interface": n.interface, "ipv4": s(t.configured(n.ipv4)),
             "ipv6": s(t.configured(n.ipv6)), "mac": n.mac}
            for n in t.nodes
        ],
        "client": {"netns": t.client.netns, "ipv4": s(t.configured(t.client.ipv4)),
                   "ipv6": s(t.configured(t.client.ipv6))},
        "subnets": {"ipv4": s(t.subnet_v4) if 4 in t.families else None,
                    "ipv6": s(t.subnet_v6) if 6 in t.families else None},
        "vip_pool": {"ipv4": pool(*t.vip_pool_v4), "ipv6": pool(*t.vip_pool_v6)},
        "uplink": {"interface": t.uplink, "ipv4": s(t.configured(t.uplink_ipv4)),
                   "ipv6": s(t.configured(t.uplink_ipv6))},
    }


def reap_orphans() -> list[str]:
    """Remove labs whose owning process died without tearing them down; returns what was removed."""
    with _global_lock():
        return _reap_orphans()


def _reap_orphans() -> list[str]:
    removed: list[str] = []
    for doc in registry.orphans():
        lab_id = doc["lab_id"]
        # Every name containing a lab's id belongs to that lab (ids are unique on the machine), so
        # this also catches namespaces other modules added (router, bgp client) after the crash.
        prefix = f"kvl-{lab_id}-"
        mine = [ns for ns in _list_netns() if ns.startswith(prefix)]
        for ns in mine:
            _kill_netns_processes(ns)
        if _link_exists(f"kvl-{lab_id}"):
            _exec(["ip", "link", "del", f"kvl-{lab_id}"], check=False)
            removed.append(f"link kvl-{lab_id}")
        for ns in mine:
            _exec(["ip", "netns", "del", ns], check=False)
            removed.append(f"netns {ns}")
        (Path(doc["state_dir"]) / "network.json").unlink(missing_ok=True)
        registry.unregister(lab_id)
    return removed


@contextmanager
def _global_lock() -> Iterator[None]:
    """Serialise slot allocation between labs started at the same time on this machine."""
    path = "/run/lock/kubevip-lab.lock" if os.path.isdir("/run/lock") else "/tmp/kubevip-lab.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _used_slots() -> set[int]:
    """Slots whose /24 or /64 any interface of the host already uses (other labs' uplinks among them;
    an IPv6-only lab's uplink has only its IPv6 address, an IPv4-only one only its IPv4)."""
    out = _exec(["ip", "-j", "addr", "show"]).stdout
    used: set[int] = set()
    for link in json.loads(out or "[]"):
        for a in link.get("addr_info", []):
            try:
                address = ipaddress.ip_address(a["local"])
            except (KeyError, ValueError):
                continue
            s = topology.slot_of(address)
            if s is not None:
                used.add(s)
    return used


def _list_netns() -> list[str]:
    out = _exec(["ip", "-j", "netns", "list"]).stdout
    return [e["name"] for e in json.loads(out or "[]")]


def _link_exists(name: str) -> bool:
    return _exec(["ip", "link", "show", "dev", name], check=False).returncode == 0


def _kill_netns_processes(ns: str) -> None:
    """Processes still inside one of our namespaces were started for this lab: stop them first."""
    pids = [int(p) for p in _exec(["ip", "netns", "pids", ns], check=False).stdout.split()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pids = [int(p) for p in _exec(["ip", "netns", "pids", ns], check=False).stdout.split()]
            if not pids:
                return
            time.sleep(0.05)


def _sysctl(netns: str | None, *settings: str) -> None:
    prefix = ["ip", "netns", "exec", netns] if netns else []
    # -e: a setting the kernel does not know (older kernels) is not fatal for the lab.
    _exec([*prefix, "sysctl", "-q", "-e", "-w", *settings])


def _ip(*args: str) -> None:
    _exec(["ip", *args])


def _exec(argv: Sequence[str], check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    try:
        res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} not found: install iproute2/procps (hack/prereqs.sh)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{' '.join(argv)} did not finish in {timeout}s") from None
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res
