"""kubevip's own REST client against the real API server: list, watch, status codes as responses, a token
file next to the kubeconfig, and the serving certificate checked through certificate-authority."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes_asyncio import client

from kubevip.kube.client import connect
from kubevip.kube.rest import RestClient
from kubevip.lab.controlplane import ControlPlane

pytestmark = pytest.mark.cluster


async def body(resp: aiohttp.ClientResponse) -> tuple[int, dict[str, Any]]:
    try:
        return resp.status, json.loads(await resp.read())
    finally:
        resp.release()


async def test_lists_and_watches_services(
    kube_admin: client.ApiClient, rest_kubevip: RestClient, kube_namespace: str
) -> None:
    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    path = f"/api/v1/namespaces/{ns}/services"
    status, listed = await body(await rest_kubevip.request("GET", path))
    assert status == 200 and listed["items"] == []
    rv = listed["metadata"]["resourceVersion"]
    resp = await rest_kubevip.request(
        "GET", path, query={"watch": True, "resourceVersion": rv, "allowWatchBookmarks": True,
                            "timeoutSeconds": 30},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=30),
    )
    try:
        assert resp.status == 200
        await core.create_namespaced_service(
            ns, {"metadata": {"name": "w"}, "spec": {"ports": [{"port": 80}]}}
        )
        async for line in resp.content:  # the first event after rv is our Service
            event = json.loads(line)
            assert (event["type"], event["object"]["metadata"]["name"]) == ("ADDED", "w")
            break
    finally:
        resp.release()
    status, got = await body(await rest_kubevip.request("GET", f"{path}/w"))
    assert status == 200 and got["kind"] == "Service"


async def test_errors_come_back_as_responses(rest_kubevip: RestClient, kube_namespace: str) -> None:
    status, got = await body(await rest_kubevip.request("GET", f"/api/v1/namespaces/{kube_namespace}/"
                                                                "services/missing"))
    assert status == 404 and got["reason"] == "NotFound"
    # kube-vip's RBAC grants no Secrets: 403, not an exception.
    status, got = await body(await rest_kubevip.request("GET", "/api/v1/secrets"))
    assert status == 403 and got["reason"] == "Forbidden"


def _kubeconfig(directory: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }
    directory.mkdir()
    path = directory / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_token_file_and_certificate_authority(control_plane: ControlPlane, tmp_path: Path) -> None:
    ca = control_plane.state_dir / "pki" / "apiserver.crt"  # self-signed: the bundle holds its CA
    cluster = {"server": control_plane.url, "certificate-authority": str(ca),
               "tls-server-name": "kubernetes.default.svc"}
    good = _kubeconfig(tmp_path / "good", cluster, {"tokenFile": "token"})  # relative: next to the file
    (tmp_path / "good" / "token").write_text(control_plane.kubevip_token + "\n")
    async with await connect(good) as api:
        status, got = await body(await api.request("GET", "/api/v1/namespaces/default/services"))
        assert status == 200, got
    wrong = _kubeconfig(tmp_path / "wrong", {**cluster, "tls-server-name": "not-the-apiserver"},
                        {"token": control_plane.kubevip_token})
    async with await connect(wrong) as api:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await api.request("GET", "/api/v1/namespaces/default/services")


async def test_operator_reads_map_errors_and_page(
    kube_admin: client.ApiClient, rest_kubevip: RestClient, kube_namespace: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kube/reads.py (kubevip status, live explain): 404 is None, an error status is the one mapping's
    class naming the path, and a list is read page by page."""
    from kubevip.kube import reads
    from kubevip.kube.errors import ApiError

    ns = kube_namespace
    core = client.CoreV1Api(kube_admin)
    for i in range(5):
        await core.create_namespaced_config_map(ns, {"metadata": {"name": f"r{i}"}})
    path = f"/api/v1/namespaces/{ns}/configmaps"
    assert await reads.get(rest_kubevip, f"{path}/missing") is None
    got = await reads.get(rest_kubevip, f"{path}/r3")
    assert got is not None and got["metadata"]["name"] == "r3"
    monkeypatch.setattr(reads, "PAGE", 2)
    names = {i["metadata"]["name"] for i in await reads.items(rest_kubevip, path)}
    assert {f"r{i}" for i in range(5)} <= names
    with pytest.raises(ApiError) as exc:
        await reads.get(rest_kubevip, path, {"labelSelector": "a in (("})
    assert exc.value.status == 400 and path in str(exc.value)
