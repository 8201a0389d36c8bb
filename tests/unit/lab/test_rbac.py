"""The kube-vip ClusterRole: exactly the grants the agent needs, nothing cluster-admin-like."""

from __future__ import annotations

import yaml

from kubevip.manifests import rbac


def test_render_is_serviceaccount_role_binding_and_binding_points_at_both() -> None:
    sa, role, binding = rbac.render()
    kinds = (sa["kind"], role["kind"], binding["kind"])
    assert kinds == ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == rbac.CLUSTER_ROLE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]


def test_no_wildcards_no_secrets_no_writes_to_endpoints() -> None:
    for r in rbac.RULES:
        assert "*" not in r.verbs and "*" not in r.resources and "*" not in r.api_groups
        assert "secrets" not in r.resources
        assert r.why
        if {"endpoints", "endpointslices"} & set(r.resources):
            assert set(r.verbs) <= {"get", "list", "watch"}


def test_yaml_round_trips() -> None:
    docs = list(yaml.safe_load_all(rbac.render_yaml(namespace="other")))
    assert docs == rbac.render(namespace="other")
    assert docs[0]["metadata"]["namespace"] == "other"


def test_service_account_user_name() -> None:
    assert rbac.service_account_username() == "system:serviceaccount:kube-system:kube-vip"
