"""Egress exemptions discovered from the real API with kube-vip's RBAC: every Node's podCIDRs (allocated by
the controller-manager), the ServiceCIDR objects, the API server's EndpointSlice addresses (both
families) and the kubeconfig's server."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from kubernetes_asyncio import client

from kubevip.agent.packets import PacketRuleDriver
from kubevip.kube.rest import RestClient
from kubevip.lab import podnet
from kubevip.lab.controlplane import DEFAULT_SERVICE_CIDRS
from kubevip.lab.network import LabNetwork
from kubevip.net.settings import PacketSettings

pytestmark = pytest.mark.cluster
SLICE = "kubevip-test-api"


@pytest.fixture
async def api_slice(kube_admin: client.ApiClient) -> AsyncIterator[None]:
    """An EndpointSlice of default/kubernetes with an address per family (the lab's apiserver runs with
    --endpoint-reconciler-type=none, so there is none by default)."""
    d = client.DiscoveryV1Api(kube_admin)
    body = {
        "metadata": {"name": SLICE, "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.10"]}],
    }
    await d.create_namespaced_endpoint_slice("default", cast(Any, body))
    body6 = {**body, "metadata": {**body["metadata"], "name": f"{SLICE}-6"},  # type: ignore[dict-item]
             "addressType": "IPv6", "endpoints": [{"addresses": ["2001:db8::10"]}]}
    await d.create_namespaced_endpoint_slice("default", cast(Any, body6))
    try:
        yield
    finally:
        for name in (SLICE, f"{SLICE}-6"):
            await d.delete_namespaced_endpoint_slice(name, "default")


async def test_discovery_finds_pod_and_service_cidrs_and_the_api_server_of_both_families(
    lab_network: LabNetwork, kube_admin: client.ApiClient, rest_kubevip: RestClient, api_slice: None
) -> None:
    node_cidrs = set()
    for n in lab_network.nodes:
        node_cidrs |= set((await podnet.node_pod_cidrs(kube_admin, n.name)).values())
    driver = PacketRuleDriver(PacketSettings(), rest_kubevip, "node1")
    assert not driver.discovered
    assert await driver.discover(force=True)
    assert driver.discovered
    nets = driver.networks
    assert node_cidrs <= set(nets.pod_cidrs)
    assert set(nets.service_cidrs) == set(DEFAULT_SERVICE_CIDRS)
    assert {ipaddress.ip_address("192.0.2.10"), ipaddress.ip_address("2001:db8::10"),
            ipaddress.ip_address("127.0.0.1")} <= set(nets.api_servers)
    assert not await driver.discover(force=True)  # nothing changed


async def test_settings_replace_discovery(rest_kubevip: RestClient) -> None:
    fixed = (ipaddress.ip_network("10.0.0.0/8"),)
    driver = PacketRuleDriver(PacketSettings(pod_cidrs=fixed, service_cidrs=fixed), rest_kubevip, "node1")
    assert driver.discovered  # no SNAT waits for discovery
    await driver.discover(force=True)
    assert driver.networks.pod_cidrs == fixed and driver.networks.service_cidrs == fixed
