"""Scaling curves from `bench/agent.py` results: one plot, each figure against the number of dual-stack
Services, one line per election mode (issue 21's "curves, not points").

    python bench/curves.py OUT.png RESULTS.json [RESULTS.json ...]

Each results file is what `bench/agent.py --runs 0 --scale 10,100,1000 --election lease,scalable` wrote
(`KUBEVIP_BENCH_OUT`); rows of the same mode and size from several files are all drawn (dots), the
line goes through their medians. A figure a row does not have (older results) is left out.
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
)


def rows(paths: list[Path]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in paths:
        out.extend(json.loads(p.read_text()).get("scale", []))
    return out


def plot(found: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    modes = sorted({r.get("election", "scalable") for r in found})
    for ax, (key, title) in zip(axes.flat, FIGURES, strict=True):
        for mode in modes:
            points = [(r["services"], r[key]) for r in found
                      if r.get("election", "scalable") == mode and r.get(key) is not None]
            if not points:
                continue
            sizes = sorted({n for n, _ in points})
            medians = [statistics.median(v for n, v in points if n == s) for s in sizes]
            (line,) = ax.plot(sizes, medians, marker="o", label=mode)
            xs, ys = [n for n, _ in points], [v for _, v in points]
            ax.scatter(xs, ys, color=line.get_color(), s=12, alpha=0.5)
        ax.set_xscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("dual-stack Services")
        ax.grid(True, alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
    fig.suptitle("kubevip agents, 3 nodes, 2 CPUs (bench/agent.py)")
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
