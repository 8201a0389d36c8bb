"""Metrics: kube-vip names on /metrics, /healthz follows the agent's health."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import aiohttp
from hypothesis import given
from hypothesis import strategies as st

from kubevip.metrics import Heartbeat, Metrics, MetricsServer, cpu_wait, runqueue_wait, watch_loop
from tests.fixtures.prereqs import require
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
        return _late(m, "kubevip_event_loop_delay_seconds")

    try:
        await eventually(lambda: m.loop_delay._sum.get() > 0 or None, "first wake-ups", within=10)
        before = late()  # a busy machine may already have woken late
        time.sleep(0.3)  # noqa: ASYNC251 -- the fault: a loop blocked by synchronous work
        await eventually(lambda: late() > before, "the late wake-up counted", within=10)
        await eventually(lambda: m.loop_lag._value.get() < 0.1, "the gauge back on time", within=10)
        assert late() > before  # the gauge forgot it, the histogram did not
        # The loop's own block: sleeping is no wait for a CPU, so it is the agent's part too.
        assert _late(m, "kubevip_event_loop_blocked_seconds") >= 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _late(m: Metrics, name: str) -> float:
    """Wake-ups counted in histogram `name` later than 100 ms."""
    b = {s.labels["le"]: s.value for metric in m.registry.collect() for s in metric.samples
         if s.name == f"{name}_bucket"}
    return b["+Inf"] - b["0.1"]


@given(
    lag=st.floats(0, 100, allow_nan=False),
    before=st.none() | st.floats(0, 1e6, allow_nan=False),
    spent=st.floats(0, 100, allow_nan=False),
    known=st.booleans(),
)
def test_a_wake_up_is_credited_with_its_wait_for_a_cpu_and_never_more_than_its_lateness(
    lag: float, before: float | None, spent: float, known: bool
) -> None:
    after = None if before is None or not known else before + spent
    waited = cpu_wait(lag, before, after)
    assert 0.0 <= waited <= lag
    if after is None:
        assert waited == 0.0  # no count: the whole lateness is the agent's
    else:
        assert waited == min(lag, after - before)


_SPINNER = """
import os, sys, time
os.sched_setaffinity(0, {0})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
print("spinning", flush=True)
t = time.monotonic()
while time.monotonic() - t < 0.5:
    pass
"""


async def test_a_wake_up_late_for_want_of_a_cpu_is_not_the_agents_block() -> None:
    """The lateness that the loop's thread spent on a run queue (another task held its CPU) counts in
    the delay histogram and not in the blocked one. The fault: a real-time spinner on CPU 0, then the
    loop's thread moved onto that CPU, where it waits until the spinner is done."""
    require(os.geteuid() == 0, "root (a SCHED_FIFO spinner needs CAP_SYS_NICE)")
    require(runqueue_wait() is not None, "/proc/thread-self/schedstat")
    m = Metrics("n1")
    task = asyncio.create_task(watch_loop(m, period=0.02, warn=60.0))
    cpus = os.sched_getaffinity(0)
    spinner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SPINNER, stdout=asyncio.subprocess.PIPE
    )
    try:
        await eventually(lambda: m.loop_delay._sum.get() > 0 or None, "first wake-ups", within=10)
        delayed = _late(m, "kubevip_event_loop_delay_seconds")
        blocked = _late(m, "kubevip_event_loop_blocked_seconds")
        assert spinner.stdout is not None
        async with asyncio.timeout(30):
            assert await spinner.stdout.readline() == b"spinning\n"
        os.sched_setaffinity(0, {0})  # returns once the spinner lets this thread run on CPU 0
        os.sched_setaffinity(0, cpus)
        await eventually(lambda: _late(m, "kubevip_event_loop_delay_seconds") > delayed or None,
                         "the late wake-up counted", within=10)
        assert _late(m, "kubevip_event_loop_blocked_seconds") == blocked
    finally:
        os.sched_setaffinity(0, cpus)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(ProcessLookupError):
            spinner.kill()
        await spinner.wait()
