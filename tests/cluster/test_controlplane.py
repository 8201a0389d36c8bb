"""The lab control plane itself: RBAC of the kube-vip token, metrics, apiserver restart, failure reports."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from kubevip.errors import LabError
from kubevip.lab import pods
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
    control_plane: ControlPlane, kube_kubevip: client.ApiClient, kube_namespace: str
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
    # The cluster's role is literally what manifests/rbac.py renders.
    role = control_plane.kubectl_run("get", "clusterrole", rbac.CLUSTER_ROLE, "-o", "json")
    assert '"verbs"' in role
    rendered = rbac.render()[1]["rules"]
    assert [
        {k: r.get(k, []) for k in ("apiGroups", "resources", "verbs")} for r in json.loads(role)["rules"]
    ] == rendered


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
