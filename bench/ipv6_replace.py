"""Kernel cost of a lifetime-extension round per family: N addresses added, then replaced three times
with a new lifetime, in a network namespace of its own (veth, no traffic), through the agent's own
netlink batches (net/rtnl_batch.py). Prints one JSON object.

Why: at 5000 dual-stack Services the global Lease's holder could not keep its 10000 VIPs (2.3-4.2 s
extension rounds, fences in a loop; docs/performance.md). Each IPv6 address change makes the kernel walk
every IPv6 address of the namespace (addrconf's lifetime check), so a round over n IPv6 VIPs costs
O(n^2); IPv4 stays linear.

    python bench/ipv6_replace.py --count 1000,5000
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import subprocess
import sys
import time

from kubevip.ip import IPAddress
from kubevip.net import rtnl_batch as rb

NS = f"kvl-bench-v6r-{os.getpid()}"


def _requests(index: int, ips: list[IPAddress], lifetime: int) -> list[bytes]:
    return [
        rb.address_request("replace", seq, index, ip, 32 if ip.version == 4 else 128, 0,
                           rb.IFA_F_NODAD if ip.version == 6 else 0, lifetime=lifetime)
        for seq, ip in enumerate(ips, 1)
    ]


def _inside(count: int) -> dict[str, object]:
    """Runs inside the namespace: the timings of one count."""
    index = socket.if_nametoindex("vx0")
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    fams: dict[str, list[IPAddress]] = {
        "ipv4": [ipaddress.ip_address(f"100.64.{i // 256}.{i % 256}") for i in range(count)],
        "ipv6": [ipaddress.ip_address(f"fd6b:7669:7fff::{i + 1:x}") for i in range(count)],
    }
    out: dict[str, object] = {"count": count}
    for fam, ips in fams.items():
        rounds = []
        for lifetime in (60, 61, 62, 63):  # the first creates, the others extend
            reqs = _requests(index, ips, lifetime)
            c0, t0 = time.process_time(), time.perf_counter()
            codes = rb.run(sock, reqs, f"{fam} round")
            rounds.append({"wall_s": round(time.perf_counter() - t0, 4),
                           "cpu_s": round(time.process_time() - c0, 4),
                           "errors": sum(1 for c in codes if c)})
        out[fam] = {"create": rounds[0], "extend": rounds[1:]}
    return out


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", default="1000,5000", help="addresses per family, comma-separated")
    p.add_argument("--inside", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.inside is not None:
        print(json.dumps(_inside(args.inside)))
        return
    results = []
    for count in (int(c) for c in args.count.split(",")):
        _ip("netns", "add", NS)
        try:
            _ip("-n", NS, "link", "add", "vx0", "type", "veth", "peer", "name", "vx1")
            _ip("-n", NS, "link", "set", "vx0", "up")
            _ip("-n", NS, "link", "set", "vx1", "up")
            cmd = ["ip", "netns", "exec", NS, sys.executable, __file__, "--inside", str(count)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            results.append(json.loads(done.stdout))
        finally:
            _ip("netns", "del", NS)
    print(json.dumps({"kernel": os.uname().release, "cpus": os.cpu_count(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
