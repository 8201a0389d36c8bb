"""`kubevip ipam`: watches Services and the ConfigMap, and writes allocations; the only writer.

One worker task decides and writes, one Service at a time, against an in-memory table of every address
held in the cluster (rebuilt from the Services at start). Writes carry the resourceVersion read, so a
decision made on a stale object is refused by the API server and made again on a fresh one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubevip.core.parse import service_from_dict
from kubevip.core.policy import AddressPolicy
from kubevip.core.selection import ClassFilter
from kubevip.core.views import IPFamily
from kubevip.errors import InputError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.ipam import allocator as A
from kubevip.ipam.allocator import Allocator, Outcome, Problem, ServiceKey
from kubevip.ipam.kubeapi import JSON, Conflict, IpamApi
from kubevip.ipam.metrics import IpamMetrics
from kubevip.ipam.pools import PoolConfig, PoolError, parse_configmap
from kubevip.ipam.service import (
    ANNOTATION_IPS,
    Classified,
    Kind,
    allocation_patch,
    classify,
    ports_of,
    release_patch,
    request_for,
)
from kubevip.kube.clusterfacts import ClusterFacts
from kubevip.kube.errors import TRANSIENT
from kubevip.kube.rest import RestClient
from kubevip.kube.watch import Backoff, Reflector
from kubevip.tasks import TaskGroupGuard, spawn

log = logging.getLogger(__name__)

# Event reasons (CamelCase, as Kubernetes components write them); the message starts with the stable code.
EVENT_REASONS: dict[str, str] = {
    A.NO_POOL: "NoAddressPool",
    A.POOL_MALFORMED: "AddressPoolMalformed",
    A.POOL_EXHAUSTED: "AddressPoolExhausted",
    A.REQUIRE_DUAL_STACK_UNMET: "RequireDualStackUnmet",
    A.OUTSIDE_EVERY_POOL: "AddressOutsidePools",
    A.ADDRESS_CONFLICT: "AddressConflict",
    A.ADDRESS_REFUSED: "AddressRefused",
    A.INVALID_ADDRESS: "InvalidAddress",
}
CONFIGMAP_INVALID = "ConfigMapInvalid"
# The writes and Events following one decision, run after it (maybe while the next one is made).
Effects = Callable[[], Coroutine[Any, Any, None]]
_TRANSIENT = TRANSIENT


@dataclass(frozen=True)
class IpamSettings:
    """Where the ConfigMap lives and which Services are ours."""

    configmap: str = "kubevip"
    namespace: str = "kube-system"
    classes: ClassFilter = field(default_factory=ClassFilter)
    component: str = "kubevip-ipam"
    retry_seconds: float = 2.0
    concurrent_writes: int = 16  # PATCHes in flight (decisions stay one at a time)
    # The address policy's settings (kubevip.core.policy; the agents read the same ones).
    allowed_cidrs: tuple[IPNetwork, ...] = ()
    service_cidrs: tuple[IPNetwork, ...] = ()
    control_plane: frozenset[IPAddress] = frozenset()
    # False: no Node / ServiceCIDR watch (tests of the allocation alone).
    cluster_facts: bool = True


def _key(obj: Mapping[str, Any]) -> ServiceKey:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _newer(a: str, b: str) -> bool:
    """False when `a` is known not to be newer than `b` (resourceVersions are opaque unless ints)."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return True


class IpamController:
    """The allocation controller; `start()` then `close()`, or `run()` until cancelled."""

    def __init__(self, api_client: RestClient, settings: IpamSettings | None = None) -> None:
        self.settings = settings or IpamSettings()
        self.api = IpamApi(api_client, self.settings.component)
        self.alloc = Allocator()
        self.metrics = IpamMetrics(self.alloc.usage)
        self._cache: dict[ServiceKey, JSON] = {}
        self._queue: asyncio.Queue[ServiceKey] = asyncio.Queue()
        self._queued: set[ServiceKey] = set()
        self._pending: set[ServiceKey] = set()  # incomplete: retried when an address frees up
        self._emitted: dict[ServiceKey, frozenset[tuple[str, str]]] = {}
        self._cm_errors: tuple[PoolError, ...] = ()
        self._configmap: JSON | None = None
        self._retries: set[asyncio.TimerHandle] = set()
        self._guard = TaskGroupGuard("ipam")
        self._listed = False  # the first Service list rebuilds the table
        s = self.settings
        first, cap = min(0.5, s.retry_seconds), max(s.retry_seconds, 10.0)
        # Consistent lists (not from the watch cache): the one writer must not allocate from the past.
        self.configmap_reflector = Reflector(
            f"configmap {s.namespace}/{s.configmap}", api_client,
            f"/api/v1/namespaces/{s.namespace}/configmaps", self._configmap_replace, self._configmap_event,
            query={"fieldSelector": f"metadata.name={s.configmap}"}, backoff=Backoff(first, cap),
            first_list="",
        )
        self.services_reflector = Reflector(
            "services", api_client, "/api/v1/services", self._services_replace, self._services_event,
            backoff=Backoff(first, cap), first_list="",
        )
        self._busy = False
        self._inflight: set[ServiceKey] = set()
        self._again: set[ServiceKey] = set()
        self._slots = asyncio.Semaphore(self.settings.concurrent_writes)
        self.idle = asyncio.Event()
        self.writes = 0
        # Nodes' addresses and ServiceCIDRs for the address policy: never allocated, flagged when held.
        self.facts = ClusterFacts(api_client, self._facts_changed) if self.settings.cluster_facts else None
        self.alloc.set_policy(self._policy())
        self._facts_started = False

    # ----- lifecycle --------------------------------------------------------------------------------

    def _policy(self) -> AddressPolicy:
        s = self.settings
        f = self.facts
        cidrs = dict.fromkeys(s.service_cidrs)
        if f is not None:
            cidrs.update(dict.fromkeys(f.service_cidrs()))
        return AddressPolicy(
            node_addresses=f.node_addresses() if f is not None else frozenset(),
            control_plane=s.control_plane,
            service_cidrs=tuple(cidrs),
            allowed=s.allowed_cidrs,
        )

    def _facts_changed(self) -> None:
        policy = self._policy()
        if policy != self.alloc.policy:
            self.alloc.set_policy(policy)
            self._enqueue_all(sorted(self._cache))

    async def _start_facts(self) -> None:
        """The policy's facts, listed before the first decision: no address is handed out blind."""
        if self.facts is None:
            return
        if not self._facts_started:  # start() is retried while the API server is unreachable
            self._facts_started = True
            await self.facts.discover_service_cidrs()
            for r in self.facts.reflectors:
                spawn(self._guard, f"watch {r.name}", r.run())
        async with asyncio.timeout(60):
            for r in self.facts.reflectors:
                await r.synced.wait()

    async def start(self) -> None:
        """The policy's facts, the ConfigMap and every Service, rebuild the table, then start writing;
        waits (the reflectors retrying with backoff) until the API server has answered the lists."""
        await self._start_facts()
        spawn(self._guard, "watch-configmap", self.configmap_reflector.run())
        await self.configmap_reflector.synced.wait()
        spawn(self._guard, "watch-services", self.services_reflector.run())
        await self.services_reflector.synced.wait()
        spawn(self._guard, "worker", self._worker())

    async def close(self) -> None:
        for h in self._retries:
            h.cancel()
        self._retries.clear()
        await self._guard.close()

    async def run(self) -> None:
        """Start (waiting while the API server is unreachable) and run until cancelled."""
        try:
            while True:
                try:
                    await self.start()
                    break
                except TRANSIENT as exc:  # the facts' discovery or first lists did not answer in time
                    log.warning("ipam: cannot read the cluster yet (%s); retrying", exc)
                    await asyncio.sleep(self.settings.retry_seconds)
            await asyncio.Event().wait()
        finally:
            await self.close()

    @property
    def crashed(self) -> list[tuple[str, BaseException]]:
        return self._guard.crashed

    # ----- queue ------------------------------------------------------------------------------------

    def enqueue(self, key: ServiceKey) -> None:
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)
            self.idle.clear()

    def _enqueue_all(self, keys: Iterable[ServiceKey]) -> None:
        for k in keys:
            self.enqueue(k)

    def _retry_later(self, key: ServiceKey) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._retries.discard(handle)
            self.enqueue(key)

        handle = loop.call_later(self.settings.retry_seconds, fire)
        self._retries.add(handle)

    def _check_idle(self) -> None:
        if self._queue.empty() and not self._retries and not self._inflight and not self._busy:
            self.idle.set()

    async def _worker(self) -> None:
        """The one decision maker: one Service at a time, in queue order."""
        while True:
            self._check_idle()
            key = await self._queue.get()
            self._queued.discard(key)
            if key in self._inflight:
                self._again.add(key)  # decided again once its write has finished
                continue
            self._busy = True
            try:
                decided = self._decide(key)
                if decided is not None:
                    effects, inline = decided
                    await self._slots.acquire()
                    self._inflight.add(key)
                    if inline:
                        await self._run_effects(key, effects)
                    else:
                        spawn(self._guard, f"write {key[0]}/{key[1]}", self._run_effects(key, effects))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad Service must not stop the others
                log.exception("ipam: %s/%s: %r; retrying", key[0], key[1], exc)
                self._retry_later(key)
            finally:
                self._busy = False

    async def _run_effects(self, key: ServiceKey, effects: Effects) -> None:
        try:
            await effects()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("ipam: %s/%s: %r; retrying", key[0], key[1], exc)
            self._retry_later(key)
        finally:
            self._inflight.discard(key)
            self._slots.release()
            if key in self._again:
                self._again.discard(key)
                self.enqueue(key)
            self._check_idle()

    # ----- the cluster -> cache ---------------------------------------------------------------------

    def _store(self, obj: JSON) -> bool:
        key = _key(obj)
        old = self._cache.get(key)
        if old is not None and not _newer(_rv(obj), _rv(old)):
            return False  # an older copy than one we already hold (e.g. our own patch response)
        self._cache[key] = obj
        return True

    def _services_replace(self, listed: Iterable[JSON]) -> None:
        items = list(listed)  # walked twice below
        fresh = {_key(o): o for o in items}
        gone = set(self._cache) - set(fresh)
        self._cache = fresh
        if not self._listed:
            self._listed = True
            # Rebuild the table from what the Services say, oldest first: on a clash the older keeps it.
            for obj in sorted(items, key=lambda o: (str((o.get("metadata") or {}).get("creationTimestamp")),
                                                    _key(o))):
                self._sync_table(_key(obj), obj)
        self._enqueue_all(gone)
        self._enqueue_all(sorted(fresh))
        log.info("ipam: %d Services listed, %d addresses in use", len(fresh), self.alloc.in_use())

    def _services_event(self, kind: str, obj: JSON) -> None:
        key = _key(obj)
        if kind == "DELETED":
            self._cache.pop(key, None)
            self.enqueue(key)
        elif self._store(obj):
            self.enqueue(key)

    def _configmap_replace(self, items: Iterable[JSON]) -> None:
        self._apply_configmap(next(iter(items), None))

    def _configmap_event(self, kind: str, obj: JSON) -> None:
        self._apply_configmap(None if kind == "DELETED" else obj)

    def _apply_configmap(self, obj: JSON | None) -> None:
        s = self.settings
        if obj is None:
            log.warning("ipam: ConfigMap %s/%s does not exist: no pools, nothing will be allocated",
                        s.namespace, s.configmap)
        data = (obj or {}).get("data") or {}
        config: PoolConfig = parse_configmap({str(k): str(v) for k, v in data.items()})
        self.alloc.set_config(config)
        self._configmap = obj
        if config.errors != self._cm_errors:
            self._cm_errors = config.errors
            for err in config.errors:
                log.warning("ipam: ConfigMap %s/%s: %s", s.namespace, s.configmap, err)
                if obj is not None:  # best effort, off the watch's path
                    spawn(self._guard, "configmap event",
                          self._event(obj, "ConfigMap", "Warning", CONFIGMAP_INVALID, str(err)))
        self._enqueue_all(sorted(self._cache))

    # ----- decisions -> writes ----------------------------------------------------------------------

    def _sync_table(self, key: ServiceKey, obj: JSON) -> tuple[Any, Any, tuple[Problem, ...]] | None:
        """Make the table say what the object says; returns (view, classified, conflicts)."""
        try:
            view = service_from_dict(obj)
        except InputError as exc:
            log.warning("ipam: %s", exc)
            self.alloc.release(key)
            return None
        c = classify(view, self.settings.classes)
        if c.kind is Kind.NONE:
            self.alloc.release(key)
            return view, c, ()
        conflicts = self.alloc.hold(key, c.addresses, ports_of(view), owned=c.kind is Kind.OURS)
        return view, c, conflicts

    def _decide(self, key: ServiceKey) -> tuple[Effects, bool] | None:
        """Decide for `key` against the table (synchronously); returns the effects to run and whether
        they must finish before the next decision."""
        before = set(self.alloc.holding(key))
        obj = self._cache.get(key)
        if obj is None:
            self.alloc.release(key)
            self._pending.discard(key)
            self._emitted.pop(key, None)
            if before:
                log.info("ipam: %s/%s gone: released %s", *key, ", ".join(map(str, before)))
                self._enqueue_all(sorted(self._pending))
            return None
        synced = self._sync_table(key, obj)
        if synced is None:
            return None
        view, c, conflicts = synced
        if before - set(self.alloc.holding(key)):
            self._enqueue_all(sorted(self._pending))
        if c.kind is not Kind.OURS:
            self._pending.discard(key)
            return functools.partial(self._foreign_effects, key, obj, view, c, conflicts), True
        outcome = self.alloc.ensure(request_for(view))
        self._enqueue_all(outcome.displaced)
        patch = allocation_patch(view, outcome, self.alloc.config.interface_for(view.namespace))
        # A write that releases an address finishes before the next decision: until the API server has
        # taken the address off this Service, nobody else may be given it. Writes that only add run
        # concurrently (the table already holds the new address; a refused write gives it back).
        inline = bool(outcome.released) or patch is None
        return functools.partial(self._effects, key, obj, c.addresses, patch, outcome, conflicts), inline

    async def _foreign_effects(self, key: ServiceKey, obj: JSON, view: Any, c: Any,
                               conflicts: tuple[Problem, ...]) -> None:
        if c.kind is Kind.NONE and (patch := release_patch(view)) is not None:
            await self._write(key, obj, patch, c.addresses)
        await self._warn(key, obj, conflicts + self._user_problems(key, c))

    def _user_problems(self, key: ServiceKey, c: Classified) -> tuple[Problem, ...]:
        """A user's addresses IPAM leaves alone, and why the agents will not announce some of them."""
        if c.kind is not Kind.FOREIGN:
            return ()
        out: list[Problem] = []
        if c.invalid:
            shown = ", ".join(repr(t[:64]) for t in c.invalid[:5])
            more = f" and {len(c.invalid) - 5} more" if len(c.invalid) > 5 else ""
            out.append(Problem(A.INVALID_ADDRESS, None, f"{ANNOTATION_IPS} holds {shown}{more}, which is not"
                               " an IP address; the Service is left as written (no address allocated)"))
        for a in c.addresses:
            refused = self.alloc.refused(a, key[0])
            if refused is not None:
                out.append(Problem(A.ADDRESS_REFUSED, IPFamily.of(a), f"{a} is refused by the address"
                                   f" policy ({refused.reason}: {refused.rule}); the agents will not announce"
                                   " it"))
        return tuple(out)

    async def _effects(
        self, key: ServiceKey, obj: JSON, truth: tuple[Any, ...], patch: Mapping[str, Any] | None,
        outcome: Outcome, conflicts: tuple[Problem, ...],
    ) -> None:
        if patch is not None and not await self._write(key, obj, patch, truth):
            return
        if outcome.changed:
            log.info("ipam: %s/%s: %s (added %s, released %s)", *key,
                     ",".join(map(str, outcome.addresses)) or "no address",
                     ",".join(map(str, outcome.added)) or "-", ",".join(map(str, outcome.released)) or "-")
        if outcome.released:
            self._enqueue_all(sorted(self._pending - {key}))
        if outcome.complete:
            self._pending.discard(key)
        else:
            self._pending.add(key)
        await self._warn(key, obj, conflicts + outcome.problems)

    async def _write(self, key: ServiceKey, obj: JSON, patch: Mapping[str, Any],
                     truth: tuple[Any, ...]) -> bool:
        """Apply `patch`; on refusal put the table back to what the object says and decide again."""
        try:
            new = await self.api.patch_service(key[0], key[1], patch)
        except Conflict:
            self._revert(key, obj)
            fresh = await self.api.get_service(*key)
            if fresh is None:
                self._cache.pop(key, None)
            else:
                self._store(fresh)
            self.enqueue(key)
            return False
        except _TRANSIENT as exc:
            log.warning("ipam: write %s/%s: %s; retrying", key[0], key[1], exc)
            self._revert(key, obj)
            self._retry_later(key)
            return False
        self.writes += 1
        if new is None:  # deleted meanwhile
            self._cache.pop(key, None)
            self.enqueue(key)
            return False
        self._store(new)
        return True

    def _revert(self, key: ServiceKey, obj: JSON) -> None:
        self._sync_table(key, obj)

    async def _warn(self, key: ServiceKey, obj: JSON, problems: Iterable[Problem]) -> None:
        problems = tuple(problems)
        current = frozenset((EVENT_REASONS[p.reason], f"[{p.reason}] {p.message}") for p in problems)
        new = current - self._emitted.get(key, frozenset())
        for p in problems:
            if (EVENT_REASONS[p.reason], f"[{p.reason}] {p.message}") in new:
                self.metrics.failures.labels(p.reason, p.family.value if p.family else "").inc()
        if current:
            self._emitted[key] = current
        else:
            self._emitted.pop(key, None)
        for reason, message in sorted(new):
            log.warning("ipam: %s/%s: %s", key[0], key[1], message)
            await self._event(obj, "Service", "Warning", reason, message)

    async def _event(self, obj: JSON, kind: str, event_type: str, reason: str, message: str) -> None:
        try:
            await self.api.event(obj, kind, event_type, reason, message)
        except _TRANSIENT as exc:  # an Event is best effort: never block allocation on it
            log.warning("ipam: cannot record Event %s: %s", reason, exc)

    # ----- introspection (tests, bench, lab status) -------------------------------------------------

    async def wait_idle(self) -> None:
        """Until nothing is queued, being decided or being written."""
        while True:
            await self.idle.wait()
            if self._queue.empty() and not self._busy and not self._inflight:
                return
            self.idle.clear()
