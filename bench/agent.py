"""End-to-end agent benchmark in the lab: agents (`kubevip manager`) as processes in node namespaces.

Measures, as the client namespace sees it:
- Service created -> VIP answering, per family (dual-stack Services, fresh VIPs each run);
- crash failover (SIGKILL of the announcing agent and its node's link going down) and graceful
  failover (SIGTERM), time until another node answers;
- 100 and 1000 dual-stack Services: time for all VIPs to be held (each on exactly one node) after a
  restart of every agent, agent RSS, what the restart wrote besides Lease renewals (by verb and
  resource, Event POSTs among them) and how long until a whole second passed without such a write, how
  many Services it moved (vipHost or vipHost-ipv6 changed), and API requests per second by verb and
  resource in steady state after that drain (apiserver metrics). `--restart same-holder`: lease
  mode's previous holder of the global Lease starts first, so nothing moves (the quiet restart).

JSON goes to bench/results/agent.json; a table is printed. Needs root (network namespaces).
Usage: python bench/agent.py [--runs 20] [--scale 100,1000] [--quick] [--liveness S] [--stack dual|ipv4|ipv6]
    [--election lease,scalable] [--restart all|same-holder]
(KUBEVIP_BENCH_OUT: another JSON file; KUBEVIP_BENCH_LOGS=DIR: a copy of the agents' logs of each
scale row)

`--stack ipv4|ipv6`: a control plane with that family's Service and pod CIDRs only and a lab network of
that family (as `kubevip lab up --stack`); Services of that family, failover of its VIP. JSON then goes
to bench/results/agent-<stack>.json (docs/performance.md, per-stack rows).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import termination
from distribution import summarize
from kubernetes_asyncio import client
from polling import until

from kubevip.core.events import RATE as EVENT_RATE
from kubevip.election.timings import SERVICES_LEASE
from kubevip.lab import controlplane, topology
from kubevip.lab.agents import RESPONDER_PORT, Fleet, policy_env, start_responders, stop_responders
from kubevip.lab.client import api_client
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.instance import find_bin_dir as bin_dir
from kubevip.lab.network import LabNetwork
from kubevip.lab.stack import connect_network, node_kubeconfig
from kubevip.manifests import rbac
from kubevip.net.addresses import AddressManager
from kubevip.net.namespace import Netns
from kubevip.tasks import bounded

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("KUBEVIP_BENCH_OUT", REPO / "bench" / "results" / "agent.json"))
NS = "bench-agent"
VIP_HOSTS = ("kube-vip.io/vipHost", "kube-vip.io/vipHost-ipv6")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def summary(values: list[float]) -> dict[str, float | int | None]:
    """This benchmark's JSON for one figure ({"runs": 0} when nothing was measured)."""
    s = summarize(values, p95="nearest-index")
    return s.as_dict(("runs", "median", "p95", "min", "max")) if s.n else {"runs": 0}


class Bench:
    def __init__(
        self, cp: ControlPlane, lab: LabNetwork, api: client.ApiClient, work: Path, env: dict[str, str]
    ) -> None:
        self.cp = cp
        self.lab = lab
        self.families = lab.families
        self.first = self.families[0]  # the family of the warm-up and failover VIPs
        self.api = api
        self.core = client.CoreV1Api(api)
        self.fleet = Fleet(lab, node_kubeconfig(cp, lab), work, env)
        self._n = 0

    def vip(self, family: int) -> IPAddress:
        self._n += 1
        return self.lab.vip(family, self._n % 50)

    async def reach(self, vip: IPAddress, wait: float = 0.2) -> str | None:
        fam = socket.AF_INET if vip.version == 4 else socket.AF_INET6
        s = Netns(self.lab.client.netns).socket(fam, socket.SOCK_STREAM)
        s.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await bounded(loop.sock_connect(s, (str(vip), RESPONDER_PORT)), wait)
            return (await bounded(loop.sock_recv(s, 100), wait)).decode().strip() or None
        except (OSError, TimeoutError):
            return None
        finally:
            s.close()

    def body(self, name: str, vips: list[IPAddress]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "annotations": {"kube-vip.io/loadbalancerIPs": ",".join(map(str, vips)),
                                "kube-vip.io/allow-reconcile-without-endpoints": "true"},
            },
            "spec": {
                "type": "LoadBalancer",
                "ipFamilies": [f"IPv{f}" for f in self.families],
                "ipFamilyPolicy": "PreferDualStack" if len(self.families) == 2 else "SingleStack",
                "allocateLoadBalancerNodePorts": False,
                "selector": {"app": name},
                "ports": [{"name": "p", "protocol": "TCP", "port": RESPONDER_PORT}],
            },
        }

    def keep_logs(self, out: Path, tag: str) -> None:
        """Copy every agent's log (KUBEVIP_BENCH_LOGS): the lab's directory goes with the run."""
        out.mkdir(parents=True, exist_ok=True)
        for name, a in self.fleet.agents.items():
            with contextlib.suppress(OSError):
                shutil.copyfile(a.log_path, out / f"{tag}-{name}.log")

    def py_spy(self, out: Path, tag: str, seconds: float) -> list[subprocess.Popen[bytes]]:
        """py-spy on every agent for `seconds` (`--profile-steady`: the steady window) or until stopped
        with SIGINT (`--profile-restart`; py-spy then writes what it has): collapsed stacks in `out`, one
        file per node, on-CPU samples only (idle threads are left out), 100 per second (KUBEVIP_PY_SPY_RATE:
        another rate; a steady agent at 1 % of a CPU gives 100 Hz only one sample a second)."""
        spy = os.environ.get("KUBEVIP_PY_SPY", "py-spy")
        rate = os.environ.get("KUBEVIP_PY_SPY_RATE", "100")
        out.mkdir(parents=True, exist_ok=True)
        return [
            subprocess.Popen([spy, "record", "--pid", str(a.pid), "--duration", str(max(1, int(seconds))),
                              "--rate", rate, "--threads", "--format", "raw", "--nonblocking",
                              "--output", str(out / f"{tag}-{name}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, a in self.fleet.agents.items() if a.pid
        ]

    async def owned(self) -> dict[str, set[IPAddress]]:
        def read() -> dict[str, set[IPAddress]]:
            return {
                n.name: {a for a, _ in AddressManager(n.interface, Netns(n.netns)).owned()}
                for n in self.lab.nodes
            }

        return await asyncio.to_thread(read)

    def loop_stalls(self) -> dict[str, dict[str, float]]:
        """Each node's agent: its event loop's late wake-ups so far (`loop_delay`), read from /metrics."""
        out: dict[str, dict[str, float]] = {}
        for n in self.lab.nodes:
            url = "http://127.0.0.1:2112/metrics"
            res = self.lab.run(n.netns, ["curl", "-s", "-m", "5", url], check=False)
            out[n.name] = loop_delay(res.stdout) if res.returncode == 0 else {}
        return out

    async def warm_up(self) -> None:
        """Every agent started and serving: a Service answers and each node has its liveness Lease."""
        vip = self.vip(self.first)
        await retry(lambda: self.core.create_namespaced_service(NS, self.body("warmup", [vip])))
        await until(lambda: self.reach(vip), 120, "warm-up Service answers")
        await until(self.all_live, 120, "every agent live")
        await retry(lambda: self.core.delete_namespaced_service("warmup", NS))
        await until(lambda: self._gone(vip), 60, "warm-up VIP removed")

    async def all_live(self) -> bool:
        leases = await client.CoordinationV1Api(self.api).list_namespaced_lease(NS)
        holders = {
            i.spec.holder_identity for i in leases.items if i.metadata.name.startswith("kubevip-node-")
        }
        return holders >= {n.name for n in self.lab.nodes}

    # -- create -> answering ---------------------------------------------------------------------------
    async def create_to_answer(self, runs: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {f"IPv{f}": [] for f in self.families}
        for i in range(runs):
            vips = [self.vip(f) for f in self.families]
            name = f"c{i}"
            t0 = time.monotonic()
            await self.core.create_namespaced_service(NS, self.body(name, vips))
            pending = {f"IPv{v.version}": v for v in vips}
            while pending:
                for fam, vip in list(pending.items()):
                    if await self.reach(vip, 0.05):
                        out[fam].append(time.monotonic() - t0)
                        del pending[fam]
                if time.monotonic() - t0 > 30:
                    raise TimeoutError(f"{name} did not answer")
            await self.core.delete_namespaced_service(name, NS)
            await until(lambda vips=vips: self._gone(*vips), 30, "VIPs removed")
        return out

    async def _slices_at_least(self, n: int) -> bool:
        # One item and the count of the rest: polled every 10 ms, a full list of 10000 slices (5000
        # Services) would load the API server whose catch-up it waits for.
        page = await client.DiscoveryV1Api(self.api).list_namespaced_endpoint_slice(NS, limit=1)
        return len(page.items) + (page.metadata.remaining_item_count or 0) >= n

    async def _gone(self, *vips: IPAddress) -> bool:
        owned = await self.owned()
        return not any(v in a for a in owned.values() for v in vips)

    # -- failover ----------------------------------------------------------------------------------------
    async def failover(self, runs: int, graceful: bool) -> list[float]:
        vip = self.vip(self.first)
        await self.core.create_namespaced_service(NS, self.body("ha", [vip]))
        out: list[float] = []
        try:
            for _ in range(runs):
                old = await until(lambda: self.reach(vip), 30, "VIP answers")
                node = self.lab.node(old)
                agent = self.fleet.agents[old]
                t0 = time.monotonic()
                if graceful:
                    agent.signal(signal.SIGTERM)
                else:
                    agent.signal(signal.SIGKILL)
                    await asyncio.to_thread(link, node.netns, node.interface, "down")

                async def other(old: str = old) -> str | None:
                    got = await self.reach(vip, 0.1)
                    return got if got and got != old else None

                await until(other, 30, "another node answers")
                out.append(time.monotonic() - t0)
                await asyncio.to_thread(agent.stop)
                if not graceful:
                    await asyncio.to_thread(
                        AddressManager(node.interface, Netns(node.netns)).cleanup_stale, []
                    )
                    await asyncio.to_thread(link, node.netns, node.interface, "up")
                agent.start(self.lab)
                await until(self.all_live, 120, "restarted agent live")
        finally:
            await self.core.delete_namespaced_service("ha", NS)
        return out

    # -- scale -------------------------------------------------------------------------------------------
    def restart_fleet(self, mode: str) -> None:
        """Stop every agent and start new ones in election mode `mode` (`lease`: kube-vip's default)."""
        self.fleet.stop()
        self.fleet.agents.clear()
        self.fleet.extra_env["vip_electionmode"] = mode
        self.fleet.start()

    async def clear_scale(self) -> None:
        """Delete every Service of the namespace and wait until no node holds a VIP of ours."""
        items = (await self.core.list_namespaced_service(NS)).items
        sem = asyncio.Semaphore(8)

        async def delete(n: str) -> None:
            async with sem:
                await retry(lambda: self.core.delete_namespaced_service(n, NS))

        await asyncio.gather(*(delete(i.metadata.name) for i in items))

        async def empty() -> bool:
            return not any((await self.owned()).values())

        await until(empty, max(180.0, 0.06 * len(items)), "all removed")

    async def writeback_drain(
        self, t0: float, before: str, limit: float
    ) -> tuple[float | None, dict[str, float], dict[str, float]]:
        """Seconds from `t0` until one whole second carried no write besides Lease renewals (None: still
        writing after `limit` seconds), every such write since `before` by verb and resource, and for each
        of those kinds the seconds from `t0` to the end of the last second that carried one (Event POSTs
        drain through the agents' token buckets, after the status and annotation writes)."""
        last = self.cp.metrics_text()
        last_seen: dict[str, float] = {}
        while time.monotonic() - t0 < limit:
            await asyncio.sleep(1.0)  # the sampling period of the measurement, not a synchronisation
            now = self.cp.metrics_text()
            step = report_writes(last, now)
            at = time.monotonic() - t0
            for k in step:
                last_seen[k] = at
            if not step:
                return at - 1.0, report_writes(before, now), last_seen
            last = now
        return None, report_writes(before, self.cp.metrics_text()), last_seen

    async def vip_hosts(self) -> dict[str, tuple[str | None, str | None]]:
        """Service name -> the nodes its `kube-vip.io/vipHost` and `kube-vip.io/vipHost-ipv6` name."""
        items = (await self.core.list_namespaced_service(NS)).items
        out: dict[str, tuple[str | None, str | None]] = {}
        for i in items:
            ann = i.metadata.annotations or {}
            out[i.metadata.name] = (ann.get(VIP_HOSTS[0]), ann.get(VIP_HOSTS[1]))
        return out

    async def services_lease_holder(self) -> str | None:
        """The holder of the global Services Lease (lease mode), None in scalable mode or when free."""
        try:
            lease = await client.CoordinationV1Api(self.api).read_namespaced_lease(SERVICES_LEASE, NS)
        except client.ApiException:
            return None
        return lease.spec.holder_identity or None

    async def _holds_services_lease(self, node: str) -> bool:
        return await self.services_lease_holder() == node

    async def scale(
        self, count: int, window: float, mode: str, restart: str = "all", drain_limit: float | None = None,
        profile: Path | None = None, profile_restart: Path | None = None,
    ) -> dict[str, Any]:
        # Names of this row only: a Service deleted by an earlier row and created again under its name
        # waits on the controller-manager's EndpointSlice backoff ("EndpointSlice informer cache is out
        # of date" while the old slices are collected), which held 100 and 1000 scalable rows past the
        # slice wait after the lease rows of the same size.
        names = [f"s{count}-{mode}-{i}" for i in range(count)]
        vips = {
            n: [
                ipaddress.ip_address(f"100.{64 + i // 65536}.{i // 256 % 256}.{i % 256}"),
                ipaddress.ip_address(f"fd6b:7669:7fff::{i + 1:x}"),
            ]
            for i, n in enumerate(names)
        }
        sem = asyncio.Semaphore(8)

        async def create(n: str) -> None:
            async with sem:
                await retry(lambda: self.core.create_namespaced_service(NS, self.body(n, vips[n])))

        await asyncio.to_thread(self.restart_fleet, mode)
        created_at = time.monotonic()
        await asyncio.gather(*(create(n) for n in names))
        want = {v for vs in vips.values() for v in vs}

        async def converged() -> bool:
            owned = await self.owned()
            held = [v for a in owned.values() for v in a if v in want]
            return len(held) == len(want) and set(held) == want

        # The waits grow with the count: 5000 Services take minutes to create on 2 cores (7-15 creates a
        # second with their EndpointSlices: 0.1 s per Service stopped a run before the last creates).
        await until(converged, max(300.0, 0.3 * count), f"{count} Services held")
        create_to_held = time.monotonic() - created_at  # the first create POST -> every VIP on a node

        async def reported() -> bool:
            items = (await self.core.list_namespaced_service(NS)).items
            return len(items) == count and all(
                len(i.status.load_balancer.ingress or []) == 2
                and (i.metadata.annotations or {}).get("kube-vip.io/vipHost")
                and len([c for c in i.status.conditions or [] if c.type.startswith("kube-vip.io/")]) == 2
                for i in items
            )

        # Status, vipHost and the family conditions written too: what the restart writes is then the
        # restart's own doing.
        await until(reported, max(120.0, 0.12 * count), f"{count} Services reported")
        # The controller-manager publishes each Service's EndpointSlices (one per family) at its client's
        # 20 writes a second: 2000 at 1000 Services took it ~70 s, past the Services being held, and the
        # restart ran inside that catch-up (its POSTs filled the "steady" window). A restart in a settled
        # cluster has no slice events to decode on the same two cores.
        want_slices = count * len(self.families)
        await until(lambda: self._slices_at_least(want_slices), max(120.0, 0.1 * want_slices),
                    f"{want_slices} EndpointSlices published")
        hosts_before = await self.vip_hosts()
        # Where each VIP is, from the nodes' kernels: what the election moved (vipHost can lag it).
        placed_before = {v: n for n, vs in (await self.owned()).items() for v in vs}
        lease_holder = await self.services_lease_holder()
        # Restart every agent (graceful stop withdraws everything), then time until all VIPs are held.
        await asyncio.to_thread(self.fleet.stop)
        await until(lambda: self._gone(*want), 60, "all withdrawn")
        restart_text = self.cp.metrics_text()
        t0 = time.monotonic()
        if restart == "same-holder" and lease_holder is not None:
            # The global Lease's holder first, the others once it holds it again: nothing moves.
            first = self.lab.node(lease_holder)
            self.fleet.start((first,))
            await until(lambda: self._holds_services_lease(lease_holder), 60, f"{lease_holder} holds again")
        self.fleet.start()
        # py-spy from each agent's start until every VIP is held (`--profile-restart`): it attaches a few
        # ms after the start, so the interpreter's own start-up is not in it; it costs the agents CPU.
        restart_spies = (self.py_spy(profile_restart, f"restart-{count}-{mode}", 600)
                         if profile_restart is not None else [])
        await until(converged, max(180.0, 0.06 * count), f"{count} Services held after restart")
        converge = time.monotonic() - t0
        for spy in restart_spies:
            spy.send_signal(signal.SIGINT)
        for spy in restart_spies:
            await asyncio.to_thread(spy.wait)
        stalls_converged = self.loop_stalls()
        cpu = {name: cpu_s(a.pid) for name, a in self.fleet.agents.items() if a.pid}
        main_cpu = {name: main_thread_cpu_s(a.pid) for name, a in self.fleet.agents.items() if a.pid}
        runq = {name: runqueue_wait_s(a.pid) for name, a in self.fleet.agents.items() if a.pid}
        # The restart's report write-backs (status, annotations, Events): until a whole second passes
        # without any write but the election's, counted from the restart.
        # The limit allows every Service one Normal Event through one agent's bucket (5/s), twice over.
        limit = 120.0 + 2 * count / EVENT_RATE if drain_limit is None else drain_limit
        drain, writebacks, last_write = await self.writeback_drain(t0, restart_text, limit)
        stalls_drained = self.loop_stalls()
        hosts_after = await self.vip_hosts()
        # A Service whose vipHost or vipHost-ipv6 changed moved (a family of it) to another node: news.
        moved = sum(1 for k, h in hosts_after.items() if hosts_before.get(k) != h)
        placed_after = {v: n for n, vs in (await self.owned()).items() for v in vs}
        vips_moved = sum(1 for v, n in placed_after.items() if placed_before.get(v) != n)
        before_text = self.cp.metrics_text()
        cpu0 = {name: cpu_s(a.pid) for name, a in self.fleet.agents.items() if a.pid}
        w0 = time.monotonic()
        spies = self.py_spy(profile, f"{count}-{mode}", window) if profile is not None else []
        await asyncio.sleep(window)
        for spy in spies:
            await asyncio.to_thread(spy.wait)
        after_text = self.cp.metrics_text()
        elapsed = time.monotonic() - w0
        cpu1 = {name: cpu_s(a.pid) for name, a in self.fleet.agents.items() if a.pid}
        # Steady CPU of each agent over the window, percent of one core.
        steady_cpu = {
            n: 100 * (c1 - c0) / elapsed
            for n, c1 in cpu1.items() if c1 is not None and (c0 := cpu0.get(n)) is not None
        }
        rate = (request_total(after_text) - request_total(before_text)) / elapsed
        by_kind = request_rates(before_text, after_text, elapsed)
        steady_writes = {k: v * elapsed for k, v in by_kind.items() if k.split(" ", 1)[0] in WRITE_VERBS}
        rss = {name: rss_mb(a.pid) for name, a in self.fleet.agents.items() if a.pid}
        keep = os.environ.get("KUBEVIP_BENCH_LOGS")  # the agents' logs of each scale row, for a look after
        if keep:
            await asyncio.to_thread(self.keep_logs, Path(keep), f"{count}-{mode}")
        await self.clear_scale()
        return {
            "services": count,
            "vips": len(want),
            "election": mode,
            "create_to_held_s": create_to_held,
            "converge_after_restart_s": converge,
            "steady_cpu_pct": steady_cpu,
            "steady_cpu_pct_max": max(steady_cpu.values()) if steady_cpu else None,
            "agent_cpu_s_until_converged": cpu,
            "agent_main_thread_cpu_s_until_converged": main_cpu,
            "agent_main_thread_runqueue_wait_s_until_converged": runq,
            "writeback_drain_after_restart_s": drain,
            "writebacks_after_restart_by_verb_resource": writebacks,
            "writeback_drain_limit_s": limit,
            "writeback_last_s_by_verb_resource": last_write,
            # The steady window starts once the write-backs drained; if they did not within the limit,
            # its rates still carry them (`steady` false).
            "steady": drain is not None,
            "steady_report_writes_per_s": sum(
                v for k, v in steady_writes.items() if not k.split(" ", 1)[1].startswith("leases")
            ) / elapsed,
            "rss_mb": rss,
            "rss_mb_max": max(rss.values()) if rss else None,
            "api_requests_per_s": rate,
            "api_requests_per_s_by_verb_resource": by_kind,
            "window_s": window,
            "restart": restart,
            # py-spy sampled the agents through the restart: its times carry the sampling's CPU.
            "restart_profiled": profile_restart is not None,
            "services_lease_holder_before_after": [lease_holder, await self.services_lease_holder()],
            "services_moved_by_restart": moved,
            "vips_moved_by_restart": vips_moved,
            # Each agent's event-loop wake-ups (every 0.25 s) later than 100 ms, and the largest bucket
            # reached, from its start to convergence and to the write-backs' drain (issue 21: none).
            "loop_stalls_over_100ms_until_converged": stalls_converged,
            "loop_stalls_over_100ms_until_drained": stalls_drained,
        }


def loop_delay(text: str) -> dict[str, float]:
    """`kubevip_event_loop_delay_seconds`: wake-ups later than 100 ms, all wake-ups, and the smallest
    bucket bound that holds every one of them (the worst stall, rounded up to a bucket); with
    `kubevip_event_loop_blocked_seconds` (agents since session 33) the same two figures for the
    lateness less the loop's wait for a CPU, as `blocked_over_100ms` and `blocked_worst_le_s`."""
    out: dict[str, float] = {}
    for name, prefix in (("delay", ""), ("blocked", "blocked_")):
        buckets: dict[float, float] = {}
        for line in text.splitlines():
            m = re.match(rf'kubevip_event_loop_{name}_seconds_bucket\{{le="([^"]+)"\}} ([0-9.e+]+)$', line)
            if m:
                buckets[float(m.group(1))] = float(m.group(2))
        if not buckets:
            continue
        total = buckets[float("inf")]
        worst = min((le for le, n in buckets.items() if n >= total), default=float("inf"))
        out[f"{prefix}over_100ms"] = total - buckets.get(0.1, 0.0)
        out[f"{prefix}worst_le_s"] = worst
        if not prefix:
            out["wakeups"] = total
    return out if "over_100ms" in out else {}


async def retry(call: Callable[[], Awaitable[Any]], attempts: int = 6) -> Any:
    """A busy API server answers 504/429 now and then; try again, treating 409/404 as done."""
    for i in range(attempts):
        try:
            return await call()
        except client.ApiException as exc:
            if exc.status in (404, 409):
                return None
            if i == attempts - 1 or exc.status not in (429, 500, 503, 504):
                raise
        await asyncio.sleep(0.5 * (i + 1))
    return None


def link(netns: str, ifname: str, state: str) -> None:
    subprocess.run(["ip", "-n", netns, "link", "set", ifname, state], check=True)


def request_total(text: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_s(pid: int, stat: str | None = None) -> float | None:
    """User + system CPU seconds a process has used (agents restart, so this is since their start);
    `stat`: another stat file of the process (one thread's)."""
    try:
        fields = Path(stat or f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main_thread_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of the process's main thread (the event loop's; its task id is the
    process id): the rest of `cpu_s` went to the agent's other threads (Lease renewals, announcements,
    netlink and the metrics server)."""
    return cpu_s(pid, f"/proc/{pid}/task/{pid}/stat")


def runqueue_wait_s(pid: int) -> float | None:
    """Seconds the process's main thread (the event loop's) has waited on a run queue for a CPU since
    it started: `/proc/PID/schedstat`'s second field. A loop stall during which this grows by as much
    is the machine's (no CPU free), not the agent's own work."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _requests(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        parts = (labels.get("verb"), labels.get("resource"), labels.get("subresource"))
        key = " ".join(x for x in parts if x)
        out[key] = out.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY"})


def report_writes(before: str, after: str) -> dict[str, float]:
    """Writes between two metric scrapes by verb and resource, Leases (the election) left out."""
    a, b = _requests(before), _requests(after)
    out = {}
    for k, v in b.items():
        verb, _, rest = k.partition(" ")
        if verb in WRITE_VERBS and not rest.startswith("leases") and v > a.get(k, 0.0):
            out[k] = v - a.get(k, 0.0)
    return out


def request_rates(before: str, after: str, seconds: float) -> dict[str, float]:
    """Requests per second by verb and resource over a window, every kind, the busiest first."""
    a, b = _requests(before), _requests(after)
    rates = {k: (v - a.get(k, 0.0)) / seconds for k, v in b.items() if v > a.get(k, 0.0)}
    return dict(sorted(rates.items(), key=lambda kv: -kv[1]))


def rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        m = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None
    return int(m.group(1)) / 1024 if m else None


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kubevip-bench-agent-"))
    families = topology.STACKS[args.stack]
    service_cidrs, cluster_cidrs = controlplane.cidrs_of(families)
    cp = ControlPlane(
        bin_dir(), work / "cp", bind_address=ipaddress.ip_address("0.0.0.0" if 4 in families else "::"),
        service_cidrs=service_cidrs, cluster_cidrs=cluster_cidrs,
    )
    lab = LabNetwork(f"ba{secrets.token_hex(2)}", nodes=3, state_dir=work / "lab", stack=args.stack)
    responders: dict[str, int] = {}
    cp.start()
    try:
        lab.up()
        connect_network(cp, lab)
        responders = start_responders(lab, work)
        api = await api_client(cp.admin_kubeconfig)
        try:
            await client.CoreV1Api(api).create_namespace({"metadata": {"name": NS}})
            # The agents elect in NS: the Lease RoleBinding an operator applies there (manifests/rbac.py).
            await client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
                NS, rbac.namespaced_binding(NS))
            # Metrics on (kube-vip's default, :2112 in each node's namespace): the scale rows read each
            # agent's event-loop delay histogram from it.
            env = {"svc_namespace": NS, "vip_leasenamespace": NS, "prometheus_server": ":2112"}
            # The scale rows' VIPs (100.64.0.0/10, fd6b:7669:7fff::/64) lie outside the lab's VIP pool:
            # the address policy must allow them too, or every scale Service is refused (not-allowed).
            env["vip_allowed_cidrs"] = ",".join(
                [policy_env(lab)["vip_allowed_cidrs"], "100.64.0.0/10", "fd6b:7669:7fff::/64"]
            )
            if args.timings:
                d, r, p = args.timings.split(",")
                env.update(vip_leaseduration=d, vip_renewdeadline=r, vip_retryperiod=p)
            if args.liveness:
                env["vip_livenessperiod"] = args.liveness
            if args.lag_period:
                env["KVB_LAG_PERIOD"] = str(args.lag_period)
                env["PYTHONPATH"] = str(REPO / "bench" / "probes" / "lag_period")
            for item in args.agent_env:
                key, _, value = item.partition("=")
                env[key] = value
            b = Bench(cp, lab, api, work, env)
            b.fleet.start()
            await b.warm_up()
            result: dict[str, Any] = {
                "runs": args.runs,
                "stack": args.stack,
                "load_average_at_start": os.getloadavg()[0],
                "cpus": os.cpu_count(),
                "election_timings_s": args.timings or "defaults (1.5,1.0,0.25)",
                "liveness_period_s": args.liveness or "the retry period",
                "agent_env": args.agent_env,
                "loop_lag_period_s": args.lag_period or 0.25,
            }
            if args.runs > 0:
                cta = await b.create_to_answer(args.runs)
                result["create_to_answer_s"] = {f: summary(v) for f, v in cta.items()}
                save(result)
                result["crash_failover_s"] = summary(await b.failover(args.runs, graceful=False))
                save(result)
                result["graceful_failover_s"] = summary(await b.failover(args.runs, graceful=True))
                save(result)
            result["scale"] = []
            for n in args.scale:
                for mode in args.election:
                    try:
                        row = await b.scale(n, args.window, mode, args.restart, args.drain_limit,
                                            args.profile_steady, args.profile_restart)
                        result["scale"].append(row)
                    except TimeoutError as exc:  # recorded, and the next row still runs
                        result["scale"].append({"services": n, "election": mode, "not_available": str(exc)})
                        await b.clear_scale()
                    save(result)
            result["load_average_at_end"] = os.getloadavg()[0]
            await asyncio.to_thread(b.fleet.stop)
            return result
        finally:
            await api.close()
    finally:
        stop_responders(responders)
        lab.down()
        cp.stop()
        # The control plane's etcd and the lab's state, 60+ MB a run; the agents' logs are copied out
        # first when KUBEVIP_BENCH_LOGS asks for them.
        shutil.rmtree(work, ignore_errors=True)


def save(result: dict[str, Any]) -> None:
    """Write what was measured so far (a later phase failing keeps the earlier numbers)."""
    result["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")


def table(r: dict[str, Any]) -> str:
    rows = ["| measure | median | p95 | max | target |", "|---|---|---|---|---|"]
    for fam in r.get("create_to_answer_s", {}):
        s = r["create_to_answer_s"][fam]
        rows.append(
            f"| create -> answering, {fam} | {s['median']:.3f} s | {s['p95']:.3f} s | {s['max']:.3f} s"
            " | p95 <= 1 s |"
        )
    for key, label, target in (
        ("crash_failover_s", "crash failover (SIGKILL + link down)", "p95 <= 2 s"),
        ("graceful_failover_s", "graceful failover (SIGTERM)", "-"),
    ):
        if key not in r:
            continue
        s = r[key]
        rows.append(f"| {label} | {s['median']:.3f} s | {s['p95']:.3f} s | {s['max']:.3f} s | {target} |")
    rows.append("")
    rows.append(
        "| dual-stack Services | election | converge after restart of all agents | max agent RSS "
        "| API requests/s (steady, 3 agents) | write-backs drained after | steady per verb "
        "| loop stalls > 100 ms until converged (target 0) |"
    )
    rows.append("|---|---|---|---|---|---|---|---|")
    for s in r.get("scale", []):
        if "not_available" in s:
            na = s["not_available"]
            rows.append(f"| {s['services']} | {s.get('election', '')} | not available: {na} |||")
            continue
        rows.append(
            f"| {s['services']} | {s.get('election', 'scalable')} | {s['converge_after_restart_s']:.2f} s"
            f" (target <= 10 s) | {s['rss_mb_max']:.0f} MB (target <= 100 MB) "
            f"| {s['api_requests_per_s']:.1f}{'' if s.get('steady', True) else ' (not steady)'} "
            f"| {_drain(s)} "
            f"| {_verbs(s.get('api_requests_per_s_by_verb_resource', {}))} "
            f"| {_stalls(s.get('loop_stalls_over_100ms_until_converged', {}))} |"
        )
    return "\n".join(rows)


def _stalls(per_node: dict[str, dict[str, float]]) -> str:
    """All agents' wake-ups later than 100 ms and the worst bucket reached, e.g. `3 (<= 0.5 s)`."""
    seen = [v for v in per_node.values() if v]
    if not seen:
        return "-"
    worst = max(v["worst_le_s"] for v in seen)
    text = f"{sum(v['over_100ms'] for v in seen):.0f} (<= {worst:g} s)"
    if all("blocked_over_100ms" in v for v in seen):  # agents that tell their wait for a CPU apart
        text += f"; not waiting for a CPU {sum(v['blocked_over_100ms'] for v in seen):.0f}"
    return text


def _drain(s: dict[str, Any]) -> str:
    if "writeback_drain_after_restart_s" not in s:
        return "-"
    d = s["writeback_drain_after_restart_s"]
    kinds = s.get("writebacks_after_restart_by_verb_resource", {})
    n = sum(kinds.values())
    events = kinds.get("POST events", 0.0)
    what = f"{n:.0f} writes ({events:.0f} Event POSTs)"
    if "services_moved_by_restart" in s:
        what += f", {s['services_moved_by_restart']} Services moved"
    return f"{what}, {d:.1f} s" if d is not None else f"{what}, not drained"


def _verbs(rates: dict[str, float], top: int = 4) -> str:
    """The busiest kinds of request of a window, as 'PUT leases 4.06, ...'."""
    return ", ".join(f"{k} {v:.2f}" for k, v in list(rates.items())[:top]) or "-"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--scale", default="100,1000")
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--drain-limit", type=float, default=None,
                   help="seconds to wait for the restart's write-backs to drain before the steady window "
                        "(default 120 + 2 x Services / Event rate: 2120 s at 5000)")
    p.add_argument("--election", default="lease,scalable",
                   help="election modes of the scale rows (lease: kube-vip's default, one Lease for all)")
    p.add_argument("--quick", action="store_true", help="5 runs, 100 Services")
    p.add_argument("--timings", default="", help="election seconds 'duration,renew,retry' (default: ours)")
    p.add_argument("--liveness", default="", help="vip_livenessperiod (scalable mode), seconds")
    p.add_argument("--lag-period", type=float, default=0.0, metavar="S",
                   help="the agents sample their loop's lateness every S seconds, not 0.25 "
                        "(bench/probes/lag_period): a stall's wait for a CPU is then credited with at "
                        "most S of wait from before it was due")
    p.add_argument("--agent-env", action="append", default=[], metavar="NAME=VALUE",
                   help="one more agent setting, e.g. vip_loglevel=-4 (repeatable)")
    p.add_argument("--restart", choices=("all", "same-holder"), default="all",
                   help="scale rows: start every agent at once (the global Lease goes to whoever asks "
                        "first), or, in lease mode, its previous holder first (nothing moves)")
    p.add_argument("--profile-steady", type=Path, default=None, metavar="DIR",
                   help="record every agent with py-spy over each steady window (collapsed stacks in DIR; "
                        "the binary from KUBEVIP_PY_SPY, else py-spy on PATH)")
    p.add_argument("--profile-restart", type=Path, default=None, metavar="DIR",
                   help="record every agent with py-spy from the restart until every VIP is held (as "
                        "--profile-steady; the sampling costs the agents CPU, so the row's times are not "
                        "comparable)")
    p.add_argument("--stack", choices=tuple(topology.STACKS), default="dual",
                   help="IP families of control plane, lab and Services (default %(default)s)")
    args = p.parse_args()
    if args.stack != "dual" and "KUBEVIP_BENCH_OUT" not in os.environ:
        global RESULTS
        RESULTS = RESULTS.with_name(f"agent-{args.stack}.json")
    args.scale = [int(x) for x in args.scale.split(",") if x]
    args.election = [x for x in args.election.split(",") if x]
    if args.quick:
        args.runs, args.scale, args.window = 5, [100], 5.0
    # SIGTERM (timeout(1), kill) ends the run like Ctrl-C: the finally blocks stop the agents and remove
    # the lab's namespaces and control plane instead of leaving them behind.
    termination.interrupt_on_sigterm()  # a forked child just exits (bench/termination.py)
    result = asyncio.run(main_async(args))
    save(result)
    print(table(result))
    print(f"\nJSON: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
