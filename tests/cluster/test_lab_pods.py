"""`kubevip lab pod add/del`: pod namespaces wired to a node, with Pod objects and responders."""

from __future__ import annotations

import ipaddress
import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest
from kubernetes_asyncio import client

from kubevip.lab import podnet
from kubevip.lab.controlplane import ControlPlane
from kubevip.lab.network import LabNetwork
from kubevip.lab.tcpprobe import probe_argv
from kubevip.lab.udpprobe import Sink, send_argv
from tests.fixtures.waiting import wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.net]


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {e["name"] for e in json.loads(out or "[]")}


@pytest.fixture
def pod(control_plane: ControlPlane, lab_network: LabNetwork) -> Iterator[podnet.LabPod]:
    name = f"p{secrets.token_hex(3)}"
    p = podnet.add(control_plane, lab_network, name, "node2", labels={"app": name, "tier": "web"})
    try:
        yield p
    finally:
        if any(q.name == name for q in podnet.listed(lab_network.state_dir)):
            podnet.delete(control_plane, lab_network, name)


async def test_pod_gets_one_address_per_family_from_its_nodes_pod_cidrs_and_a_ready_pod_object(
    pod: podnet.LabPod, kube_admin: client.ApiClient
) -> None:
    assert set(pod.to_json()) == {"name", "namespace", "node", "netns", "ipv4", "ipv6"}
    assert pod.node == "node2" and pod.namespace == "default"
    cidrs = await podnet.node_pod_cidrs(kube_admin, "node2")
    assert ipaddress.ip_address(pod.ipv4) in cidrs[4] and ipaddress.ip_address(pod.ipv6) in cidrs[6]
    obj = await client.CoreV1Api(kube_admin).read_namespaced_pod(pod.name, "default")
    assert obj.spec.node_name == "node2"
    assert obj.metadata.labels == {"app": pod.name, "tier": "web"}
    assert [p.ip for p in obj.status.pod_ips] == [pod.ipv4, pod.ipv6]
    assert any(c.type == "Ready" and c.status == "True" for c in obj.status.conditions)
    assert {(p.container_port, p.protocol) for p in obj.spec.containers[0].ports} == {
        (8080, "TCP"), (8080, "UDP")
    }


def test_second_pod_on_a_node_gets_other_addresses(
    pod: podnet.LabPod, control_plane: ControlPlane, lab_network: LabNetwork
) -> None:
    other = podnet.add(control_plane, lab_network, f"{pod.name}b", "node2")
    try:
        assert {other.ipv4, other.ipv6}.isdisjoint({pod.ipv4, pod.ipv6})
        assert other.netns != pod.netns
    finally:
        podnet.delete(control_plane, lab_network, other.name)


@pytest.mark.parametrize("family", [4, 6])
def test_responder_answers_tcp_and_udp_from_the_client_and_another_node(
    pod: podnet.LabPod, lab_network: LabNetwork, family: int
) -> None:
    address = pod.ipv4 if family == 4 else pod.ipv6
    for ns in (lab_network.client.netns, lab_network.node("node1").netns, lab_network.node("node2").netns):
        got = wait_until(lambda ns=ns: lab_network.run(ns, probe_argv(address, 8080, 1.0)).stdout.strip(),
                         f"TCP answer of {pod.name} at {address} from {ns}", within=30)
        assert got == pod.name
        got = wait_until(
            lambda ns=ns: lab_network.run(ns, send_argv(address, 8080, "hello", 1.0)).stdout.strip(),
            f"UDP answer of {pod.name} at {address} from {ns}", within=30,
        )
        assert got == pod.name


@pytest.mark.parametrize("family", [4, 6])
def test_pod_traffic_reaches_the_client_from_its_own_address(
    pod: podnet.LabPod, lab_network: LabNetwork, family: int
) -> None:
    sink = Sink(lab_network, lab_network.client.netns, 9000 + family)
    try:
        target = str(lab_network.client.ipv4 if family == 4 else lab_network.client.ipv6)
        payload = f"{pod.name}-{family}"

        def sent() -> str | None:
            lab_network.run(pod.netns, send_argv(target, sink.port, payload))
            return sink.source(payload, 1.0)

        assert wait_until(sent, f"datagram from {pod.name} at the client", within=30) == (
            pod.ipv4 if family == 4 else pod.ipv6
        )
    finally:
        sink.close()


async def test_del_removes_namespace_responder_and_pod_object(
    control_plane: ControlPlane, lab_network: LabNetwork, kube_admin: client.ApiClient
) -> None:
    name = f"d{secrets.token_hex(3)}"
    p = podnet.add(control_plane, lab_network, name, "node1", namespace="egress-lab")
    assert p.netns in netns_names()
    podnet.delete(control_plane, lab_network, name, namespace="egress-lab")
    assert p.netns not in netns_names()
    assert not any(q.name == name for q in podnet.listed(lab_network.state_dir))
    pods = await client.CoreV1Api(kube_admin).list_namespaced_pod("egress-lab")
    assert name not in {x.metadata.name for x in pods.items}
    with pytest.raises(Exception, match="has no pod"):
        podnet.delete(control_plane, lab_network, name, namespace="egress-lab")


def test_delete_all_removes_every_recorded_pod(control_plane: ControlPlane, lab_network: LabNetwork) -> None:
    name = f"a{secrets.token_hex(3)}"
    p = podnet.add(control_plane, lab_network, name, "node3")
    podnet.delete_all(lab_network.state_dir)
    assert p.netns not in netns_names()
    assert podnet.listed(lab_network.state_dir) == []
    subprocess.run([str(control_plane.kubectl), "--kubeconfig", str(control_plane.admin_kubeconfig),
                    "delete", "pod", name, "--wait=false"], check=True, capture_output=True)
