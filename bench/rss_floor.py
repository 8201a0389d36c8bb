"""What an agent's resident memory is before it holds anything: the interpreter and each import layer.

Each step runs in a fresh interpreter that imports everything of the steps before it, then that step,
and reports VmRSS after a full garbage collection; the difference to the step before is that layer's
share. The step before the last is the whole agent's import set (`kubevip.runner`, what `kubevip manager`
loads); the last, pyroute2's IPRoute, only routing-table mode, BGP and DHCP Services load.
Prints a table and writes bench/results/rss-floor-<date>.json. No root, no network; about 10 s.

Usage: python bench/rss_floor.py [--out FILE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# (label, imports of this step); each step also imports every earlier one
STEPS: list[tuple[str, str]] = [
    ("CPython 3.11 interpreter", ""),
    ("stdlib the agent uses (asyncio, ssl, json, ipaddress, logging, email, http)",
     "import asyncio, json, ipaddress, logging, email.parser, http.client, concurrent.futures"),
    ("a TLS context with the CA bundle loaded (the API server connection)",
     "import ssl; ssl.create_default_context()"),
    ("aiohttp client (our REST client's transport)", "import aiohttp"),
    ("aiohttp's low-level server (the metrics and health server)", "import aiohttp.web_server"),
    ("prometheus_client", "import prometheus_client"),
    ("PyYAML (kubeconfig files)", "import yaml"),
    ("kubevip's own modules (kubevip.runner and everything it imports)", "import kubevip.runner"),
    # Last: a layer 2 agent never loads it (its default routes and macvlan list are our own netlink
    # dumps since session 20); routing-table mode, BGP and DHCP Services do.
    ("pyroute2.iproute (routing-table mode, BGP, DHCP macvlans; not in layer 2 mode)",
     "from kubevip.pyroute2_lazy import submodule; submodule('pyroute2.iproute')"),
]

PROBE = """
import gc
{imports}
gc.collect()
print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]))
"""


def rss_after(imports: list[str]) -> float:
    code = PROBE.format(imports="\n".join(i for i in imports if i))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="runs per step (the median is kept)")
    args = ap.parse_args()
    rows = []
    before = 0.0
    imports: list[str] = []
    for label, step in STEPS:
        imports.append(step)
        runs = sorted(rss_after(imports) for _ in range(args.repeat))
        total = runs[len(runs) // 2]
        rows.append({"layer": label, "rss_mb": round(total, 1), "adds_mb": round(total - before, 1)})
        before = total
    print("| layer | adds (MB) | RSS so far (MB) |\n|---|---|---|")
    for r in rows:
        print(f"| {r['layer']} | {r['adds_mb']} | {r['rss_mb']} |")
    out = args.out or REPO / "bench" / "results" / f"rss-floor-{datetime.date.today()}.json"
    out.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(), "machine": platform.machine(), "rows": rows,
    }, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
