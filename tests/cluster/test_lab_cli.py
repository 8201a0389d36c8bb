"""`kubevip lab up/status/down` end to end: the README's main job, on its own state dir and lab id."""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest

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
