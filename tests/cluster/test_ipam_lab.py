"""`kubevip lab up` runs `kubevip ipam` over the upper half of each VIP pool; `lab status` shows the pool."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from kubevip.lab import ipam as lab_ipam
from kubevip.lab.instance import LabInstance
from tests.fixtures.cluster import control_plane_bin_dir
from tests.fixtures.prereqs import require_root_netns

pytestmark = [pytest.mark.cluster, pytest.mark.net]


def test_lab_runs_ipam_on_the_upper_half_of_the_vip_pool(tmp_path: Path) -> None:
    require_root_netns()
    bin_dir = control_plane_bin_dir()
    state = tmp_path / "state"
    lab = LabInstance(f"i{secrets.token_hex(3)}", state)
    lab.with_agents = False  # only IPAM is under test here
    try:
        lines = lab.up(nodes=1, bin_dir=bin_dir)
        assert any(line.startswith("started kubevip ipam") for line in lines), lines
        assert any("kubevip ipam already running" in line for line in lab.up(nodes=1, bin_dir=bin_dir))
        doc = lab.status()
        pool = doc["ipam_pool"]
        assert set(pool) == {"ipv4", "ipv6"}
        for fam in ("ipv4", "ipv6"):
            lo, hi = (ipaddress.ip_address(x) for x in pool[fam].split("-"))
            vlo, vhi = (ipaddress.ip_address(x) for x in doc["vip_pool"][fam].split("-"))
            # The lower half stays free for hand-picked VIPs; the last address is the control-plane VIP.
            assert vlo < lo <= hi == vhi - 1

        cp_kubectl = [doc["kubectl"], "--kubeconfig", doc["kubeconfig"]]
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                        "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80}]}}
        subprocess.run([*cp_kubectl, "apply", "-f", "-"], input=json.dumps(svc), text=True, check=True,
                       capture_output=True)
        deadline = time.monotonic() + 60
        addrs: list[str] = []
        while time.monotonic() < deadline and len(addrs) != 2:
            out = subprocess.run([*cp_kubectl, "get", "service", "web", "-o", "json"], text=True,
                                 check=True, capture_output=True).stdout
            ann = json.loads(out)["metadata"].get("annotations") or {}
            text = ann.get("kube-vip.io/loadbalancerIPs", "")
            addrs = [a for a in text.split(",") if a]
            time.sleep(0.2)
        log = (state / lab_ipam.LOG_FILE).read_text()
        assert len(addrs) == 2, f"no allocation within 60s; ipam log:\n{log}"
        for a, fam in zip(addrs, ("ipv4", "ipv6"), strict=True):
            lo, hi = (ipaddress.ip_address(x) for x in pool[fam].split("-"))
            assert lo <= ipaddress.ip_address(a) <= hi
        # The lab's ipam serves its metrics on loopback: one address used per family of the pool.
        url = lab.status()["ipam_metrics"]
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        for fam, f in (("ipv4", "IPv4"), ("ipv6", "IPv6")):
            lo, hi = (ipaddress.ip_address(x) for x in pool[fam].split("-"))
            size = int(hi) - int(lo) + 1 - (sum(1 for n in range(int(lo), int(hi) + 1) if n % 256 in (0, 255))
                                            if f == "IPv4" else 0)
            assert f'kubevip_ipam_pool_used{{family="{f}",pool="range-global"}} 1.0' in text
            assert f'kubevip_ipam_pool_size{{family="{f}",pool="range-global"}} {float(size)}' in text
        pid = lab_ipam.running(state)
        assert pid is not None
    finally:
        removed = lab.down()
    assert any(line.startswith("stopped kubevip ipam") for line in removed), removed
    assert lab_ipam.running(state) is None
