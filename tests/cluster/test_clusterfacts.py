"""The address policy's cluster facts from the real API server, read with the agents' own RBAC
(kube-vip token): Nodes' addresses, the ServiceCIDRs (the API server serves them) and the IPAM
ConfigMap in the lease namespace."""

from __future__ import annotations

import ipaddress
import secrets

import pytest
from kubernetes_asyncio import client

from kubevip.ip import IPFamily
from kubevip.kube.clusterfacts import ClusterFacts
from kubevip.kube.rest import RestClient
from kubevip.tasks import TaskGroupGuard, spawn
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster


async def test_cluster_facts_with_the_agents_rbac(
    rest_kubevip: RestClient, kube_admin: client.ApiClient, kube_namespace: str,
) -> None:
    core = client.CoreV1Api(kube_admin)
    node = f"kvt-facts-{secrets.token_hex(3)}"
    await core.create_node({"metadata": {"name": node}})
    await core.patch_node_status(node, {"status": {"addresses": [
        {"type": "InternalIP", "address": "10.231.0.7"}, {"type": "InternalIP", "address": "fd00:231::7"},
        {"type": "Hostname", "address": node}]}})
    await core.create_namespaced_config_map(kube_namespace, {
        "metadata": {"name": "kubevip"}, "data": {f"cidr-{kube_namespace}": "192.0.2.0/28"}})
    changes: list[int] = []
    facts = ClusterFacts(rest_kubevip, lambda: changes.append(1), (kube_namespace, "kubevip"))
    assert await facts.discover_service_cidrs() is not None, "Kubernetes >= 1.33 serves ServiceCIDRs"
    guard = TaskGroupGuard("facts")
    for r in facts.reflectors:
        spawn(guard, r.name, r.run())
    try:
        want = {ipaddress.ip_address("10.231.0.7"), ipaddress.ip_address("fd00:231::7")}
        await eventually(lambda: facts.nodes.get(node) == want, "the Node's addresses")
        await eventually(lambda: facts.service_cidrs(), "the ServiceCIDRs")
        kubernetes = await core.read_namespaced_service("kubernetes", "default")
        cluster_ip = ipaddress.ip_address(kubernetes.spec.cluster_ip)
        assert any(cluster_ip in n for n in facts.service_cidrs() if n.version == cluster_ip.version)
        await eventually(lambda: facts.pools.lookup(kube_namespace, IPFamily.IPV4).pool,
                         "the namespace's pool from the ConfigMap")
        # A heartbeat (same addresses) is no change; a new address is one.
        before = len(changes)
        await core.patch_node(node, {"metadata": {"labels": {"beat": "1"}}})
        # A JSON patch: a strategic merge would merge the list by `type`.
        await core.patch_node_status(node, [{"op": "replace", "path": "/status/addresses", "value": [
            {"type": "InternalIP", "address": "10.231.0.8"}]}])
        new = {ipaddress.ip_address("10.231.0.8")}
        await eventually(lambda: facts.nodes.get(node) == new, "the new address")
        assert len(changes) == before + 1
        await core.delete_node(node)
        await eventually(lambda: node not in facts.nodes, "the Node's deletion")
    finally:
        await guard.close()
        if node in facts.nodes:
            await core.delete_node(node)


async def test_one_node_watch_feeds_placement_and_the_policy(
    rest_kubevip: RestClient, kube_admin: client.ApiClient, kube_namespace: str,
) -> None:
    """The agent's wiring: the policy's facts without a Node watch of their own, fed by NodeSource's
    (kube.watch.fan_out): one Node watch, both consumers see every Node."""
    from kubevip.agent.nodes import NodeSource

    core = client.CoreV1Api(kube_admin)
    node = f"kvt-fan-{secrets.token_hex(3)}"
    facts = ClusterFacts(rest_kubevip, lambda: None, watch_nodes=False)
    assert [r.name for r in facts.reflectors] == []
    nodes = NodeSource(rest_kubevip, lambda: None, lambda *_: None, namespace=kube_namespace,
                       also=facts.node_handlers)
    guard = TaskGroupGuard("fan")
    for r in nodes.reflectors:
        spawn(guard, r.name, r.run())
    try:
        await core.create_node({"metadata": {"name": node, "labels": {"fan": "1"}}})
        await core.patch_node_status(node, {"status": {"addresses": [
            {"type": "InternalIP", "address": "10.231.0.9"}, {"type": "Hostname", "address": node}]}})
        await eventually(lambda: facts.nodes.get(node) == {ipaddress.ip_address("10.231.0.9")},
                         "the policy's view of the Node")
        await eventually(lambda: ("fan", "1") in getattr(nodes.nodes.get(node), "labels", ()),
                         "placement's view of the Node")
        await core.delete_node(node)
        await eventually(lambda: node not in facts.nodes and node not in nodes.nodes, "the deletion, in both")
    finally:
        await guard.close()
        if node in facts.nodes:
            await core.delete_node(node)
