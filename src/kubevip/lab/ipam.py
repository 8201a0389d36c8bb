"""`kubevip ipam` in the lab: pools are the upper half of each family's VIP pool (the lower half stays free
for hand-picked VIPs); the controller runs on the host, talks only to the API server, and outlives `lab up`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from kubevip.core.views import IPAddress
from kubevip.lab import procs
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.ports import free_port

STATE_FILE = "ipam.json"
LOG_FILE = "ipam.log"
CONFIGMAP, NAMESPACE = "kubevip", "kube-system"


def ipam_pool(vip_pool: dict[int, tuple[IPAddress, IPAddress]]) -> dict[int, tuple[IPAddress, IPAddress]]:
    """The upper half of each family's (first, last) VIP pool but its last address, which is the
    control-plane VIP's (`lab.cpvip.vips`): IPAM must never hand that to a Service."""
    out: dict[int, tuple[IPAddress, IPAddress]] = {}
    for family, (first, last) in vip_pool.items():
        size = int(last) - int(first) + 1
        if size < 3:
            raise ValueError(f"VIP pool {first}-{last}: too small for an IPAM half and a control-plane VIP")
        out[family] = (first + size // 2, last - 1)
    return out


def pool_json(pool: dict[int, tuple[IPAddress, IPAddress]]) -> dict[str, str]:
    """`{"ipv4": "<first>-<last>", "ipv6": ...}` for `lab status -o json`."""
    return {f"ipv{f}": f"{a}-{b}" for f, (a, b) in sorted(pool.items())}


def configmap(pool: dict[int, tuple[IPAddress, IPAddress]]) -> dict[str, object]:
    ranges = ",".join(f"{a}-{b}" for _, (a, b) in sorted(pool.items()))
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE},
            "data": {"range-global": ranges}}


def _entry(state_dir: Path) -> dict[str, object]:
    try:
        entry = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return entry if isinstance(entry, dict) else {}


def metrics_url(state_dir: Path) -> str | None:
    """Where the lab's `kubevip ipam` serves /metrics, while it runs."""
    port = _entry(state_dir).get("metrics_port")
    if not isinstance(port, int) or _recorded(state_dir) is None:
        return None
    return f"http://127.0.0.1:{port}/metrics"


def _recorded(state_dir: Path) -> tuple[int, str] | None:
    try:
        entry = json.loads((state_dir / STATE_FILE).read_text())
        pid, exe = int(entry["pid"]), str(entry["exe"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not procs.is_exe(pid, exe):
        return None
    try:  # the same interpreter may run something else under a recycled PID
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return (pid, exe) if b"ipam" in cmdline else None


def up(cp: ControlPlane, vip_pool: dict[int, tuple[IPAddress, IPAddress]], state_dir: Path) -> str:
    """Apply the ConfigMap and start `kubevip ipam` unless it runs; returns one line for `lab up`."""
    pool = ipam_pool(vip_pool)
    cp.kubectl_run("apply", "-f", "-", stdin=json.dumps(configmap(pool)))
    rec = _recorded(state_dir)
    if rec is not None:
        return f"kubevip ipam already running (pid {rec[0]}), pool {', '.join(pool_json(pool).values())}"
    log = (state_dir / LOG_FILE).open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    port = free_port()  # loopback only: the metrics are for the host (docs/lab.md, docs/dashboards)
    p = subprocess.Popen(
        # Its own least-privilege identity (manifests/rbac.py render_ipam), not the lab's admin.
        [sys.executable, "-m", "kubevip", "ipam", "--kubeconfig", str(cp.ipam_kubeconfig),
         "--prometheus-server", f"127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    log.close()
    entry = {"pid": p.pid, "exe": sys.executable, "metrics_port": port}
    (state_dir / STATE_FILE).write_text(json.dumps(entry))
    return (f"started kubevip ipam (pid {p.pid}), pool {', '.join(pool_json(pool).values())}, "
            f"metrics http://127.0.0.1:{port}/metrics")


def down(state_dir: Path) -> list[str]:
    rec = _recorded(state_dir)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    if rec is None:
        return []
    procs.kill_if_exe(*rec)
    return [f"stopped kubevip ipam (pid {rec[0]})"]


def running(state_dir: Path) -> int | None:
    """The PID of the lab's `kubevip ipam`, if it runs."""
    rec = _recorded(state_dir)
    return rec[0] if rec else None
