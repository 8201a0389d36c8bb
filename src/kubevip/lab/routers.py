"""Reference BGP routers (gobgpd, bird2, FRR) run in a network namespace, for tests, the lab and benchmarks.

Each daemon gets its own configuration, control socket and PID file under `workdir`, is started inside
`netns` and stopped by the PID we started. `rib()` reads the router's table through the daemon's own
CLI: {prefix: {next hops}} over every path the router holds (several next hops = ECMP candidates).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from kubevip.errors import BgpError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.tasks import bounded

Rib = dict[IPNetwork, frozenset[IPAddress]]

DAEMONS = ("gobgpd", "bird2", "frr")
FRR_DIR = Path("/usr/lib/frr")


# What each daemon needs on the host: (kind, name, Debian package). `hack/prereqs.sh` installs them.
PREREQUISITES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "gobgpd": (("program", "gobgpd", "gobgpd"), ("program", "gobgp", "gobgpd")),
    "bird2": (("program", "bird", "bird2"), ("program", "birdc", "bird2")),
    "frr": (
        ("file", str(FRR_DIR / "zebra"), "frr"), ("file", str(FRR_DIR / "bgpd"), "frr"),
        ("program", "vtysh", "frr"), ("user", "frr", "frr"), ("group", "frrvty", "frr"),
    ),
}


def missing_prerequisites(
    daemon: str,
    which: Callable[[str], str | None] = shutil.which,
    exists: Callable[[str], bool] = os.path.exists,
    user: Callable[[str], bool] | None = None,
    group: Callable[[str], bool] | None = None,
) -> list[tuple[str, str]]:
    """(what is missing, the Debian package providing it) for `daemon`; empty when it can run."""
    import grp
    import pwd

    def has_user(name: str) -> bool:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        return True

    def has_group(name: str) -> bool:
        try:
            grp.getgrnam(name)
        except KeyError:
            return False
        return True

    checks: dict[str, Callable[[str], bool]] = {
        "program": lambda n: which(n) is not None, "file": exists,
        "user": user or has_user, "group": group or has_group,
    }
    return [(f"{kind} {name}", pkg) for kind, name, pkg in PREREQUISITES[daemon] if not checks[kind](name)]


@dataclass(frozen=True)
class Neighbor:
    address: IPAddress
    asn: int


class Router:
    """A BGP daemon in `netns`; subclasses know its configuration and CLI."""

    daemon = ""
    installs_routes = True  # whether the daemon programs the kernel FIB (gobgpd does not)

    def __init__(
        self,
        netns: str,
        workdir: Path,
        asn: int,
        router_id: ipaddress.IPv4Address,
        neighbors: Sequence[Neighbor],
    ) -> None:
        self.netns = netns
        self.workdir = workdir
        self.asn = asn
        self.router_id = router_id
        self.neighbors = tuple(neighbors)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._pids: list[int] = []
        # Control sockets live in workdir, so a second instance on the same workdir can read the RIB.
        self._sock = workdir / "bird.ctl"
        self.vty = workdir

    @property
    def pids(self) -> list[int]:
        """PIDs of every process this router runs (to record them and stop them from another process)."""
        return sorted({*self._pids, *(p.pid for p in self._procs)})

    # subclass hooks
    def _start(self) -> None:
        raise NotImplementedError

    async def rib(self, version: int) -> Rib:
        raise NotImplementedError

    async def established(self) -> int:
        """How many of its BGP sessions are established (benchmarks start once every node's is)."""
        raise NotImplementedError

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start()

    def stop(self) -> None:
        """Stop every process this router started, by PID."""
        for pid in self._pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for p in self._procs:
            with contextlib.suppress(ProcessLookupError):
                p.terminate()
        deadline = time.monotonic() + 5
        for pid in self._pids:
            while self._running(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError):
                if self._running(pid):
                    os.kill(pid, signal.SIGKILL)
        for p in self._procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs.clear()
        self._pids.clear()

    def _running(self, pid: int) -> bool:
        # A child of ours that exited stays a zombie, which signal 0 still finds, until it is reaped:
        # bird runs as our child (its PID is the Popen's), so stop() waited out its whole deadline.
        for p in self._procs:
            if p.pid == pid:
                return p.poll() is None
        return _alive(pid)

    def _popen(self, argv: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / log_name).open("ab")
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._procs.append(p)
        return p

    def _daemon_pid(self, pidfile: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                pid = int(pidfile.read_text().strip())
                self._pids.append(pid)
                return
            time.sleep(0.02)
        raise BgpError(f"{self.daemon} in {self.netns} wrote no PID file {pidfile}; see {self.workdir}")

    async def _cli(self, argv: Sequence[str], limit: float = 10.0) -> str:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.netns, *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            out, err = await bounded(proc.communicate(), limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise BgpError(f"{argv[0]} in {self.netns} did not answer in {limit}s") from None
        if proc.returncode != 0:
            raise BgpError(f"{' '.join(argv)} in {self.netns} failed: {err.decode().strip()}")
        return out.decode()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class GoBgpRouter(Router):
    daemon = "gobgpd"
    installs_routes = False
    api_port = 50051

    def _start(self) -> None:
        conf = [
            "[global.config]",
            f"  as = {self.asn}",
            f'  router-id = "{self.router_id}"',
            "",
        ]
        for n in self.neighbors:
            conf += [
                "[[neighbors]]",
                "  [neighbors.config]",
                f'    neighbor-address = "{n.address}"',
                f"    peer-as = {n.asn}",
            ]
            for fam in ("ipv4-unicast", "ipv6-unicast"):
                conf += [
                    "  [[neighbors.afi-safis]]",
                    "    [neighbors.afi-safis.config]",
                    f'      afi-safi-name = "{fam}"',
                ]
            conf.append("")
        path = self.workdir / "gobgpd.toml"
        path.write_text("\n".join(conf))
        self._popen(
            [
                "gobgpd",
                "-f",
                str(path),
                "-t",
                "toml",
                f"--api-hosts=127.0.0.1:{self.api_port}",
                "--pprof-disable",
                "-l",
                "info",
            ],
            "gobgpd.log",
        )

    async def rib(self, version: int) -> Rib:
        out = await self._cli(
            ["gobgp", "-p", str(self.api_port), "global", "rib", "-a", f"ipv{version}", "-j"]
        )
        data = json.loads(out) if out.strip() else {}
        rib: Rib = {}
        for prefix, paths in (data or {}).items():
            hops: set[IPAddress] = set()
            for path in paths:
                for attr in path.get("attrs", []):
                    if "nexthop" in attr:
                        hops.add(ipaddress.ip_address(attr["nexthop"]))
            rib[ipaddress.ip_network(prefix)] = frozenset(hops)
        return rib

    async def established(self) -> int:
        out = await self._cli(["gobgp", "-p", str(self.api_port), "neighbor", "-j"])
        peers = json.loads(out) if out.strip() else []
        # session_state is the FSM enum: 6 is ESTABLISHED (older releases print the name)
        return sum(str(p.get("state", {}).get("session_state", "")).lower() in ("6", "established")
                   for p in peers or [])


class BirdRouter(Router):
    daemon = "bird2"

    def _start(self) -> None:
        conf = [
            f'log "{self.workdir / "bird.log"}" all;',
            f"router id {self.router_id};",
            "protocol device { scan time 10; }",
            "protocol direct { ipv4; ipv6; }",
            # Export BGP routes to the kernel; "merge paths" turns equal paths into one ECMP route.
            "protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; merge paths on; }",
            "protocol kernel { ipv6 { import none; export where source = RTS_BGP; }; merge paths on; }",
        ]
        for i, n in enumerate(self.neighbors):
            conf += [
                f"protocol bgp node{i} {{",
                f"  local as {self.asn};",
                f"  neighbor {n.address} as {n.asn};",
                "  ipv4 { import all; export none; };",
                "  ipv6 { import all; export none; };",
                "}",
            ]
        path = self.workdir / "bird.conf"
        path.write_text("\n".join(conf) + "\n")
        pidfile = self.workdir / "bird.pid"
        p = self._popen(
            ["bird", "-f", "-c", str(path), "-s", str(self._sock), "-P", str(pidfile)], "bird.out"
        )
        self._pids.append(p.pid)  # "ip netns exec" execs bird in place: same PID

    async def rib(self, version: int) -> Rib:
        table = "master4" if version == 4 else "master6"
        # Only BGP routes carry "via" lines here (direct routes show "dev"; kernel routes are not imported).
        out = await self._cli(["birdc", "-s", str(self._sock), "show", "route", "table", table])
        rib: dict[IPNetwork, set[IPAddress]] = {}
        current: IPNetwork | None = None
        for line in out.splitlines():
            m = re.match(r"^([0-9a-fA-F:.]+/\d+)\s", line)
            if m:
                current = ipaddress.ip_network(m.group(1))
                rib.setdefault(current, set())
                continue
            m = re.match(r"^\s+via\s+(\S+)", line)
            if m and current is not None:
                rib[current].add(ipaddress.ip_address(m.group(1)))
        return {k: frozenset(v) for k, v in rib.items() if v}  # drop the router's own direct routes

    async def established(self) -> int:
        out = await self._cli(["birdc", "-s", str(self._sock), "show", "protocols"])
        return sum(1 for line in out.splitlines() if line.split()[1:2] == ["BGP"] and "Established" in line)


class FrrRouter(Router):
    daemon = "frr"

    def _start(self) -> None:
        conf = [
            "frr defaults traditional",
            "hostname kvt-router",
            "log stdout",
            f"router bgp {self.asn}",
            f" bgp router-id {self.router_id}",
            " no bgp ebgp-requires-policy",
            " no bgp default ipv4-unicast",
            " bgp bestpath as-path multipath-relax",
        ]
        for n in self.neighbors:
            conf.append(f" neighbor {n.address} remote-as {n.asn}")
        for af in ("ipv4", "ipv6"):
            conf.append(f" address-family {af} unicast")
            conf.append("  maximum-paths 16")
            for n in self.neighbors:
                conf.append(f"  neighbor {n.address} activate")
            conf.append(" exit-address-family")
        path = self.workdir / "frr.conf"
        path.write_text("\n".join(conf) + "\n")
        (self.workdir / "zebra.conf").write_text("hostname kvt-router\n")
        zsock = self.workdir / "zserv.api"
        # FRR insists that its user is in the frrvty group: run as the packaged frr user in a directory
        # it owns (the caller gives a workdir whose parents the frr user may traverse, e.g. under /tmp).
        shutil.chown(self.workdir, "frr", "frr")
        common = [
            "-u",
            "frr",
            "-g",
            "frr",
            "--vty_socket",
            str(self.vty),
            "-z",
            str(zsock),
            "-A",
            "127.0.0.1",
        ]
        zpid = self.workdir / "zebra.pid"
        self._popen(
            [str(FRR_DIR / "zebra"), "-f", str(self.workdir / "zebra.conf"), "-i", str(zpid), *common],
            "zebra.log",
        )
        self._daemon_pid(zpid)
        deadline = time.monotonic() + 10
        while not zsock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        bpid = self.workdir / "bgpd.pid"
        self._popen(
            [str(FRR_DIR / "bgpd"), "-f", str(path), "-i", str(bpid), "-p", "179", *common], "bgpd.log"
        )
        self._daemon_pid(bpid)

    async def rib(self, version: int) -> Rib:
        out = await self._cli(
            ["vtysh", "--vty_socket", str(self.vty), "-c", f"show bgp ipv{version} unicast json"]
        )
        data = json.loads(out)
        rib: Rib = {}
        for prefix, paths in data.get("routes", {}).items():
            hops: set[IPAddress] = set()
            for path in paths:
                for nh in path.get("nexthops", []):
                    ip = ipaddress.ip_address(nh["ip"])
                    if not ip.is_link_local:
                        hops.add(ip)
            rib[ipaddress.ip_network(prefix)] = frozenset(hops)
        return rib

    async def established(self) -> int:
        out = await self._cli(["vtysh", "--vty_socket", str(self.vty), "-c", "show bgp neighbors json"])
        peers = json.loads(out).values()
        return sum(n.get("bgpState") == "Established" for n in peers if isinstance(n, dict))


def make_router(
    daemon: str,
    netns: str,
    workdir: Path,
    asn: int,
    router_id: ipaddress.IPv4Address,
    neighbors: Sequence[Neighbor],
) -> Router:
    """The router class for `daemon` (gobgpd, bird2 or frr)."""
    classes: dict[str, type[Router]] = {"gobgpd": GoBgpRouter, "bird2": BirdRouter, "frr": FrrRouter}
    if daemon not in classes:
        raise BgpError(f"unknown BGP daemon {daemon!r}: use one of {', '.join(DAEMONS)}")
    return classes[daemon](netns, workdir, asn, router_id, neighbors)
