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

And ExaBGP's API "process" is the agent's Unix socket itself: where the configuration runs
`kubevip/bgp/bridge.py` (the relay a plain ExaBGP needs, as it talks only to children it starts), this
child connects to the socket in its own process instead. Every command then reaches ExaBGP without a
third process to wake on its way (a median 0.2-0.3 ms of a create's address -> route in the lab,
docs/performance.md), and the relay's last duty stays: when the agent's end closes, ExaBGP gets
SIGTERM (a NOTIFICATION Cease to every peer), so an agent killed without a word takes its routes with
it.

And ExaBGP's reactor waits at most `exabgp_reactor_speed` / 100 s for I/O per turn of its loop: the 1 ms
kubevip configures keeps a command's work, which takes several turns (the callback, the peer's UPDATE),
from waiting 10 ms at each, but woke an idle ExaBGP a thousand times a second: 4.3 % of a core for each
speaker, three on the lab's two cores beside the API server (session 32; 0.55 % with this).
Here the turns keep that 1 ms for `ACTIVE_WINDOW` after the last sign of work (a turn that asked for no
wait at all, any file descriptor ready, an API callback queued, a session not established) and wait up
to `IDLE_WAIT_MS` otherwise: a command or a message from a peer still wakes the reactor at once (their
descriptors are in its poll), so only ExaBGP's own timers (keepalives) run up to that much later.

Imported only in the child process; the agent never imports ExaBGP.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

from exabgp.bgp.fsm import FSM
from exabgp.logger import log
from exabgp.reactor import asynchronous, loop
from exabgp.reactor.api import processes
from exabgp.reactor.network import outgoing

from kubevip.bgp import bridge

_setup = outgoing.Outgoing._setup
_run = asynchronous.ASYNC.run
_wait_for_io = loop.Reactor._wait_for_io

# After the last sign of work, turns keep the configured wait this long (seconds); then at most
# IDLE_WAIT_MS each (ExaBGP's timers: keepalives every hold time / 3 s, at least 1 s apart).
ACTIVE_WINDOW = 0.05
IDLE_WAIT_MS = 100


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


def turn_wait_ms(asked_ms: int, now: float, last_work: float | None) -> int:
    """The poll timeout of one reactor turn: what ExaBGP asked for (0 when it has work left) while work
    was seen within `ACTIVE_WINDOW` seconds, else at least `IDLE_WAIT_MS`."""
    if asked_ms <= 0 or (last_work is not None and now - last_work < ACTIVE_WINDOW):
        return asked_ms
    return max(asked_ms, IDLE_WAIT_MS)


def _wait_adaptive(self: Any, sleeptime: int) -> Any:
    """`Reactor._wait_for_io` with `turn_wait_ms`'s timeout; what counts as work is stamped on the reactor."""
    now = time.monotonic()
    last: float | None = getattr(self, "_kubevip_last_work", None)
    # A session not established is connecting or waiting for its retry: its steps are turns of this
    # loop, not descriptors (a connect in progress is not in the poll), so they keep the short wait.
    if sleeptime <= 0 or self.asynchronous._async or any(
        p.fsm != FSM.ESTABLISHED for p in self._peers.values()
    ):
        last = self._kubevip_last_work = now
    for fd in _wait_for_io(self, turn_wait_ms(sleeptime, now, last)):
        self._kubevip_last_work = time.monotonic()
        yield fd


def _sigterm_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class _SocketWriter:
    """The "stdin" of the socket process: ExaBGP writes its acknowledgements and events here. The
    socket is non-blocking (ExaBGP sets O_NONBLOCK on what it reads, the same file), so a full buffer
    waits for room as a pipe write would."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view):]
            except BlockingIOError:
                select.select([], [self._fd], [])
        return len(data)

    def flush(self) -> None:
        """Written at once: nothing is buffered here."""


class SocketProcess:
    """What ExaBGP's `Processes` needs of a `Popen` (stdout to poll and read, stdin to write, poll,
    terminate, wait, kill), as a connection to the agent's Unix socket."""

    def __init__(self, path: str, on_gone: Callable[[], None] = _sigterm_self) -> None:
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(path)
        self._on_gone = on_gone
        self.pid = os.getpid()
        self.returncode: int | None = None
        self.stdout = self._sock  # polled, set non-blocking and os.read() by ExaBGP through fileno()
        self.stdin = _SocketWriter(self._sock.fileno())

    def _peer_gone(self) -> bool:
        try:
            return self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def poll(self) -> int | None:
        """None while the agent's end is open; once it closed, 0, and ExaBGP is told to stop."""
        if self.returncode is None and self._peer_gone():
            self.returncode = 0
            self._on_gone()
        return self.returncode

    def terminate(self) -> None:
        if self.returncode is None:
            self.returncode = -signal.SIGTERM
        self._sock.close()

    kill = terminate

    def wait(self, timeout: float | None = None) -> int:
        return self.returncode if self.returncode is not None else 0


def _is_bridge(argv: Sequence[str]) -> bool:
    return len(argv) == 3 and os.path.realpath(argv[1]) == os.path.realpath(bridge.__file__)


def _popen(args: Any, *rest: Any, **kwargs: Any) -> Any:
    """`subprocess.Popen` for ExaBGP's processes: the bridge to the agent becomes a `SocketProcess`."""
    if isinstance(args, (list, tuple)) and _is_bridge(args):
        return SocketProcess(str(args[2]))
    return subprocess.Popen(args, *rest, **kwargs)


def _subprocess_with_socket_processes() -> types.ModuleType:
    shim = types.ModuleType("subprocess")
    shim.__dict__.update(subprocess.__dict__)  # CalledProcessError, TimeoutExpired, PIPE, ...
    shim.Popen = _popen  # type: ignore[attr-defined]
    return shim


def patch() -> None:
    """Idempotent: outgoing sessions get TCP_NODELAY before they connect; API callbacks that are
    generators run without an event loop per command; the bridge process is the agent's socket; an idle
    reactor waits longer per turn."""
    outgoing.Outgoing._setup = _setup_without_nagle
    asynchronous.ASYNC.run = _run_generators
    loop.Reactor._wait_for_io = _wait_adaptive
    if getattr(processes.subprocess, "Popen", None) is not _popen:
        processes.subprocess = _subprocess_with_socket_processes()


def main() -> None:
    patch()
    from exabgp.application.main import main as exabgp_main

    exabgp_main()  # reads sys.argv[1:], as `python -m exabgp` would


if __name__ == "__main__":
    sys.argv[0] = "exabgp"
    main()
