"""A small BGP topology in network namespaces: a router, N nodes on one subnet, a client behind the router.

    client (10.78.0.2, fd78::2) -- c0 [router 10.77.0.1 / fd77::1 on br0] -- nI (node I: 10.77.0.1I, fd77::1I)

Names start with `kvt-bgp-<random>`; everything is removed by `close()` (processes by PID, then netns).
Used by tests/net/test_bgp*.py and bench/bgp.py.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubevip.bgp.settings import BgpSettings, Peer
from kubevip.bgp.speaker import Speaker
from kubevip.lab.routers import Neighbor, Router, make_router

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ROUTER_AS = 65000
NODE_AS = 65001
ROUTER_V4 = ipaddress.IPv4Address("10.77.0.1")
ROUTER_V6 = ipaddress.IPv6Address("fd77::1")
CLIENT_V4 = ipaddress.IPv4Address("10.78.0.2")
CLIENT_V6 = ipaddress.IPv6Address("fd78::2")

SYSCTLS = (
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
    "net.ipv6.conf.all.accept_ra=0",
    "net.ipv6.conf.default.accept_ra=0",
)


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {res.stderr.strip()}")
    return res


@dataclass(frozen=True)
class Node:
    netns: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address

    def ip(self, version: int) -> IPAddress:
        return self.ipv4 if version == 4 else self.ipv6


class BgpTopology:
    """Creates the namespaces and links; `start_router` and `speaker` add the moving parts."""

    def __init__(self, nodes: int = 2) -> None:
        self.prefix = f"kvt-bgp-{secrets.token_hex(3)}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.workdir.chmod(0o711)  # FRR runs as user frr and must reach its directory inside
        self.router_ns = f"{self.prefix}-r"
        self.client_ns = f"{self.prefix}-c"
        self.nodes = [
            Node(
                f"{self.prefix}-n{i}",
                ipaddress.IPv4Address(f"10.77.0.{11 + i}"),
                ipaddress.IPv6Address(f"fd77::{11 + i}"),
            )
            for i in range(nodes)
        ]
        self.router: Router | None = None
        self.speakers: list[Speaker] = []
        self._namespaces: list[str] = []
        try:
            self._create()
        except BaseException:
            self.close_sync()
            raise

    def _netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        for s in SYSCTLS:
            sh("ip", "netns", "exec", name, "sysctl", "-qw", s)

    def _create(self) -> None:
        r = self.router_ns
        self._netns(r)
        sh(
            "ip",
            "netns",
            "exec",
            r,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        )
        sh("ip", "-n", r, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", r, "addr", "add", f"{ROUTER_V4}/24", "dev", "br0")
        sh("ip", "-n", r, "addr", "add", f"{ROUTER_V6}/64", "dev", "br0", "nodad")
        sh("ip", "-n", r, "link", "set", "br0", "up")
        for i, node in enumerate(self.nodes):
            self._netns(node.netns)
            sh(
                "ip",
                "-n",
                r,
                "link",
                "add",
                f"n{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                node.netns,
            )
            sh("ip", "-n", r, "link", "set", f"n{i}", "master", "br0", "up")
            self._endpoint(node.netns, node.ipv4, node.ipv6, 24, ROUTER_V4, ROUTER_V6)
        self._netns(self.client_ns)
        sh(
            "ip",
            "-n",
            r,
            "link",
            "add",
            "c0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.client_ns,
        )
        sh("ip", "-n", r, "addr", "add", "10.78.0.1/24", "dev", "c0")
        sh("ip", "-n", r, "addr", "add", "fd78::1/64", "dev", "c0", "nodad")
        sh("ip", "-n", r, "link", "set", "c0", "up")
        self._endpoint(
            self.client_ns,
            CLIENT_V4,
            CLIENT_V6,
            24,
            ipaddress.IPv4Address("10.78.0.1"),
            ipaddress.IPv6Address("fd78::1"),
        )

    @staticmethod
    def _endpoint(ns: str, v4: IPAddress, v6: IPAddress, plen: int, gw4: IPAddress, gw6: IPAddress) -> None:
        sh("ip", "-n", ns, "addr", "add", f"{v4}/{plen}", "dev", "eth0")
        sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "route", "add", "default", "via", str(gw4))
        sh("ip", "-n", ns, "-6", "route", "add", "default", "via", str(gw6))

    def router_ip(self, version: int) -> IPAddress:
        return ROUTER_V4 if version == 4 else ROUTER_V6

    def start_router(self, daemon: str, session_version: int) -> Router:
        """Start `daemon` in the router namespace, peered with every node over `session_version`."""
        neighbors = [Neighbor(n.ip(session_version), NODE_AS) for n in self.nodes]
        self.router = make_router(
            daemon, self.router_ns, self.workdir / daemon, ROUTER_AS, ROUTER_V4, neighbors
        )
        self.router.start()
        return self.router

    def settings(self, session_version: int, **extra: object) -> BgpSettings:
        peer = Peer(self.router_ip(session_version), ROUTER_AS)
        return BgpSettings(
            enabled=True, local_as=NODE_AS, peers=(peer,), hold_time=9, keepalive_interval=3, **extra
        )  # type: ignore[arg-type]

    def speaker(self, index: int, settings: BgpSettings, **kwargs: object) -> Speaker:
        node = self.nodes[index]
        sp = Speaker(
            settings,
            [node.ipv4, node.ipv6],
            runtime_dir=self.workdir / f"speaker{index}-{len(self.speakers)}",
            command_prefix=("ip", "netns", "exec", node.netns),
            **kwargs,  # type: ignore[arg-type]
        )
        self.speakers.append(sp)
        return sp

    def bind_vip(self, index: int, vip: IPAddress) -> None:
        plen = 32 if vip.version == 4 else 128
        sh("ip", "-n", self.nodes[index].netns, "addr", "add", f"{vip}/{plen}", "dev", "lo")

    def ping_from_client(self, vip: IPAddress) -> bool:
        res = sh("ip", "netns", "exec", self.client_ns, "ping", "-c1", "-W1", "-n", str(vip), check=False)
        return res.returncode == 0

    async def close(self) -> None:
        for sp in self.speakers:
            await sp.close()
        self.speakers.clear()
        self.close_sync()

    def close_sync(self) -> None:
        """Stop the router by PID and delete the namespaces and the work directory."""
        if self.router is not None:
            self.router.stop()
            self.router = None
        for ns in reversed(self._namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self._namespaces.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def expected(
    pairs: Sequence[tuple[IPAddress, Sequence[IPAddress]]],
) -> dict[ipaddress.IPv4Network | ipaddress.IPv6Network, frozenset[IPAddress]]:
    """{vip/32 or /128: next hops} for comparing with Router.rib()."""
    return {ipaddress.ip_network(v): frozenset(h) for v, h in pairs}
