"""kube.watch.Reflector against the real API server through a fault-injecting proxy (faultproxy.py).

For every fault: the reflector's task never dies, it recovers and delivers the object written during the
fault and the one written after it, and its request rate stays bounded (requests counted at the proxy;
a hot loop made thousands per second). The agent's sources, the Lease cache and `kubevip ipam` all run
this one reflector.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes_asyncio import client

from kubevip.kube.kubeconfig import load_kubeconfig
from kubevip.kube.rest import Access, RestClient
from kubevip.kube.watch import Backoff, Reflector
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.faultproxy import FaultProxy, Request
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster

# Far above what the backoff allows (at most a few requests in the first second, then fewer), far below
# a hot loop; a loaded machine only lowers the rate.
MAX_RATE = 8.0


@pytest.fixture
async def proxy(control_plane: ControlPlane) -> AsyncIterator[FaultProxy]:
    url = urlsplit(control_plane.url)
    ctx = load_kubeconfig(control_plane.admin_kubeconfig).ssl
    assert url.hostname and url.port and ctx is not None
    p = FaultProxy(url.hostname, url.port, ctx)
    await p.start()
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture
async def api(proxy: FaultProxy, control_plane: ControlPlane) -> AsyncIterator[RestClient]:
    async with RestClient(Access(server=proxy.url, token=control_plane.admin_token)) as c:
        yield c


@dataclass
class Seen:
    """What a consumer of the reflector holds: names -> object size in bytes of JSON (roughly)."""

    names: dict[str, int] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)

    def replace(self, items: Iterable[dict[str, Any]]) -> None:
        self.names = {i["metadata"]["name"]: _size(i) for i in items}

    def event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            self.names.pop(obj["metadata"]["name"], None)
        else:
            self.names[obj["metadata"]["name"]] = _size(obj)


def _size(obj: dict[str, Any]) -> int:
    return sum(len(v) for v in (obj.get("data") or {}).values())


@dataclass
class Watched:
    reflector: Reflector
    seen: Seen
    guard: TaskGroupGuard
    core: client.CoreV1Api
    ns: str

    async def create(self, name: str, data: dict[str, str] | None = None,
                     annotations: dict[str, str] | None = None) -> None:
        await self.core.create_namespaced_config_map(self.ns, {
            "metadata": {"name": name, "annotations": annotations or {}}, "data": data or {"k": "v"},
        })

    async def sees(self, *names: str, within: float = 60.0) -> None:
        await eventually(lambda: all(n in self.seen.names for n in names), f"the reflector sees {names}",
                         within, detail=lambda: f"seen {sorted(self.seen.names)}, "
                                                f"restarts {self.seen.restarts}")

    def alive(self) -> None:
        assert not self.guard.crashed, self.guard.crashed
        assert len(self.guard.tasks) == 1  # the reflector still runs


@pytest.fixture
async def watched(api: RestClient, kube_admin: client.ApiClient, kube_namespace: str,
                  request: pytest.FixtureRequest) -> AsyncIterator[Watched]:
    """A reflector on the ConfigMaps of a fresh namespace, through the proxy, already synced."""
    seen = Seen()
    # The production cap (10 s) only stretches the waits of the tests that fail many requests in a row:
    # what they check (no hot loop, Retry-After honoured, recovery) holds at any cap.
    kw: dict[str, Any] = {"backoff": Backoff(cap=2.0), **getattr(request, "param", {})}
    r = Reflector("configmaps", api, f"/api/v1/namespaces/{kube_namespace}/configmaps", seen.replace,
                  seen.event, on_restart=seen.restarts.append, **kw)
    guard = TaskGroupGuard("faults")
    spawn(guard, "reflector", r.run())
    w = Watched(r, seen, guard, client.CoreV1Api(kube_admin), kube_namespace)
    try:
        await eventually(r.synced.is_set, "the first list")
        await w.create("before")
        await w.sees("before")
        yield w
        w.alive()
    finally:
        await guard.close()


async def fault_window(proxy: FaultProxy, w: Watched, requests: int,
                       on_request: Callable[[Request], bool] = lambda r: True) -> list[Request]:
    """With a fault on: write an object, then wait until the client has tried `requests` times."""
    t0 = time.monotonic()
    await w.create("during")
    await eventually(lambda: len([r for r in proxy.since(t0) if on_request(r)]) >= requests,
                     f"{requests} requests during the fault", 60.0,
                     detail=lambda: f"requests {proxy.since(t0)}, restarts {w.seen.restarts}")
    return proxy.since(t0)


def rate(reqs: list[Request]) -> float:
    """Requests per second over the window they span (at least one second)."""
    return len(reqs) / max(1.0, reqs[-1].at - reqs[0].at)


async def recovered(proxy: FaultProxy, w: Watched) -> None:
    proxy.clear()
    await w.create("after")
    await w.sees("during", "after")
    w.alive()


async def test_drop_refused_connections(proxy: FaultProxy, watched: Watched) -> None:
    proxy.refuse = True
    proxy.reset_all()
    t0 = time.monotonic()
    await fault_window(proxy, watched, 0)
    await eventually(lambda: len(proxy.connections_since(t0)) >= 4, "4 connection attempts while refused")
    attempts = proxy.connections_since(t0)
    assert len(attempts) / max(1.0, attempts[-1] - attempts[0]) <= MAX_RATE, attempts
    await recovered(proxy, watched)


async def test_rst_of_every_connection(proxy: FaultProxy, watched: Watched) -> None:
    proxy.reset_all()
    await fault_window(proxy, watched, 1)
    await recovered(proxy, watched)
    assert watched.seen.restarts


async def test_delay_of_every_request(proxy: FaultProxy, watched: Watched) -> None:
    proxy.delay = 1.5
    proxy.reset_all()  # the open watch is asked again, and answered slowly
    await fault_window(proxy, watched, 1)
    await watched.sees("during")
    await recovered(proxy, watched)


@pytest.mark.parametrize("watched", [{"idle_timeout": 3.0}], indirect=True)
async def test_half_open_connection_is_abandoned_after_the_idle_deadline(
    proxy: FaultProxy, watched: Watched
) -> None:
    # The open watch stops receiving but is never closed (no FIN, no RST): only the idle deadline (here
    # 3 s; ~70 s by default, after a missed bookmark) gets the reflector off it.
    assert proxy.freeze() >= 1
    await fault_window(proxy, watched, 1, lambda r: r.watch)
    await watched.sees("during")
    await recovered(proxy, watched)


@pytest.mark.parametrize("watched", [{"idle_timeout": 2.0}], indirect=True)
async def test_a_quiet_collection_is_watched_again_without_a_failure(
    proxy: FaultProxy, watched: Watched, caplog: pytest.LogCaptureFixture
) -> None:
    """Nobody writes the namespace's ConfigMaps now. The API server sends a watch a bookmark only once the
    collection's resourceVersion has moved past the watch's start (k8s.io/apiserver's cacher), so the
    stream stays silent: on a quiet collection (Nodes without kubelets, ServiceCIDRs) every agent logged
    a timeout warning and counted a watch restart each idle deadline. Now the watch is resumed from the
    same version, with no relist, no backoff and no warning."""
    r = watched.reflector
    watches = r.watches
    with caplog.at_level(logging.DEBUG, logger="kubevip.kube.watch"):
        await eventually(lambda: r.watches >= watches + 2, "two idle deadlines", 30)
    assert watched.seen.restarts == []
    assert [x.getMessage() for x in caplog.records if x.levelno >= logging.WARNING] == []
    assert any("silent for 2 s; resuming" in x.getMessage() for x in caplog.records)
    assert r.lists == 1 and r.failures == 0
    await watched.create("after")  # the resumed watch still delivers
    await watched.sees("after")
    watched.alive()


async def test_429_with_retry_after_is_honoured(proxy: FaultProxy, watched: Watched) -> None:
    proxy.answer = (429, {"Retry-After": "2"})
    proxy.reset_all()
    reqs = await fault_window(proxy, watched, 4)
    gaps = [b.at - a.at for a, b in itertools.pairwise(reqs)]
    assert min(gaps) >= 1.9, gaps  # each retry waited the Retry-After (a busy machine only waits longer)
    await recovered(proxy, watched)


async def test_500_backs_off(proxy: FaultProxy, watched: Watched) -> None:
    proxy.answer = (500, {})
    proxy.reset_all()
    reqs = await fault_window(proxy, watched, 5)
    assert rate(reqs) <= MAX_RATE, reqs
    await recovered(proxy, watched)


async def test_truncated_watch_stream_recovers_by_relisting(proxy: FaultProxy, watched: Watched) -> None:
    # Every watch answer is cut mid-event: the object arrives through a list after repeated failures.
    proxy.truncate_watches = 700
    proxy.reset_all()
    reqs = await fault_window(proxy, watched, 1, lambda r: not r.watch and "continue" not in r.target)
    await watched.sees("during")
    assert rate(reqs) <= MAX_RATE, reqs
    await recovered(proxy, watched)


async def test_watch_answered_200_and_closed_at_once_does_not_hot_loop(
    proxy: FaultProxy, watched: Watched
) -> None:
    proxy.empty_watches = True
    proxy.reset_all()
    reqs = await fault_window(proxy, watched, 6)
    assert rate(reqs) <= MAX_RATE, reqs  # it was ~9,000 requests/s per reflector
    await watched.sees("during")  # through the relist after repeated failures
    await recovered(proxy, watched)


async def test_an_object_above_1_mib_is_delivered_and_the_watch_lives_on(watched: Watched) -> None:
    # aiohttp's line reader stops at 512 KiB: such an event killed the Service watch (/healthz 503).
    data = {f"k{i}": secrets.token_hex(50_000) for i in range(10)}  # 10 x 100 kB of data
    await watched.create("big", data=data, annotations={"pad": "x" * 200_000})
    await watched.sees("big")
    assert watched.seen.names["big"] == 1_000_000
    await watched.create("small")
    await watched.sees("small")
    assert watched.seen.restarts == []


async def test_api_server_restart(proxy: FaultProxy, watched: Watched, control_plane: ControlPlane) -> None:
    t0 = time.monotonic()
    await asyncio.to_thread(control_plane.restart_apiserver)
    reqs = proxy.since(t0)
    assert not reqs or rate(reqs) <= MAX_RATE, reqs
    await watched.create("after-restart")
    await watched.sees("after-restart")
    watched.alive()


async def test_etcd_restart(proxy: FaultProxy, watched: Watched, control_plane: ControlPlane) -> None:
    t0 = time.monotonic()
    await asyncio.to_thread(control_plane.restart_etcd)
    reqs = proxy.since(t0)
    assert not reqs or rate(reqs) <= MAX_RATE, reqs
    await watched.create("after-etcd-restart")
    await watched.sees("after-etcd-restart")
    watched.alive()


@pytest.mark.parametrize("first_list", ["0", ""])
async def test_the_first_list_is_paged(proxy: FaultProxy, api: RestClient, kube_admin: client.ApiClient,
                                       kube_namespace: str, first_list: str) -> None:
    core = client.CoreV1Api(kube_admin)
    want = {f"p-{i}" for i in range(5)}
    for name in sorted(want):
        await core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": name}})
    seen = Seen()
    r = Reflector("configmaps", api, f"/api/v1/namespaces/{kube_namespace}/configmaps", seen.replace,
                  seen.event, page_size=2, first_list=first_list)
    guard = TaskGroupGuard("paged")
    spawn(guard, "reflector", r.run())
    try:
        await eventually(r.synced.is_set, "the first list")
        assert want <= set(seen.names)
        lists = [q for q in proxy.requests if not q.watch]
        assert "limit=2" in lists[0].target
        assert ("resourceVersion=0" in lists[0].target) == (first_list == "0")
        if first_list == "":  # a consistent list is paged by etcd: 5+ objects in pages of 2
            assert len([q for q in lists if "continue=" in q.target]) >= 2, lists
        assert r.lists == 1 and not guard.crashed
    finally:
        await guard.close()
