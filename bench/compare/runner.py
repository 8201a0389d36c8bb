"""Runs one agent (kubevip or kube-vip) in every node namespace of the lab and the scenarios against it."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compare import apimetrics, workload
from compare.agents import AgentProcess, NodeSpot, Settings, agent_argv, agent_env, start_agent
from compare.lab import HERE, PROBE_PORT, Helpers, Lab
from compare.procstat import CpuMarks, cpu_marks, ms_per_run, usage
from compare.rib import RibReader, RouteWatch, family_of, first_after
from compare.stamps import EventStamps
from compare.timeline import (
    CREATE_STAGES,
    AddrEvent,
    Reply,
    create_stages,
    failover_times,
    first_answer,
    holder_intervals,
    last_change,
    overlap,
)


class NotAvailable(Exception):
    """The agent cannot run this scenario (yet): recorded as "not available" with the reason."""


@dataclass
class Probe:
    """A UDP prober in the client namespace; answers are read back after stop()."""

    proc: subprocess.Popen[bytes]
    out: Path

    @classmethod
    def start(cls, netns: str, targets: dict[str, str], workdir: Path, interval_ms: float) -> Probe:
        out = workdir / f"probe-{int(time.time() * 1000)}.txt"
        with out.open("wb") as fh:
            proc = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    netns,
                    sys.executable,
                    str(HERE / "probe.py"),
                    *(f"{f}={a}" for f, a in targets.items()),
                    "--port",
                    str(PROBE_PORT),
                    "--interval-ms",
                    str(interval_ms),
                ],
                stdout=fh,
                stderr=subprocess.DEVNULL,
            )
        probe = cls(proc, out)
        # Python starts slowly on a loaded machine: time nothing before the prober runs.
        if not workload.wait_for(lambda: probe.out.read_bytes().startswith(b"# ready"), 30, 0.02):
            probe.stop()
            raise NotAvailable("the UDP prober did not start within 30 s")
        return probe

    def replies(self) -> list[Reply]:
        out: list[Reply] = []
        for line in self.out.read_text().splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and not line.startswith("#"):
                out.append(Reply(float(parts[0]), parts[1], parts[2]))
        return out

    def answered_by(self, family: str, not_node: str | None = None, since: float = 0.0) -> bool:
        return any(r.family == family and r.t >= since and r.node != not_node for r in self.replies())

    def stop(self) -> list[Reply]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(5)
        return self.replies()


def metrics_up(address: str, port: int) -> bool:
    """Whether an agent answers on its Prometheus port (reached from the host over the lab uplink)."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def read_events(paths: dict[str, Path], since: float = 0.0) -> list[AddrEvent]:
    """Address events from the watcher (from about `since` on); polls add the changes that events missed,
    for example addresses present before the watcher started or before `since`."""
    ev: list[AddrEvent] = []
    for path in paths.values():
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        prev_of: dict[str, set[str]] = {}
        for line in lines:
            # Cheap skip of old lines (the file grows all run long); polls rebuild the state after it.
            if since and line.startswith('{"t": '):
                try:
                    if float(line[6 : line.index(",")]) < since - 1.0:
                        continue
                except ValueError:
                    pass
            try:
                d = json.loads(line)
            except ValueError:
                continue
            node = d["node"]
            prev = prev_of.setdefault(node, set())
            if d["op"] == "poll":
                cur = set(d["addrs"])
                ev += [AddrEvent(d["t"], node, "add", a) for a in cur - prev]
                ev += [AddrEvent(d["t"], node, "del", a) for a in prev - cur]
                prev_of[node] = cur
            elif d["op"] in ("add", "del"):
                ev.append(AddrEvent(d["t"], node, d["op"], d["addr"]))
                if d["op"] == "add":
                    prev.add(d["addr"])
                else:
                    prev.discard(d["addr"])
    return ev


@dataclass
class Runner:
    """Agents of one kind with one Settings in every node; scenarios return plain dicts of samples."""

    lab: Lab
    helpers: Helpers
    workdir: Path
    agent: str
    settings: Settings
    kube_vip_bin: str | None
    kubevip_bin: str | None
    kubeconfig: str
    probe_ms: float = 5.0
    # Creates of a create scenario start at least this many seconds apart (and after the previous one's
    # delete): the same quiet cluster for both agents before every POST. Before session 32 each create
    # began as soon as the previous one was gone, and kube-vip's BGP creates waited out the 2 s stage
    # timeout (it shows no address stage there) while kubevip's followed 0.1-0.4 s apart, into the
    # write-backs and Lease deletes of the one before.
    create_every: float = 2.5
    procs: dict[str, AgentProcess] = field(default_factory=dict)
    _last_post: float = -math.inf
    # The last create scenario's stages (timeline.create_stages), stage -> family -> seconds per run, and
    # each run's POST instant (time.monotonic(): the agents' own clock, to line up with their traces).
    create_stage_samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    create_posts: list[float] = field(default_factory=list)
    # CPU milliseconds per create (and its delete) of each agent process tree (its ExaBGP included) and
    # of the control plane's processes, over the last create scenario (procstat.ms_per_run).
    create_cpu_ms: dict[str, float] = field(default_factory=dict)
    create_seconds: float = 0.0  # how long that scenario's creates took, the pacing's waits included
    _cpu_before: CpuMarks = field(default_factory=dict)
    _cpu_started: float = 0.0

    # ---- agents ----------------------------------------------------------------------------------

    def start_node(self, node: NodeSpot) -> AgentProcess:
        argv = agent_argv(self.agent, self.kube_vip_bin, self.kubevip_bin)
        env = agent_env(self.agent, self.settings, node, self.kubeconfig)
        p = start_agent(self.agent, node, argv, env, self.workdir / "logs")
        self.procs[node.name] = p
        return p

    def start_all(self, poll_s: float = 0.2) -> None:
        # Both agents use the same Lease names: never let one inherit the other's (or its own old) Leases.
        kube = self.lab.admin
        kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{workload.NS}/leases")
        kube.delete("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-svcs-lock")
        for n in self.lab.nodes:
            self.start_node(n)
        self.wait_ready(poll_s=poll_s)

    def ensure_all(self) -> None:
        """Restart any agent that is not running (e.g. after a scenario failed half-way)."""
        dead = [n for n in self.lab.nodes if n.name not in self.procs or not self.procs[n.name].alive()]
        for n in dead:
            self.start_node(n)
        if dead:
            self.wait_ready()

    def wait_ready(self, timeout: float = 180.0, poll_s: float = 0.2) -> None:
        """Until every agent serves its metrics (both agents start that early), so that slow process
        start-up on a loaded machine is not mistaken for a missing feature."""
        pending = dict(self.procs)

        def check() -> bool:
            for name, p in list(pending.items()):
                if not p.alive():
                    tail = p.log.read_text(errors="replace")[-1500:]
                    raise NotAvailable(f"{self.agent} on {name} exited (status {p.proc.returncode}): {tail}")
                if metrics_up(p.node.ipv4, self.settings.metrics_port):
                    del pending[name]
            return not pending

        if not workload.wait_for(check, timeout, poll_s):
            raise NotAvailable(f"{self.agent} not serving metrics within {timeout:.0f}s on {sorted(pending)}")

    def stop_all(self) -> None:
        for p in self.procs.values():
            p.stop()
        self.procs.clear()

    def node(self, name: str) -> NodeSpot:
        return next(n for n in self.lab.nodes if n.name == name)

    def vip_dev(self, node: NodeSpot) -> str:
        """Where the agents put VIPs: the lab interface in layer 2, lo in BGP mode."""
        return "lo" if self.settings.bgp_peer else node.interface

    def holders(self, addr: str) -> list[str]:
        return [n.name for n in self.lab.nodes if addr in workload.node_addresses(n.netns, self.vip_dev(n))]

    def clear_vips(self, vips: list[str], only: str | None = None) -> None:
        """Remove leftovers (e.g. after a SIGKILL) so every run starts clean (on node `only`, or all)."""
        for n in self.lab.nodes:
            if only is not None and n.name != only:
                continue
            dev = self.vip_dev(n)
            have = workload.node_addresses(n.netns, dev)
            cmds = [f"addr del {v}/{128 if ':' in v else 32} dev {dev}" for v in vips if v in have]
            if cmds:
                subprocess.run(
                    ["ip", "-n", n.netns, "-force", "-batch", "-"],
                    input="\n".join(cmds) + "\n",
                    capture_output=True,
                    text=True,
                )

    def stages_started(self, vips: dict[str, str]) -> EventStamps:
        """The Service and EndpointSlice watches of the create scenarios; their samples reset."""
        self.create_stage_samples = {k: {f: [] for f in vips} for k in CREATE_STAGES}
        self.create_posts = []
        self.create_cpu_ms = {}
        self.create_seconds = 0.0
        stamps = EventStamps(self.lab.admin, workload.NS).start()
        self._cpu_before = cpu_marks(self.cpu_pids())
        self._cpu_started = time.monotonic()
        return stamps

    def stages_done(self, stamps: EventStamps) -> None:
        """The end of a create scenario: its watches stop, its CPU per create is kept."""
        self.create_cpu_ms = ms_per_run(self._cpu_before, cpu_marks(self.cpu_pids()), len(self.create_posts))
        self.create_seconds = time.monotonic() - self._cpu_started
        stamps.stop()

    def cpu_pids(self) -> dict[str, int]:
        """The processes whose CPU a create scenario counts: each node's agent ("agent node1") and the
        lab's control plane (etcd, kube-apiserver, kube-controller-manager)."""
        pids = {f"agent {name}": p.proc.pid for name, p in self.procs.items() if p.alive()}
        pids.update({str(k): int(v) for k, v in self.lab.doc.get("processes", {}).items()})
        return pids

    def pace(self, ahead: float = 0.0) -> None:
        """Pacing, not synchronisation: wait until `create_every` minus `ahead` seconds have passed since
        the previous create's POST (`posting`)."""
        wait = self._last_post + self.create_every - ahead - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def posting(self) -> float:
        """The instant of a create's POST, which the next create is paced from."""
        self._last_post = time.monotonic()
        return self._last_post

    def record_stages(self, stamps: EventStamps, name: str, vips: dict[str, str], t0: float) -> None:
        """One create's stages, once the bench saw each (or after 2 s: the rest NaN)."""
        self.create_posts.append(t0)
        got: dict[str, dict[str, float]] = {}

        def seen() -> bool:
            events = read_events(self.helpers.watch_files, t0)
            got.update(create_stages(stamps.stamps(), events, name, vips, t0))
            return not any(math.isnan(x) for per in got.values() for x in per.values())

        workload.wait_for(seen, 2.0, 0.02)
        for stage, per in got.items():
            for f, x in per.items():
                self.create_stage_samples[stage][f].append(x)

    def tail(self, n: int = 1200, nodes: int = 1) -> str:
        return " | ".join(
            f"{name}: " + p.log.read_text(errors="replace")[-n:]
            for name, p in list(self.procs.items())[:nodes]
        )

    def reset(self, vips: list[str]) -> None:
        """After a stage, whatever happened in it: agents stopped, no Service, Lease or VIP left over."""
        self.stop_all()
        kube = self.lab.admin
        for call in (
            lambda: workload.delete_all_services(kube),
            lambda: kube.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{workload.NS}/leases"),
            lambda: kube.delete("/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/plndr-svcs-lock"),
        ):
            try:
                call()
            except Exception as exc:  # clean-up is best effort; the next stage retries it
                print(f"reset: {exc}", file=sys.stderr)
        self.clear_vips(vips)

    # ---- scenarios -------------------------------------------------------------------------------

    def smoke(self, vips: dict[str, str], timeout: float = 45.0) -> None:
        """A dual-stack Service must get its VIPs on some node, else the agent is not available here."""
        kube = self.lab.admin
        workload.create_service(kube, workload.service_body("kvb-smoke", vips))
        try:
            ok = workload.wait_for(lambda: all(self.holders(v) for v in vips.values()), timeout, 0.2)
        finally:
            workload.delete_services(kube, ["kvb-smoke"])
        if not ok:
            raise NotAvailable(f"{self.agent} put no VIP on any node within {timeout:.0f}s: {self.tail()}")
        workload.wait_for(lambda: not any(self.holders(v) for v in vips.values()), 30, 0.2)
        self.clear_vips(list(vips.values()))

    def create_to_answer(
        self, vips: dict[str, str], runs: int, timeout: float = 30.0
    ) -> dict[str, list[float]]:
        """Seconds from the Service's POST until the client gets an answer on each family's VIP."""
        kube = self.lab.admin
        out: dict[str, list[float]] = {f: [] for f in vips}
        stamps = self.stages_started(vips)
        try:
            for i in range(runs):
                name = f"kvb-create-{i}"
                self.pace(ahead=0.2)
                probe = Probe.start(self.lab.client_netns, vips, self.workdir, self.probe_ms)
                time.sleep(0.2)  # the probe's first requests go out before the POST
                t0 = self.posting()
                workload.create_service(kube, workload.service_body(name, vips))
                answered = lambda p=probe, t=t0: all(p.answered_by(f, since=t) for f in vips)  # noqa: E731
                workload.wait_for(answered, timeout, 0.05)
                replies = probe.stop()
                for f in vips:
                    got = first_answer(replies, t0, f)
                    out[f].append(got if got is not None else float("nan"))
                self.record_stages(stamps, name, vips, t0)
                workload.delete_services(kube, [name])
                workload.wait_for(lambda: not any(self.holders(v) for v in vips.values()), 30, 0.1)
                self.clear_vips(list(vips.values()))
        finally:
            self.stages_done(stamps)
        return out

    def failover(self, vips: dict[str, str], runs: int, sig: int) -> dict[str, Any]:
        """Signal the announcing agent; per family, when another node answers, the longest answer gap,
        and how long two nodes held the VIP at once (address watchers in every node)."""
        kube = self.lab.admin
        name = "kvb-failover"
        workload.create_service(kube, workload.service_body(name, vips))
        res: dict[str, Any] = {
            "switch": {f: [] for f in vips},
            "gap": {f: [] for f in vips},
            "overlap_s": {f: [] for f in vips},
            "overlap_episodes": {f: [] for f in vips},
            "stale_after_restart": 0,
            "old_holder_kept_vip": 0,
            "split": 0,
        }
        lease = self.settings.lease_duration_s
        try:
            for _ in range(runs):
                one = lambda: all(len(self.holders(v)) == 1 for v in vips.values())  # noqa: E731
                single = workload.wait_for(one, 60, 0.1)
                if not single:
                    raise NotAvailable(
                        f"{self.agent}: VIPs not held by exactly one node: "
                        f"{ {v: self.holders(v) for v in vips.values()} }"
                    )
                owners = {f: self.holders(v)[0] for f, v in vips.items()}
                if len(set(owners.values())) > 1:
                    res["split"] += 1  # families announced from different nodes (per-family election)
                victim = owners[next(iter(vips))]
                probe = Probe.start(self.lab.client_netns, vips, self.workdir, self.probe_ms)
                workload.wait_for(lambda p=probe: all(p.answered_by(f) for f in vips), 10, 0.05)
                t0 = time.monotonic()
                self.procs[victim].signal(sig)
                workload.wait_for(
                    lambda p=probe, o=owners, t=t0: all(
                        p.answered_by(f, not_node=o[f], since=t) for f in vips
                    ),
                    3 * lease + 20,
                    0.05,
                )
                # Two holders last until the old node drops the VIP: wait for that, at most one more
                # Lease duration (+5 s); an agent killed with SIGKILL cannot remove anything itself.
                gone = workload.wait_for(
                    lambda v=victim: all(v not in self.holders(a) for a in vips.values()), lease + 5, 0.1
                )
                if not gone:
                    res["old_holder_kept_vip"] += 1
                t_end = time.monotonic()
                replies = probe.stop()
                events = read_events(self.helpers.watch_files, since=t0 - 2.0)
                for f, v in vips.items():
                    took, gap = failover_times(replies, t0, owners[f], f)
                    res["switch"][f].append(took if took is not None else float("nan"))
                    res["gap"][f].append(gap if gap is not None else float("nan"))
                    ov = overlap(holder_intervals(events, v, t_end), window=(t0, t_end))
                    res["overlap_s"][f].append(ov.total_s)
                    res["overlap_episodes"][f].append(float(ov.episodes))
                self.procs[victim].proc.wait(30)
                back = self.start_node(self.node(victim))
                port = self.settings.metrics_port
                workload.wait_for(lambda b=back, p=port: metrics_up(b.node.ipv4, p), 180, 0.2)
                time.sleep(2 * self.settings.retry_period_s + 2)  # let it rejoin the elections
                stale = [v for v in vips.values() if victim in self.holders(v) and len(self.holders(v)) > 1]
                if stale:
                    res["stale_after_restart"] += 1
                    for n in (self.node(victim),):
                        for v in stale:
                            plen = "128" if ":" in v else "32"
                            subprocess.run(
                                ["ip", "-n", n.netns, "addr", "del", f"{v}/{plen}", "dev", n.interface],
                                capture_output=True,
                            )
        finally:
            workload.delete_services(kube, [name])
            workload.wait_for(lambda: not any(self.holders(v) for v in vips.values()), 30, 0.2)
            self.clear_vips(list(vips.values()))
        return res

    def held_count(self, vips: set[str]) -> tuple[int, int]:
        """(VIPs held by at least one node, VIPs held by more than one) among `vips`."""
        seen: dict[str, int] = {}
        for n in self.lab.nodes:
            for a in workload.node_addresses(n.netns, n.interface) & vips:
                seen[a] = seen.get(a, 0) + 1
        return len(seen), sum(1 for c in seen.values() if c > 1)

    def scale(self, count: int, window_s: float, timeout: float) -> dict[str, Any]:
        """`count` dual-stack Services: convergence after a restart of all agents, then steady-state
        RSS / CPU per agent and API requests per second (the API server's own counters)."""
        kube = self.lab.admin
        # Names of this stage only (agent and election mode), as in bench/agent.py: a Service created again
        # under the name of one the stage before deleted waits on the controller-manager's EndpointSlice
        # backoff, and the old slices still counted toward the slice wait below.
        names = [f"kvb-scale-{self.agent}-{self.settings.election}-{i}" for i in range(count)]
        vips = {a for i in range(count) for a in workload.scale_vips(i).values()}
        res: dict[str, Any] = {"services": count}
        try:
            for i, n in enumerate(names):
                workload.create_service(kube, workload.service_body(n, workload.scale_vips(i)))
            first = workload.wait_for(lambda: self.held_count(vips)[0] == len(vips), timeout, 1.0)
            res["initial_converged"] = first
            if not first:  # no point in timing a restart (and waiting as long again)
                held, dup = self.held_count(vips)
                raise NotAvailable(
                    f"{self.agent}: only {held} of {len(vips)} VIPs held ({dup} on two nodes) {timeout:.0f}s "
                    f"after creating {count} Services; {self.tail(600)}"
                )
            # The controller-manager publishes each Service's EndpointSlices (one per family) at its
            # client's 20 writes a second: at 1000 Services that ran past the VIPs being held, and the
            # restart below ran inside that catch-up, its POSTs in the steady window (bench/agent.py
            # waits the same way). A restart in a settled cluster has no slice events to decode.
            want_slices = len(vips)  # one slice per Service and family, as one VIP per Service and family
            res["slices_published_before_restart"] = workload.wait_for(
                lambda: workload.slices_published(kube, want_slices), max(120.0, 0.1 * want_slices), 0.05)
            # What one Service says before the restart and after the steady window: a write-back in the
            # steady window shows up as a difference here (res["status_sample"]).
            sample = {"before": self._service_facts(names[0])}
            # Restart: stop every agent, then start them all at once and time until every VIP is held.
            self.stop_all()
            self.clear_vips(sorted(vips))
            m0 = apimetrics.request_totals(kube.metrics_text())
            t0 = time.monotonic()
            # Polled every 20 ms, not 0.2 s: the restart -> held figure is a few hundred ms for both
            # agents, and it is taken right after every agent serves metrics, so a 0.2 s poll rounded
            # both up to its steps (kube-vip's 0.23 s was one step plus the held check). An agent not
            # up yet refuses the connection: the poll costs the starting agents nothing.
            self.start_all(poll_s=0.02)
            t_ready = time.monotonic()  # every agent serves metrics: process start-up is behind us
            peak: dict[str, int] = {}

            def converged() -> bool:
                for name, p in self.procs.items():
                    u = usage(p.pid)
                    if u:
                        peak[name] = max(peak.get(name, 0), u.rss_bytes)
                held, dup = self.held_count(vips)
                return held == len(vips) and dup == 0

            ok = workload.wait_for(converged, timeout, 0.5)
            t1 = time.monotonic()
            m1 = apimetrics.request_totals(kube.metrics_text())
            # The check runs `ip` in every node (too costly to poll often while the agents start): the
            # converged instant is the last VIP change the address watcher saw before it passed. The
            # whole file is read: skipping old lines would make its next poll report every address as new.
            last = last_change(read_events(self.helpers.watch_files), vips, t0, t1) if ok else None
            res["converge_polled_s"] = (t1 - t0) if ok else float("nan")
            res["converge_s"] = ((last if last is not None else t1) - t0) if ok else float("nan")
            res["ready_s"] = t_ready - t0
            after = max(0.0, res["converge_s"] - res["ready_s"])  # 0: held before the last agent was up
            res["converge_after_ready_s"] = after if ok else float("nan")
            res["converge_timeout_s"] = timeout
            res["held_at_end"] = self.held_count(vips)[0]
            res["converge_api_requests"] = sum(apimetrics.delta(m0, m1).values())
            res["peak_rss_bytes"] = peak
            # The restart's report write-backs (status, annotations, Events; not the election's Lease
            # writes): until a whole second passes without one, counted from the restart. The limit lets
            # every Service's Event through one agent's 5/s bucket, twice over. Then the steady window.
            # kubevip writes the family conditions only once its start-up window (2 lease durations
            # from its start, the election settling) has passed: no quiet second counts before that
            # (else those writes land in the steady window, as 5 status PATCHes/s did at 100 Services).
            if ok:
                settle = (t_ready - t0) + 2 * self.settings.lease_duration_s
                res.update(self.writeback_drain(m0, t0, 120.0 + 2 * count / 5.0, settle))
            # Steady state.
            u0 = {n: usage(p.pid) for n, p in self.procs.items()}
            m0 = apimetrics.request_totals(kube.metrics_text())
            s0 = time.monotonic()
            time.sleep(window_s)
            s1 = time.monotonic()
            m1 = apimetrics.request_totals(kube.metrics_text())
            u1 = {n: usage(p.pid) for n, p in self.procs.items()}
            sample["after"] = self._service_facts(names[0])
            res["status_sample"] = sample
            d = apimetrics.delta(m0, m1)
            res["api_rps"] = apimetrics.per_second(d, s1 - s0)
            res["api_rps_by_verb"] = apimetrics.by_verb(d, s1 - s0)
            res["api_rps_by_verb_resource"] = apimetrics.by_verb_resource(d, s1 - s0)
            res["rss_bytes"] = {n: u.rss_bytes for n, u in u1.items() if u}
            # kube-vip exits when it loses the global Lease (a kubelet would restart it): say so.
            res["agents_exited"] = sorted(n for n, p in self.procs.items() if not p.alive() or not u1.get(n))
            res["cpu_percent"] = {
                n: 100.0 * (u1[n].cpu_s - u0[n].cpu_s) / (s1 - s0)  # type: ignore[union-attr]
                for n in u1
                if u1[n] and u0.get(n)
            }
        finally:
            # Clean-up must not cost the figures measured above (reset() retries what is left).
            try:
                workload.delete_all_services(kube)
                workload.wait_for(lambda: self.held_count(vips)[0] == 0, min(timeout, 120.0), 1.0)
            except Exception as exc:
                res["cleanup_error"] = f"{type(exc).__name__}: {exc}"[:300]
            self.clear_vips(sorted(vips))
        return res

    def _service_facts(self, name: str) -> dict[str, Any]:
        """The parts of a Service the agents write: annotations, status, resourceVersion."""
        try:
            svc = self.lab.admin.get(workload.svc_path(name))
        except Exception as exc:  # a sample, never the end of a run
            return {"error": f"{type(exc).__name__}: {exc}"[:200]}
        meta = svc.get("metadata", {})
        return {"resourceVersion": meta.get("resourceVersion"), "annotations": meta.get("annotations", {}),
                "status": svc.get("status", {})}

    def writeback_drain(
        self, restart: dict[apimetrics.Key, float], t0: float, limit: float, settle: float = 0.0
    ) -> dict[str, Any]:
        """`writeback_drain_after_restart_s` (None: still writing after `limit` s),
        `writebacks_after_restart_by_verb_resource` and, per kind, when the last second carrying one ended
        (`writeback_last_s_by_verb_resource`), all from the restart at `t0` (bench/agent.py's fields). A
        quiet second counts only from `settle` seconds after the restart on."""
        kube = self.lab.admin
        last = apimetrics.request_totals(kube.metrics_text())
        last_seen: dict[str, float] = {}
        drain: float | None = None
        while time.monotonic() - t0 < limit:
            time.sleep(1.0)  # the sampling period of the measurement, not a synchronisation
            now = apimetrics.request_totals(kube.metrics_text())
            step = apimetrics.report_writes(apimetrics.delta(last, now))
            at = time.monotonic() - t0
            for k in step:
                last_seen[k] = at
            last = now
            if not step and at - 1.0 >= settle:
                drain = at - 1.0
                break
        written = apimetrics.report_writes(apimetrics.delta(restart, last))
        return {
            "writeback_drain_after_restart_s": drain,
            "writeback_drain_limit_s": limit,
            "writebacks_after_restart_by_verb_resource": written,
            "writeback_last_s_by_verb_resource": last_seen,
        }

    def bgp(self, rib: RibReader, vips: dict[str, str], runs: int, kill_runs: int) -> dict[str, Any]:
        """BGP mode, per family: Service created -> its host route in the router's RIB, Service deleted
        -> both routes gone, SIGKILL of the announcing agent -> the RIB names another node. The RIB is
        read through the router's CLI (both families: one call each, tens of ms). For daemons that program
        the kernel (bird2, FRR) the create and delete times are taken from the router namespace's kernel
        table instead (routewatch.py, netlink events on the bench's clock), and the CLI is not polled
        while a create or delete is timed (its processes would compete with the agents for the CPU);
        without the watcher the CLI's times are kept in `create_polled` / `delete_polled` too."""
        kube = self.lab.admin
        hop_node = {a: n.name for n in self.lab.nodes for a in (n.ipv4, n.ipv6)}
        node_hop = {n.name: {"ipv4": n.ipv4, "ipv6": n.ipv6} for n in self.lab.nodes}
        res: dict[str, Any] = {
            "create": {f: [] for f in vips},
            "delete": [],
            "kill": {f: [] for f in vips},
            "next_hops": [],
            "wrong_next_hop": [],
            "families_split_across_nodes": 0,
            # wall clock of each create POST, to line up with the agents' log lines (stage timings)
            "created_at": [],
            "create_polled": {f: [] for f in vips},
            "delete_polled": [],
            "timing_source": "router CLI poll",
        }

        def present(routes: dict[str, set[str]]) -> bool:
            return all(routes.get(v) for v in vips.values())

        def absent() -> bool:
            routes = rib.routes()
            return not any(v in routes for v in vips.values())

        def check_hops(routes: dict[str, set[str]]) -> None:
            for f, v in vips.items():
                hops = sorted(routes.get(v, set()))
                res["next_hops"].append({f: hops})
                res["wrong_next_hop"] += [
                    f"{v} via {h}" for h in hops if family_of(h) != f or h not in hop_node
                ]

        # Warm-up: sessions established, first Service through the whole pipeline, else not available.
        workload.create_service(kube, workload.service_body("kvb-bgp-warm", vips))
        try:
            if not workload.wait_for(lambda: present(rib.routes()), 120, 0.2):
                raise NotAvailable(
                    f"{self.agent}: the {rib.daemon} router got no route for {sorted(vips.values())} within "
                    f"120 s (RIB: {rib.routes()}); agent logs: {self.tail(1500, nodes=3)}"
                )
        finally:
            workload.delete_services(kube, ["kvb-bgp-warm"])
        if not workload.wait_for(absent, 60, 0.2):
            raise NotAvailable(f"{self.agent}: deleted Service still routed after 60 s: {rib.routes()}")
        # Every node's session up before the first run: a speaker still starting on another node (ExaBGP's
        # start-up is a second of CPU on this machine) must not be timed as part of a create.
        nodes = len(self.lab.nodes)
        if not workload.wait_for(lambda: rib.established() >= nodes, 120, 0.2):
            raise NotAvailable(f"{self.agent}: {rib.established()} of {nodes} BGP sessions up after 120 s")
        watch = RouteWatch.start(rib.router.netns, self.workdir) if rib.router.installs_routes else None
        if watch is not None:
            res["timing_source"] = "router kernel table (netlink events)"
        stamps = self.stages_started(vips)

        def wire(op: str, since: float, within: float) -> dict[str, float]:
            """Per family, when the router's kernel table got (add) or lost (del) the VIP's route, from
            the watcher's file (read every 5 ms: no CLI process competes with the agents meanwhile);
            NaN for a family that did not within `within` seconds."""
            assert watch is not None
            out: dict[str, float] = {}

            def landed() -> bool:
                ev = watch.events()
                out.update({f: first_after(ev, op, v, since) for f, v in vips.items()})
                return not any(math.isnan(x) for x in out.values())

            workload.wait_for(landed, within, 0.005)
            return out

        try:
            for i in range(runs):
                name = f"kvb-bgp-{i}"
                self.pace()
                t0 = self.posting()
                res["created_at"].append(time.time())
                workload.create_service(kube, workload.service_body(name, vips))
                seen: dict[str, float] = {}
                routes: dict[str, set[str]] = {}
                if watch is not None:
                    seen = {f: x for f, x in wire("add", t0, 30).items() if not math.isnan(x)}
                    routes = rib.routes()  # once, after the timing: the next hops
                else:
                    deadline = t0 + 30
                    while len(seen) < len(vips) and time.monotonic() < deadline:
                        routes = rib.routes()
                        now = time.monotonic()
                        for f, v in vips.items():
                            if routes.get(v) and f not in seen:
                                seen[f] = now - t0
                        time.sleep(0.01)
                    for f in vips:
                        res["create_polled"][f].append(seen.get(f, float("nan")))
                for f in vips:
                    res["create"][f].append(seen.get(f, float("nan")))
                self.record_stages(stamps, name, vips, t0)
                check_hops(routes)
                t1 = time.monotonic()
                workload.delete_services(kube, [name])
                if watch is not None:
                    left = wire("del", t1, 30)
                    res["delete"].append(math.nan if any(math.isnan(x) for x in left.values())
                                         else max(left.values()))
                    workload.wait_for(absent, 30, 0.05)  # the CLI agrees before the next run
                else:
                    gone = workload.wait_for(absent, 30, 0.01)
                    polled_del = time.monotonic() - t1 if gone else float("nan")
                    res["delete_polled"].append(polled_del)
                    res["delete"].append(polled_del)
                self.clear_vips(list(vips.values()))
        finally:
            if watch is not None:
                watch.stop()
            self.stages_done(stamps)
        for i in range(kill_runs):
            name = f"kvb-bgp-kill-{i}"
            workload.create_service(kube, workload.service_body(name, vips))
            try:
                one = lambda: all(len(rib.routes().get(v, ())) == 1 for v in vips.values())  # noqa: E731
                if not workload.wait_for(one, 60, 0.1):
                    raise NotAvailable(f"{self.agent}: no single announcer within 60 s: {rib.routes()}")
                routes = rib.routes()
                owner = {f: hop_node.get(next(iter(routes[v])), "?") for f, v in vips.items()}
                if len(set(owner.values())) > 1:
                    res["families_split_across_nodes"] += 1
                victim = owner["ipv4"]
                t0 = time.monotonic()
                self.procs[victim].signal(signal.SIGKILL)
                moved: dict[str, float] = {}
                deadline = t0 + 3 * self.settings.lease_duration_s + 30
                while time.monotonic() < deadline and len(moved) < len(vips):
                    routes = rib.routes()
                    now = time.monotonic()
                    for f, v in vips.items():
                        hops = routes.get(v, set())
                        if f not in moved and hops and node_hop[victim][f] not in hops:
                            moved[f] = now - t0
                    time.sleep(0.01)
                for f in vips:
                    res["kill"][f].append(moved.get(f, float("nan")))
                self.procs[victim].proc.wait(30)
                self.clear_vips(list(vips.values()), only=victim)  # a killed agent leaves its VIPs on lo
                back = self.start_node(self.node(victim))
                port = self.settings.metrics_port
                workload.wait_for(lambda b=back, p=port: metrics_up(b.node.ipv4, p), 180, 0.2)
            finally:
                workload.delete_services(kube, [name])
                workload.wait_for(absent, 30, 0.1)
                self.clear_vips(list(vips.values()))
        return res

    def seed(self, vip4: str, runs_wait: float = 20.0) -> dict[str, Any]:
        """SingleStack IPv4 Service over dual-stack pods: what lands on interfaces, in status, annotations."""
        kube = self.lab.admin
        name = "kvb-seed"
        before = {n.name: workload.node_addresses(n.netns, n.interface) for n in self.lab.nodes}
        workload.create_service(kube, workload.service_body(name, {"ipv4": vip4}, ["ipv4"], "SingleStack"))
        try:
            workload.wait_for(lambda: bool(self.holders(vip4)), runs_wait, 0.2)
            time.sleep(3)  # let status and annotations settle after the address appears
            added = {
                n.name: sorted(workload.node_addresses(n.netns, n.interface) - before[n.name])
                for n in self.lab.nodes
            }
            svc = kube.get(workload.svc_path(name))
            ann = {
                k: v
                for k, v in (svc["metadata"].get("annotations") or {}).items()
                if k.startswith("kube-vip.io/")
            }
            ingress = svc.get("status", {}).get("loadBalancer", {}).get("ingress", [])
            wrong: list[str] = []
            for node, addrs in added.items():
                wrong += [f"interface {node}: {a}" for a in addrs if workload.family_of(a) != "ipv4"]
            wrong += [f"status ingress: {i['ip']}" for i in ingress if i.get("ip") and ":" in i["ip"]]
            for k, v in ann.items():
                if k.startswith("kube-vip.io/active-endpoint") or k == "kube-vip.io/loadbalancerIPs":
                    wrong += [f"annotation {k}: {x}" for x in v.split(",") if ":" in x]
            return {
                "on_interfaces": added,
                "status_ingress": ingress,
                "annotations": ann,
                "wrong_family": wrong,
                "held": bool(self.holders(vip4)),
            }
        finally:
            workload.delete_services(kube, [name])
            workload.wait_for(lambda: not self.holders(vip4), 30, 0.2)
            self.clear_vips([vip4])
