"""kubevip.bgp.child: ExaBGP's sessions that kubevip opens go out with Nagle's algorithm off, and its API
callbacks run without an event loop per command."""

from __future__ import annotations

import asyncio
import fcntl
import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from exabgp.logger import log
from exabgp.protocol.family import AFI
from exabgp.reactor.asynchronous import ASYNC
from exabgp.reactor.network.outgoing import Outgoing
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevip.bgp import child


def nodelay(afi: AFI, peer: str) -> int:
    conn = Outgoing(afi, peer, None)
    assert conn._setup() is None  # the socket ExaBGP connects with, not yet connected
    try:
        return int(conn.io.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
    finally:
        conn.io.close()
        conn.io = None  # ExaBGP's own close() (from __del__) would log through its unset-up logger


@pytest.fixture
def exabgp_as_released(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Outgoing, "_setup", child._setup)


@pytest.mark.usefixtures("exabgp_as_released")
@pytest.mark.parametrize(("afi", "peer"), [(AFI.ipv4, "127.0.0.1"), (AFI.ipv6, "::1")])
def test_outgoing_sessions_get_tcp_nodelay(afi: AFI, peer: str) -> None:
    assert nodelay(afi, peer) == 0  # ExaBGP 5.0.15 alone leaves Nagle on (the 40 ms delayed-ACK wait)
    child.patch()
    child.patch()  # idempotent
    assert nodelay(afi, peer) == 1


def test_the_child_runs_exabgps_own_main() -> None:
    res = subprocess.run([sys.executable, "-m", "kubevip.bgp.child", "version"], capture_output=True,
                         text=True, timeout=60, check=True)
    assert "5.0.15" in res.stdout, res.stdout + res.stderr


def test_the_speaker_starts_the_child_module() -> None:
    import inspect

    from kubevip.bgp import speaker

    assert '"-m", "kubevip.bgp.child", "server"' in inspect.getsource(speaker)


# -- API callbacks without an event loop per command ------------------------------------------------

Plan = list[tuple[int, bool]]  # per callback: how many steps it yields, and whether it then raises


def _callbacks(plan: Plan, trace: list[tuple[int, int]]) -> list[tuple[str, Iterator[bool]]]:
    def gen(i: int, steps: int, fails: bool) -> Iterator[bool]:
        for s in range(steps):
            trace.append((i, s))
            yield False
        if fails:
            raise ValueError(f"callback {i} failed\nsecond line")

    return [(f"svc{i}", gen(i, steps, fails)) for i, (steps, fails) in enumerate(plan)]


Driven = tuple[list[tuple[int, int]], list[bool], list[str], list[str]]


def _drive(run: Callable[[ASYNC], bool], plan: Plan, limit: int, monkeypatch: pytest.MonkeyPatch) -> Driven:
    """Every turn of `run` over the plan's callbacks until none is left: the steps taken, each turn's
    answer, the errors reported and the services told."""
    trace: list[tuple[int, int]] = []
    logged: list[str] = []
    told: list[str] = []
    monkeypatch.setattr(log, "error", classmethod(lambda cls, msg, source="", level="": logged.append(msg())))
    monkeypatch.setattr(log, "debug", classmethod(lambda cls, msg, source="", level="": None))
    a = ASYNC()
    a.LIMIT = limit
    a.set_error_handler(told.append)
    for uid, cb in _callbacks(plan, trace):
        a.schedule(uid, "command", cb)
    answers: list[bool] = []
    for _ in range(10_000):
        answers.append(run(a))
        if not answers[-1]:
            break
    assert a.ready()
    return trace, answers, logged, told


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), max_size=6), st.integers(1, 8))
def test_generator_callbacks_run_exactly_as_exabgps_own_run_does(plan: Plan, limit: int) -> None:
    with pytest.MonkeyPatch.context() as mp:
        ours = _drive(child._run_generators, plan, limit, mp)
    with pytest.MonkeyPatch.context() as mp:
        theirs = _drive(child._run, plan, limit, mp)
    assert ours == theirs


def test_generator_callbacks_need_no_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loop(*args: object, **kwargs: object) -> None:
        for arg in args:
            if asyncio.iscoroutine(arg):
                arg.close()
        raise AssertionError("an event loop was built for generator callbacks")

    monkeypatch.setattr(asyncio, "run", no_loop)
    monkeypatch.setattr(asyncio, "new_event_loop", no_loop)
    trace, answers, _, _ = _drive(child._run_generators, [(3, False), (2, False)], 50, monkeypatch)
    assert trace == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)] and answers == [False]
    with pytest.raises(AssertionError, match="event loop"):
        _drive(child._run, [(1, False)], 50, monkeypatch)  # ExaBGP 5.0.15's own run builds one


@pytest.mark.parametrize("first", [True, False])
def test_a_coroutine_callback_goes_to_exabgps_own_run(first: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # Queued first, or by a generator while the turn runs: ExaBGP's own run (and its loop) takes over.
    monkeypatch.setattr(log, "debug", classmethod(lambda cls, msg, source="", level="": None))
    done: list[str] = []
    a = ASYNC()

    async def coro() -> None:
        pass

    def own_run(self: ASYNC) -> bool:
        done.append(f"own run with {len(self._async)} queued")
        self.clear()
        return False

    def gen() -> Iterator[bool]:
        done.append("generator")
        if not first:
            a.schedule("svc", "command", coro)
        yield False

    monkeypatch.setattr(child, "_run", own_run)
    if first:
        a.schedule("svc", "command", coro)
    a.schedule("svc", "command", gen())
    assert child._run_generators(a) is False
    assert done == (["own run with 2 queued"] if first else ["generator", "own run with 1 queued"])


def test_the_child_patches_exabgps_async_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ASYNC, "run", child._run)
    monkeypatch.setattr(Outgoing, "_setup", child._setup)
    child.patch()
    assert ASYNC.run is child._run_generators


def test_the_bridge_process_is_the_agents_socket_in_exabgps_own_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ExaBGP "starts" the bridge: the child connects to the agent's socket itself (no relay process to
    wake per command); ExaBGP's reads, writes and polls work on it as on the pipes, and when the agent's
    end closes, poll() reports an exit and ExaBGP is told to stop (the relay's SIGTERM)."""
    from exabgp.reactor.api import processes

    from kubevip.bgp import bridge

    monkeypatch.setattr(processes, "subprocess", processes.subprocess)  # put back after the test
    path = str(tmp_path / "api.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    child.patch()
    child.patch()
    gone: list[bool] = []
    proc = processes.subprocess.Popen([sys.executable, bridge.__file__, path], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE)
    assert isinstance(proc, child.SocketProcess) and proc.pid == os.getpid()
    proc._on_gone = lambda: gone.append(True)
    agent, _ = server.accept()
    try:
        fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETFL, os.O_NONBLOCK)  # as ExaBGP does
        assert proc.poll() is None
        with pytest.raises(BlockingIOError):
            os.read(proc.stdout.fileno(), 16384)  # nothing yet: ExaBGP's non-blocking read
        agent.sendall(b"neighbor 192.0.2.1 announce route 198.51.100.7/32 next-hop self\n")
        assert select.select([proc.stdout], [], [], 5)[0]
        assert os.read(proc.stdout.fileno(), 16384).startswith(b"neighbor 192.0.2.1 announce")
        proc.stdin.write(b"done\n")
        proc.stdin.flush()
        assert agent.recv(100) == b"done\n"
        big = b"x" * (4 << 20)  # more than the socket buffers: the writer waits for room
        got = bytearray()

        def read_all() -> None:
            while len(got) < len(big):
                got.extend(agent.recv(1 << 20))

        reader = threading.Thread(target=read_all, daemon=True)
        reader.start()
        assert proc.stdin.write(big) == len(big)
        reader.join(30)
        assert bytes(got) == big
        assert proc.poll() is None and not gone
    finally:
        agent.close()
        server.close()
    assert proc.poll() == 0 and gone == [True]  # the agent's end closed: ExaBGP stops
    assert proc.poll() == 0 and gone == [True]  # once
    proc.terminate()
    assert proc.wait(1) == 0
    # Anything else ExaBGP runs is a real process, and the module's other names are subprocess's.
    other = processes.subprocess.Popen([sys.executable, "-c", "print('hi')"], stdout=subprocess.PIPE)
    assert other.communicate(timeout=30)[0] == b"hi\n"
    assert processes.subprocess.TimeoutExpired is subprocess.TimeoutExpired


# -- the reactor's wait per turn ------------------------------------------------------------------------


@given(
    asked=st.integers(0, 1000),
    now=st.floats(0, 1e6),
    since=st.one_of(st.none(), st.floats(0, 10.0)),
)
def test_a_turn_waits_longer_only_when_idle(asked: int, now: float, since: float | None) -> None:
    last = None if since is None else now - since
    got = child.turn_wait_ms(asked, now, last)
    recent = since is not None and since < child.ACTIVE_WINDOW
    if asked == 0 or recent:
        assert got == asked  # work left, or work just now: ExaBGP's own wait (0 or its 1 ms)
    else:
        assert got == max(asked, child.IDLE_WAIT_MS)
    assert got >= asked  # never shorter than ExaBGP asked: no spinning


class _Poller:
    """select.poll's interface as the reactor uses it, with the timeouts it was given recorded."""

    def __init__(self, ready: list[list[tuple[int, int]]]) -> None:
        self.ready = ready
        self.timeouts: list[int] = []

    def poll(self, timeout: int) -> list[tuple[int, int]]:
        self.timeouts.append(timeout)
        return self.ready.pop(0) if self.ready else []


class _Peer:
    def __init__(self, state: Any) -> None:
        self.fsm = state


def _reactor(poller: _Poller, peers: dict[str, _Peer], queued: int = 0) -> Any:
    from exabgp.reactor.loop import Reactor

    r = Reactor.__new__(Reactor)  # no configuration: only what _wait_for_io and the wrapper read
    r._poller = poller
    r._peers = peers
    r.asynchronous = ASYNC()
    for i in range(queued):
        r.asynchronous._async.append((str(i), iter(())))
    r._busyspin = {}
    r.max_loop_time = 1.0
    r._sleep_time = 0.001
    return r


def test_the_reactor_waits_long_when_idle_and_short_after_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from exabgp.bgp.fsm import FSM

    clock = [1000.0]
    monkeypatch.setattr(child.time, "monotonic", lambda: clock[0])
    poller = _Poller([[], [(7, select.POLLIN)], [], []])
    r = _reactor(poller, {"peer": _Peer(FSM.ESTABLISHED)})
    assert list(child._wait_adaptive(r, 1)) == []  # never any work: the idle wait
    assert list(child._wait_adaptive(r, 1)) == [7]  # idle, but a descriptor wakes it ...
    clock[0] += child.ACTIVE_WINDOW / 2
    assert list(child._wait_adaptive(r, 1)) == []  # ... and the turns after it keep ExaBGP's 1 ms
    clock[0] += child.ACTIVE_WINDOW
    assert list(child._wait_adaptive(r, 1)) == []  # until the window has passed
    assert poller.timeouts == [child.IDLE_WAIT_MS, child.IDLE_WAIT_MS, 1, child.IDLE_WAIT_MS]


@pytest.mark.parametrize("case", ["no wait asked", "callback queued", "session connecting"])
def test_work_in_the_reactor_keeps_the_short_wait(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from exabgp.bgp.fsm import FSM

    monkeypatch.setattr(child.time, "monotonic", lambda: 50.0)
    poller = _Poller([])
    state = FSM.IDLE if case == "session connecting" else FSM.ESTABLISHED
    r = _reactor(poller, {"peer": _Peer(state)}, queued=1 if case == "callback queued" else 0)
    asked = 0 if case == "no wait asked" else 1
    list(child._wait_adaptive(r, asked))
    list(child._wait_adaptive(r, 1))
    assert poller.timeouts == [asked, 1]


def test_the_child_patches_the_reactors_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    from exabgp.reactor.loop import Reactor

    monkeypatch.setattr(Reactor, "_wait_for_io", child._wait_for_io)
    child.patch()
    assert Reactor._wait_for_io is child._wait_adaptive
