"""docs/security.md's ValidatingAdmissionPolicy, applied as written to the lab's API server: a tenant
(namespace rights only) may name VIPs only inside its namespace's `kube-vip.io/allowed-cidrs`."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client

from kubevip import yamlout
from kubevip.lab.client import api_client
from kubevip.lab.controlplane import ControlPlane
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.cluster

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def policy_documents() -> list[dict[str, Any]]:
    """The YAML block of the section "Restricting addresses per namespace", parsed."""
    text = DOC.read_text()
    section = text[text.index("## Restricting addresses per namespace"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None, "docs/security.md lost its policy example"
    return [d for d in yaml.safe_load_all(block.group(1)) if d]


def test_the_documented_policy_parses() -> None:
    policy, binding = policy_documents()
    assert policy["kind"] == "ValidatingAdmissionPolicy"
    assert binding["kind"] == "ValidatingAdmissionPolicyBinding"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]


def lb(name: str, vips: str | None = None, lb_ip: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if vips is not None:
        meta["annotations"] = {"kube-vip.io/loadbalancerIPs": vips}
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80}],
                            "allocateLoadBalancerNodePorts": False}
    if lb_ip is not None:
        spec["loadBalancerIP"] = lb_ip
    return {"metadata": meta, "spec": spec}


@pytest.fixture
async def restricted(control_plane: ControlPlane, kube_admin: client.ApiClient) -> AsyncIterator[str]:
    """The documented policy, its binding narrowed to this test's namespace (other tests share the API
    server), and a namespace annotated with its CIDRs."""
    tag = secrets.token_hex(3)
    ns = f"kvt-vap-{tag}"
    policy, binding = policy_documents()
    policy["metadata"]["name"] = binding["spec"]["policyName"] = f"{policy['metadata']['name']}-{tag}"
    binding["metadata"]["name"] = f"{binding['metadata']['name']}-{tag}"
    binding["spec"]["matchResources"] = {"namespaceSelector": {"matchLabels": {"kvt-vap": tag}}}
    core = client.CoreV1Api(kube_admin)
    await core.create_namespace({"metadata": {
        "name": ns, "labels": {"kvt-vap": tag},
        "annotations": {"kube-vip.io/allowed-cidrs": "192.0.2.0/28, 2001:db8:1::/120"},
    }})
    control_plane.kubectl_run("apply", "-f", "-", stdin=yamlout.dump_all([policy, binding]))
    try:
        yield ns
    finally:
        control_plane.kubectl_run("delete", "validatingadmissionpolicybinding", binding["metadata"]["name"])
        control_plane.kubectl_run("delete", "validatingadmissionpolicy", policy["metadata"]["name"])
        await core.delete_namespace(ns)


async def tenant(control_plane: ControlPlane, kube_admin: client.ApiClient, ns: str) -> client.ApiClient:
    rbac = client.RbacAuthorizationV1Api(kube_admin)
    await client.CoreV1Api(kube_admin).create_namespaced_service_account(ns, {"metadata": {"name": "tenant"}})
    await rbac.create_namespaced_role(ns, {"metadata": {"name": "edit-services"}, "rules": [
        {"apiGroups": [""], "resources": ["services"],
         "verbs": ["create", "update", "patch", "delete", "get", "list"]},
    ]})
    await rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "tenant"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "edit-services"},
        "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": ns}],
    })
    api = await api_client(control_plane.admin_kubeconfig)
    api.set_default_header("Impersonate-User", f"system:serviceaccount:{ns}:tenant")
    api.set_default_header("Impersonate-Group", "system:serviceaccounts")
    return api


async def status_of(call: Any) -> tuple[int, str]:
    try:
        await call
    except client.ApiException as exc:
        return int(exc.status), str(exc.body)
    return 200, ""


async def test_a_tenant_may_name_only_its_namespaces_cidrs(
    control_plane: ControlPlane, kube_admin: client.ApiClient, restricted: str,
) -> None:
    ns = restricted
    api = await tenant(control_plane, kube_admin, ns)
    try:
        core = client.CoreV1Api(api)
        # A policy is enforced shortly after it is created (the API server's informer): wait for that.
        async def denied() -> tuple[int, str] | None:
            got = await status_of(core.create_namespaced_service(ns, lb(f"probe-{secrets.token_hex(2)}",
                                                                        "10.0.0.1")))
            return got if got[0] != 200 else None

        code, body = await eventually(denied, "the policy denies an address outside the namespace's CIDRs")
        assert code in (403, 422) and "kube-vip.io/allowed-cidrs" in body, body
        assert (await status_of(core.create_namespaced_service(
            ns, lb("ok", "192.0.2.3, 2001:db8:1::9"))))[0] == 200
        assert (await status_of(core.create_namespaced_service(ns, lb("plain"))))[0] == 200
        for name, vips, lb_ip in (
            ("gateway", "192.0.2.3,10.0.0.1", None),  # one entry outside is enough
            ("junk", "not-an-ip", None),
            ("spec", None, "198.51.100.7"),  # spec.loadBalancerIP is no way around it
            ("v6", "2001:db8:2::1", None),
        ):
            code, body = await status_of(core.create_namespaced_service(ns, lb(name, vips, lb_ip)))
            assert code in (403, 422), (name, code)
        # Nor is an update: the existing Service cannot be moved outside.
        patch = {"metadata": {"annotations": {"kube-vip.io/loadbalancerIPs": "203.0.113.1"}}}
        assert (await status_of(core.patch_namespaced_service("ok", ns, patch)))[0] in (403, 422)
        # The tenant cannot widen its own list: Namespaces are not theirs to edit.
        widen = {"metadata": {"annotations": {"kube-vip.io/allowed-cidrs": "0.0.0.0/0"}}}
        assert (await status_of(core.patch_namespace(ns, widen)))[0] == 403
    finally:
        await api.close()
