#!/usr/bin/env python3
"""kubevip and upstream kube-vip side by side: same lab, same control plane, same settings, same clock.

Rerun everything (as root, with the venv from hack/venv.sh):
    $(hack/venv.sh | tail -1)/bin/python bench/compare.py
Writes bench/results/<date>-<host>.json, a PNG of the failover distributions next to it, prints the
table and refreshes the "Side by side with kube-vip" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import termination
from compare import goproxy, report, workload
from compare.agents import AGENTS, KUBE_VIP, KUBEVIP, Settings
from compare.lab import PEER_DIR, REPO, Helpers, Lab, kubevip_cli
from compare.rib import RibReader
from compare.runner import NotAvailable, Runner
from distribution import summarize

FAMILY_LABEL = {"ipv4": "IPv4", "ipv6": "IPv6"}
MODE_LABEL = {"service": "per-Service election", "global": "global election"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_kube_vip(version: str | None) -> tuple[str | None, str]:
    res = subprocess.run(
        [str(PEER_DIR / "build.sh"), *([version] if version else [])], stdout=subprocess.PIPE, text=True
    )
    if res.returncode != 0 or not res.stdout.strip():
        return None, f"build.sh failed ({res.returncode})"
    path = res.stdout.strip().splitlines()[-1]
    return path, Path(path).parent.name.rsplit("-", 1)[0]


def git_rev() -> str:
    res = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True
    )
    return res.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def uncommitted_src() -> list[str]:
    """Files under src/ that differ from HEAD (the checkout is shared: the run measures them too)."""
    res = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "src"], capture_output=True, text=True
    )
    return [line[3:] for line in res.stdout.splitlines() if line.strip()]


class Collector:
    """Samples per (figure id) per agent, plus why an agent could not run a figure."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.labels: dict[str, tuple[str, str]] = {}
        self.missing: dict[str, dict[str, str]] = {}

    def add(self, fid: str, label: str, unit: str, agent: str, values: list[float]) -> None:
        self.labels[fid] = (label, unit)
        self.samples.setdefault(fid, {}).setdefault(agent, []).extend(values)

    def declare(self, fids: list[tuple[str, str, str]]) -> None:
        """Fix the rows' order (the table's) before any sample arrives."""
        for fid, label, unit in fids:
            self.labels.setdefault(fid, (label, unit))

    def unavailable(self, fids: list[tuple[str, str, str]], agent: str, reason: str) -> None:
        for fid, label, unit in fids:
            self.labels[fid] = (label, unit)
            self.missing.setdefault(fid, {})[agent] = reason

    def figures(self) -> list[dict[str, Any]]:
        return [
            report.figure(fid, label, unit, self.samples.get(fid, {}), self.missing.get(fid, {}))
            for fid, (label, unit) in self.labels.items()
        ]


def reason_of(exc: BaseException) -> str:
    """What the table and JSON say when a scenario could not run on one side."""
    text = str(exc) if isinstance(exc, NotAvailable) else f"{type(exc).__name__}: {exc}"
    return text[:700]


def cleanup(runner: Runner, vips: list[str]) -> None:
    """Best effort: a failed clean-up is logged; the next stage starts with its own reset."""
    try:
        runner.reset(vips)
    except Exception as exc:
        log(f"{runner.agent}: clean-up failed: {reason_of(exc)}")


def all_pool(pool: dict[str, list[str]]) -> list[str]:
    return [a for f in workload.FAMILIES for a in pool[f][:8]]


def l2_figure_ids(mode: str) -> list[tuple[str, str, str]]:
    """The layer-2 rows of one election mode, scenario by scenario, each per family."""
    ml = MODE_LABEL[mode]
    fams = [(f, FAMILY_LABEL[f]) for f in workload.FAMILIES]
    out = [(f"create-{mode}-{f}", f"Service created -> {fl} VIP answers ({ml})", "s") for f, fl in fams]
    for kind, sig in (("kill", "SIGKILL"), ("term", "SIGTERM")):
        for f, fl in fams:
            out += [
                (f"failover-{kind}-{mode}-{f}", f"{sig} failover, {fl}: another node answers ({ml})", "s"),
                (f"failover-{kind}-gap-{mode}-{f}", f"{sig} failover, {fl}: longest answer gap ({ml})", "s"),
                (f"failover-{kind}-overlap-{mode}-{f}", f"{sig} failover, {fl}: two holders ({ml})", "s"),
            ]
    return out


def run_l2(
    col: Collector,
    runner: Runner,
    mode: str,
    pool: dict[str, list[str]],
    runs: int,
    failover_runs: int,
    extra: dict[str, Any],
) -> None:
    agent = runner.agent
    vip = {f: pool[f][0] for f in workload.FAMILIES}
    fvip = {f: pool[f][1] for f in workload.FAMILIES}
    smoke = {f: pool[f][2] for f in workload.FAMILIES}
    ids = {i[0]: i for i in l2_figure_ids(mode)}
    col.declare(list(ids.values()))

    def failed(prefix: str, exc: Exception) -> None:
        """The scenario's rows that got no sample from this agent become "not available"."""
        log(f"{agent}/{mode}: {prefix or 'all scenarios'} not available: {reason_of(exc)[:300]}")
        have = {fid for fid, per in col.samples.items() if agent in per}
        todo = [i for fid, i in ids.items() if fid.startswith(prefix) and fid not in have]
        col.unavailable(todo, agent, reason_of(exc))

    try:
        runner.start_all()
        log(f"{agent}/{mode}: smoke")
        runner.smoke(smoke)
    except Exception as exc:  # one side's failure is a result, never the end of the run
        failed("", exc)
        cleanup(runner, all_pool(pool))
        return
    # Each scenario on its own: one that fails leaves the others' figures (agents restarted in between).
    try:
        log(f"{agent}/{mode}: create -> answer x{runs}")
        created = runner.create_to_answer(vip, runs)
        for fam, vals in created.items():
            col.add(*ids[f"create-{mode}-{fam}"], agent, vals)
        keep_stages(extra, agent, mode, runner, created)
    except Exception as exc:
        failed("create-", exc)
    for kind, sig in (("kill", signal.SIGKILL), ("term", signal.SIGTERM)):
        try:
            runner.ensure_all()
            log(f"{agent}/{mode}: failover {kind} x{failover_runs}")
            res = runner.failover(fvip, failover_runs, sig)
            for fam in workload.FAMILIES:
                col.add(*ids[f"failover-{kind}-{mode}-{fam}"], agent, res["switch"][fam])
                col.add(*ids[f"failover-{kind}-gap-{mode}-{fam}"], agent, res["gap"][fam])
                col.add(*ids[f"failover-{kind}-overlap-{mode}-{fam}"], agent, res["overlap_s"][fam])
            extra.setdefault("failover_details", {}).setdefault(agent, {})[f"{mode}-{kind}"] = {
                "overlap_episodes": res["overlap_episodes"],
                "stale_after_restart": res["stale_after_restart"],
                "old_holder_kept_vip": res["old_holder_kept_vip"],
                "families_split_across_nodes": res["split"],
                "runs": failover_runs,
            }
        except Exception as exc:
            failed(f"failover-{kind}-", exc)
    cleanup(runner, all_pool(pool))


def scale_figure_ids(mode: str, count: int) -> list[tuple[str, str, str]]:
    ml = MODE_LABEL[mode]
    return [
        (
            f"scale{count}-{mode}-converge",
            f"{count} dual-stack Services: all VIPs held after restart ({ml})",
            "s",
        ),
        (
            f"scale{count}-{mode}-converge-ready",
            f"{count} dual-stack Services: all VIPs held, from all agents serving metrics ({ml})",
            "s",
        ),
        (f"scale{count}-{mode}-rss", f"{count} dual-stack Services: RSS per agent ({ml})", "MiB"),
        (f"scale{count}-{mode}-cpu", f"{count} dual-stack Services: CPU per agent, steady ({ml})", "%"),
        (
            f"scale{count}-{mode}-api",
            f"{count} dual-stack Services: API requests/s, all agents, steady ({ml})",
            "req/s",
        ),
        (
            f"scale{count}-{mode}-drain",
            f"{count} dual-stack Services: restart's write-backs (status, vipHost, Events) drained ({ml})",
            "s",
        ),
    ]


def add_scale(
    col: Collector, ids: list[tuple[str, str, str]], agent: str, res: dict[str, Any], baseline: float
) -> None:
    """The scale rows from one scale result. Without convergence there is no steady state to measure:
    RSS, CPU and API rate are then "not available" (with what was seen) instead of figures of a fleet
    that is partly gone."""
    col.add(*ids[0], agent, [res["converge_s"]])
    col.add(*ids[1], agent, [res["converge_after_ready_s"]])
    if math.isfinite(res["converge_s"]):
        col.add(*ids[2], agent, [v / (1 << 20) for v in res["rss_bytes"].values()])
        col.add(*ids[3], agent, list(res["cpu_percent"].values()))
        col.add(*ids[4], agent, [res["api_rps"] - baseline])
        drain = res.get("writeback_drain_after_restart_s")
        if drain is not None:
            col.add(*ids[5], agent, [drain])
        else:
            written = res.get("writebacks_after_restart_by_verb_resource", {})
            col.unavailable(
                ids[5:], agent,
                f"{agent}: still writing {res.get('writeback_drain_limit_s', 0):.0f}s after the restart "
                f"({', '.join(f'{k} {v:.0f}' for k, v in written.items()) or 'nothing counted'}); the steady "
                "window then still carries them (`scale_details` in the JSON)",
            )
        return
    exited = res.get("agents_exited") or []
    col.unavailable(
        ids[2:],
        agent,
        f"{agent}: not converged {res['converge_timeout_s']:.0f}s after the restart ({res['held_at_end']} of "
        f"{2 * res['services']} VIPs held at the end), so no steady state; agents exited meanwhile: "
        f"{', '.join(exited) or 'none'} (`scale_details` in the JSON)",
    )


def run_scale(
    col: Collector,
    runner: Runner,
    mode: str,
    count: int,
    window: float,
    timeout: float,
    extra: dict[str, Any],
) -> None:
    agent = runner.agent
    ids = scale_figure_ids(mode, count)
    try:
        runner.start_all()
        log(f"{agent}/{mode}: scale {count}")
        res = runner.scale(count, window, timeout)
        extra.setdefault("scale_details", {}).setdefault(agent, {})[f"{mode}-{count}"] = res
        add_scale(col, ids, agent, res, extra.get("baseline_api_rps", 0.0))
    except Exception as exc:  # one side's failure is a result, never the end of the run
        log(f"{agent}/{mode}: scale {count} not available: {reason_of(exc)[:300]}")
        have = {fid for fid, per in col.samples.items() if agent in per}
        col.unavailable([i for i in ids if i[0] not in have], agent, reason_of(exc))
    finally:
        cleanup(runner, sorted({a for i in range(count) for a in workload.scale_vips(i).values()}))


def bgp_figure_ids(daemon: str) -> list[tuple[str, str, str]]:
    out = []
    for fam in workload.FAMILIES:
        fl = FAMILY_LABEL[fam]
        out.append(
            (f"bgp-create-{fam}", f"BGP: Service created -> {fl} route in the router's RIB ({daemon})", "s")
        )
    out.append(("bgp-delete", f"BGP: Service deleted -> both routes gone from the RIB ({daemon})", "s"))
    for fam in workload.FAMILIES:
        fl = FAMILY_LABEL[fam]
        out.append((f"bgp-kill-{fam}", f"BGP: SIGKILL of the announcer -> RIB names another node, {fl}", "s"))
    return out


def run_bgp(
    col: Collector,
    runner: Runner,
    rib: RibReader,
    pool: dict[str, list[str]],
    runs: int,
    kill_runs: int,
    extra: dict[str, Any],
) -> None:
    agent = runner.agent
    ids = {i[0]: i for i in bgp_figure_ids(rib.daemon)}
    vips = {f: pool[f][4] for f in workload.FAMILIES}
    col.declare(list(ids.values()))
    try:
        runner.start_all()
        log(f"{agent}/bgp ({rib.daemon}): create -> RIB x{runs}, SIGKILL x{kill_runs}")
        res = runner.bgp(rib, vips, runs, kill_runs)
        for fam in workload.FAMILIES:
            col.add(*ids[f"bgp-create-{fam}"], agent, res["create"][fam])
            col.add(*ids[f"bgp-kill-{fam}"], agent, res["kill"][fam])
        col.add(*ids["bgp-delete"], agent, res["delete"])
        keep_stages(extra, agent, f"bgp-{rib.daemon}", runner, res["create"])
        extra.setdefault("bgp_details", {})[agent] = {
            k: res[k] for k in ("next_hops", "wrong_next_hop", "families_split_across_nodes", "created_at",
                                "create")
        }
    except Exception as exc:  # one side's failure is a result, never the end of the run
        log(f"{agent}/bgp: not available: {reason_of(exc)[:300]}")
        have = {fid for fid, per in col.samples.items() if agent in per}
        col.unavailable([i for i in ids.values() if i[0] not in have], agent, reason_of(exc))
    finally:
        cleanup(runner, all_pool(pool))


def keep_stages(
    extra: dict[str, Any], agent: str, scenario: str, runner: Runner, done: dict[str, list[float]]
) -> None:
    """A create scenario's stages (timeline.create_stages) and its end (answer or route) per run, kept in
    the JSON's `create_stages` with each POST's monotonic instant, and logged as medians: where the
    agents' create times differ."""
    per = {**runner.create_stage_samples, "end": done}
    extra.setdefault("create_stages", {}).setdefault(agent, {})[scenario] = {
        **per, "post_monotonic": runner.create_posts
    }
    medians = {stage: summarize(fams.get("ipv4", [])).median for stage, fams in per.items()}
    line = ", ".join(f"{stage} {1000 * m:.1f}" for stage, m in medians.items() if m is not None)
    log(f"{agent}/{scenario}: create stages (IPv4), median ms after the POST: {line}")
    if runner.create_cpu_ms:
        n = len(runner.create_posts)
        extra.setdefault("create_cpu_ms", {}).setdefault(agent, {})[scenario] = {
            "runs": n, "seconds": round(runner.create_seconds, 2), "ms_per_create": runner.create_cpu_ms,
        }
        cpu = ", ".join(f"{name} {ms:.1f}" for name, ms in sorted(runner.create_cpu_ms.items()))
        log(f"{agent}/{scenario}: CPU ms per create (with its delete and the pause to the next; "
            f"{n} in {runner.create_seconds:.0f} s): {cpu}")


SMOKE = {
    "runs": 1,
    "failover_runs": 1,
    "modes": "service",
    "scale": "10",
    "scale_modes": "global",
    "scale_window": 5.0,
    "scale_timeout": 120.0,
    "bgp_runs": 1,
    "bgp_kill_runs": 1,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="every stage once, tiny (1 run, per-Service mode, 10 Services, 5 s windows); "
        "results to the work dir, docs untouched",
    )
    ap.add_argument("--agents", default=",".join(AGENTS), help="comma list (default: both)")
    ap.add_argument("--modes", default="service,global", help="election modes for the layer-2 figures")
    ap.add_argument("--runs", type=int, default=6, help="create -> answer runs (layer 2 and BGP), default 6")
    ap.add_argument(
        "--failover-runs", type=int, default=3, help="SIGKILL and SIGTERM failovers per mode (default 3)"
    )
    ap.add_argument("--scale", default="100,1000", help="Service counts for the scale figures ('' skips)")
    ap.add_argument("--scale-modes", default="global", help="election modes for the scale figures")
    ap.add_argument("--scale-window", type=float, default=20.0, help="steady-state window, seconds")
    ap.add_argument("--scale-timeout", type=float, default=240.0, help="per convergence wait, seconds")
    ap.add_argument(
        "--bgp", default="bird2", help="router daemon for the BGP rows: bird2, gobgpd, frr ('' skips)"
    )
    ap.add_argument(
        "--bgp-runs", type=int, default=None, help="create/delete runs in BGP mode (default --runs)"
    )
    ap.add_argument(
        "--bgp-kill-runs", type=int, default=None, help="SIGKILL runs in BGP mode (default --failover-runs)"
    )
    ap.add_argument("--no-seed", action="store_true")
    ap.add_argument("--lease", default="5,3,1", help="leaseduration,renewdeadline,retryperiod (seconds)")
    ap.add_argument(
        "--kubevip-lease",
        default=None,
        help="kubevip's own timings when they differ from --lease (fractions allowed, e.g. its defaults "
        "1.5,1,0.25; kube-vip takes whole seconds only)",
    )
    ap.add_argument("--probe-ms", type=float, default=5.0)
    ap.add_argument(
        "--create-every", type=float, default=2.5,
        help="seconds at least between two creates of a create scenario (both agents; default 2.5)",
    )
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--lab-id", default="kvbench")
    ap.add_argument("--keep-lab", action="store_true", help="leave the lab up afterwards")
    ap.add_argument(
        "--kube-vip-version", default=None, help="bench/peers/kube-vip/<version> (default newest)"
    )
    ap.add_argument("--out", default=None, help="results JSON (default bench/results/<date>-<host>.json)")
    ap.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    ap.add_argument("--doc-from", default=None, help="only re-render docs/performance.md from a results JSON")
    args = ap.parse_args()
    # SIGTERM (timeout(1), kill) ends the run like Ctrl-C: the finally blocks stop the agents and remove
    # the lab instead of leaving its namespaces and control plane behind.
    termination.interrupt_on_sigterm()  # a forked child just exits (bench/termination.py)
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
        args.no_doc = True
    if args.bgp_runs is None:
        args.bgp_runs = args.runs
    if args.bgp_kill_runs is None:
        args.bgp_kill_runs = args.failover_runs
    if args.doc_from:
        src = Path(args.doc_from).resolve()
        saved = json.loads(src.read_text())
        png = report.plot_failovers(saved["figures"], src.with_suffix(".png"))
        print(report.table(saved["figures"]))
        report.update_doc(REPO / "docs" / "performance.md", render_section(saved, src, png))
        return 0
    if os.geteuid() != 0:
        print("bench/compare.py needs root (network namespaces)", file=sys.stderr)
        return 2
    agents = [a for a in args.agents.split(",") if a]
    ld, rd, rp = (int(x) for x in args.lease.split(","))
    own = tuple(float(x) for x in (args.kubevip_lease or args.lease).split(","))
    started = datetime.datetime.now(datetime.UTC)
    t_start = time.monotonic()
    host = socket.gethostname()
    workdir = Path(tempfile.mkdtemp(prefix="kvbench-"))
    if args.out:
        out = Path(args.out)
    elif args.smoke:
        out = workdir / "smoke.json"
    else:
        out = REPO / "bench" / "results" / f"{started:%Y-%m-%d}-{host}.json"
    log(f"work dir {workdir}")

    col = Collector()
    extra: dict[str, Any] = {"stage_seconds": {}}
    kube_vip_bin: str | None = None
    kv_version = "unknown"
    if KUBE_VIP in agents:
        log("building kube-vip (cached)")
        kube_vip_bin, kv_version = build_kube_vip(args.kube_vip_version)
    # Asked at every run (issue 21: say what the proxy answered); a kubevip-only run compares nothing.
    not_served = goproxy.not_served() if KUBE_VIP in agents else {}
    for v, why in not_served.items():
        log(f"kube-vip {v}: {why}")

    def emit(final: bool) -> None:
        """Write the results so far (after every stage, so an interrupted run still leaves data)."""
        figures = col.figures()
        doc: dict[str, Any] = {
            "date": started.isoformat(timespec="seconds"),
            "host": host,
            "machine": {
                "kernel": platform.release(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_at_end": os.getloadavg(),
            },
            "versions": {KUBEVIP: git_rev(), KUBE_VIP: kv_version},
            "peer_versions_not_served": not_served,
            "kubevip_uncommitted_src": uncommitted_src(),
            "settings": {
                **settings_doc(ld, rd, rp),
                "kubevip_lease": list(own),
                "probe_interval_ms": args.probe_ms,
                "create_every_s": args.create_every,
                "runs": args.runs,
                "failover_runs": args.failover_runs,
                "nodes": args.nodes,
                "modes": args.modes,
                "scale": args.scale,
                "scale_modes": args.scale_modes,
                "scale_window_s": args.scale_window,
                "scale_timeout_s": args.scale_timeout,
                "bgp": {**bgp_settings_doc(args.bgp), "runs": args.bgp_runs, "kill_runs": args.bgp_kill_runs},
                "smoke": args.smoke,
            },
            "command": " ".join(["bench/compare.py", *sys.argv[1:]]),
            "duration_s": round(time.monotonic() - t_start, 1),
            "figures": figures,
            "complete": final,
            **extra,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        png: Path | None = None
        try:
            png = report.plot_failovers(figures, out.with_suffix(".png"))
        except Exception as exc:  # a plot must never cost the data
            log(f"plot failed: {reason_of(exc)}")
        if final:
            print(report.table(figures))
            print(report.notes(figures))
        log(f"wrote {out}" + (f" and {png}" if png else ""))
        if final and not args.no_doc:
            report.update_doc(REPO / "docs" / "performance.md", render_section(doc, out, png))

    def timed(name: str, fn: Any, *a: Any) -> None:
        t0 = time.monotonic()
        fn(*a)
        extra["stage_seconds"][name] = round(time.monotonic() - t0, 1)
        emit(final=False)

    log(f"lab up ({args.lab_id}, {args.nodes} nodes" + (f", BGP router {args.bgp})" if args.bgp else ")"))
    lab = Lab.up(args.lab_id, args.nodes, bgp=args.bgp or None)
    helpers = Helpers(lab, workdir)
    try:
        workload_ns(lab)
        workload.create_pods(lab.admin, [n.name for n in lab.nodes])
        kube_vip_cfg = lab.kube_vip_kubeconfig(workdir)
        helpers.start(poll_ms=50.0)
        pool = {f: lab.pool(f) for f in workload.FAMILIES}
        extra["baseline_api_rps"] = baseline_rps(lab, min(args.scale_window, 15.0))
        kubevip_bin = kubevip_cli()
        rib = RibReader.for_lab(args.lab_id) if args.bgp else None

        def runner(agent: str, settings: Settings) -> Runner:
            if agent == KUBEVIP:
                settings = dataclasses.replace(
                    settings, lease_duration_s=own[0], renew_deadline_s=own[1], retry_period_s=own[2]
                )
            cfg = kube_vip_cfg if agent == KUBE_VIP else lab.kubevip_kubeconfig()
            return Runner(
                lab, helpers, workdir, agent, settings, kube_vip_bin, kubevip_bin, cfg, args.probe_ms,
                args.create_every,
            )

        def settings(mode: str, legacy: bool = False, bgp_peer: str = "") -> Settings:
            return Settings(
                election=mode,
                lease_duration_s=ld,
                renew_deadline_s=rd,
                retry_period_s=rp,
                legacy_endpoints=legacy,
                bgp_peer=bgp_peer,
            )

        def missing_binary(agent: str, ids: list[tuple[str, str, str]]) -> bool:
            if agent == KUBE_VIP and not kube_vip_bin:
                col.unavailable(ids, agent, f"kube-vip build failed: {kv_version}")
                return True
            return False

        order = list(agents)
        for mode in [m for m in args.modes.split(",") if m]:
            for agent in order:
                if not missing_binary(agent, l2_figure_ids(mode)):
                    timed(
                        f"l2-{mode}-{agent}",
                        run_l2,
                        col,
                        runner(agent, settings(mode)),
                        mode,
                        pool,
                        args.runs,
                        args.failover_runs,
                        extra,
                    )
            order.reverse()  # alternate who goes first, so slow drift of the machine hits both alike
        if rib is not None:
            for agent in order:
                if not missing_binary(agent, bgp_figure_ids(rib.daemon)):
                    timed(
                        f"bgp-{agent}",
                        run_bgp,
                        col,
                        runner(agent, settings("service", bgp_peer=rib.address)),
                        rib,
                        pool,
                        args.bgp_runs,
                        args.bgp_kill_runs,
                        extra,
                    )
            order.reverse()
        counts = [int(c) for c in args.scale.split(",") if c]
        if counts:
            helpers.restart_watchers(poll_ms=1000.0)
        for count in counts:
            for mode in [m for m in args.scale_modes.split(",") if m]:
                for agent in order:
                    if agent == KUBE_VIP and not kube_vip_bin:
                        continue
                    timed(
                        f"scale{count}-{mode}-{agent}",
                        run_scale,
                        col,
                        runner(agent, settings(mode)),
                        mode,
                        count,
                        args.scale_window,
                        args.scale_timeout,
                        extra,
                    )
                order.reverse()
        if not args.no_seed:
            seed: dict[str, Any] = {}
            t0 = time.monotonic()
            for agent in agents:
                for legacy in (False, True):
                    label = "Endpoints (enable_endpoints=true)" if legacy else "EndpointSlices"
                    r = runner(agent, settings("service", legacy))
                    try:
                        r.start_all()
                        log(f"{agent}: seed scenario, {label}")
                        seed.setdefault(agent, {})[label] = r.seed(pool["ipv4"][3])
                    except Exception as exc:  # recorded as not available
                        log(f"{agent}: seed, {label}: not available: {reason_of(exc)[:300]}")
                        seed.setdefault(agent, {})[label] = {"not_available": reason_of(exc)}
                    finally:
                        cleanup(r, all_pool(pool))
            extra["seed"] = seed
            extra["stage_seconds"]["seed"] = round(time.monotonic() - t0, 1)
            emit(final=False)
    finally:
        helpers.stop()
        if not args.keep_lab:
            log("lab down")
            lab.down()

    emit(final=True)
    if not args.keep_lab and out.parent != workdir:
        # The probes' and address watchers' files: 7-125 MB per run were left in /tmp (session 29).
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {time.monotonic() - t_start:.0f}s")
    return 0


def bgp_settings_doc(daemon: str) -> dict[str, Any]:
    if not daemon:
        return {"enabled": False}
    return {
        "router": daemon,
        "router_as": 65000,
        "node_as": 65001,
        "env": "vip_arp=false bgp_enable=true vip_interface=lo bgp_routerid=<node IPv4> bgp_as=65001 "
        "bgp_peers=<router IPv4>:65000 bgp_hold_time=9 bgp_keepalive_interval=3 mpbgp_nexthop=fixed "
        "mpbgp_ipv4=<node IPv4> mpbgp_ipv6=<node IPv6> svc_election=true",
    }


def settings_doc(ld: int, rd: int, rp: int) -> dict[str, Any]:
    return {
        "vip_arp": True,
        "svc_enable": True,
        "cp_enable": False,
        "vip_leaderelection": True,
        "vip_leaseduration": ld,
        "vip_renewdeadline": rd,
        "vip_retryperiod": rp,
    }


def workload_ns(lab: Lab) -> None:
    """The workload namespace, with the agents' Lease rights in it: svc_election=true puts each
    Service's Lease in the Service's namespace (kube-vip's rule), and the lab's identity is least
    privilege (Leases in kube-system only; `kubevip manifest rbac --cluster-wide-leases` in a cluster).
    Without it every per-Service Lease was refused (403) and no Service was ever announced."""
    from compare.kubeapi import ApiError
    from compare.lab import ensure_namespace

    from kubevip.manifests import rbac

    ensure_namespace(lab.admin, workload.NS)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": rbac.NAMESPACED_BINDING, "namespace": workload.NS},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": rbac.NAMESPACED_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": rbac.SERVICE_ACCOUNT, "namespace": rbac.NAMESPACE}],
    }
    try:
        lab.admin.create(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{workload.NS}/rolebindings", binding)
    except ApiError as exc:
        if exc.status != 409:
            raise


def baseline_rps(lab: Lab, window: float) -> float:
    from compare import apimetrics

    m0 = apimetrics.request_totals(lab.admin.metrics_text())
    t0 = time.monotonic()
    time.sleep(min(window, 15.0))
    m1 = apimetrics.request_totals(lab.admin.metrics_text())
    return apimetrics.per_second(apimetrics.delta(m0, m1), time.monotonic() - t0)


# The one command that reruns the whole comparison with the run counts of the published run.
RERUN = "$(hack/venv.sh | tail -1)/bin/python bench/compare.py"


def counts_line(doc: dict[str, Any]) -> str:
    """The run counts and windows of this run, in words."""
    s = doc["settings"]
    b = s.get("bgp") or {}
    parts = [
        f"{s['runs']} create runs per family and election mode ({s['modes']})",
        f"{s.get('failover_runs', s['runs'])} failovers per signal (SIGKILL, SIGTERM) and mode",
    ]
    if b.get("router"):
        parts.append(f"BGP: {b['runs']} create / delete runs and {b['kill_runs']} SIGKILLs")
    if s.get("scale"):
        parts.append(
            f"{s['scale'].replace(',', ' and ')} Services with {s['scale_modes']} election, one run each, "
            f"{s['scale_window_s']:g} s steady window, {s.get('scale_timeout_s', 0):g} s per convergence wait"
        )
    return "Run counts: " + "; ".join(parts) + f"; {s['nodes']} nodes."


STAGES_LINE = (
    "- *create stages* (the JSON's `create_stages`, since 2026-12-07 session 31): for every create, "
    "when the bench itself saw the Service's and its family's ready EndpointSlice's watch events "
    "(`bench/compare/stamps.py`) and the VIP on a node (the address watcher), from the same POST; both "
    "agents announce only after the slice, so *slice -> address* is the agent's own part of a create "
    "and the rest the control plane's or the announcement's. With each POST's monotonic instant, to "
    "line up with traces in the agents. *create CPU* (the JSON's `create_cpu_ms`, since 2026-12-07 "
    "session 32): over the same scenario, the CPU milliseconds per create (with its delete and the pause "
    "to the next) of each node's agent process tree (kubevip's ExaBGP included) and of the control "
    "plane's processes (`bench/compare/procstat.py`, /proc ticks of 10 ms: read over the whole scenario, "
    "whose length is kept beside them: idle CPU counts too). Creates start at least `--create-every` "
    "seconds apart (2.5 s by default, since session 32; before, each began once the previous one was "
    "gone, 0.1-0.4 s apart for kubevip and 2.1 s for kube-vip in BGP mode)."
)


def bgp_lines(doc: dict[str, Any]) -> list[str]:
    b = doc["settings"].get("bgp") or {}
    if not b.get("router"):
        return []
    return [
        "- *BGP*: both agents in BGP mode, one after the other, peered with the same "
        f"{b['router']} router (AS {b['router_as']}, one IPv4 session per node carrying both families; "
        f"`{b['env']}`). *route in the router's RIB*: from the Service's POST until the router holds "
        "that family's /32 or /128: for bird2 and FRR the instant the route reaches the router "
        "namespace's kernel table (netlink events, `bench/compare/routewatch.py`; before 2026-12-06 "
        "session 19, and for gobgpd, the daemon's CLI polled every 10 ms, tens of ms per read; "
        "the CLI is not run while a create or delete is timed). *gone*: from the DELETE until neither "
        "is left (the same source). *SIGKILL*: from the signal to the announcing "
        "agent until the RIB names another node's next hop (session drop, Lease expiry, takeover, "
        "announcement). Next hops are checked to be a node's address of the prefix's family "
        "(`bgp_details` in the JSON).",
    ]


def render_section(doc: dict[str, Any], out: Path, png: Path | None) -> str:
    from compare.report import notes, seed_table, table

    rel = os.path.relpath(out, REPO / "docs")
    s = doc["settings"]
    lines = [
        f"Latest run: {doc['date']} on `{doc['host']}` ({doc['machine']['cpus']} CPUs, kernel "
        f"{doc['machine']['kernel']}); kubevip `{doc['versions'][KUBEVIP]}` against kube-vip "
        f"`{doc['versions'][KUBE_VIP]}` built from its Go module (`bench/peers/kube-vip/`). Raw data: "
        f"[`{out.name}`]({rel}).",
        "",
        "Both agents run as processes in the same lab (one per node namespace, same control plane, same "
        "bridge), one after the other, with the same environment: "
        f"`vip_arp=true svc_enable=true vip_leaderelection=true vip_leaseduration={s['vip_leaseduration']} "
        f"vip_renewdeadline={s['vip_renewdeadline']} vip_retryperiod={s['vip_retryperiod']}`, "
        "`svc_election=true` (per-Service election) or `false` (global `plndr-svcs-lock`), `vip_interface` = "
        "the node's lab interface. kube-vip gets a ServiceAccount token bound to the ClusterRole it "
        "documents "
        "(`bench/peers/kube-vip/rbac.yaml`); kubevip the lab's own least-privilege token. The client probes "
        f"each VIP over UDP every {s['probe_interval_ms']:g} ms; a responder in every node namespace answers "
        "with its node name, so the client sees which node holds the VIP. Address watchers (netlink events "
        "+ polling) in every node count the time two nodes held the same VIP.",
        "",
        counts_line(doc),
        "",
        *[f"- Note: {n}" for n in doc.get("run_notes", [])],
        "",
        *[
            f"kube-vip {v} (asked for as well) is not in this comparison: {why}."
            for v, why in (doc.get("peer_versions_not_served") or {}).items()
        ],
        "",
        "Cells: median / p95 / max over n runs. Ratio below 1: kubevip is lower (faster, smaller). "
        '"not available": that agent could not run the scenario in this run (reason in the JSON).',
        "",
        "What the rows measure:",
        "",
        "- *Service created -> VIP answers*: from the Service's POST (VIPs in `kube-vip.io/loadbalancerIPs`, "
        "ready dual-stack pods behind it) to the first answer at the client on that family's VIP.",
        "- *another node answers*: from the signal to the announcing agent until the client gets its first "
        "answer from a different node. *longest answer gap*: the longest time without any answer in that "
        "interval (after a SIGKILL the old node may keep answering: its address stays).",
        "- *two holders*: time two nodes had the VIP on their interface at once, from the signal until the "
        "old node dropped it, watched at most one Lease duration + 5 s after the switch. The JSON's "
        "`failover_details` counts the runs in which the old node still held the VIP then "
        "(`old_holder_kept_vip`) and in which the restarted agent left it next to the new holder "
        "(`stale_after_restart`; the benchmark removes it before the next run).",
        "- *N dual-stack Services*: once every VIP is held and the controller-manager has published all "
        "2N EndpointSlices (since 2026-12-07; before, at 1000 Services the restart ran inside that "
        "catch-up), all agents restarted at once (SIGTERM, leftover VIPs removed, start) "
        "until each of the 2N VIPs is on exactly one node: the last VIP change the address watcher saw "
        "before a check (every 0.5 s) found them so (until 2026-12-06, that check's own instant, with the "
        "metrics ports polled every 0.2 s, not 20 ms: both agents' figures were rounded up to those "
        "steps) (*from all agents serving metrics*: the same, "
        "counted from the moment the last agent's metrics port answered, i.e. without process start-up, "
        "0 when the VIPs were held before; "
        "a Python agent starts in seconds on a busy machine, a Go binary in milliseconds); then, over a "
        "steady window, RSS and CPU of each "
        "node's agent, and the API server's `apiserver_request_total` rate minus the rate measured "
        "without agents. Between the two, *write-backs drained*: from the restart until a whole second "
        "passed without a write other than a Lease's (status, annotations, Event POSTs); what was written "
        "by verb and resource, and the steady window's rates by verb and resource, are in `scale_details`.",
        STAGES_LINE,
        *bgp_lines(doc),
        "",
        table(doc["figures"]),
        "",
    ]
    if notes(doc["figures"]):
        lines += [notes(doc["figures"]), ""]
    if png:
        lines += [
            f"![failover distributions]({os.path.relpath(png, REPO / 'docs')})",
            "",
        ]
    if doc.get("seed"):
        lines += [
            "Seed scenario (SingleStack IPv4 Service over pods with IPv4 and IPv6 addresses): what each "
            "agent put where.",
            "",
            seed_table(doc["seed"]),
            "",
        ]
    lines += [
        "Rerun everything (root; builds kube-vip once, starts and removes its own lab `kvbench` with a "
        "bird2 router; about 40 min on 2 busy CPUs with the run counts below):",
        "",
        "```",
        RERUN,
        "```",
        "",
        "`--smoke` runs every stage once with tiny counts (about 7 min on the busy 2-CPU machine; results go "
        "to the work dir, this page stays; any other run removes its work dir, the probes' and address "
        "watchers' files, at its end unless `--keep-lab`). Options: `--runs`, `--failover-runs`, `--modes`, "
        "`--scale`, "
        "`--scale-modes`, `--scale-window`, `--bgp "
        "bird2|gobgpd|frr|''`, `--bgp-runs`, `--bgp-kill-runs`, `--create-every`, `--lease`, "
        "`--kubevip-lease` "
        "(kubevip's own timings, fractions allowed), `--agents kube-vip` (one side "
        "only), `--keep-lab`.",
        "",
        f"This run: `{doc['command']}`, {doc.get('duration_s', 0) / 60:.0f} min"
        + (
            " (stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in doc.get("stage_seconds", {}).items()) + ")."
            if doc.get("stage_seconds")
            else "."
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
