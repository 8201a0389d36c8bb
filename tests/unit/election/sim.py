"""A deterministic election simulator: virtual time, a Lease API that misbehaves on purpose, the REAL
electors of both modes (LeaseElector, ScalableElector) at their default timings.

- `SimLoop` is an asyncio event loop whose clock only moves when nothing is ready to run: it jumps to
  the next timer. Minutes of election run in a fraction of a second, and a run depends only on the
  seed (and the string-hash order of a few sets inside the electors, which only moves the order of
  same-instant work).
- `SimServer` is the API server: compare-and-swap Leases, resourceVersions, a watch per caller. Each
  request travels to the server and back as its own task, so a write the caller gave up on still lands
  (as on a real network), and a fault can lose the reply of a write that was stored.
- Faults, per node and time window: black hole (requests held until the window ends, some dropped),
  lost replies, slow API, delayed and reordered watch events (order is kept per Lease, as one real
  watch would; events of different Leases overtake each other), broken watches; at an instant:
  a foreign write (someone else's holder on a Lease), a restart of a node under the same name (the old
  process frozen, cut from the API and later killed), a graceful restart (release, then a new process).
- `Recorder` sees every on_started/on_stopped and records, at the very instant, any moment a unit has
  two holders (holder = an elector incarnation between on_started and on_stopped, i.e. it believes it
  holds and has not fenced).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import random
import selectors
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from kubevip.election.elector import LeaseElector
from kubevip.election.leaseapi import Conflict, Gone, LeaseApi, LeaseApiError
from kubevip.election.record import LeaseRecord, lease_body, parse_lease
from kubevip.election.scalable import ScalableElector, claim_lease_name
from kubevip.election.timings import Timings

T = TypeVar("T")
NS = "kube-system"
INTRUDER = "intruder"  # a foreign writer: not one of our electors (a kube-vip peer, a human, a script)


class SimDeadlock(RuntimeError):
    """Nothing can ever run again: every task waits on something no one will do."""


class _VirtualSelector(selectors.BaseSelector):
    """A real selector polled without blocking; where the loop would block, virtual time jumps instead."""

    def __init__(self, loop: SimLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready:
            return ready
        if timeout is None:
            raise SimDeadlock("no task can run and no timer is set")
        self._loop.now += max(0.0, timeout)
        return []

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class SimLoop(asyncio.SelectorEventLoop):
    """asyncio with a virtual clock: `time()` is simulated seconds since the start."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(selector=_VirtualSelector(self))

    def time(self) -> float:
        return self.now


def run_sim(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on a fresh SimLoop and close it, cancelling whatever is left."""
    loop = SimLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


# -- faults ---------------------------------------------------------------------------------------

BLACKHOLE = "blackhole"  # requests and watch events of the node held until the end, some dropped
LOST_REPLIES = "lost-replies"  # writes stored, answers lost
SLOW = "slow"  # requests take up to 1.2 s each way
WATCH_DELAY = "watch-delay"  # watch events late by up to 3 s, reordered across Leases
WATCH_BREAK = "watch-break"  # at `start`: every open watch of the node fails (Gone or disconnect)
FOREIGN = "foreign-write"  # at `start`: INTRUDER writes itself as holder of a unit's Lease
RESTART = "restart"  # at `start`: the node's process freezes, cut off; a new one starts, same name
GRACEFUL = "graceful-restart"  # at `start`: the node's process releases and exits; a new one starts
WINDOWS = (BLACKHOLE, LOST_REPLIES, SLOW, WATCH_DELAY)
INSTANTS = (WATCH_BREAK, FOREIGN, RESTART, GRACEFUL)
KINDS = WINDOWS + INSTANTS


@dataclass(frozen=True)
class Fault:
    kind: str
    node: str
    start: float
    end: float  # == start for the instant kinds
    unit: str = ""  # FOREIGN: whose Lease

    def active(self, now: float) -> bool:
        return self.start <= now < self.end


def random_faults(rnd: random.Random, nodes: tuple[str, ...], units: tuple[str, ...],
                  settle: float = 4.0, horizon: float = 24.0, most: int = 6) -> list[Fault]:
    """1..`most` faults at random instants in [settle, horizon], windows of 0.2-4 s."""
    out = []
    for _ in range(rnd.randint(1, most)):
        kind = rnd.choice(KINDS)
        start = round(rnd.uniform(settle, horizon), 3)
        end = start if kind in INSTANTS else round(start + rnd.uniform(0.2, 4.0), 3)
        out.append(Fault(kind, rnd.choice(nodes), start, end, rnd.choice(units)))
    return sorted(out, key=lambda f: (f.start, f.kind, f.node))


# -- the API server -------------------------------------------------------------------------------


@dataclass
class Write:
    """One accepted write, for the checks."""

    at: float
    name: str
    holder: str | None
    writer: str  # incarnation id, or INTRUDER


@dataclass
class _Watch:
    node: str
    selector: str
    name: str
    pending: list[tuple[float, int, str, dict[str, Any]]] = field(default_factory=list)
    last_at: dict[str, float] = field(default_factory=dict)  # per Lease: keep a Lease's events in order
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    broken: BaseException | None = None


class SimServer:
    """Leases with compare-and-swap and watches; every request passes through the fault schedule."""

    def __init__(self, rnd: random.Random, faults: list[Fault] | None = None) -> None:
        self.rnd = rnd
        self.faults = list(faults or [])
        self.store: dict[str, dict[str, Any]] = {}
        self.writes: list[Write] = []
        self._rv = itertools.count(1)
        self._seq = itertools.count()
        self._watches: list[_Watch] = []
        self.frozen: set[str] = set()  # incarnations cut off for good (a frozen, then killed process)
        self._inflight: set[asyncio.Task[None]] = set()

    @staticmethod
    def now() -> float:
        return asyncio.get_running_loop().time()

    def _fault(self, node: str, kind: str, at: float | None = None) -> Fault | None:
        t = self.now() if at is None else at
        return next((f for f in self.faults if f.kind == kind and f.node == node and f.active(t)), None)

    async def drain(self) -> None:
        """Wait for every request still being served (a test's teardown: none may outlive it)."""
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    # -- requests --

    def _latency(self, node: str) -> float:
        if self._fault(node, SLOW):
            return self.rnd.uniform(0.0, 1.2)
        return self.rnd.uniform(0.001, 0.02)

    async def call(self, node: str, incarnation: str, op: Callable[[], T], limit: float,
                   write: bool) -> T:
        """Send `op` to the server as `incarnation` of `node`; the caller waits at most `limit`."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        task = loop.create_task(self._serve(node, incarnation, op, write, fut))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            async with asyncio.timeout(limit):
                return await asyncio.shield(fut)
        except TimeoutError:
            raise TimeoutError(f"sim: no answer within {limit:.2f}s") from None
        finally:
            fut.cancel()  # the caller stopped listening; the request itself still goes on

    async def _serve(self, node: str, incarnation: str, op: Callable[[], T], write: bool,
                     fut: asyncio.Future[T]) -> None:
        if incarnation in self.frozen:
            return  # the process is gone: its requests never leave it
        await asyncio.sleep(self._latency(node))
        hole = self._fault(node, BLACKHOLE)
        if hole is not None:
            if self.rnd.random() < 0.5:
                return  # dropped on the way
            await asyncio.sleep(hole.end - self.now())  # delivered late, when the path heals
        if incarnation in self.frozen:
            return
        try:
            result: T | BaseException = op()
        except (Conflict, LeaseApiError) as exc:
            result = exc
        lost = write and self._fault(node, LOST_REPLIES) is not None
        await asyncio.sleep(self._latency(node))
        if lost or self._fault(node, BLACKHOLE) is not None:
            if self.rnd.random() < 0.5:
                return  # the caller waits until its own timeout
            result = aiohttp.ServerDisconnectedError("sim: reply lost")
        if fut.done():
            return
        if isinstance(result, BaseException):
            fut.set_exception(result)
        else:
            fut.set_result(result)

    # -- store --

    def _commit(self, obj: dict[str, Any], writer: str, kind: str) -> LeaseRecord:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        name = obj["metadata"]["name"]
        self.store[name] = obj
        rec = parse_lease(copy.deepcopy(obj))
        self.writes.append(Write(self.now(), name, rec.holder, writer))
        self._publish(kind, obj)
        return rec

    def get(self, name: str) -> LeaseRecord | None:
        obj = self.store.get(name)
        return None if obj is None else parse_lease(copy.deepcopy(obj))

    def create(self, body: dict[str, Any], writer: str) -> LeaseRecord:
        if body["metadata"]["name"] in self.store:
            raise Conflict(409, "sim: exists")
        return self._commit(body, writer, "ADDED")

    def replace(self, body: dict[str, Any], writer: str) -> LeaseRecord:
        meta = body["metadata"]
        cur = self.store.get(meta["name"])
        if cur is None or cur["metadata"]["resourceVersion"] != meta["resourceVersion"]:
            raise Conflict(409, "sim: changed")
        return self._commit(body, writer, "MODIFIED")

    def delete(self, name: str, resource_version: str, writer: str) -> None:
        cur = self.store.get(name)
        if cur is None:
            return
        if cur["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(409, "sim: changed")
        del self.store[name]
        gone = copy.deepcopy(cur)
        gone["metadata"]["resourceVersion"] = str(next(self._rv))
        self.writes.append(Write(self.now(), name, None, writer))
        self._publish("DELETED", gone)

    def list(self, selector: str) -> tuple[list[LeaseRecord], str]:
        items = [parse_lease(copy.deepcopy(o)) for o in self.store.values() if _match(o, selector, "")]
        return items, str(next(self._rv))

    def foreign_write(self, name: str) -> None:
        """INTRUDER writes itself as the holder (a peer that thinks the Lease expired, or a human)."""
        cur = self.store.get(name)
        if cur is None:
            return
        rec = parse_lease(cur)
        body = lease_body(
            NS, name, holder=INTRUDER, duration=1.5, transitions=rec.transitions + 1, acquire_wall=1e9,
            renew_wall=1e9, resource_version=rec.resource_version, labels=rec.labels,
            annotations=rec.annotations,
        )
        self._commit(body, INTRUDER, "MODIFIED")

    # -- watches --

    def _publish(self, kind: str, obj: dict[str, Any]) -> None:
        for w in self._watches:
            if _match(obj, w.selector, w.name):
                self._enqueue(w, kind, obj)

    def _enqueue(self, w: _Watch, kind: str, obj: dict[str, Any]) -> None:
        now = self.now()
        at = now + self.rnd.uniform(0.001, 0.02)
        late = self._fault(w.node, WATCH_DELAY)
        if late is not None:
            at = min(now + self.rnd.uniform(0.0, 3.0), late.end)
        hole = self._fault(w.node, BLACKHOLE)
        if hole is not None:
            at = max(at, hole.end)
        name = obj["metadata"]["name"]
        at = max(at, w.last_at.get(name, 0.0))  # one Lease's events stay in order
        w.last_at[name] = at
        w.pending.append((at, next(self._seq), kind, copy.deepcopy(obj)))
        w.pending.sort()
        w.wake.set()

    def break_watches(self, node: str) -> None:
        for w in self._watches:
            if w.node == node:
                w.broken = (
                    Gone(410, "sim watch", "too old") if self.rnd.random() < 0.5
                    else aiohttp.ClientPayloadError("sim: stream cut")
                )
                w.wake.set()

    async def watch(self, node: str, incarnation: str, selector: str, name: str,
                    resource_version: str) -> AsyncIterator[tuple[str, LeaseRecord]]:
        if incarnation in self.frozen or self._fault(node, BLACKHOLE) is not None:
            await asyncio.sleep(self._latency(node) + 0.5)
            raise aiohttp.ClientConnectionError("sim: API server unreachable")
        w = _Watch(node, selector, name)
        floor = int(resource_version or 0)
        for obj in self.store.values():
            if int(obj["metadata"]["resourceVersion"]) > floor and _match(obj, selector, name):
                self._enqueue(w, "MODIFIED", obj)
        self._watches.append(w)
        try:
            while True:
                if w.broken is not None:
                    raise w.broken
                if incarnation in self.frozen:
                    await asyncio.Event().wait()  # a frozen process hears nothing, ever
                if w.pending and w.pending[0][0] <= self.now():
                    _, _, kind, obj = w.pending.pop(0)
                    yield kind, parse_lease(obj)
                    continue
                w.wake.clear()
                wait = None if not w.pending else w.pending[0][0] - self.now()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await w.wake.wait()
        finally:
            self._watches.remove(w)


def _match(obj: dict[str, Any], selector: str, name: str) -> bool:
    meta = obj["metadata"]
    if name and meta["name"] != name:
        return False
    return not selector or selector in (meta.get("labels") or {})


class SimApi(LeaseApi):
    """One process's LeaseApi: every call goes through SimServer as this incarnation."""

    def __init__(self, server: SimServer, node: str, incarnation: str) -> None:  # no RestClient behind
        self.server = server
        self.node = node
        self.incarnation = incarnation
        self.request_timeout = 1.0

    def _limit(self, limit: float | None) -> float:
        return self.request_timeout if limit is None else limit

    async def get(self, namespace: str, name: str, limit: float | None = None) -> LeaseRecord | None:
        return await self.server.call(
            self.node, self.incarnation, lambda: self.server.get(name), self._limit(limit), False
        )

    async def create(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        return await self.server.call(
            self.node, self.incarnation, lambda: self.server.create(body, self.incarnation),
            self._limit(limit), True,
        )

    async def replace(self, body: dict[str, Any], limit: float | None = None) -> LeaseRecord:
        if not body["metadata"].get("resourceVersion"):
            raise ValueError("replace needs metadata.resourceVersion")
        return await self.server.call(
            self.node, self.incarnation, lambda: self.server.replace(body, self.incarnation),
            self._limit(limit), True,
        )

    async def delete(self, namespace: str, name: str, resource_version: str,
                     limit: float | None = None) -> None:
        await self.server.call(
            self.node, self.incarnation, lambda: self.server.delete(name, resource_version, self.incarnation),
            self._limit(limit), True,
        )

    async def list(self, namespace: str, selector: str,
                   limit: float | None = None) -> tuple[list[LeaseRecord], str]:
        return await self.server.call(
            self.node, self.incarnation, lambda: self.server.list(selector), self._limit(limit), False
        )

    async def watch(self, namespace: str, selector: str, resource_version: str, idle_timeout: float,
                    field_selector: str | None = None) -> AsyncIterator[tuple[str, LeaseRecord]]:
        name = (field_selector or "").removeprefix("metadata.name=")
        async for item in self.server.watch(self.node, self.incarnation, selector, name, resource_version):
            yield item


def feed_cache_from(cache: Any, api: SimApi) -> None:
    """Point a LeaseCache at the simulated API server: its list+watch (kube.watch.Reflector, raw HTTP
    in production) is replaced by the same loop over SimApi.list/watch, feeding the cache's own put/drop."""

    async def run() -> None:
        while True:
            try:
                items, rv = await api.list(cache.namespace, cache.selector)
                names = {r.name for r in items}
                for name in list(cache.records):
                    if name not in names:
                        cache.drop(name)
                for rec in items:
                    cache.put(rec)
                cache.synced = True
                cache.changed.set()
                async for kind, rec in api.watch(cache.namespace, cache.selector, rv, cache.idle_timeout):
                    if kind == "DELETED":
                        cache.drop(rec.name)
                    else:
                        cache.put(rec)
            except (Conflict, LeaseApiError, aiohttp.ClientError, TimeoutError, OSError, ValueError):
                pass
            await asyncio.sleep(cache.retry_period)

    cache.run = run


# -- who holds what -------------------------------------------------------------------------------


@dataclass
class Span:
    unit: str
    incarnation: str
    start: float
    end: float | None = None


class Recorder:
    """Every holding interval; a second holder of a unit is recorded at the instant it starts."""

    def __init__(self) -> None:
        self.holding: dict[str, set[str]] = {}
        self.spans: list[Span] = []
        self.violations: list[str] = []
        self._open: dict[tuple[str, str], Span] = {}

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    def started(self, incarnation: str, unit: str) -> None:
        holders = self.holding.setdefault(unit, set())
        if holders - {incarnation}:
            self.violations.append(
                f"t={self._now():.3f} {unit}: {incarnation} starts while {sorted(holders)} hold it"
            )
        if incarnation not in holders:
            holders.add(incarnation)
            span = Span(unit, incarnation, self._now())
            self.spans.append(span)
            self._open[(unit, incarnation)] = span

    def stopped(self, incarnation: str, unit: str) -> None:
        self.holding.get(unit, set()).discard(incarnation)
        span = self._open.pop((unit, incarnation), None)
        if span is not None:
            span.end = self._now()

    def holders(self, unit: str) -> set[str]:
        return set(self.holding.get(unit, set()))

    def changes_after(self, t: float) -> list[Span]:
        """Holdings that started or ended after `t`."""
        return [s for s in self.spans if s.start > t or (s.end is not None and s.end > t)]


# -- a fleet of electors --------------------------------------------------------------------------


class Fleet:
    """`nodes` running the real electors of `mode` against one SimServer, faults applied on schedule."""

    def __init__(self, mode: str, nodes: tuple[str, ...], units: tuple[str, ...], server: SimServer,
                 timings: Timings | None = None) -> None:
        self.mode = mode
        self.nodes = nodes
        self.units = units
        self.server = server
        self.timings = timings or Timings()
        self.rec = Recorder()
        self.current: dict[str, str] = {}  # node -> its live incarnation
        self._procs: dict[str, list[tuple[Any, asyncio.Task[None]]]] = {}
        self._count = itertools.count()
        self._all_tasks: list[asyncio.Task[None]] = []
        self.leftovers: list[str] = []

    def incarnation(self, node: str) -> str:
        return self.current[node]

    def start(self, node: str) -> None:
        inc = f"{node}#{next(self._count)}"
        self.current[node] = inc
        api = SimApi(self.server, node, inc)
        clock = asyncio.get_running_loop().time
        procs: list[tuple[Any, asyncio.Task[None]]] = []

        def cb(unit_of: Callable[[str], str], begin: bool) -> Callable[[str], Awaitable[None]]:
            async def f(arg: str) -> None:
                (self.rec.started if begin else self.rec.stopped)(inc, unit_of(arg))
            return f

        if self.mode == "lease":
            for unit in self.units:
                def fixed(_: str, unit: str = unit) -> str:
                    return unit
                on_start, on_stop = cb(fixed, True), cb(fixed, False)
                el: Any = LeaseElector(
                    api, NS, unit, node, self.timings,
                    lambda f=on_start: f(""), lambda f=on_stop: f(""), clock=clock,
                )
                procs.append((el, self._spawn(el.run(), f"{inc}:{unit}")))
        else:
            el = ScalableElector(api, NS, node, self.timings, cb(str, True), cb(str, False), clock=clock)
            feed_cache_from(el.cache, api)
            el.set_units(dict.fromkeys(self.units))
            procs.append((el, self._spawn(el.run(), inc)))
        self._procs[inc] = procs

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._all_tasks.append(task)
        return task

    def lease_of(self, unit: str) -> str:
        return unit if self.mode == "lease" else claim_lease_name(unit)

    async def freeze_and_restart(self, node: str, kill_after: float) -> None:
        """The process stops talking (frozen, cut off), a new one starts under the same name at once; the
        frozen one is killed `kill_after` later (its in-flight requests still land)."""
        old = self.current[node]
        self.server.frozen.add(old)
        self.start(node)
        await asyncio.sleep(kill_after)
        await self._kill(old)

    async def graceful_restart(self, node: str) -> None:
        """SIGTERM: release() must withdraw, hand the Lease back and end the elector's run() itself."""
        await self.release(node)
        self.start(node)

    def stop_taking(self, node: str) -> None:
        """SIGTERM's first stage: the node's electors take nothing new from here on."""
        for el, _ in self._procs.get(self.current[node], []):
            el.stop_taking()

    async def release(self, node: str) -> None:
        """SIGTERM without a new process: the node's electors release and end."""
        old = self.current[node]
        for el, task in self._procs.pop(old, []):
            await el.release()
            await asyncio.sleep(0)
            if not task.done():
                self.leftovers.append(f"{task.get_name()} still running after release()")
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _kill(self, inc: str) -> None:
        for _, task in self._procs.pop(inc, []):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def inject(self, faults: list[Fault]) -> None:
        """Apply the instant faults at their times (window faults act inside SimServer)."""
        for f in sorted(faults, key=lambda f: f.start):
            if f.kind not in INSTANTS:
                continue
            await asyncio.sleep(max(0.0, f.start - self.server.now()))
            if f.kind == WATCH_BREAK:
                self.server.break_watches(f.node)
            elif f.kind == FOREIGN:
                self.server.foreign_write(self.lease_of(f.unit))
            elif f.kind == RESTART:
                self._spawn(self.freeze_and_restart(f.node, self.timings.lease_duration + 1.0), "restart")
            elif f.kind == GRACEFUL:
                self._spawn(self.graceful_restart(f.node), "graceful")

    def crashed(self) -> list[str]:
        """Electors (and fault injectors) that ended with an exception: an elector must never die."""
        return self.leftovers + [
            f"{t.get_name()}: {t.exception()!r}"
            for t in self._all_tasks
            if t.done() and not t.cancelled() and t.exception() is not None
        ]

    async def stop(self) -> list[str]:
        """Cancel everything; returns the tasks that had crashed before."""
        crashed = self.crashed()
        for task in self._all_tasks:
            task.cancel()
        await asyncio.gather(*self._all_tasks, return_exceptions=True)
        return crashed
