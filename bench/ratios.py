"""One table of ratios (kubevip / kube-vip) over several side-by-side runs of bench/compare.py.

Issue 21 asks for the comparison "at kube-vip's defaults and at ours": kube-vip parses whole seconds
only, so the second set runs kubevip at its own defaults (`--agents kubevip --kubevip-lease 1.5,1,0.25`)
and compares it with kube-vip's samples from the run at kube-vip's defaults. Each column names the runs
whose kubevip samples and whose kube-vip samples it compares; a figure is matched across runs by its
label (a BGP figure's label gets the router daemon when it does not name it already).

    python bench/ratios.py --column "LABEL=KUBEVIP.json[,MORE.json]:KUBE_VIP.json[,MORE.json]" ... \\
        [--doc docs/performance.md]

Each cell: the median ratio, then the p95 ratio in brackets; below 1 kubevip is lower (faster, smaller).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BEGIN = "<!-- bench/ratios.py:begin -->"
END = "<!-- bench/ratios.py:end -->"
KUBEVIP, KUBE_VIP = "kubevip", "kube-vip"


@dataclass(frozen=True)
class Column:
    label: str
    kubevip: tuple[Path, ...]
    kube_vip: tuple[Path, ...]


def parse_column(spec: str) -> Column:
    """`LABEL=A.json,B.json:C.json`: kubevip's samples from A and B, kube-vip's from C."""
    label, sep, files = spec.partition("=")
    ours, colon, theirs = files.partition(":")
    if not sep or not colon or not label.strip() or not ours or not theirs:
        raise ValueError(f"--column {spec!r}: expected LABEL=KUBEVIP.json[,...]:KUBE_VIP.json[,...]")
    return Column(
        label.strip(),
        tuple(Path(p) for p in ours.split(",") if p),
        tuple(Path(p) for p in theirs.split(",") if p),
    )


def row_label(fig: dict[str, Any], daemon: str) -> str:
    """The figure's label, naming the BGP router when the label does not (the SIGKILL rows)."""
    label = str(fig["label"])
    if str(fig["id"]).startswith("bgp-") and daemon and f"({daemon})" not in label:
        return f"{label} ({daemon})"
    return label


def summaries(docs: Sequence[dict[str, Any]], agent: str) -> dict[str, dict[str, Any]]:
    """Label -> that agent's summary (n > 0 only), the later run winning when two runs have one."""
    out: dict[str, dict[str, Any]] = {}
    for doc in docs:
        daemon = str(doc.get("settings", {}).get("bgp", {}).get("router", "") or "")
        for fig in doc["figures"]:
            s = fig["summary"].get(agent)
            label = row_label(fig, daemon)
            if s and s.get("n"):
                out[label] = {**s, "unit": fig["unit"]}
            elif agent in fig.get("not_available", {}) and label not in out:
                out[label] = {"n": 0, "not_available": fig["not_available"][agent]}
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b == 0:
        return None if a else 1.0
    return a / b


def cell(ours: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    if ours is None or theirs is None or not ours.get("n"):
        return "-"
    if not theirs.get("n"):
        return "kube-vip: not available" if "not_available" in theirs else "-"
    if not ours["median"] and not theirs["median"] and not ours["p95"] and not theirs["p95"]:
        return "both 0"
    med, p95 = ratio(ours["median"], theirs["median"]), ratio(ours["p95"], theirs["p95"])
    if med is None:
        return "- (kube-vip 0)"
    return f"{med:.2f} ({'-' if p95 is None else f'{p95:.2f}'})"


def table(columns: Sequence[tuple[str, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]]) -> str:
    """Rows: every label any column has kubevip samples for, in first-seen order."""
    labels: list[str] = []
    for _, ours, _theirs in columns:
        labels.extend(k for k in ours if k not in labels)
    head = "| figure | " + " | ".join(c[0] for c in columns) + " |"
    rows = [head, "|---|" + "---|" * len(columns)]
    for label in labels:
        cells = [cell(ours.get(label), theirs.get(label)) for _, ours, theirs in columns]
        if any(c != "-" for c in cells):
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def update_doc(doc: Path, section: str) -> None:
    text = doc.read_text()
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc.write_text(head + block + tail)
    else:
        raise SystemExit(f"{doc}: no {BEGIN} / {END} markers to write between")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--column", action="append", required=True, help="LABEL=KUBEVIP.json,..:KUBE_VIP.json,..")
    ap.add_argument("--doc", default=None, help="write the table between this file's ratios markers")
    args = ap.parse_args(argv)
    cols = []
    for spec in args.column:
        c = parse_column(spec)
        load = lambda ps: [json.loads((REPO / p).read_text()) for p in ps]  # noqa: E731
        cols.append((c.label, summaries(load(c.kubevip), KUBEVIP), summaries(load(c.kube_vip), KUBE_VIP)))
    out = table(cols)
    print(out)
    if args.doc:
        update_doc(Path(args.doc), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
