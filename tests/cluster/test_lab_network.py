"""The lab network with the real control plane: reachability per family, fixed MACs, no way out, teardown."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork, reap_orphans

pytestmark = [pytest.mark.cluster, pytest.mark.net]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {e["name"] for e in json.loads(out or "[]")}


def test_node_namespaces_reach_the_api_server_with_the_kubevip_token(
    lab_network: LabNetwork, control_plane: ControlPlane
) -> None:
    cfg = lab_network.state_dir / "kube-vip-in-lab.kubeconfig"
    for node in lab_network.nodes:
        out = lab_network.run(
            node.netns,
            # A list, as the agents do (their role lists and watches Nodes; it has no `get`).
            [str(control_plane.kubectl), "--kubeconfig", str(cfg), "get", "nodes",
             "--field-selector", f"metadata.name={node.name}", "-o", "json"],
        ).stdout
        (item,) = json.loads(out)["items"]
        addresses = [a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP"]
        assert addresses == [str(node.ipv4), str(node.ipv6)]


@pytest.mark.parametrize("family", [4, 6])
def test_every_namespace_reaches_every_other_on_both_families(lab_network: LabNetwork, family: int) -> None:
    client_ns = lab_network.client
    for node in lab_network.nodes:
        target = node.ipv4 if family == 4 else node.ipv6
        lab_network.run(client_ns.netns, ["ping", f"-{family}", "-c1", "-W2", str(target)])
    first = lab_network.nodes[0]
    target = lab_network.uplink_ipv4 if family == 4 else lab_network.uplink_ipv6
    lab_network.run(first.netns, ["ping", f"-{family}", "-c1", "-W2", str(target)])


def test_fixed_macs_and_no_default_route(lab_network: LabNetwork) -> None:
    for ep in (*lab_network.nodes, lab_network.client):
        link = json.loads(lab_network.run(ep.netns, ["ip", "-j", "link", "show", ep.interface]).stdout)[0]
        assert link["address"] == ep.mac
        for fam in ("-4", "-6"):
            routes = json.loads(
                lab_network.run(ep.netns, ["ip", "-j", fam, "route", "show", "default"]).stdout
            )
            assert routes == [], f"{ep.netns} has a default route {routes}: lab traffic could leave"


def test_vip_pool_is_free_and_on_the_node_subnet(lab_network: LabNetwork) -> None:
    for fam in (4, 6):
        first, last = lab_network.vip_pool[fam]
        used = {n.ipv4 if fam == 4 else n.ipv6 for n in lab_network.nodes}
        assert first in lab_network.subnets[fam] and last in lab_network.subnets[fam]
        assert all(not (first <= u <= last) for u in used)  # type: ignore[operator]
        assert lab_network.vip(fam, 0) == first


async def test_lab_nodes_exist_as_node_objects(lab_network: LabNetwork, kube_admin: client.ApiClient) -> None:
    names = {n.metadata.name for n in (await client.CoreV1Api(kube_admin).list_node()).items}
    assert {n.name for n in lab_network.nodes} <= names


def test_a_second_lab_gets_its_own_subnet_and_its_teardown_leaves_the_first_alone(
    lab_network: LabNetwork, tmp_path: Path
) -> None:
    other = LabNetwork(f"t{secrets.token_hex(3)}", nodes=1, state_dir=tmp_path / "other")
    try:
        assert other.up()
        assert other.up() is False  # idempotent
        assert other.subnets[4] != lab_network.subnets[4]
        assert not other.subnets[6].overlaps(lab_network.subnets[6])
        # The two labs' bridges are separate: no frame crosses.
        res = other.run(
            other.nodes[0].netns, ["ping", "-c1", "-W1", str(lab_network.nodes[0].ipv4)], check=False
        )
        assert res.returncode != 0
    finally:
        removed = other.down()
    assert {r.split()[-1] for r in removed if r.startswith("netns")} == set(other_names(other, tmp_path))
    assert lab_network.is_up()


def other_names(lab: LabNetwork, tmp_path: Path) -> list[str]:
    return [f"kvl-{lab.lab_id}-{r}" for r in ("br", "node1", "client")]


def test_teardown_after_a_crash_uses_the_recorded_state(tmp_path: Path) -> None:
    lab_id = f"t{secrets.token_hex(3)}"
    crashed = LabNetwork(lab_id, nodes=2, state_dir=tmp_path / "crash")
    crashed.up()
    mine = {ns for ns in netns_names() if ns.startswith(f"kvl-{lab_id}-")}
    assert len(mine) == 4
    # A background process inside the lab, as an agent would be.
    proc = crashed.popen(crashed.nodes[0].netns, ["sleep", "300"])
    del crashed  # the process that created the lab is gone; only the state dir remains
    revived = LabNetwork(lab_id, state_dir=tmp_path / "crash")
    assert revived.is_up()
    revived.down()
    assert proc.wait(timeout=10) != 0
    assert not {ns for ns in netns_names() if ns.startswith(f"kvl-{lab_id}-")}
    assert not revived.is_up()
    assert revived.down() == []


CREATE_AND_HANG = """
import sys, pathlib
from kubevip.lab.network import LabNetwork, reap_orphans
lab = LabNetwork(sys.argv[1], nodes=1, state_dir=pathlib.Path(sys.argv[2]), reap_with_owner=True)
lab.up()
print("up", flush=True)
sys.stdin.read()
"""


def test_a_lab_whose_owner_was_killed_is_reaped(tmp_path: Path) -> None:
    lab_id = f"t{secrets.token_hex(3)}"
    owner = subprocess.Popen(
        [sys.executable, "-c", CREATE_AND_HANG, lab_id, str(tmp_path / "orphan")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert owner.stdout is not None
    assert owner.stdout.readline().strip() == "up"
    assert {ns for ns in netns_names() if ns.startswith(f"kvl-{lab_id}-")}
    assert f"netns kvl-{lab_id}-br" not in reap_orphans()  # owner alive: nothing to reap
    owner.kill()
    owner.wait()
    removed = reap_orphans()
    assert f"netns kvl-{lab_id}-node1" in removed
    assert not {ns for ns in netns_names() if ns.startswith(f"kvl-{lab_id}-")}
