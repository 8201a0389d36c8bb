"""ExaBGP's entry point as the speaker runs it (`python -m kubevip.bgp.child server CONF`): ExaBGP's own
`main`, with Nagle's algorithm off on the sessions ExaBGP opens.

ExaBGP 5.0 sets TCP_NODELAY only on sessions its peers open (`reactor/network/incoming.py`); on the ones it
opens itself, which is every kubevip session (the agent connects to its peers), the call is commented
out. With Nagle on, an UPDATE written while the session's previous segment (an UPDATE, a KEEPALIVE) is
not yet acknowledged waits for the peer's delayed ACK, 40 ms on Linux: a dual-stack Service whose second
family's route left one pass after the first reached bird2 40 ms late (2 of 20 creates, bench/compare.py,
2026-12-06). GoBGP, kube-vip's speaker, sets TCP_NODELAY on every connection, as Go does by default.
A BGP session's messages are whole PDUs written at once, so nothing is gained by coalescing them.

And ExaBGP 5.0.15 runs each API command's callbacks through `asyncio.run`, a new event loop built and
closed every time, although every callback it registers for the text API is a plain generator that
never awaits: `ASYNC.run` here steps generators directly and leaves coroutines to ExaBGP's own run.
That was a quarter of ExaBGP's CPU per command, on the path from a Service's creation to its route.

Imported only in the child process; the agent never imports ExaBGP.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from exabgp.logger import log
from exabgp.reactor import asynchronous
from exabgp.reactor.network import outgoing

_setup = outgoing.Outgoing._setup
_run = asynchronous.ASYNC.run


def _setup_without_nagle(self: Any) -> Any:
    issue = _setup(self)
    if issue is None and self.io is not None and self.io.family in (socket.AF_INET, socket.AF_INET6):
        self.io.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return issue


def _run_generators(self: Any) -> bool:
    """`ASYNC.run` (a turn of at most LIMIT steps over the queued callbacks; True while some are left)
    without an event loop, for as long as the callbacks are generators; ExaBGP's own run takes over at
    the first coroutine, which needs its loop."""
    queue = self._async
    if not queue:
        return False
    uid, callback = queue.popleft()
    for _ in range(self.LIMIT):
        if self._is_coroutine(callback):  # queued first, or by a callback meanwhile
            queue.appendleft((uid, callback))
            return bool(_run(self))
        try:
            next(callback)
        except StopIteration:
            if not queue:
                return False
            uid, callback = queue.popleft()
        except Exception as exc:  # as ExaBGP's run: report, tell the client, go on with the next one
            log.error(lambda uid=uid: f"async | {uid} | problem with function", "reactor")
            for line in str(exc).split("\n"):
                log.error(lambda line=line, uid=uid: f"async | {uid} | {line}", "reactor")
            self._notify_error(uid)
            if not queue:
                return False
            uid, callback = queue.popleft()
    queue.appendleft((uid, callback))
    return True


def patch() -> None:
    """Idempotent: outgoing sessions get TCP_NODELAY before they connect; API callbacks that are
    generators run without an event loop per command."""
    outgoing.Outgoing._setup = _setup_without_nagle
    asynchronous.ASYNC.run = _run_generators


def main() -> None:
    patch()
    from exabgp.application.main import main as exabgp_main

    exabgp_main()  # reads sys.argv[1:], as `python -m exabgp` would


if __name__ == "__main__":
    sys.argv[0] = "exabgp"
    main()
