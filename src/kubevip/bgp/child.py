"""ExaBGP's entry point as the speaker runs it (`python -m kubevip.bgp.child server CONF`): ExaBGP's own
`main`, with Nagle's algorithm off on the sessions ExaBGP opens.

ExaBGP 5.0 sets TCP_NODELAY only on sessions its peers open (`reactor/network/incoming.py`); on the ones it
opens itself, which is every kubevip session (the agent connects to its peers), the call is commented
out. With Nagle on, an UPDATE written while the session's previous segment (an UPDATE, a KEEPALIVE) is
not yet acknowledged waits for the peer's delayed ACK, 40 ms on Linux: a dual-stack Service whose second
family's route left one pass after the first reached bird2 40 ms late (2 of 20 creates, bench/compare.py,
2026-12-06). GoBGP, kube-vip's speaker, sets TCP_NODELAY on every connection, as Go does by default.
A BGP session's messages are whole PDUs written at once, so nothing is gained by coalescing them.

Imported only in the child process; the agent never imports ExaBGP.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from exabgp.reactor.network import outgoing

_setup = outgoing.Outgoing._setup


def _setup_without_nagle(self: Any) -> Any:
    issue = _setup(self)
    if issue is None and self.io is not None and self.io.family in (socket.AF_INET, socket.AF_INET6):
        self.io.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return issue


def patch() -> None:
    """Idempotent: outgoing sessions get TCP_NODELAY before they connect."""
    outgoing.Outgoing._setup = _setup_without_nagle


def main() -> None:
    patch()
    from exabgp.application.main import main as exabgp_main

    exabgp_main()  # reads sys.argv[1:], as `python -m exabgp` would


if __name__ == "__main__":
    sys.argv[0] = "exabgp"
    main()
