"""Metrics: kube-vip names on /metrics, /healthz follows the agent's health."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp

from kubevip.metrics import Heartbeat, Metrics, MetricsServer, watch_loop
from tests.fixtures.waiting import eventually


async def test_metrics_and_healthz() -> None:
    m = Metrics("n1")
    m.is_leader.labels("n1", "plndr-svcs-lock").set(1)
    m.active_services.labels("default").set(2)
    m.reconcile_errors.labels("default", "web", "not-an-ip").inc()
    healthy = [True]
    srv = MetricsServer(m, "127.0.0.1", 0, healthy=lambda: healthy[0])
    port = await srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
            for name in (
                "kube_vip_is_leader",
                "kube_vip_leader_election_transitions_total",
                "kube_vip_active_services",
                "kube_vip_service_reconcile_errors_total",
                "kube_vip_service_reconcile_duration_seconds",
                "kube_vip_build_info",
                "kube_vip_manager_all_services_events",
            ):
                assert name in text, name
            assert 'kube_vip_is_leader{lease_name="plndr-svcs-lock",node="n1"} 1.0' in text
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200
            healthy[0] = False
            async with s.get(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 503
    finally:
        await srv.stop()


async def test_other_paths_and_methods_are_refused_and_head_is_answered() -> None:
    srv = MetricsServer(Metrics("n1"), "127.0.0.1", 0)
    port = await srv.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/") as r:
                assert r.status == 404
            async with s.post(f"http://127.0.0.1:{port}/metrics", data=b"x") as r:
                assert r.status == 405 and r.headers["Allow"] == "GET, HEAD"
            async with s.head(f"http://127.0.0.1:{port}/healthz") as r:
                assert r.status == 200 and await r.read() == b""
            async with s.get(f"http://127.0.0.1:{port}/metrics?x=1") as r:  # a query changes nothing
                assert r.status == 200 and "kube_vip_build_info" in await r.text()
    finally:
        await srv.stop()


SERVE_ALONE = """
import asyncio, sys, mimetypes, urllib.request
import kubevip.kube
from kubevip.metrics import Metrics, MetricsServer

async def main():
    srv = MetricsServer(Metrics("n1"), "127.0.0.1", 0)
    port = await srv.start()
    body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read())
    await srv.stop()
    print(b"kube_vip_build_info" in body, "aiohttp.web" in sys.modules, "aiohttp.web_app" in sys.modules,
          mimetypes.inited)

asyncio.run(main())
"""


def test_serving_loads_neither_the_web_framework_nor_mimetypes() -> None:
    """aiohttp's low-level server: aiohttp.web (Application, router, file responses and their mimetypes
    tables) cost 1.3 MB more per process (issue 21)."""
    out = subprocess.run([sys.executable, "-c", SERVE_ALONE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False", "False"], out.stdout + out.stderr


def _get(url: str) -> tuple[int, str]:
    """A blocking GET (it runs ON the test's event loop, on purpose: that loop is then blocked)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def test_served_while_the_agents_loop_is_blocked() -> None:
    """The server has its own thread and loop (issue 16): a request answered while the caller's event
    loop (the agent's) cannot run anything. On the agent's loop this GET could never be answered."""
    m = Metrics("n1")
    m.active_services.labels("default").set(3)
    srv = MetricsServer(m, "127.0.0.1", 0)
    port = await srv.start()
    try:
        status, text = _get(f"http://127.0.0.1:{port}/metrics")  # blocks this loop until answered
        assert status == 200 and 'kube_vip_active_services{namespace="default"} 3.0' in text
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        await srv.stop()
    assert srv._thread is None


async def test_healthz_fails_when_the_loop_stops_ticking() -> None:
    """Off the loop, /healthz must still notice a loop that stalls: the heartbeat goes stale."""
    beat = Heartbeat(stall=60.0)
    srv = MetricsServer(Metrics("n1"), "127.0.0.1", 0, healthy=beat.fresh)
    port = await srv.start()
    try:
        assert _get(f"http://127.0.0.1:{port}/healthz") == (200, "ok\n")
        beat.last -= 61.0  # the loop's last tick, 61 s ago
        assert _get(f"http://127.0.0.1:{port}/healthz") == (503, "unhealthy\n")
        beat.beat()
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        await srv.stop()


def test_kube_vips_service_metrics_and_labels() -> None:
    """kube-vip's names and label sets (pkg/metrics/prometheus.go), so dashboards carry over."""
    from prometheus_client.parser import text_string_to_metric_families

    m = Metrics("n1")
    m.reconcile_duration.labels("team").observe(0.01)
    m.election_loops.labels("team", "web").inc()
    m.election_attempts.labels("team", "web").inc()
    m.election_errors.labels("team", "web", "ApiError").inc()
    labels = {}
    for fam in text_string_to_metric_families(m.exposition().decode()):
        for sample in fam.samples:
            labels.setdefault(sample.name, set(sample.labels) - {"le"})
    assert labels["kube_vip_service_reconcile_duration_seconds_count"] == {"namespace"}
    assert labels["kube_vip_service_election_loops"] == {"namespace", "name"}
    assert labels["kube_vip_service_election_attempts_total"] == {"namespace", "name"}
    assert labels["kube_vip_service_election_errors_total"] == {"namespace", "name", "reason"}


def test_election_labels_name_the_service_or_the_shared_lease() -> None:
    from kubevip.agent.leadership import election_labels

    assert election_labels("team/kubevip-web") == ("team", "web")
    assert election_labels("team/kubevip-web/IPv6") == ("team", "web")
    assert election_labels("team/shared") == ("team", "shared")


async def test_every_late_wake_up_is_counted_not_only_the_last() -> None:
    """Issue 21 counts stalls over 100 ms through a restart: the gauge keeps only the last wake-up's
    lateness, the histogram keeps every one."""
    m = Metrics("n1")
    task = asyncio.create_task(watch_loop(m, period=0.02, warn=60.0))

    def late() -> float:
        """Wake-ups later than 100 ms so far."""
        b = {s.labels["le"]: s.value for metric in m.registry.collect() for s in metric.samples
             if s.name == "kubevip_event_loop_delay_seconds_bucket"}
        return b["+Inf"] - b["0.1"]

    try:
        await eventually(lambda: m.loop_delay._sum.get() > 0 or None, "first wake-ups", within=10)
        before = late()  # a busy machine may already have woken late
        time.sleep(0.3)  # noqa: ASYNC251 -- the fault: a loop blocked by synchronous work
        await eventually(lambda: late() > before, "the late wake-up counted", within=10)
        await eventually(lambda: m.loop_lag._value.get() < 0.1, "the gauge back on time", within=10)
        assert late() > before  # the gauge forgot it, the histogram did not
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
