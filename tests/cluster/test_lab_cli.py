"""`kubevip lab up/status/down` end to end: the README's main job, on its own state dir and lab id."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from pathlib import Path

import pytest

from kubevip.errors import LabError
from kubevip.lab import controlplane, podnet
from kubevip.lab.instance import LabInstance
from tests.fixtures.cluster import control_plane_bin_dir
from tests.fixtures.prereqs import require_root_netns

pytestmark = [pytest.mark.cluster, pytest.mark.net]

CONTRACT_KEYS = {"kubeconfig", "kubectl", "nodes", "client", "subnets", "vip_pool"}


def test_up_is_idempotent_status_follows_the_contract_and_down_removes_everything(tmp_path: Path) -> None:
    require_root_netns()
    bin_dir = control_plane_bin_dir()
    lab_id = f"c{secrets.token_hex(3)}"
    lab = LabInstance(lab_id, tmp_path / "state")
    try:
        first = lab.up(nodes=2, bin_dir=bin_dir)
        assert any(line.startswith("started control plane") for line in first)
        again = lab.up(nodes=2, bin_dir=bin_dir)
        assert any("already running" in line for line in again) and any(
            "already up" in line for line in again
        )

        doc = lab.status()
        assert set(doc) >= CONTRACT_KEYS
        assert len(doc["nodes"]) == 2
        assert all(set(n) >= {"name", "netns", "interface", "ipv4", "ipv6", "mac"} for n in doc["nodes"])
        assert set(doc["client"]) == {"netns", "ipv4", "ipv6"}
        assert set(doc["subnets"]) == set(doc["vip_pool"]) == {"ipv4", "ipv6"}
        # The demo Service's addresses are reported, and `vip_pool` no longer offers them.
        demo = doc["demo"]
        assert (demo["namespace"], demo["name"]) == ("default", "demo")
        for fam in ("ipv4", "ipv6"):
            first, last = (ipaddress.ip_address(x) for x in doc["vip_pool"][fam].split("-"))
            assert ipaddress.ip_address(demo[fam]) == first - 1 and first <= last
        ann = json.loads(subprocess.run(
            [doc["kubectl"], "--kubeconfig", doc["kubeconfig"], "get", "service", "demo", "-o", "json"],
            capture_output=True, text=True, check=True,
        ).stdout)["metadata"]["annotations"]["kube-vip.io/loadbalancerIPs"]
        assert ann.split(",") == [demo["ipv4"], demo["ipv6"]]
        # Other options over the running lab: what differs and how to change it, nothing touched.
        with pytest.raises(LabError) as err:
            lab.up(nodes=3, bin_dir=bin_dir, bgp="gobgpd")
        msg = str(err.value)
        assert "--nodes 2 (asked 3)" in msg and "no BGP router" in msg
        assert f"kubevip lab down --id {lab_id}" in msg
        assert lab.status()["nodes"] == doc["nodes"]
        out = subprocess.run(
            [doc["kubectl"], "--kubeconfig", doc["kubeconfig"], "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert {n["name"] for n in doc["nodes"]} <= {i["metadata"]["name"] for i in json.loads(out)["items"]}
        pids = controlplane.recorded_alive(tmp_path / "state")
        assert set(pids) == set(controlplane.PROCESS_NAMES)
        cp, net = lab.running()
        pod = podnet.add(cp, net, "web", "node1", labels={"app": "web"})
        assert lab.status()["pods"] == [pod.to_json()]
    finally:
        removed = lab.down()
    assert any(line.startswith("stopped pid") for line in removed)
    assert f"removed pod default/web ({pod.netns})" in removed
    assert not controlplane.recorded_alive(tmp_path / "state")
    netns = json.loads(
        subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]"
    )
    assert not [n for n in netns if n["name"].startswith(f"kvl-{lab_id}-")]
    assert lab.down() == [f"lab {lab_id} was not up"]
