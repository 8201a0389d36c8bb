"""Measure control-plane start time and memory for docs/lab.md: prints a table and a JSON line.

Usage: $V/bin/python hack/controlplane/measure.py [--runs 3] [--bin-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from kubevip.lab.controlplane import ControlPlane


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin-dir", default=os.environ.get("KUBEVIP_BIN_DIR"))
    args = ap.parse_args()
    bin_dir = args.bin_dir or subprocess.run(
        [str(Path(__file__).parent / "build.sh")], capture_output=True, text=True, check=True
    ).stdout.strip().splitlines()[-1]
    starts: list[float] = []
    rss: list[dict[str, float]] = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kvt-measure-") as d:
            cp = ControlPlane(Path(bin_dir), Path(d))
            t0 = time.monotonic()
            cp.start()
            starts.append(time.monotonic() - t0)
            rss.append({n: rss_mib(p) for n, p in cp.pids.items()})
            cp.stop()
    per = {n: statistics.median(r[n] for r in rss) for n in rss[0]}
    runs = [round(s, 1) for s in starts]
    print(f"{'control-plane start (s)':28} median {statistics.median(starts):6.1f}  runs {runs}")
    for n, v in per.items():
        print(f"{'RSS ' + n + ' (MiB)':28} median {v:6.0f}")
    print(f"{'RSS total (MiB)':28} median {sum(per.values()):6.0f}")
    print(json.dumps({"start_seconds": starts, "rss_mib": rss}))


if __name__ == "__main__":
    main()
