"""The ExaBGP "process": relays ExaBGP's pipe to the agent's Unix socket and back (stdlib only).

ExaBGP can only talk to a child it starts itself, while the agent is ExaBGP's parent; this tiny relay
closes that loop. It exits as soon as either side closes and then stops ExaBGP (SIGTERM: a NOTIFICATION
Cease to every peer), so an agent killed without a word takes its routes with it.

The configuration names this relay, so a plain ExaBGP runs it; ExaBGP as the agent starts it
(`kubevip.bgp.child`) does not: there the relay's argv becomes a connection to the same socket in
ExaBGP's own process, with the same SIGTERM when the agent's end closes.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys


def relay(sock: socket.socket, stdin_fd: int, stdout_fd: int) -> None:
    """Copy ExaBGP's output (acks, events) to the socket and the socket's commands to ExaBGP."""
    sock_fd = sock.fileno()
    while True:
        ready, _, _ = select.select([stdin_fd, sock_fd], [], [])
        for fd in ready:
            data = os.read(fd, 65536)
            if not data:
                return
            if fd == stdin_fd:
                sock.sendall(data)
            else:
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout_fd, view) :]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: bridge.py SOCKET", file=sys.stderr)
        return 2
    exabgp = os.getppid()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[1])
    except OSError as exc:
        print(f"bridge: cannot connect to {argv[1]}: {exc}", file=sys.stderr)
        return 1
    try:
        relay(sock, sys.stdin.fileno(), sys.stdout.fileno())
    except OSError:
        return 1
    finally:
        sock.close()
        # The agent is gone (or ExaBGP is): ExaBGP must not keep announcing for a dead agent, and it
        # does not exit by itself when its API process ends. SIGTERM makes it send a NOTIFICATION
        # Cease, so the peers drop this node's routes at once. Only our own parent: if ExaBGP already
        # died we were re-parented and must signal nobody.
        if os.getppid() == exabgp:
            with contextlib.suppress(OSError):
                os.kill(exabgp, signal.SIGTERM)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
