"""Runs inside one node namespace: answers UDP probes on every address (both families) with its node name."""

from __future__ import annotations

import argparse
import signal
import socket
import sys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", required=True)
    ap.add_argument("--port", type=int, default=17007)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    # Free binding: VIPs come and go while we listen on the wildcard anyway.
    sock.bind(("::", args.port))
    name = args.node.encode()
    while True:
        data, peer = sock.recvfrom(256)
        sock.sendto(data[:16] + b" " + name, peer)


if __name__ == "__main__":
    sys.exit(main())
