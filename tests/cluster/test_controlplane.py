"""The lab control plane itself: RBAC of the kube-vip token, metrics, apiserver restart, failure reports."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from kubevip.errors import LabError
from kubevip.lab import pods
from kubevip.lab.client import api_client
from kubevip.lab.controlplane import ControlPlane
from kubevip.manifests import rbac

pytestmark = pytest.mark.cluster


async def status_of(call: object) -> int:
    try:
        await call  # type: ignore[misc]
    except client.ApiException as exc:
        return int(exc.status)
    return 200


async def test_kubevip_token_has_exactly_the_rendered_role(
    control_plane: ControlPlane, kube_kubevip: client.ApiClient, kube_admin: client.ApiClient,
    kube_namespace: str,
) -> None:
    core, disc = client.CoreV1Api(kube_kubevip), client.DiscoveryV1Api(kube_kubevip)
    coord = client.CoordinationV1Api(kube_kubevip)
    ns = kube_namespace
    assert await status_of(core.list_service_for_all_namespaces()) == 200
    assert await status_of(disc.list_endpoint_slice_for_all_namespaces()) == 200
    assert await status_of(core.list_endpoints_for_all_namespaces()) == 200
    assert await status_of(core.list_node()) == 200
    lease = {"metadata": {"name": "plndr-svcs-lock"}, "spec": {"holderIdentity": "n1"}}
    assert await status_of(coord.create_namespaced_lease(ns, lease)) == 200
    # Not granted by the ClusterRole: secrets, pods, writing EndpointSlices.
    assert await status_of(core.list_secret_for_all_namespaces()) == 403
    assert await status_of(core.list_pod_for_all_namespaces()) == 403
    assert (
        await status_of(
            disc.create_namespaced_endpoint_slice(
                ns, {"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []}
            )
        )
        == 403
    )
    # Lease writes only where the RoleBinding is (the lease namespace): not in any other namespace.
    assert await status_of(coord.create_namespaced_lease("default", lease)) == 403
    assert await status_of(coord.list_lease_for_all_namespaces()) == 403
    # Only the verbs the code uses: no PUT of a Service, no reading ConfigMaps outside the lease namespace.
    await client.CoreV1Api(kube_admin).create_namespaced_service(ns, {
        "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    svc = await core.read_namespaced_service("s", ns)
    assert await status_of(core.replace_namespaced_service("s", ns, svc)) == 403
    patch = {"metadata": {"annotations": {"a": "b"}}}
    assert await status_of(core.patch_namespaced_service("s", ns, patch)) == 200
    assert await status_of(core.list_namespaced_config_map("default")) == 403
    assert await status_of(core.list_namespaced_config_map(ns)) == 200
    # The cluster's roles are literally what manifests/rbac.py renders.
    for name, index in ((rbac.CLUSTER_ROLE, 1), (rbac.NAMESPACED_ROLE, 3)):
        role = control_plane.kubectl_run("get", "clusterrole", name, "-o", "json")
        rendered = rbac.render()[index]["rules"]
        assert [
            {k: r.get(k, []) for k in ("apiGroups", "resources", "verbs")} for r in json.loads(role)["rules"]
        ] == rendered


async def test_ipam_token_has_exactly_its_own_role(control_plane: ControlPlane, kube_namespace: str) -> None:
    """`kubevip ipam` runs as its own ServiceAccount (the lab uses it instead of system:masters)."""
    api = await api_client(control_plane.ipam_kubeconfig)
    try:
        core, coord = client.CoreV1Api(api), client.CoordinationV1Api(api)
        assert await status_of(core.list_service_for_all_namespaces()) == 200
        assert await status_of(core.list_node()) == 200
        assert await status_of(core.list_namespaced_config_map(rbac.NAMESPACE)) == 200
        assert await status_of(core.list_namespaced_config_map(kube_namespace)) == 403
        assert await status_of(core.list_secret_for_all_namespaces()) == 403
        lease = {"metadata": {"name": "x"}, "spec": {"holderIdentity": "n1"}}
        assert await status_of(coord.create_namespaced_lease(kube_namespace, lease)) == 403
        assert await status_of(core.patch_namespaced_service_status(
            "kubernetes", "default", {"status": {}})) == 403
    finally:
        await api.close()


def test_metrics_count_requests(control_plane: ControlPlane) -> None:
    text = control_plane.metrics_text()
    assert "apiserver_request_total{" in text


async def test_pod_status_keeps_the_given_ip_order(kube_admin: client.ApiClient, kube_namespace: str) -> None:
    ns = kube_namespace
    await pods.create_node(kube_admin, f"{ns}-n")
    v6, v4 = ipaddress.IPv6Address("fd00:10:244:9::9"), ipaddress.IPv4Address("10.244.9.9")
    pod = await pods.create_pod(kube_admin, ns, "p", f"{ns}-n", {"a": "b"}, [v6, v4])
    assert pod["status"]["podIP"] == str(v6)
    assert [p["ip"] for p in pod["status"]["podIPs"]] == [str(v6), str(v4)]
    assert pod["status"]["phase"] == "Running"
    await pods.delete_pod(kube_admin, ns, "p")
    with pytest.raises(client.ApiException) as err:
        await client.CoreV1Api(kube_admin).read_namespaced_pod("p", ns)
    assert err.value.status == 404


def test_apiserver_stop_and_restart_keeps_the_data(control_plane: ControlPlane) -> None:
    control_plane.kubectl_run("create", "configmap", "survivor", "-n", "default")
    try:
        control_plane.stop_apiserver()
        assert not control_plane.ready()
        assert "kube-apiserver" not in control_plane.pids
        control_plane.start_apiserver()
        assert control_plane.ready()
        assert "survivor" in control_plane.kubectl_run("get", "configmap", "survivor", "-n", "default")
    finally:
        control_plane.kubectl_run("delete", "configmap", "survivor", "-n", "default", "--ignore-not-found")


def test_a_dying_process_is_named_with_its_log(control_plane: ControlPlane, tmp_path: Path) -> None:
    # Two IPv4 service ranges are not dual-stack: kube-apiserver refuses to start.
    broken = ControlPlane(
        control_plane.bin_dir,
        tmp_path / "broken",
        service_cidrs=(ipaddress.ip_network("10.96.0.0/16"), ipaddress.ip_network("10.97.0.0/16")),
        start_timeout=60,
    )
    with pytest.raises(
        LabError, match=r"kube-apiserver exited with code \d+ during start; last lines"
    ) as err:
        broken.start()
    assert "service-cluster-ip-range" in str(err.value) or "dual" in str(err.value).lower()
    assert broken.pids == {}
