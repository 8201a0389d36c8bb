"""Results document: per-figure summaries and ratios, the printed table, plots and docs/performance.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distribution import summarize

from compare.agents import KUBE_VIP, KUBEVIP
from compare.stats import ratios

BEGIN = "<!-- bench/compare.py:begin -->"
END = "<!-- bench/compare.py:end -->"
HEADING = "## Side by side with kube-vip"


def figure(
    fid: str, label: str, unit: str, samples: dict[str, Sequence[float]], missing: dict[str, str]
) -> dict[str, Any]:
    """One row of the comparison: samples per agent, their summaries and the kubevip / kube-vip ratios."""
    summ = {a: summarize(list(samples.get(a, []))) for a in (KUBEVIP, KUBE_VIP)}
    return {
        "id": fid,
        "label": label,
        "unit": unit,
        "samples": {a: [None if not math.isfinite(v) else v for v in samples.get(a, [])] for a in summ},
        "summary": {a: s.as_dict() for a, s in summ.items()},
        "failed_runs": {a: sum(1 for v in samples.get(a, []) if not math.isfinite(v)) for a in summ},
        "ratio": ratios(summ[KUBEVIP], summ[KUBE_VIP]),
        "not_available": dict(missing),
    }


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if v < 10 else f"{v:.1f} s"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "%":
        return f"{v:.1f} %"
    if unit == "req/s":
        return f"{v:.1f}"
    return f"{v:.3g}"


def _reasons(figures: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Each distinct "not available" reason, numbered in table order (cells point to the note)."""
    out: dict[str, int] = {}
    for f in figures:
        for agent in (KUBEVIP, KUBE_VIP):
            reason = f["not_available"].get(agent)
            if reason is not None and reason not in out:
                out[reason] = len(out) + 1
    return out


def notes(figures: Sequence[dict[str, Any]]) -> str:
    """The reasons behind the table's "not available" cells, one numbered line each ("" if none)."""
    agents_of: dict[str, list[str]] = {}
    for f in figures:
        for agent, reason in f["not_available"].items():
            if agent not in agents_of.setdefault(reason, []):
                agents_of[reason].append(agent)
    lines = [
        f"{n}. not available ({', '.join(agents_of[r])}): {r.replace(chr(10), ' ').replace('|', '/')}"
        for r, n in _reasons(figures).items()
    ]
    return "\n".join(lines)


def _cell(fig: dict[str, Any], agent: str, reasons: dict[str, int] | None = None) -> str:
    if agent in fig["not_available"]:
        n = (reasons or {}).get(fig["not_available"][agent])
        return "not available" + (f" (note {n})" if n else "")
    s = fig["summary"][agent]
    if not s["n"]:
        failed = fig["failed_runs"][agent]
        return f"no result ({failed} failed)" if failed else "-"
    u = fig["unit"]
    text = f"{_fmt(s['median'], u)} / {_fmt(s['p95'], u)} / {_fmt(s['max'], u)} (n={s['n']})"
    if fig["failed_runs"][agent]:
        text += f", {fig['failed_runs'][agent]} failed"
    return text


def _ratio(fig: dict[str, Any]) -> str:
    r = fig["ratio"]
    if r["median"] is None:
        return "-"
    return " / ".join("-" if r[k] is None else f"{r[k]:.2f}" for k in ("median", "p95", "max"))


def table(figures: Sequence[dict[str, Any]]) -> str:
    """Markdown table: one row per figure, median / p95 / max per agent and the ratio."""
    rows = [
        "| figure | kubevip (median / p95 / max) | kube-vip (median / p95 / max) "
        "| ratio kubevip / kube-vip |",
        "|---|---|---|---|",
    ]
    reasons = _reasons(figures)
    for f in figures:
        rows.append(
            f"| {f['label']} | {_cell(f, KUBEVIP, reasons)} | {_cell(f, KUBE_VIP, reasons)} | {_ratio(f)} |"
        )
    return "\n".join(rows)


def plot_failovers(figures: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Failover distributions (PNG): per election mode, SIGKILL and SIGTERM, time until another node
    answers and the longest answer gap, each agent and family as one box with its runs as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = {f["id"]: f for f in figures}
    modes = sorted({f["id"].split("-")[-2] for f in figures if f["id"].startswith("failover-kill-")})
    modes = [m for m in ("service", "global") if m in modes]
    bgp = any(f["id"].startswith("bgp-") for f in figures)
    if not modes and not bgp:
        return None
    panels = [
        ("kill", "", "SIGKILL: another node answers"),
        ("kill", "gap-", "SIGKILL: longest answer gap"),
        ("term", "", "SIGTERM: another node answers"),
        ("term", "gap-", "SIGTERM: longest answer gap"),
    ]
    # Per row: (title suffix, [(panel title, figure id per family)]).
    rows: list[tuple[str, list[tuple[str, dict[str, str]]]]] = []
    for mode in modes:
        ml = "per-Service election" if mode == "service" else "global election"
        rows.append(
            (
                ml,
                [
                    (title, {fam: f"failover-{kind}-{sub}{mode}-{fam}" for fam in ("ipv4", "ipv6")})
                    for kind, sub, title in panels
                ],
            )
        )
    if bgp:
        rows.append(
            (
                "BGP mode",
                [
                    ("created -> route in the RIB", {f: f"bgp-create-{f}" for f in ("ipv4", "ipv6")}),
                    ("SIGKILL: RIB names another node", {f: f"bgp-kill-{f}" for f in ("ipv4", "ipv6")}),
                ],
            )
        )
    fig, axes = plt.subplots(len(rows), len(panels), figsize=(16, 3.2 * len(rows)), squeeze=False)
    for r, (suffix, row) in enumerate(rows):
        for c in range(len(panels)):
            ax = axes[r][c]
            if c >= len(row):
                ax.set_visible(False)
                continue
            title, fids = row[c]
            data, labels = [], []
            for fam in ("ipv4", "ipv6"):
                f = by_id.get(fids[fam])
                for agent in (KUBEVIP, KUBE_VIP):
                    raw = [] if f is None else f["samples"].get(agent, [])
                    vals = [v * 1000 for v in raw if v is not None]
                    na = f is not None and agent in f["not_available"]
                    data.append(vals)
                    labels.append(f"{agent} {fam}" + (" (n/a)" if na else ""))
            ax.boxplot([d or [math.nan] for d in data], vert=False, tick_labels=labels, widths=0.5)
            for i, d in enumerate(data, start=1):
                color = "tab:blue" if labels[i - 1].startswith(f"{KUBEVIP} ") else "tab:orange"
                ax.scatter(d, [i] * len(d), s=12, alpha=0.7, color=color)
            ax.set_title(f"{title} ({suffix})", fontsize=9)
            ax.set_xlabel("ms")
            ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def seed_table(seed: dict[str, Any]) -> str:
    rows = [
        "| agent | endpoints source | on interfaces | status ingress | kube-vip.io annotations "
        "| wrong family |",
        "|---|---|---|---|---|---|",
    ]
    for agent, modes in seed.items():
        for mode, r in modes.items():
            if "not_available" in r:
                rows.append(f"| {agent} | {mode} | not available: {r['not_available'][:80]} | | | |")
                continue
            ifs = "; ".join(f"{n}: {', '.join(a)}" for n, a in r["on_interfaces"].items() if a) or "nothing"
            ing = ", ".join(i.get("ip", "?") for i in r["status_ingress"]) or "none"
            ann = "; ".join(
                f"`{k.removeprefix('kube-vip.io/')}={v}`" for k, v in sorted(r["annotations"].items())
            )
            wrong = ", ".join(r["wrong_family"]) or "none"
            rows.append(f"| {agent} | {mode} | {ifs} | {ing} | {ann or 'none'} | {wrong} |")
    return "\n".join(rows)


def update_doc(doc: Path, section: str) -> None:
    """Replace (or append) this benchmark's section of docs/performance.md, leaving the rest alone."""
    text = doc.read_text() if doc.exists() else "# Performance\n"
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + f"\n\n{HEADING}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
