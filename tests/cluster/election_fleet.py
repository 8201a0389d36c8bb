"""Elector processes for cluster tests: each behind its own cuttable TCP proxy, events recorded.

Every elector is a separate `python -m kubevip.election` process that prints a JSON line when it starts
or stops believing it leads a unit; a SIGKILLed process is recorded as stopping when it is reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from kubevip.kube.kubeconfig import load_kubeconfig
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.faultproxy import FaultProxy
from kubevip.tasks import bounded


class CuttableProxy:
    """A TCP relay in front of the API server; `cut()` drops every connection and refuses new ones."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.cut_off = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listen_port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_off:
            writer.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_w}
        pumps = [
            asyncio.ensure_future(self._pump(reader, up_w)),
            asyncio.ensure_future(self._pump(up_r, writer)),
        ]
        for t in pumps:
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for w in (writer, up_w):
            w.transport.abort()
            self._writers.discard(w)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()

    def cut(self) -> None:
        self.cut_off = True
        for w in list(self._writers):
            w.transport.abort()

    def restore(self) -> None:
        self.cut_off = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Event:
    kind: str
    unit: str
    node: str
    mono: float


@dataclass
class Elector:
    node: str
    proc: asyncio.subprocess.Process
    proxy: CuttableProxy | FaultProxy
    reader: asyncio.Task[None] | None = None
    alive: bool = True


@dataclass
class Fleet:
    """Elector processes and the log of every start/stop of leadership across them."""

    cp: ControlPlane
    workdir: Path
    namespace: str
    args: list[str]
    events: list[Event] = field(default_factory=list)
    electors: dict[str, Elector] = field(default_factory=dict)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    # Each elector behind a fault-injecting HTTP proxy (src/kubevip/lab/faultproxy.py) instead of a
    # cuttable TCP relay: the elector then talks plain HTTP to its proxy.
    fault_proxies: bool = False

    async def spawn(self, node: str) -> Elector:
        u = urlsplit(self.cp.url)
        proxy: CuttableProxy | FaultProxy
        if self.fault_proxies:
            ctx = load_kubeconfig(self.cp.admin_kubeconfig).ssl
            assert ctx is not None
            proxy = FaultProxy(u.hostname or "127.0.0.1", int(u.port or 443), ctx)
            await proxy.start()
            server = proxy.url
        else:
            proxy = CuttableProxy(u.hostname or "127.0.0.1", int(u.port or 443))
            await proxy.start()
            server = f"https://127.0.0.1:{proxy.listen_port}"
        kubeconfig = self.cp.write_kubeconfig(self.workdir / f"{node}.kubeconfig", self.cp.admin_token,
                                              server=server)
        log = (self.workdir / f"{node}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kubevip.election",
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            self.namespace,
            "--identity",
            node,
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()  # the child holds its own descriptor
        el = Elector(node, proc, proxy)
        el.reader = asyncio.ensure_future(self._read(el))
        self.electors[node] = el
        await self.wait_for(
            lambda: any(e.kind == "ready" and e.node == node for e in self.events), 90, f"{node} ready"
        )
        return el

    async def _read(self, el: Elector) -> None:
        assert el.proc.stdout is not None
        while line := await el.proc.stdout.readline():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            await self._record(Event(d["event"], d["unit"], d["node"], d["mono"]))

    async def _record(self, ev: Event) -> None:
        async with self.changed:
            self.events.append(ev)
            self.changed.notify_all()

    async def kill(self, node: str) -> float:
        """SIGKILL; the node's beliefs end when the process is reaped. Returns that monotonic time."""
        el = self.electors[node]
        el.proc.send_signal(signal.SIGKILL)
        await el.proc.wait()
        t = time.monotonic()
        el.alive = False
        for unit in self.leading(node):
            await self._record(Event("stopped", unit, node, t))
        return t

    async def terminate(self, node: str, within: float = 15) -> None:
        el = self.electors[node]
        el.proc.send_signal(signal.SIGTERM)
        await bounded(el.proc.wait(), within)
        assert el.reader is not None
        await el.reader
        el.alive = False
        assert el.proc.returncode == 0, f"{node} exited {el.proc.returncode}"
        assert not self.leading(node), f"{node} exited while still leading {self.leading(node)}"

    def leading(self, node: str) -> set[str]:
        """Units `node` currently believes it leads, from its event stream."""
        held: set[str] = set()
        for e in self.events:
            if e.node != node:
                continue
            if e.kind == "started":
                held.add(e.unit)
            elif e.kind == "stopped":
                held.discard(e.unit)
        return held

    def leaders(self, unit: str) -> set[str]:
        return {n for n in self.electors if unit in self.leading(n)}

    async def wait_for(self, cond: object, within: float, what: str) -> None:
        """Wait until `cond()` holds, re-checking on every event and at least every 100 ms."""
        deadline = time.monotonic() + within
        assert callable(cond)
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {within}s waiting for: {what}; events: {self.events[-20:]}"
                )
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await bounded(self.changed.wait(), min(left, 0.1))

    def intervals(self) -> dict[str, list[tuple[str, float, float]]]:
        """unit -> [(node, start, end)]; an interval still open ends now."""
        out: dict[str, list[tuple[str, float, float]]] = {}
        open_: dict[tuple[str, str], float] = {}
        for e in self.events:
            key = (e.node, e.unit)
            if e.kind == "started":
                assert key not in open_, f"{e.node} started {e.unit} twice"
                open_[key] = e.mono
            elif e.kind == "stopped" and key in open_:
                out.setdefault(e.unit, []).append((e.node, open_.pop(key), e.mono))
        now = time.monotonic()
        for (node, unit), start in open_.items():
            out.setdefault(unit, []).append((node, start, now))
        return out

    def assert_never_two_holders(self) -> None:
        for unit, spans in self.intervals().items():
            spans.sort(key=lambda s: s[1])
            for (n1, _s1, e1), (n2, s2, _e2) in itertools.pairwise(spans):
                assert e1 <= s2, f"{unit}: {n1} held until {e1:.3f} but {n2} started at {s2:.3f}"

    async def close(self) -> None:
        for el in self.electors.values():
            if el.proc.returncode is None:
                el.proc.send_signal(signal.SIGKILL)
                await el.proc.wait()
            if el.reader is not None:
                el.reader.cancel()
                await asyncio.gather(el.reader, return_exceptions=True)
            await el.proxy.close()
