#!/usr/bin/env python3
"""kubevip and upstream kube-vip side by side: same lab, same control plane, same settings, same clock.

Rerun everything (as root, with the venv from hack/venv.sh):
    $(hack/venv.sh | tail -1)/bin/python bench/compare.py
Writes bench/results/<date>-<host>.json, a PNG of the failover distributions next to it, prints the
table and refreshes the "Side by side with kube-vip" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import report, workload
from compare.agents import AGENTS, KUBE_VIP, KUBEVIP, Settings
from compare.lab import PEER_DIR, REPO, Helpers, Lab, kubevip_cli
from compare.runner import NotAvailable, Runner

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


class Collector:
    """Samples per (figure id) per agent, plus why an agent could not run a figure."""

    def __init__(self) -> None:
        self.samples: dict[str, dict[str, list[float]]] = {}
        self.labels: dict[str, tuple[str, str]] = {}
        self.missing: dict[str, dict[str, str]] = {}

    def add(self, fid: str, label: str, unit: str, agent: str, values: list[float]) -> None:
        self.labels[fid] = (label, unit)
        self.samples.setdefault(fid, {}).setdefault(agent, []).extend(values)

    def unavailable(self, fids: list[tuple[str, str, str]], agent: str, reason: str) -> None:
        for fid, label, unit in fids:
            self.labels[fid] = (label, unit)
            self.missing.setdefault(fid, {})[agent] = reason

    def figures(self) -> list[dict[str, Any]]:
        return [
            report.figure(fid, label, unit, self.samples.get(fid, {}), self.missing.get(fid, {}))
            for fid, (label, unit) in self.labels.items()
        ]


def l2_figure_ids(mode: str) -> list[tuple[str, str, str]]:
    out = []
    for fam in workload.FAMILIES:
        fl, ml = FAMILY_LABEL[fam], MODE_LABEL[mode]
        out += [
            (f"create-{mode}-{fam}", f"Service created -> {fl} VIP answers ({ml})", "s"),
            (f"failover-kill-{mode}-{fam}", f"SIGKILL failover, {fl}: another node answers ({ml})", "s"),
            (f"failover-kill-gap-{mode}-{fam}", f"SIGKILL failover, {fl}: longest answer gap ({ml})", "s"),
            (f"failover-kill-overlap-{mode}-{fam}", f"SIGKILL failover, {fl}: two holders ({ml})", "s"),
            (f"failover-term-{mode}-{fam}", f"SIGTERM failover, {fl}: another node answers ({ml})", "s"),
            (f"failover-term-gap-{mode}-{fam}", f"SIGTERM failover, {fl}: longest answer gap ({ml})", "s"),
            (f"failover-term-overlap-{mode}-{fam}", f"SIGTERM failover, {fl}: two holders ({ml})", "s"),
        ]
    return out


def run_l2(
    col: Collector, runner: Runner, mode: str, pool: dict[str, list[str]], runs: int, extra: dict[str, Any]
) -> None:
    agent = runner.agent
    vip = {f: pool[f][0] for f in workload.FAMILIES}
    fvip = {f: pool[f][1] for f in workload.FAMILIES}
    smoke = {f: pool[f][2] for f in workload.FAMILIES}
    ids = {i[0]: i for i in l2_figure_ids(mode)}
    try:
        runner.start_all()
        log(f"{agent}/{mode}: smoke")
        runner.smoke(smoke)
        log(f"{agent}/{mode}: create -> answer x{runs}")
        created = runner.create_to_answer(vip, runs)
        for fam, vals in created.items():
            col.add(*ids[f"create-{mode}-{fam}"], agent, vals)
        for kind, sig in (("kill", signal.SIGKILL), ("term", signal.SIGTERM)):
            log(f"{agent}/{mode}: failover {kind} x{runs}")
            res = runner.failover(fvip, runs, sig)
            for fam in workload.FAMILIES:
                col.add(*ids[f"failover-{kind}-{mode}-{fam}"], agent, res["switch"][fam])
                col.add(*ids[f"failover-{kind}-gap-{mode}-{fam}"], agent, res["gap"][fam])
                col.add(*ids[f"failover-{kind}-overlap-{mode}-{fam}"], agent, res["overlap_s"][fam])
            extra.setdefault("failover_details", {}).setdefault(agent, {})[f"{mode}-{kind}"] = {
                "overlap_episodes": res["overlap_episodes"],
                "stale_after_restart": res["stale_after_restart"],
                "old_holder_kept_vip": res["old_holder_kept_vip"],
                "families_split_across_nodes": res["split"],
                "runs": runs,
            }
    except NotAvailable as exc:
        log(f"{agent}/{mode}: not available: {str(exc)[:300]}")
        have = {fid for fid, per in col.samples.items() if agent in per}
        col.unavailable([i for i in ids.values() if i[0] not in have], agent, str(exc)[:500])
    finally:
        runner.stop_all()


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
    ml = MODE_LABEL[mode]
    ids = [
        (
            f"scale{count}-{mode}-converge",
            f"{count} dual-stack Services: all VIPs held after restart ({ml})",
            "s",
        ),
        (f"scale{count}-{mode}-rss", f"{count} dual-stack Services: RSS per agent ({ml})", "MiB"),
        (f"scale{count}-{mode}-cpu", f"{count} dual-stack Services: CPU per agent, steady ({ml})", "%"),
        (
            f"scale{count}-{mode}-api",
            f"{count} dual-stack Services: API requests/s, all agents, steady ({ml})",
            "req/s",
        ),
    ]
    try:
        runner.start_all()
        log(f"{agent}/{mode}: scale {count}")
        res = runner.scale(count, window, timeout)
        col.add(*ids[0], agent, [res["converge_s"]])
        col.add(*ids[1], agent, [v / (1 << 20) for v in res["rss_bytes"].values()])
        col.add(*ids[2], agent, list(res["cpu_percent"].values()))
        col.add(*ids[3], agent, [res["api_rps"] - extra.get("baseline_api_rps", 0.0)])
        extra.setdefault("scale_details", {}).setdefault(agent, {})[f"{mode}-{count}"] = res
    except NotAvailable as exc:
        log(f"{agent}/{mode}: scale {count} not available: {str(exc)[:300]}")
        col.unavailable(ids, agent, str(exc)[:500])
    finally:
        runner.stop_all()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", default=",".join(AGENTS), help="comma list (default: both)")
    ap.add_argument("--modes", default="service,global", help="election modes for the layer-2 figures")
    ap.add_argument("--runs", type=int, default=10, help="runs per figure (default 10)")
    ap.add_argument("--scale", default="100,1000", help="Service counts for the scale figures ('' skips)")
    ap.add_argument("--scale-modes", default="global,service")
    ap.add_argument("--scale-window", type=float, default=30.0, help="steady-state window, seconds")
    ap.add_argument("--scale-timeout", type=float, default=300.0)
    ap.add_argument("--no-seed", action="store_true")
    ap.add_argument("--lease", default="5,3,1", help="leaseduration,renewdeadline,retryperiod (seconds)")
    ap.add_argument("--probe-ms", type=float, default=5.0)
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
    started = datetime.datetime.now(datetime.UTC)
    host = socket.gethostname()
    out = Path(args.out) if args.out else REPO / "bench" / "results" / f"{started:%Y-%m-%d}-{host}.json"
    workdir = Path(tempfile.mkdtemp(prefix="kvbench-"))
    log(f"work dir {workdir}")

    col = Collector()
    extra: dict[str, Any] = {}
    kube_vip_bin: str | None = None
    kv_version = "unknown"
    if KUBE_VIP in agents:
        log("building kube-vip (cached)")
        kube_vip_bin, kv_version = build_kube_vip(args.kube_vip_version)

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
            },
            "versions": {KUBEVIP: git_rev(), KUBE_VIP: kv_version},
            "settings": {
                **settings_doc(ld, rd, rp),
                "probe_interval_ms": args.probe_ms,
                "runs": args.runs,
                "nodes": args.nodes,
                "modes": args.modes,
                "scale": args.scale,
                "scale_modes": args.scale_modes,
                "scale_window_s": args.scale_window,
            },
            "command": " ".join(["bench/compare.py", *sys.argv[1:]]),
            "figures": figures,
            "complete": final,
            **extra,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
        png = report.plot_failovers(figures, out.with_suffix(".png"))
        if final:
            print(report.table(figures))
        log(f"wrote {out}" + (f" and {png}" if png else ""))
        if final and not args.no_doc:
            report.update_doc(REPO / "docs" / "performance.md", render_section(doc, out, png))

    log(f"lab up ({args.lab_id}, {args.nodes} nodes)")
    lab = Lab.up(args.lab_id, args.nodes)
    helpers = Helpers(lab, workdir)
    try:
        workload_ns(lab)
        workload.create_pods(lab.admin, [n.name for n in lab.nodes])
        kube_vip_cfg = lab.kube_vip_kubeconfig(workdir)
        helpers.start(poll_ms=50.0)
        pool = {f: lab.pool(f) for f in workload.FAMILIES}
        extra["baseline_api_rps"] = baseline_rps(lab, args.scale_window)
        kubevip_bin = kubevip_cli()

        def runner(agent: str, settings: Settings) -> Runner:
            cfg = kube_vip_cfg if agent == KUBE_VIP else lab.kubevip_kubeconfig()
            return Runner(
                lab, helpers, workdir, agent, settings, kube_vip_bin, kubevip_bin, cfg, args.probe_ms
            )

        def settings(mode: str, legacy: bool = False) -> Settings:
            return Settings(
                election=mode,
                lease_duration_s=ld,
                renew_deadline_s=rd,
                retry_period_s=rp,
                legacy_endpoints=legacy,
            )

        order = list(agents)
        for mode in [m for m in args.modes.split(",") if m]:
            for agent in order:
                if agent == KUBE_VIP and not kube_vip_bin:
                    col.unavailable(l2_figure_ids(mode), agent, f"kube-vip build failed: {kv_version}")
                    continue
                run_l2(col, runner(agent, settings(mode)), mode, pool, args.runs, extra)
                emit(final=False)
            order.reverse()  # alternate who goes first, so slow drift of the machine hits both alike
        counts = [int(c) for c in args.scale.split(",") if c]
        if counts:
            helpers.restart_watchers(poll_ms=1000.0)
        for count in counts:
            for mode in [m for m in args.scale_modes.split(",") if m]:
                for agent in order:
                    if agent == KUBE_VIP and not kube_vip_bin:
                        continue
                    run_scale(
                        col,
                        runner(agent, settings(mode)),
                        mode,
                        count,
                        args.scale_window,
                        args.scale_timeout,
                        extra,
                    )
                    emit(final=False)
                order.reverse()
        if not args.no_seed:
            seed: dict[str, Any] = {}
            for agent in agents:
                for legacy in (False, True):
                    label = "Endpoints (enable_endpoints=true)" if legacy else "EndpointSlices"
                    r = runner(agent, settings("service", legacy))
                    try:
                        r.start_all()
                        log(f"{agent}: seed scenario, {label}")
                        seed.setdefault(agent, {})[label] = r.seed(pool["ipv4"][3])
                    except NotAvailable as exc:
                        seed.setdefault(agent, {})[label] = {"not_available": str(exc)[:500]}
                    finally:
                        r.stop_all()
            extra["seed"] = seed
            emit(final=False)
    finally:
        helpers.stop()
        if not args.keep_lab:
            log("lab down")
            lab.down()

    emit(final=True)
    return 0


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
    from compare.lab import ensure_namespace

    ensure_namespace(lab.admin, workload.NS)


def baseline_rps(lab: Lab, window: float) -> float:
    from compare import apimetrics

    m0 = apimetrics.request_totals(lab.admin.metrics_text())
    t0 = time.monotonic()
    time.sleep(min(window, 15.0))
    m1 = apimetrics.request_totals(lab.admin.metrics_text())
    return apimetrics.per_second(apimetrics.delta(m0, m1), time.monotonic() - t0)


def render_section(doc: dict[str, Any], out: Path, png: Path | None) -> str:
    from compare.report import seed_table, table

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
        "- *N dual-stack Services*: all agents restarted at once (SIGTERM, leftover VIPs removed, start) "
        "until each of the 2N VIPs is on exactly one node; then, over a steady window, RSS and CPU of each "
        "node's agent, and the API server's `apiserver_request_total` rate minus the rate measured "
        "without agents.",
        "",
        table(doc["figures"]),
        "",
    ]
    if png:
        lines += [
            f"![failover and create-to-answer distributions]({os.path.relpath(png, REPO / 'docs')})",
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
        "Rerun everything (root; builds kube-vip once, starts and removes its own lab `kvbench`):",
        "",
        "```",
        "$(hack/venv.sh | tail -1)/bin/python bench/compare.py",
        "```",
        "",
        f"This run: `{doc['command']}`. Options: `--runs`, `--modes`, `--scale`, `--scale-modes`, `--lease`, "
        "`--agents kube-vip` (one side only), `--keep-lab`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
