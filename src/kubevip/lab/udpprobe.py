"""UDP helpers for lab tests: a sink that records who sent each datagram, and a one-shot sender.

`python -m kubevip.lab.udpprobe sink PORT` (inside a namespace) prints one line per datagram,
`<source address> <payload>`, IPv4-mapped sources shown as IPv4; `send_argv` builds the sender's command
line (it prints the answer when `wait` > 0 and one arrives)."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import Protocol


class _Popener(Protocol):
    def popen(self, netns: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]: ...

_SEND = (
    "import socket,sys\n"
    "a,p,m,t=sys.argv[1],int(sys.argv[2]),sys.argv[3].encode(),float(sys.argv[4])\n"
    "s=socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET,socket.SOCK_DGRAM)\n"
    "s.sendto(m,(a,p))\n"
    "if t>0:\n"
    " s.settimeout(t)\n"
    " try: print(s.recv(100).decode().strip())\n"
    " except OSError: pass\n"
)


def send_argv(address: str, port: int, payload: str, wait: float = 0.0) -> list[str]:
    """Send one datagram (and print the answer within `wait` s); prefix with `ip netns exec NS`."""
    return [sys.executable, "-c", _SEND, address, str(port), payload, str(wait)]


def sink_argv(port: int, reply: bool = False) -> list[str]:
    """The sink's command line; with `reply` it answers every datagram (making the flow a two-way one,
    which conntrack then calls established)."""
    return [sys.executable, "-m", "kubevip.lab.udpprobe", "sink", str(port), *(["reply"] if reply else [])]


def source_of(host: str) -> str:
    """The sender as an address of its own family (a dual-stack socket reports IPv4 as ::ffff:a.b.c.d)."""
    a = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return str(a.ipv4_mapped)
    return str(a)


def sink(port: int, reply: bool = False) -> None:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    print("ready", flush=True)
    while True:
        data, addr = s.recvfrom(2048)
        print(source_of(addr[0]), data.decode(errors="replace").strip(), flush=True)
        if reply:
            s.sendto(b"ok", addr)


class Sink:
    """A running sink in namespace `netns`: payload -> source address of the datagrams it received."""

    def __init__(self, net: _Popener, netns: str, port: int, reply: bool = False) -> None:
        self.port = port
        self.seen: dict[str, str] = {}
        self._ready = threading.Event()
        self._cond = threading.Condition()
        self.proc = net.popen(
            netns, sink_argv(port, reply), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self._reader = threading.Thread(target=self._read, name=f"udp-sink-{port}", daemon=True)
        self._reader.start()
        if not self._ready.wait(30):
            self.close()
            raise TimeoutError(f"UDP sink on port {port} in {netns} did not start")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if line == "ready":
                self._ready.set()
                continue
            src, _, payload = line.partition(" ")
            with self._cond:
                self.seen[payload] = src
                self._cond.notify_all()

    def source(self, payload: str, within: float) -> str | None:
        """The source address the datagram `payload` came from, once it arrived (None at the deadline)."""
        deadline = time.monotonic() + within
        with self._cond:
            while payload not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.seen[payload]

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["sink"]:
        sink(int(sys.argv[2]), sys.argv[3:4] == ["reply"])
