"""The client's TCP probe: a one-shot child process (run inside a namespace) that connects to a VIP and
prints what the responder answered (its node's name), or nothing when it cannot connect in time."""

from __future__ import annotations

import sys

_SCRIPT = (
    "import socket,sys\n"
    "a,p,t=sys.argv[1],int(sys.argv[2]),float(sys.argv[3])\n"
    "try:\n"
    " s=socket.create_connection((a,p),timeout=t); print(s.recv(100).decode().strip())\n"
    "except OSError: pass\n"
)


def probe_argv(address: str, port: int, wait: float) -> list[str]:
    """The command line: prefix it with `ip netns exec NS` (or run it through LabNetwork.run)."""
    return [sys.executable, "-c", _SCRIPT, address, str(port), str(wait)]
