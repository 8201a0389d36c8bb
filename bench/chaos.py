"""Chaos soak: agents in the lab serving many dual-stack Services while faults are injected at random.

Three agents (`kubevip manager`, layer 2, scalable election, the default Lease timings unless told
otherwise) reach the real API server through the fault-injecting proxy (`kubevip.lab.faultproxy`, the
one the kube/ fault tests use). `--services` RequireDualStack Services (default 100: 200 VIPs) are
answered by UDP echo responders in every node. Faults, one at a time from a seeded schedule (`--seed`),
each followed by a quiet window in which Service status is compared with the kernel:

  kill      SIGKILL of one agent, restarted after 2-8 s
  stop      SIGSTOP of one agent, SIGCONT after 2-8 s (a stalled event loop)
  link      a node's switch port (its veth peer on the lab bridge) down for 2-8 s, then up
  apiserver kube-apiserver stopped and started again (etcd keeps the data)
  proxy     one of: drop (new connections reset, open ones RST), halfopen (open connections frozen),
            delay (0.2-0.6 s per request), 429 (Retry-After: 1), 500, empty (watches answered 200 and
            closed), truncate (watch streams cut mid-event); 3-10 s, then cleared
  churn     1-5 Service operations: delete one and create another, or move one to new VIPs

Measured all along, from processes outside the agents:
  * a prober in the lab's client namespace (bench/vipprobe.py) sends a UDP datagram to every VIP of both
    families every --interval-ms and logs each silence longer than --gap-ms;
  * a sampler (bench/compare/addrwatch.py) follows every node's addresses (netlink events, one clock, and
    a full dump every second): intervals in which a VIP was on two nodes' interfaces;
  * after each fault's quiet window: each Service's status.loadBalancer.ingress and vipHost annotations
    against the kernel (which node holds which VIP), re-checked for 6 s before a disagreement counts;
  * every API request of the agents, counted at the proxy (per verb and resource);
  * the host's load average every 10 s (the machine is shared).

Output: bench/results/chaos.json (or --out), and a summary on stdout. docs/reliability.md reads it.

Usage (root; the venv of hack/venv.sh):
  nice -n 5 python bench/chaos.py --minutes 30 --services 100 --seed 1
  python bench/chaos.py --minutes 1 --services 4 --smoke     (quick look, no JSON unless --out)
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import dataclasses
import datetime
import ipaddress
import json
import os
import platform
import random
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
for p in (str(REPO / "src"), str(BENCH)):
    if p not in sys.path:
        sys.path.insert(0, p)

from distribution import summarize  # noqa: E402

from kubevip.ip import IPAddress  # noqa: E402

RESULTS = BENCH / "results" / "chaos.json"
PORT = 17017  # the echo responders' (bench/compare/responder.py): the prober needs its number back
KINDS = ("kill", "stop", "link", "apiserver", "proxy", "churn")
PROXY_FAULTS = ("drop", "halfopen", "delay", "429", "500", "empty", "truncate")
# After a fault ends, gaps and double holdings that start within this many seconds are its doing.
TAIL = 10.0

# The default timings (docs/election.md): the bounds below are computed from them or from --lease.
DEFAULT_TIMINGS = (1.5, 1.0, 0.25)  # vip_leaseduration, vip_renewdeadline, vip_retryperiod
CRASH_GOAL = 2.0  # docs/performance.md: crash failover as the client sees it, p95 <= 2 s
RECOVERY = 5.5  # docs/testing.md: scalable mode, every unit held again within 5.5 s after a fault ends


# ---------------------------------------------------------------------------------------------------
# Pure parts: intervals, the address timeline, attribution (unit-tested in tests/unit/bench)
# ---------------------------------------------------------------------------------------------------

Interval = tuple[float, float]


def union_length(intervals: Iterable[Interval]) -> float:
    """Total length covered by the intervals (overlaps counted once)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def family(addr: str) -> str:
    return "ipv6" if ":" in addr else "ipv4"


@dataclass
class Timeline:
    """Which node had which VIP when, rebuilt from the sampler's lines (events and full dumps)."""

    spans: dict[tuple[str, str], list[Interval]] = field(default_factory=dict)  # (node, vip) -> present
    end: float = 0.0

    @classmethod
    def build(cls, lines: Iterable[dict[str, Any]], vips: set[str]) -> Timeline:
        tl = cls()
        since: dict[tuple[str, str], float] = {}  # present now, since when
        have: dict[str, set[str]] = {}

        def gone(node: str, vip: str, t: float) -> None:
            start = since.pop((node, vip), None)
            if start is not None:
                tl.spans.setdefault((node, vip), []).append((start, t))
            have.get(node, set()).discard(vip)

        def came(node: str, vip: str, t: float) -> None:
            if (node, vip) not in since:
                since[(node, vip)] = t
                have.setdefault(node, set()).add(vip)

        for doc in sorted(lines, key=lambda d: float(d["t"])):
            t, node, op = float(doc["t"]), str(doc["node"]), doc["op"]
            tl.end = max(tl.end, t)
            if op == "poll":  # the truth at t: corrects any lost event
                now = {str(ipaddress.ip_address(a)) for a in doc["addrs"]} & vips
                for v in have.get(node, set()) - now:
                    gone(node, v, t)
                for v in now:
                    came(node, v, t)
                continue
            vip = str(ipaddress.ip_address(doc["addr"]))
            if vip not in vips:
                continue
            (came if op == "add" else gone)(node, vip, t)
        for node, vip in list(since):
            gone(node, vip, tl.end)
        return tl

    def doubles(self) -> list[tuple[str, float, float, tuple[str, ...]]]:
        """(vip, from, to, nodes) for every stretch in which a VIP was on two or more nodes."""
        by_vip: dict[str, list[tuple[float, int, str]]] = {}
        for (node, vip), spans in self.spans.items():
            for a, b in spans:
                by_vip.setdefault(vip, []).extend([(a, 1, node), (b, -1, node)])
        out: list[tuple[str, float, float, tuple[str, ...]]] = []
        for vip, edges in by_vip.items():
            held: set[str] = set()
            start, who = 0.0, set[str]()
            for t, d, node in sorted(edges, key=lambda e: (e[0], e[1])):  # leaving before arriving
                before = len(held)
                (held.add if d > 0 else held.discard)(node)
                if before < 2 <= len(held):
                    start, who = t, set(held)
                elif len(held) >= 2:
                    who |= held
                elif before >= 2 > len(held) and t > start:
                    out.append((vip, start, t, tuple(sorted(who))))
        return sorted(out, key=lambda x: x[1])

    def left(self, node: str, at: float, until: float) -> dict[str, float | None]:
        """For each VIP `node` had at `at`: seconds until it was gone from the node for good within
        [at, until] (None: still there at `until`)."""
        out: dict[str, float | None] = {}
        for (n, vip), spans in self.spans.items():
            if n != node:
                continue
            for a, b in spans:
                if a <= at < b:
                    out[vip] = b - at if b <= until else None
        return out

    def holders(self, at: float) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for (node, vip), spans in self.spans.items():
            if any(a <= at < b for a, b in spans):
                out.setdefault(vip, set()).add(node)
        return out


def status_problem(entry: str) -> bool:
    """`name: problem; problem...` from status_check(): True unless it says the VIP was on no node or
    on several (then the kernel itself had not settled)."""
    first = entry.split(": ", 1)[1].split(";")[0]
    return re.match(r"^\S+ held by \[", first) is None


@dataclass
class Fault:
    kind: str
    detail: str
    target: str | None
    start: float  # monotonic
    end: float  # when it was reverted (== start for instant ones)
    bound: float  # the longest any VIP may stay unanswered because of it (s)
    why: str  # where the bound comes from
    info: dict[str, Any] = field(default_factory=dict)

    def covers(self, t: float) -> bool:
        return self.start - 0.5 <= t <= self.end + TAIL


def attribute(faults: Sequence[Fault], t: float) -> Fault | None:
    """The fault whose window (start .. end + TAIL) holds `t`; the latest started one if several."""
    starts = [f.start - 0.5 for f in faults]
    i = bisect.bisect_right(starts, t)
    for f in reversed(faults[:i]):
        if f.covers(t):
            return f
    return None


def bound_for(
    kind: str, detail: str, duration: float, timings: tuple[float, float, float]
) -> tuple[float, str]:
    """The longest a VIP may stay unanswered because of one fault, and why (docs/reliability.md)."""
    lease, renew, _retry = timings
    crash = CRASH_GOAL if timings == DEFAULT_TIMINGS else lease + 0.5
    if kind in ("kill", "stop", "link"):
        return crash, (
            f"crash failover goal ({crash:g} s): peers take the node's units leaseDuration "
            "after its last renewal; the kernel withdraws them from the node by itself"
        )
    if kind == "apiserver" or (kind == "proxy" and detail in ("drop", "halfopen", "429", "500")):
        return duration + RECOVERY, (
            f"no renewal is possible for the {duration:.1f} s outage, so every "
            f"node fences; every unit is held again within {RECOVERY:g} s after"
        )
    if kind == "proxy" and detail == "delay":
        return 0.0, f"requests stay well inside renewDeadline ({renew:g} s): nothing may move"
    return 0.0, "no Lease is touched: no VIP may stop answering"


# ---------------------------------------------------------------------------------------------------
# The soak
# ---------------------------------------------------------------------------------------------------


@dataclass
class Config:
    minutes: float = 30.0
    services: int = 100
    seed: int = 1
    kinds: tuple[str, ...] = KINDS
    interval_ms: float = 100.0
    gap_ms: float = 300.0
    quiet: float = 10.0  # seconds after a fault ends before status is checked
    settle_within: float = 60.0  # how long to wait for every VIP on exactly one node before that check
    timings: tuple[float, float, float] = DEFAULT_TIMINGS
    election: str = "scalable"
    hold: tuple[float, float] = (2.0, 8.0)  # how long a node fault lasts (proxy faults: 1-2 s more)
    # Deliberate incidents at the start (the smoke test's proof that the prober and sampler see them).
    self_check: bool = False


@dataclass
class Svc:
    name: str
    index: int  # VIP slot
    created: float


class Soak:
    """One soak over a running control plane and lab network (the caller owns both)."""

    def __init__(self, cp: Any, net: Any, workdir: Path, cfg: Config) -> None:
        self.cp, self.net, self.workdir, self.cfg = cp, net, workdir, cfg
        self.rng = random.Random(cfg.seed)
        self.ns = f"chaos-{secrets.token_hex(3)}"
        self.faults: list[Fault] = []
        self.svcs: dict[str, Svc] = {}
        self.free: list[int] = []
        self.counter = 0
        self.checks: list[dict[str, Any]] = []
        self.disagreements: list[dict[str, Any]] = []
        self.loads: list[tuple[float, float]] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.responders: dict[str, subprocess.Popen[bytes]] = {}
        self.log: list[str] = []
        self.injected: dict[str, Any] = {}
        s4, s6 = net.subnets[4], net.subnets[6]
        # VIPs on the node subnet (reachable by ARP / NDP from the client) outside the hosts the lab uses:
        # IPv4 .101-.249 (149 addresses), IPv6 ::1:0 upwards.
        self.slots = min(149, max(cfg.services + 20, cfg.services * 3 // 2))
        if cfg.services > self.slots:
            raise SystemExit(f"--services {cfg.services}: at most {self.slots} dual-stack Services fit")
        self.base4 = s4.network_address + 101
        self.base6 = s6.network_address + 0x10000

    # ----- small helpers -----------------------------------------------------------------------------

    def say(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        self.log.append(line)
        print(line, flush=True)

    def vips(self, index: int) -> tuple[IPAddress, IPAddress]:
        return self.base4 + index, self.base6 + index

    def all_vips(self) -> set[str]:
        return {str(a) for i in range(self.slots) for a in self.vips(i)}

    def allowed_cidrs(self) -> str:
        first4, first6 = self.vips(0)
        last4, last6 = self.vips(self.slots - 1)
        nets = [
            *ipaddress.summarize_address_range(first4, last4),
            *ipaddress.summarize_address_range(first6, last6),
        ]
        return ",".join(map(str, nets))

    def write_targets(self) -> None:
        tmp = self.targets_path.with_suffix(".tmp")
        tmp.write_text("".join(f"{a}\n" for s in self.svcs.values() for a in self.vips(s.index)))
        os.replace(tmp, self.targets_path)

    def body(self, name: str, index: int) -> dict[str, Any]:
        v4, v6 = self.vips(index)
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": name,
                "annotations": {
                    "kube-vip.io/loadbalancerIPs": f"{v4},{v6}",
                    # Responders stand in for pods: kube-vip's opt-in to announce without endpoints.
                    "kube-vip.io/allow-reconcile-without-endpoints": "true",
                },
            },
            "spec": {
                "type": "LoadBalancer",
                "ipFamilyPolicy": "RequireDualStack",
                "ipFamilies": ["IPv4", "IPv6"],
                "selector": {"app": "chaos"},
                "ports": [{"name": "udp", "protocol": "UDP", "port": PORT, "targetPort": PORT}],
                "allocateLoadBalancerNodePorts": False,
                "externalTrafficPolicy": "Cluster",
            },
        }

    async def create(self, index: int) -> None:
        self.counter += 1
        name = f"svc-{self.counter}"
        await self.core.create_namespaced_service(self.ns, self.body(name, index))
        self.svcs[name] = Svc(name, index, time.monotonic())

    # ----- set-up ------------------------------------------------------------------------------------

    async def setup(self) -> None:
        from kubernetes_asyncio import client

        from kubevip.kube.kubeconfig import load_kubeconfig
        from kubevip.lab.agents import Fleet
        from kubevip.lab.client import api_client
        from kubevip.lab.faultproxy import FaultProxy
        from kubevip.manifests import rbac

        self.api = await api_client(self.cp.admin_kubeconfig)
        self.core = client.CoreV1Api(self.api)
        await self.core.create_namespace({"metadata": {"name": self.ns}})
        await client.RbacAuthorizationV1Api(self.api).create_namespaced_role_binding(
            self.ns, rbac.namespaced_binding(self.ns)
        )
        url = urlsplit(self.cp.url)
        ctx = load_kubeconfig(self.cp.admin_kubeconfig).ssl
        assert url.hostname and url.port and ctx is not None
        self.proxy = FaultProxy(url.hostname, url.port, ctx, listen=str(self.net.api_address))
        await self.proxy.start()
        kubeconfig = self.cp.write_kubeconfig(
            self.workdir / "agents-via-proxy.kubeconfig", self.cp.kubevip_token, self.proxy.url, "kube-vip"
        )
        for n in self.net.nodes:  # UDP echo with the node's name on every address, both families
            self.responders[n.name] = self.net.popen(
                n.netns,
                [
                    sys.executable,
                    str(BENCH / "compare" / "responder.py"),
                    "--node",
                    n.name,
                    "--port",
                    str(PORT),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        lease, renew, retry = self.cfg.timings
        self.fleet = Fleet(
            self.net,
            kubeconfig,
            self.workdir,
            {
                "svc_namespace": self.ns,
                "vip_leasenamespace": self.ns,
                "vip_electionmode": self.cfg.election,
                "vip_allowed_cidrs": self.allowed_cidrs(),
                "vip_leaseduration": f"{lease:g}",
                "vip_renewdeadline": f"{renew:g}",
                "vip_retryperiod": f"{retry:g}",
            },
        )
        # The sampler first (it must see every address the agents ever add), then the prober.
        self.addr_path = self.workdir / "addrwatch.jsonl"
        with self.addr_path.open("wb") as fh:
            self.procs.append(
                subprocess.Popen(  # noqa: ASYNC220 (returns at once; set-up, nothing else runs yet)
                    [
                        sys.executable,
                        str(BENCH / "compare" / "addrwatch.py"),
                        "--poll-ms",
                        "1000",
                        "--changes-only",
                        "--netns",
                        *(f"{n.name}={n.netns}" for n in self.net.nodes),
                    ],
                    stdout=fh,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.targets_path = self.workdir / "targets.txt"
        self.targets_path.write_text("")
        self.probe_path = self.workdir / "probe.jsonl"
        with self.probe_path.open("wb") as fh:
            self.procs.append(
                self.net.popen(
                    self.net.client.netns,
                    [
                        sys.executable,
                        str(BENCH / "vipprobe.py"),
                        "--targets",
                        str(self.targets_path),
                        "--port",
                        str(PORT),
                        "--interval-ms",
                        str(self.cfg.interval_ms),
                        "--gap-ms",
                        str(self.cfg.gap_ms),
                    ],
                    stdout=fh,
                    stderr=subprocess.DEVNULL,
                )
            )
        await self.until(
            lambda: self.addr_path.stat().st_size > 0 and self.probe_path.stat().st_size > 0,
            "sampler and prober running",
            60,
        )
        self.free = list(range(self.slots))
        self.rng.shuffle(self.free)
        for _ in range(self.cfg.services):
            await self.create(self.free.pop())
        self.fleet.start()
        self.write_targets()
        self.say(f"{len(self.svcs)} Services in {self.ns}, agents started; waiting until every VIP answers")
        await self.until(self.every_vip_held_once, "every VIP on exactly one node", 300)
        self.t0, self.wall0 = time.monotonic(), time.time()
        self.say("settled: every VIP held by exactly one node")

    async def until(self, check: Any, what: str, within: float) -> None:
        deadline = time.monotonic() + within
        while True:
            ok = check()
            if asyncio.iscoroutine(ok):
                ok = await ok
            if ok:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what} ({within} s)\n{self.fleet.logs(30)}")
            await asyncio.sleep(0.5)

    def kernel(self) -> dict[str, set[str]]:
        """VIP -> nodes whose interface has it now (only our VIP range)."""
        from kubevip.net.addresses import AddressManager
        from kubevip.net.namespace import Netns

        mine = self.all_vips()
        out: dict[str, set[str]] = {}
        for n in self.net.nodes:
            for a, _ in AddressManager(n.interface, Netns(n.netns)).present():
                if str(a) in mine:
                    out.setdefault(str(a), set()).add(n.name)
        return out

    async def every_vip_held_once(self) -> bool:
        held = await asyncio.to_thread(self.kernel)
        want = {str(a) for s in self.svcs.values() for a in self.vips(s.index)}
        return all(len(held.get(v, ())) == 1 for v in want)

    # ----- faults ------------------------------------------------------------------------------------

    def pick_node(self) -> Any:
        return self.rng.choice(self.net.nodes)

    async def fault(self, kind: str) -> Fault:
        rng = self.rng
        start = time.monotonic()
        target: str | None = None
        detail = ""
        info: dict[str, Any] = {}
        if kind in ("kill", "stop", "link"):
            node = self.pick_node()
            target = node.name
            hold = round(rng.uniform(*self.cfg.hold), 1)
            detail = f"{hold} s"
            info["held_vips"] = sum(
                1 for h in (await asyncio.to_thread(self.kernel)).values() if node.name in h
            )
            agent = self.fleet.agents[node.name]
            start = time.monotonic()
            if kind == "kill":
                agent.signal(signal.SIGKILL)
                await asyncio.to_thread(agent.proc.wait, 10)
                await asyncio.sleep(hold)
                agent.start(self.net)
            elif kind == "stop":
                agent.signal(signal.SIGSTOP)
                await asyncio.sleep(hold)
                agent.signal(signal.SIGCONT)
            else:
                br = self.net.topo.bridge_netns
                await asyncio.to_thread(self.net.run, br, ["ip", "link", "set", node.bridge_port, "down"])
                await asyncio.sleep(hold)
                await asyncio.to_thread(self.net.run, br, ["ip", "link", "set", node.bridge_port, "up"])
        elif kind == "apiserver":
            detail = "restart"
            await asyncio.to_thread(self.cp.stop_apiserver)
            info["stopped_after_s"] = round(time.monotonic() - start, 2)
            await asyncio.to_thread(self.cp.start_apiserver)
        elif kind == "proxy":
            detail = rng.choice(PROXY_FAULTS)
            hold = round(rng.uniform(self.cfg.hold[0] + 1, self.cfg.hold[1] + 2), 1)
            p = self.proxy
            if detail == "drop":
                p.refuse = True
                p.reset_all()
            elif detail == "halfopen":
                info["frozen_connections"] = p.freeze()
            elif detail == "delay":
                p.delay = round(rng.uniform(0.2, 0.6), 2)
                info["delay_s"] = p.delay
            elif detail == "429":
                p.answer = (429, {"Retry-After": "1"})
            elif detail == "500":
                p.answer = (500, {})
            elif detail == "empty":
                p.empty_watches = True
            elif detail == "truncate":
                p.truncate_watches = 200
            info["hold_s"] = hold
            await asyncio.sleep(hold)
            p.clear()
        elif kind == "churn":
            ops = []
            for _ in range(rng.randint(1, 5)):
                name = rng.choice(sorted(self.svcs))
                # The prober stops probing a Service's old VIPs before they go (else their removal
                # would count as a gap), and probes new ones from the moment they are asked for.
                svc = self.svcs.pop(name)
                self.write_targets()
                await asyncio.sleep(0.5)  # the prober re-reads its targets every 0.2 s
                if rng.random() < 0.5:
                    await self.core.delete_namespaced_service(name, self.ns)
                    self.free.insert(0, svc.index)  # reused last: a deleted VIP may linger a moment
                    await self.create(self.free.pop())
                    ops.append(f"replace {name}")
                else:
                    new = self.free.pop()
                    v4, v6 = self.vips(new)
                    await self.core.patch_namespaced_service(
                        name,
                        self.ns,
                        {"metadata": {"annotations": {"kube-vip.io/loadbalancerIPs": f"{v4},{v6}"}}},
                    )
                    self.free.insert(0, svc.index)
                    svc.index, svc.created = new, time.monotonic()
                    self.svcs[name] = svc
                    ops.append(f"move {name}")
                self.write_targets()
            self.write_targets()
            detail = ", ".join(ops)
        end = time.monotonic()
        bound, why = bound_for(kind, detail, end - start, self.cfg.timings)
        f = Fault(kind, detail, target, start, end, bound, why, info)
        self.faults.append(f)
        self.say(f"fault {kind} {detail} {target or ''} ({end - start:.1f} s)")
        return f

    # ----- status against the kernel ---------------------------------------------------------------

    async def status_check(self) -> dict[str, list[str]]:
        """Per family, Services whose status disagrees with the kernel (`name: what`)."""
        svcs = (await self.core.list_namespaced_service(self.ns)).items
        held = await asyncio.to_thread(self.kernel)
        out: dict[str, list[str]] = {"ipv4": [], "ipv6": []}
        for s in svcs:
            name = s.metadata.name
            known = self.svcs.get(name)
            if known is None:
                continue
            v4, v6 = (str(a) for a in self.vips(known.index))
            if s.metadata.annotations.get("kube-vip.io/loadbalancerIPs") != f"{v4},{v6}":
                continue  # our own change not yet seen by the API (cannot happen after a write)
            ingress = {
                i.ip for i in ((s.status.load_balancer.ingress if s.status.load_balancer else None) or [])
            }
            ann = s.metadata.annotations or {}
            for fam, vip in (("ipv4", v4), ("ipv6", v6)):
                nodes = held.get(vip, set())
                problems = []
                if len(nodes) != 1:
                    problems.append(f"{vip} held by {sorted(nodes)}")
                if (vip in ingress) != bool(nodes):
                    problems.append(
                        f"ingress {'lists' if vip in ingress else 'lacks'} {vip}, held by {sorted(nodes)}"
                    )
                host = ann.get("kube-vip.io/vipHost")
                if fam == "ipv4" and len(nodes) == 1 and host not in nodes:
                    problems.append(f"vipHost {host}, kernel {sorted(nodes)}")
                if fam == "ipv6" and len(nodes) == 1:
                    want = None if nodes == held.get(v4, set()) else next(iter(nodes))
                    if ann.get("kube-vip.io/vipHost-ipv6") != want:
                        problems.append(f"vipHost-ipv6 {ann.get('kube-vip.io/vipHost-ipv6')}, want {want}")
                if problems:
                    out[fam].append(f"{name}: {'; '.join(problems)}")
        return out

    async def settled_check(self) -> None:
        """Once every VIP is on exactly one node again (waited for up to `settle_within` s: how long that
        took is the fault's settling time), status against the kernel; a disagreement counts when it is
        still there 6 s later."""
        since = self.faults[-1].end if self.faults else time.monotonic()
        settled: float | None = None
        deadline = time.monotonic() + self.cfg.settle_within
        while time.monotonic() < deadline:
            if await self.every_vip_held_once():
                settled = time.monotonic() - since
                break
            await asyncio.sleep(0.5)
        if self.faults:
            self.faults[-1].info["settled_after_s"] = None if settled is None else round(settled, 2)
        at = time.monotonic()
        first = await self.status_check()
        last = first
        for _ in range(3):
            if not any(last.values()):
                break
            await asyncio.sleep(2.0)
            last = await self.status_check()
        lasting = {
            f: [x for x in last[f] if x.split(":")[0] in {y.split(":")[0] for y in first[f]}] for f in last
        }
        self.checks.append(
            {
                "at": at,
                "services": len(self.svcs),
                "kernel_settled": settled is not None,
                "transient": {f: len(first[f]) for f in first},
                "lasting": {f: len(lasting[f]) for f in lasting},
            }
        )
        if any(lasting.values()):
            doc = {
                "at_s": round(at - self.t0, 1),
                "after": self.faults[-1].kind if self.faults else None,
                "kernel_settled": settled is not None,
                **lasting,
            }
            self.disagreements.append(doc)
            self.say(
                f"status disagrees with the kernel ({'settled' if settled is not None else 'NOT settled'}): "
                f"{len(lasting['ipv4'])} IPv4, {len(lasting['ipv6'])} IPv6 Services, e.g. "
                f"{(lasting['ipv4'] + lasting['ipv6'])[:2]}"
            )

    # ----- the deliberate incidents (--self-check) ------------------------------------------------------

    async def sole_holder(self, vip: str) -> str:
        """The node holding `vip` once exactly one does (a VIP may be between two nodes right now)."""
        found: list[str] = []

        async def one() -> bool:
            nodes = (await asyncio.to_thread(self.kernel)).get(vip, set())
            found[:] = sorted(nodes)
            return len(nodes) == 1

        await self.until(one, f"{vip} on exactly one node", 60)
        return found[0]

    async def inject(self) -> None:
        """A VIP added by hand to a second node for ~1.5 s (the sampler must see two holders), and the
        holder's responder stopped for ~1.5 s (the prober must see a gap)."""
        svc = next(iter(self.svcs.values()))
        v4, v6 = (str(a) for a in self.vips(svc.index))
        holder = await self.sole_holder(v6)
        other = next(n for n in self.net.nodes if n.name != holder)
        t = time.monotonic()
        await asyncio.to_thread(
            self.net.run, other.netns, ["ip", "addr", "add", f"{v6}/128", "dev", other.interface, "nodad"]
        )
        await asyncio.sleep(1.5)
        await asyncio.to_thread(
            self.net.run, other.netns, ["ip", "addr", "del", f"{v6}/128", "dev", other.interface]
        )
        self.injected["double"] = {
            "vip": v6,
            "nodes": sorted({holder, other.name}),
            "from": t,
            "to": time.monotonic(),
        }
        self.faults.append(Fault("inject-double", v6, other.name, t, time.monotonic(), 0.0, "self-check"))
        await asyncio.sleep(1.0)
        # A gap: the IPv4 VIP's holder stops answering (its responder paused), VIP in place.
        holder4 = await self.sole_holder(v4)
        pid = self.responders[holder4].pid
        t = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(1.5)
        os.kill(pid, signal.SIGCONT)
        self.injected["gap"] = {"vip": v4, "node": holder4, "from": t, "to": time.monotonic()}
        self.faults.append(Fault("inject-gap", v4, holder4, t, time.monotonic(), 0.0, "self-check"))

    # ----- run ---------------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        try:
            await self.setup()
            loads = asyncio.create_task(self.sample_load())
            try:
                if self.cfg.self_check:
                    await self.inject()
                    await asyncio.sleep(2.0)
                stop_at = self.t0 + self.cfg.minutes * 60
                while time.monotonic() < stop_at:
                    kind = self.rng.choice(self.cfg.kinds)
                    await self.fault(kind)
                    await asyncio.sleep(self.cfg.quiet)
                    await self.settled_check()
                    await asyncio.sleep(self.rng.uniform(0.0, 5.0))
                self.t_end = time.monotonic()
            finally:
                loads.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loads
        finally:
            await self.teardown()
            self.save_raw()
        return self.report()

    def save_raw(self) -> None:
        """Everything report() reads, so a report can be rebuilt (`--report-from`) without a re-run."""
        if not hasattr(self, "t0"):
            return
        self.requests = [r for r in self.proxy.requests]
        self.agent_restarts = {n: a.starts - 1 for n, a in self.fleet.agents.items()}
        self.nodes, self.vip_set = len(self.net.nodes), self.all_vips()
        doc = {
            "cfg": dataclasses.asdict(self.cfg),
            "t0": self.t0,
            "t_end": getattr(self, "t_end", time.monotonic()),
            "wall0": self.wall0,
            "faults": [dataclasses.asdict(f) for f in self.faults],
            "checks": self.checks,
            "disagreements": self.disagreements,
            "loads": self.loads,
            "injected": self.injected,
            "requests": [(r.at, r.method, r.target) for r in self.requests],
            "agent_restarts": self.agent_restarts,
            "nodes": self.nodes,
            "vips": sorted(self.all_vips()),
        }
        (self.workdir / "raw.json").write_text(json.dumps(doc))

    @classmethod
    def from_raw(cls, workdir: Path) -> Soak:
        from kubevip.lab.faultproxy import Request

        doc = json.loads((workdir / "raw.json").read_text())
        self = cls.__new__(cls)
        cfg = dict(doc["cfg"])
        cfg["kinds"], cfg["timings"], cfg["hold"] = (
            tuple(cfg["kinds"]),
            tuple(cfg["timings"]),
            tuple(cfg["hold"]),
        )
        self.cfg = Config(**cfg)
        self.workdir, self.t0, self.t_end, self.wall0 = workdir, doc["t0"], doc["t_end"], doc["wall0"]
        self.faults = [Fault(**f) for f in doc["faults"]]
        self.checks, self.disagreements, self.injected = doc["checks"], doc["disagreements"], doc["injected"]
        self.loads = [tuple(x) for x in doc["loads"]]
        self.requests = [Request(*r) for r in doc["requests"]]
        self.agent_restarts, self.nodes = doc["agent_restarts"], doc["nodes"]
        self.vip_set = set(doc["vips"])
        self.probe_path, self.addr_path = workdir / "probe.jsonl", workdir / "addrwatch.jsonl"
        return self

    async def sample_load(self) -> None:
        while True:
            self.loads.append((time.monotonic(), os.getloadavg()[0]))
            await asyncio.sleep(10.0)

    async def teardown(self) -> None:
        for p in reversed(self.procs):  # prober first: it writes its open gaps on SIGTERM
            if p.poll() is None:
                p.terminate()
                try:
                    await asyncio.to_thread(p.wait, 10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    await asyncio.to_thread(p.wait, 5)
        if hasattr(self, "fleet"):
            for a in self.fleet.agents.values():
                a.signal(signal.SIGCONT)  # a stop fault cut short must not leave a stopped agent
            await asyncio.to_thread(self.fleet.stop)
        for p in self.responders.values():
            p.terminate()
            await asyncio.to_thread(p.wait, 10)
        if hasattr(self, "proxy"):
            await self.proxy.close()
        if hasattr(self, "api"):
            with contextlib.suppress(Exception):
                await self.core.delete_namespace(self.ns)
            await self.api.close()

    # ----- report ------------------------------------------------------------------------------------

    def self_fenced(self) -> list[tuple[str, float, str]]:
        """(node, monotonic instant, line) of every agent that gave its units up because its own renewals
        were late (not a fault's doing when outside every fault's window: a starved agent)."""
        out = []
        for log in sorted(self.workdir.glob("agent-*.log")):
            node = log.stem.removeprefix("agent-")
            for line in log.read_text(errors="replace").splitlines():
                if "renew deadline passed" not in line:
                    continue
                with contextlib.suppress(ValueError):
                    wall = (
                        time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
                    )
                    out.append((node, self.t0 + (wall - self.wall0), line[24:200]))
        return sorted(out, key=lambda x: x[1])

    def report(self) -> dict[str, Any]:
        t0 = self.t0
        t_end = getattr(self, "t_end", time.monotonic())
        duration = t_end - t0
        rel = lambda t: round(t - t0, 3)  # noqa: E731
        probe = [json.loads(x) for x in self.probe_path.read_text().splitlines() if x.startswith("{")]
        stalls = [(d["from"], d["to"]) for d in probe if d["ev"] == "stall"]
        gaps = [(d["vip"], d["from"], d["to"]) for d in probe if d["ev"] in ("gap", "open")]
        never = [d for d in probe if d["ev"] == "never"]
        firsts = [d["t"] - d["added"] for d in probe if d["ev"] == "first" and d["added"] > t0]
        addr_lines = []
        for x in self.addr_path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                addr_lines.append(json.loads(x))
        tl = Timeline.build(addr_lines, self.vip_set)
        doubles = tl.doubles()

        def window(items: list[Any], a: int, b: int) -> list[Any]:
            return [x for x in items if x[b] > t0 and x[a] < t_end + TAIL]

        gaps, doubles_in = window(gaps, 1, 2), window(doubles, 1, 2)
        fams: dict[str, Any] = {}
        for fam in ("ipv4", "ipv6"):
            g = [(a, b) for v, a, b in gaps if family(v) == fam]
            d = [(a, b) for v, a, b, _ in doubles_in if family(v) == fam]
            unattributed = [
                (v, a, b) for v, a, b in gaps if family(v) == fam and attribute(self.faults, a) is None
            ]
            fams[fam] = {
                "unanswered": {
                    "any_vip_s": round(union_length(g), 3),
                    "vip_seconds": round(sum(b - a for a, b in g), 3),
                    "gaps": len(g),
                    "longest_s": round(max((b - a for a, b in g), default=0.0), 3),
                    "unattributed": [
                        {
                            "vip": v,
                            "at_s": rel(a),
                            "s": round(b - a, 3),
                            "prober_stalled": any(sa < b and sb > a for sa, sb in stalls),
                        }
                        for v, a, b in unattributed
                    ],
                },
                "two_holders": {
                    "any_vip_s": round(union_length(d), 4),
                    "vip_seconds": round(sum(b - a for a, b in d), 4),
                    "incidents": [
                        {
                            "vip": v,
                            "at_s": rel(a),
                            "s": round(b - a, 4),
                            "nodes": list(n),
                            "fault": (f.kind if (f := attribute(self.faults, a)) else None),
                        }
                        for v, a, b, n in doubles_in
                        if family(v) == fam
                    ],
                },
                # Status against a VIP on exactly one node (a VIP on none or two is the prober's and the
                # sampler's business, and its status cannot be right or wrong yet).
                "status_disagreed": sorted(
                    {
                        x.split(":")[0]
                        for dis in self.disagreements
                        for x in dis.get(fam, [])
                        if status_problem(x)
                    }
                ),
                "status_disagreements": [
                    {"at_s": dis["at_s"], "after": dis["after"], "service": x}
                    for dis in self.disagreements
                    for x in dis.get(fam, [])
                    if status_problem(x)
                ][:50],
                "never_answered": [
                    d["vip"] for d in never if family(d["vip"]) == fam and d["to"] - d["added"] > 5.0
                ],
                # A node that adds a VIP and drops it again within a second: announced (gratuitous ARP /
                # unsolicited NA pointing clients at it) and gone, a flap a client pays for.
                "holdings": sum(
                    1
                    for (_, v), spans in tl.spans.items()
                    if family(v) == fam
                    for a, b in spans
                    if b > t0 and a < t_end
                ),
                "holdings_under_1s": sum(
                    1
                    for (_, v), spans in tl.spans.items()
                    if family(v) == fam
                    for a, b in spans
                    if b > t0 and a < t_end and b - a < 1.0
                ),
            }
        fenced = [x for x in self.self_fenced() if t0 <= x[1] <= t_end]
        faults_out = []
        for f in self.faults:
            mine = [(v, a, b) for v, a, b in gaps if attribute(self.faults, a) is f]
            worst = max((b - a for _, a, b in mine), default=0.0)
            doc: dict[str, Any] = {
                "kind": f.kind,
                "detail": f.detail,
                "target": f.target,
                "at_s": rel(f.start),
                "lasted_s": round(f.end - f.start, 2),
                "bound_s": round(f.bound, 2),
                "gaps": len(mine),
                "longest_gap_s": round(worst, 3),
                "vip_seconds": round(sum(b - a for _, a, b in mine), 2),
                "within_bound": None
                if f.kind.startswith("inject")
                else worst <= f.bound + self.cfg.gap_ms / 1000 + self.cfg.interval_ms / 1000,
                "two_holders": sum(1 for _, a, _, _ in doubles_in if attribute(self.faults, a) is f),
                "agents_fenced_late_renewal": sum(1 for _, t, _ in fenced if attribute(self.faults, t) is f),
                **f.info,
            }
            if f.kind in ("kill", "stop", "link") and f.target:
                left = tl.left(f.target, f.start, f.end + TAIL)
                gone = [x for x in left.values() if x is not None]
                doc["vips_on_node"] = len(left)
                doc["left_node_max_s"] = round(max(gone), 3) if gone else None
                doc["still_on_node"] = sum(1 for x in left.values() if x is None)
            faults_out.append(doc)
        per_kind: dict[str, Any] = {}
        for kind in sorted({f["kind"] for f in faults_out}):
            fs = [f for f in faults_out if f["kind"] == kind]
            per_kind[kind] = {
                "count": len(fs),
                "longest_gap_s": max(f["longest_gap_s"] for f in fs),
                "exceeded_bound": sum(1 for f in fs if f["within_bound"] is False),
                "two_holders": sum(f["two_holders"] for f in fs),
            }
            lefts = [f["left_node_max_s"] for f in fs if f.get("left_node_max_s") is not None]
            if lefts:
                per_kind[kind]["left_node_s"] = summarize(lefts).as_dict(("min", "median", "p95", "max", "n"))
        reqs = [r for r in self.requests if t0 <= r.at <= t_end]
        by_verb: dict[str, int] = {}
        by_res: dict[str, int] = {}
        for r in reqs:
            by_verb[r.verb] = by_verb.get(r.verb, 0) + 1
            res = r.target.split("?", 1)[0].strip("/").split("/")
            kind = next(
                (
                    x
                    for x in (
                        "leases",
                        "services",
                        "endpointslices",
                        "endpoints",
                        "nodes",
                        "events",
                        "configmaps",
                    )
                    if x in res
                ),
                "other",
            )
            key = f"{r.verb} {kind}"
            by_res[key] = by_res.get(key, 0) + 1
        per10: dict[int, int] = {}
        for r in reqs:
            per10[int((r.at - t0) // 10)] = per10.get(int((r.at - t0) // 10), 0) + 1
        loads = [x for _, x in self.loads]
        return {
            "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": {
                "cpus": os.cpu_count(),
                "kernel": platform.release(),
                "load_average": summarize(loads).as_dict(("min", "median", "max", "n")) if loads else None,
            },
            "config": {
                "minutes": self.cfg.minutes,
                "seconds_run": round(duration, 1),
                "services": self.cfg.services,
                "vips": 2 * self.cfg.services,
                "nodes": self.nodes,
                "seed": self.cfg.seed,
                "kinds": list(self.cfg.kinds),
                "election": self.cfg.election,
                "lease_renew_retry_s": list(self.cfg.timings),
                "probe_interval_ms": self.cfg.interval_ms,
                "gap_threshold_ms": self.cfg.gap_ms,
                "quiet_s": self.cfg.quiet,
            },
            "families": fams,
            "faults_by_kind": per_kind,
            "faults": faults_out,
            "status_checks": {
                "count": len(self.checks),
                "kernel_not_settled": sum(1 for c in self.checks if c.get("kernel_settled") is False),
                "transient": {f: sum(c["transient"][f] for c in self.checks) for f in ("ipv4", "ipv6")},
                "lasting_services": {
                    f: sum(len(d.get(f, [])) for d in self.disagreements) for f in ("ipv4", "ipv6")
                },
            },
            "first_answer_s": summarize(firsts).as_dict(("median", "p95", "max", "n")) if firsts else None,
            "agents_fenced_late_renewal": {
                "count": len(fenced),
                "outside_faults": [
                    {"node": n, "at_s": rel(t)} for n, t, _ in fenced if attribute(self.faults, t) is None
                ],
            },
            "prober_stalls": {
                "count": len(stalls),
                "longest_s": round(max((b - a for a, b in stalls), default=0), 3),
            },
            "api": {
                "requests": len(reqs),
                "per_second": round(len(reqs) / duration, 2) if duration else None,
                "by_verb_per_second": {k: round(v / duration, 3) for k, v in sorted(by_verb.items())},
                "by_verb_resource_per_second": {k: round(v / duration, 3) for k, v in sorted(by_res.items())},
                "peak_10s_per_second": round(max(per10.values(), default=0) / 10, 1),
            },
            "agent_restarts": self.agent_restarts,
            "self_check": {
                k: {**v, "from": rel(v["from"]), "to": rel(v["to"])} for k, v in self.injected.items()
            },
        }


# ---------------------------------------------------------------------------------------------------
# Stand-alone: a private control plane and lab
# ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def private_lab(workdir: Path) -> Iterator[tuple[Any, Any]]:
    from kubevip.lab.controlplane import ControlPlane
    from kubevip.lab.network import LabNetwork
    from kubevip.lab.stack import connect_network

    bin_dir = (
        os.environ.get("KUBEVIP_BIN_DIR")
        or subprocess.run(
            [str(REPO / "hack/controlplane/build.sh")], capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    cp = ControlPlane(Path(bin_dir), workdir / "controlplane", bind_address=ipaddress.ip_address("0.0.0.0"))
    net = LabNetwork(f"ch{secrets.token_hex(2)}", nodes=3, state_dir=workdir / "lab", reap_with_owner=True)
    try:
        cp.start()
        net.up()
        connect_network(cp, net)
        yield cp, net
    finally:
        net.down()
        cp.stop()


def summary_lines(rep: dict[str, Any]) -> list[str]:
    out = [
        f"{rep['config']['seconds_run']:.0f} s, {rep['config']['services']} Services, "
        f"load average {rep['host']['load_average']}"
    ]
    for fam, d in rep["families"].items():
        u, t = d["unanswered"], d["two_holders"]
        out.append(
            f"{fam}: unanswered any-VIP {u['any_vip_s']} s ({u['gaps']} gaps, longest {u['longest_s']} s, "
            f"{len(u['unattributed'])} outside faults); two holders {t['any_vip_s']} s "
            f"({len(t['incidents'])}); status disagreed: {len(d['status_disagreed'])}"
        )
    for kind, k in rep["faults_by_kind"].items():
        out.append(f"  {kind}: {k}")
    out.append(f"API: {rep['api']['per_second']} req/s {rep['api']['by_verb_per_second']}")
    return out


def markdown(rep: dict[str, Any]) -> str:
    """The tables of docs/reliability.md, from a report."""
    c, h = rep["config"], rep["host"]
    lines = [
        f"Run of {rep['when']}: {c['seconds_run'] / 60:.1f} min, {c['services']} dual-stack Services "
        f"({c['vips']} VIPs), {c['nodes']} nodes, {c['election']} election, Lease / renew / retry "
        f"{' / '.join(f'{x:g}' for x in c['lease_renew_retry_s'])} s, seed {c['seed']}; {h['cpus']} CPUs, "
        f"kernel {h['kernel']}, load average {h['load_average']['min']:.1f} / "
        f"{h['load_average']['median']:.1f} / {h['load_average']['max']:.1f} (min / median / max).",
        "",
        "| | IPv4 | IPv6 |",
        "|---|---|---|",
    ]
    f4, f6 = rep["families"]["ipv4"], rep["families"]["ipv6"]

    def row(name: str, get: Any) -> None:
        lines.append(f"| {name} | {get(f4)} | {get(f6)} |")

    row("time any VIP was unanswered", lambda f: f"{f['unanswered']['any_vip_s']:.1f} s")
    row("unanswered, summed over VIPs", lambda f: f"{f['unanswered']['vip_seconds']:.0f} VIP-s")
    row(
        "gaps (> 300 ms) / longest",
        lambda f: f"{f['unanswered']['gaps']} / {f['unanswered']['longest_s']:.2f} s",
    )
    row("gaps outside any fault's window", lambda f: str(len(f["unanswered"]["unattributed"])))
    row("time any VIP had two holders", lambda f: f"{f['two_holders']['any_vip_s']:.3f} s")
    row("two-holder stretches", lambda f: str(len(f["two_holders"]["incidents"])))
    row("Services whose status disagreed with the kernel", lambda f: str(len(f["status_disagreed"])))
    row(
        "holdings (a VIP on a node) / of them shorter than 1 s",
        lambda f: f"{f['holdings']} / {f['holdings_under_1s']}",
    )
    lines += [
        "",
        "| fault | count | longest gap | bound | over bound | two holders | settled after (max) |"
        " VIPs left the node after (median / max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind, k in rep["faults_by_kind"].items():
        fs = [f for f in rep["faults"] if f["kind"] == kind]
        bounds = sorted({f["bound_s"] for f in fs})
        bound = f"{bounds[0]:g} s" if len(bounds) == 1 else f"{bounds[0]:g}-{bounds[-1]:g} s"
        settled = [f.get("settled_after_s") for f in fs if "settled_after_s" in f]
        settle = (
            "-"
            if not settled
            else "not within 60 s"
            if None in settled
            else f"{max(x for x in settled if x is not None):.1f} s"
        )
        left = k.get("left_node_s")
        lefts = f"{left['median']:.2f} / {left['max']:.2f} s" if left else "-"
        lines.append(
            f"| {kind} | {k['count']} | {k['longest_gap_s']:.2f} s | {bound} | {k['exceeded_bound']} | "
            f"{k['two_holders']} | {settle} | {lefts} |"
        )
    a = rep["api"]
    lines += [
        "",
        f"Agents' API requests (3 agents, at the proxy): {a['per_second']} /s in all, peak "
        f"{a['peak_10s_per_second']} /s over 10 s; per verb: "
        + ", ".join(f"{v} {r}" for v, r in a["by_verb_per_second"].items())
        + "; per verb and resource: "
        + ", ".join(f"{v} {r}" for v, r in a["by_verb_resource_per_second"].items())
        + ".",
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    ap.add_argument("--lease", default=None, help="DURATION,RENEW,RETRY s (default: the agent's 1.5,1,0.25)")
    ap.add_argument("--election", default="scalable", choices=("scalable", "lease"))
    ap.add_argument("--quiet", type=float, default=10.0)
    ap.add_argument("--self-check", action="store_true", help="inject a two-holder moment and a gap first")
    ap.add_argument("--smoke", action="store_true", help="short run; JSON only with --out")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--keep", type=Path, default=None, help="work directory kept afterwards (logs, raw data)")
    ap.add_argument(
        "--report-from", type=Path, default=None, help="rebuild the report from a --keep directory"
    )
    ap.add_argument("--markdown", action="store_true", help="also print the tables of docs/reliability.md")
    args = ap.parse_args()
    out = args.out or (None if args.smoke else RESULTS)
    if args.report_from:
        rep = Soak.from_raw(args.report_from).report()
    else:
        kinds = tuple(k for k in args.faults.split(",") if k)
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            ap.error(f"--faults: unknown {bad}; choose from {KINDS}")
        timings = DEFAULT_TIMINGS
        if args.lease:
            a, b, c = (float(x) for x in args.lease.split(","))
            timings = (a, b, c)
        cfg = Config(
            args.minutes,
            args.services,
            args.seed,
            kinds,
            quiet=args.quiet,
            timings=timings,
            election=args.election,
            self_check=args.self_check,
        )
        with contextlib.ExitStack() as stack:
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                work = args.keep
            else:
                work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubevip-chaos-")))
            cp, net = stack.enter_context(private_lab(work))
            rep = asyncio.run(Soak(cp, net, work, cfg).run())
    for line in summary_lines(rep):
        print(line)
    if args.markdown:
        print(markdown(rep))
    if out is not None:
        out.write_text(json.dumps(rep, indent=1) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
