"""A real DHCP server on the lab network (docs/dhcp.md): dnsmasq (Debian's dnsmasq-base, DHCP only, DNS
off) or Kea (Debian's kea-dhcp4-server, for leases of a few seconds: dnsmasq's shortest is 2 minutes) in a
namespace of its own, attached to the lab bridge like a node. Started and stopped by PID; its lease file
and log are what the tests read (allocation, renewals, the host name sent, releases, expiry times)."""

from __future__ import annotations

import csv
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from kubevip.errors import LabError
from kubevip.lab import topology
from kubevip.lab.network import LabNetwork

SERVER_HOST = 120  # 198.18.<slot>.120: between the client (100) and the VIP pool (200..249)
RANGE_HOSTS = (150, 159)  # the addresses the server leases (outside every other test's VIPs)


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and res.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


@dataclass
class DhcpServer:
    """dnsmasq on the lab segment: leases `RANGE_HOSTS` for 2 minutes (dnsmasq's minimum) with short
    T1 / T2 so renewals come every `t1` seconds."""

    lab: LabNetwork
    workdir: Path
    t1: int = 3
    t2: int = 6
    netns: str = field(default_factory=lambda: f"kvd-{secrets.token_hex(3)}")
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> ipaddress.IPv4Address:
        return topology.host_v4(self.lab.topo.slot, SERVER_HOST)

    @property
    def range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        slot = self.lab.topo.slot
        return topology.host_v4(slot, RANGE_HOSTS[0]), topology.host_v4(slot, RANGE_HOSTS[1])

    @property
    def cidrs(self) -> str:
        """The range as CIDRs, for the agents' vip_allowed_cidrs."""
        first, last = self.range
        return ",".join(str(n) for n in ipaddress.summarize_address_range(first, last))

    @property
    def lease_file(self) -> Path:
        return self.workdir / "dnsmasq.leases"

    @property
    def log_file(self) -> Path:
        return self.workdir / "dnsmasq.log"

    def up(self) -> None:
        """Namespace, a port on the lab bridge, then the server."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        t = self.lab.topo
        port = f"kvdp{self.netns[-6:]}"
        _run(["ip", "netns", "add", self.netns])
        try:
            _run(["ip", "-n", t.bridge_netns, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                  "netns", self.netns])
            _run(["ip", "netns", "exec", self.netns, "sysctl", "-q", "-w",
                  "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1",
                  "net.ipv6.conf.eth0.disable_ipv6=1"])
            _run(["ip", "-n", self.netns, "addr", "add", f"{self.address}/{t.subnet_v4.prefixlen}",
                  "dev", "eth0"])
            _run(["ip", "-n", self.netns, "link", "set", "eth0", "up"])
            _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            _run(["ip", "-n", t.bridge_netns, "link", "set", port, "master", "br0", "up"])
            self.start()
        except BaseException:
            self.down()
            raise

    def start(self) -> None:
        """dnsmasq in the foreground (its PID is ours to stop); the lease file is kept across restarts."""
        if shutil.which("dnsmasq") is None:
            raise LabError("dnsmasq not found: run hack/prereqs.sh (package dnsmasq-base)")
        first, last = self.range
        argv = [
            "ip", "netns", "exec", self.netns, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
            "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping", "--dhcp-authoritative",
            f"--dhcp-range={first},{last},255.255.255.0,2m",
            f"--dhcp-option=option:T1,{self.t1}", f"--dhcp-option=option:T2,{self.t2}",
            f"--dhcp-leasefile={self.lease_file}", "--log-dhcp", f"--log-facility={self.log_file}",
            "--pid-file=", "--user=root", "--group=root",
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise LabError(f"dnsmasq exited ({self.proc.returncode}): {err.strip()}")
            if "DHCP, sockets bound" in self.log():
                return
            time.sleep(0.05)
        raise LabError("dnsmasq did not start within 10s")

    def stop(self) -> None:
        """Stop dnsmasq (by its PID): the server is away; its leases stay in the file."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def down(self) -> None:
        self.stop()
        _run(["ip", "netns", "del", self.netns], check=False)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def leases(self) -> dict[str, tuple[str, str]]:
        """The lease file: MAC -> (address, host name)."""
        out: dict[str, tuple[str, str]] = {}
        try:
            lines = self.lease_file.read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            parts = line.split()
            if len(parts) >= 4:
                out[parts[1].lower()] = (parts[2], parts[3])
        return out

    def count(self, what: str, mac: str) -> int:
        """Log lines of one kind (DHCPACK, DHCPRELEASE, ...) for one client."""
        mac = mac.lower()
        return sum(1 for line in self.log().splitlines() if f" {what}(" in line and mac in line.lower())

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


@dataclass
class KeaServer(DhcpServer):
    """Kea's DHCPv4 server on the lab segment, same namespace and range as `DhcpServer`, with leases of
    `lifetime` seconds (T1 `t1`, T2 `t2`): a lease runs out within a test. Kea's memfile appends one CSV
    row per allocation or renewal, with the lease's expiry (Unix time, whole seconds, from the server's
    clock at the acknowledgement): `expiry(mac)` is when the last lease it acknowledged ends."""

    t1: int = 2
    t2: int = 4
    lifetime: int = 8

    @property
    def lease_file(self) -> Path:
        return self.workdir / "kea-leases4.csv"

    @property
    def log_file(self) -> Path:
        return self.workdir / "kea.log"

    def _config(self) -> dict[str, object]:
        first, last = self.range
        return {"Dhcp4": {
            "interfaces-config": {"interfaces": ["eth0"], "dhcp-socket-type": "raw"},
            "lease-database": {"type": "memfile", "persist": True, "name": str(self.lease_file),
                               "lfc-interval": 0},
            "valid-lifetime": self.lifetime, "renew-timer": self.t1, "rebind-timer": self.t2,
            "authoritative": True,
            "subnet4": [{"id": 1, "subnet": str(self.lab.topo.subnet_v4),
                         "pools": [{"pool": f"{first} - {last}"}]}],
            "loggers": [{"name": "kea-dhcp4", "severity": "INFO",
                         "output_options": [{"output": str(self.log_file)}]}],
        }}

    def start(self) -> None:
        """kea-dhcp4 in the foreground (its PID is ours to stop); its PID file in the work directory, no
        lock file (nothing under /run), the lease file kept across restarts."""
        if shutil.which("kea-dhcp4") is None:
            raise LabError("kea-dhcp4 not found: run hack/prereqs.sh (package kea-dhcp4-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "kea-dhcp4.json"
        conf.write_text(json.dumps(self._config()))
        env = {**os.environ, "KEA_PIDFILE_DIR": str(self.workdir), "KEA_LOCKFILE_DIR": "none"}
        started = self.log().count("DHCP4_STARTED")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, "kea-dhcp4", "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise LabError(f"kea-dhcp4 exited ({self.proc.returncode}): {err.strip()[-2000:]}")
            if self.log().count("DHCP4_STARTED") > started:
                return
            time.sleep(0.05)
        raise LabError("kea-dhcp4 did not start within 20s")

    def _rows(self) -> list[dict[str, str]]:
        try:
            with self.lease_file.open(newline="") as f:
                return list(csv.DictReader(f))
        except OSError:
            return []

    def leases(self) -> dict[str, tuple[str, str]]:
        """MAC -> (address, host name) of the last row per MAC that is a live lease (expire > 0: a
        released lease is written with valid lifetime 0)."""
        out: dict[str, tuple[str, str]] = {}
        for row in self._rows():
            mac = row.get("hwaddr", "").lower()
            if int(row.get("valid_lifetime") or 0) > 0:
                out[mac] = (row["address"], row.get("hostname", ""))
            else:
                out.pop(mac, None)
        return out

    def count(self, what: str, mac: str) -> int:
        """Acknowledgements (`DHCPACK`: allocations and renewals, one lease-file row each) for one client."""
        if what != "DHCPACK":
            raise LabError(f"KeaServer.count counts DHCPACK only, not {what}")
        mac = mac.lower()
        return sum(1 for r in self._rows() if r.get("hwaddr", "").lower() == mac
                   and int(r.get("valid_lifetime") or 0) > 0)

    def expiry(self, mac: str) -> float | None:
        """When the last lease acknowledged to `mac` ends (Unix time), or None."""
        mac = mac.lower()
        ends = [float(r["expire"]) for r in self._rows() if r.get("hwaddr", "").lower() == mac
                and int(r.get("valid_lifetime") or 0) > 0]
        return ends[-1] if ends else None
