"""Scaling curves from `bench/agent.py` results: one plot, each figure against the number of dual-stack
Services, one line per election mode (issue 21's "curves, not points").

    python bench/curves.py OUT.png RESULTS.json [RESULTS.json ...]

Each results file is what `bench/agent.py --runs 0 --scale 10,100,1000 --election lease,scalable` wrote
(`KUBEVIP_BENCH_OUT`); rows of the same mode and size from several files are all drawn (dots), the
line goes through their medians. A figure a row does not have (older results) is left out. A
`bench/compare.py` results file adds kube-vip's scale rows (where it converged) on the same axes.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

FIGURES = (
    ("create_to_held_s", "created -> every VIP held (s)"),
    ("converge_after_restart_s", "restart of all agents -> every VIP held (s)"),
    ("rss_mb_max", "largest agent RSS (MB)"),
    ("steady_cpu_pct_max", "busiest agent, steady CPU (% of a core)"),
    ("api_requests_per_s", "API requests/s, 3 agents, steady"),
    ("writeback_drain_after_restart_s", "restart -> write-backs drained (s)"),
    ("loop_stalls", "event-loop wake-ups > 100 ms, restart -> held (all agents)"),
    ("loop_stalls_own", "... of them > 100 ms late not waiting for a CPU"),
)


def stalls(row: dict[str, Any], figure: str = "over_100ms") -> float | None:
    """All agents' event-loop wake-ups later than 100 ms from the restart until every VIP was held
    (`blocked_over_100ms`: later than that less their wait for a CPU; agents since session 33)."""
    per_node = row.get("loop_stalls_over_100ms_until_converged") or {}
    seen = [v[figure] for v in per_node.values() if v and figure in v]
    return sum(seen) if seen else None


def compare_rows(doc: dict[str, Any], agent: str = "kube-vip") -> list[dict[str, Any]]:
    """`bench/compare.py`'s scale rows of `agent` that converged, in `bench/agent.py`'s terms."""
    out: list[dict[str, Any]] = []
    timings = "/".join(str(doc.get("settings", {}).get(k, "?"))
                       for k in ("vip_leaseduration", "vip_renewdeadline", "vip_retryperiod"))
    for key, d in (doc.get("scale_details", {}).get(agent) or {}).items():
        if not d.get("initial_converged") or d.get("held_at_end", 0) < 2 * d.get("services", 0):
            continue
        out.append({
            "services": d["services"],
            "election": f"{agent} ({key.split('-')[0]} election, {timings} s)",
            "converge_after_restart_s": d.get("converge_s"),
            "rss_mb_max": max(d.get("peak_rss_bytes", {}).values(), default=0) / 2**20 or None,
            "steady_cpu_pct_max": max(d.get("cpu_percent", {}).values(), default=None),
            "api_requests_per_s": d.get("api_rps"),
            "writeback_drain_after_restart_s": d.get("writeback_drain_after_restart_s"),
        })
    return out


def label(row: dict[str, Any], doc: dict[str, Any]) -> str:
    """The row's election mode, with its timings when not kubevip's defaults (`--timings 5,3,1`) and the
    agents' extra settings: each its own line, not a dot on the line of the defaults."""
    mode = str(row.get("election", "scalable"))
    timings = str(doc.get("election_timings_s") or "")
    if timings and not timings.startswith("defaults"):
        mode = f"{mode} ({timings.replace(',', '/')} s)"
    # `--agent-env NAME=VALUE`: another configuration, another line; PYTHONPATH only says which checkout
    # ran (an A/B from a worktree), not how the agents were configured.
    env = [e for e in doc.get("agent_env") or [] if not str(e).startswith("PYTHONPATH=")]
    return f"{mode}, {', '.join(map(str, env))}" if env else mode


def rows(paths: list[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        doc = json.loads(p.read_text())
        out.extend({**r, "election": label(r, doc), "loop_stalls": stalls(r),
                    "loop_stalls_own": stalls(r, "blocked_over_100ms")} for r in doc.get("scale", []))
        out.extend(compare_rows(doc))
    return out


def plot(found: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(20, 8))
    modes = sorted({r.get("election", "scalable") for r in found})
    for ax, (key, title) in zip(axes.flat, FIGURES, strict=False):
        for mode in modes:
            points = [(r["services"], r[key]) for r in found
                      if r.get("election", "scalable") == mode and r.get(key) is not None]
            if not points:
                continue
            sizes = sorted({n for n, _ in points})
            medians = [statistics.median(v for n, v in points if n == s) for s in sizes]
            color = f"C{modes.index(mode)}"  # one colour per mode on every panel
            ax.plot(sizes, medians, marker="o", label=mode, color=color)
            xs, ys = [n for n, _ in points], [v for _, v in points]
            ax.scatter(xs, ys, color=color, s=12, alpha=0.5)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("dual-stack Services")
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.suptitle("3 agents, 2 CPUs: kubevip (bench/agent.py, its default timings unless the legend says "
                 "otherwise) and kube-vip v1.2.2 (bench/compare.py)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    found = rows([Path(a) for a in argv[2:]])
    if not found:
        print("no `scale` rows in the results given", file=sys.stderr)
        return 1
    plot(found, Path(argv[1]))
    print(f"wrote {argv[1]} from {len(found)} rows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
