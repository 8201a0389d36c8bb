"""The kube-vip ClusterRole: exactly the grants the agent needs, nothing cluster-admin-like."""

from __future__ import annotations

import yaml

from kubevip.manifests import rbac


def test_render_is_serviceaccount_role_binding_and_binding_points_at_both() -> None:
    sa, role, binding, leases, lease_binding = rbac.render()
    kinds = (sa["kind"], role["kind"], binding["kind"], leases["kind"], lease_binding["kind"])
    assert kinds == ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ClusterRole", "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == rbac.CLUSTER_ROLE
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": sa["metadata"]["namespace"]}]
    # Lease writes only in the lease namespace: a RoleBinding there to the namespaced role
    assert lease_binding["roleRef"]["name"] == leases["metadata"]["name"] == rbac.NAMESPACED_ROLE
    assert lease_binding["metadata"]["namespace"] == "kube-system"
    assert lease_binding["subjects"] == binding["subjects"]
    assert rbac.render(lease_namespace="vips")[4]["metadata"]["namespace"] == "vips"
    assert rbac.render(cluster_wide_leases=True)[4]["kind"] == "ClusterRoleBinding"


def test_leases_are_not_granted_cluster_wide() -> None:
    for r in rbac.RULES:
        assert "leases" not in r.resources and "configmaps" not in r.resources
    assert any("leases" in r.resources for r in rbac.NAMESPACED_RULES)


def test_only_the_verbs_the_code_uses() -> None:
    """No `update` of Services or their status, no Event patch/update, no events.k8s.io, no Node patch,
    no Lease patch (the code PATCHes Services and status, POSTs Events, PUTs Leases)."""
    verbs = {(g, res): set(r.verbs) for r in (*rbac.RULES, *rbac.NAMESPACED_RULES)
             for g in r.api_groups for res in r.resources}
    assert verbs[("", "services")] == {"get", "list", "watch", "patch"}
    assert verbs[("", "services/status")] == {"patch"}
    assert verbs[("", "events")] == {"create"}
    assert verbs[("", "nodes")] == {"list", "watch"}
    assert "patch" not in verbs[("coordination.k8s.io", "leases")]
    assert ("events.k8s.io", "events") not in verbs


def test_ipam_has_its_own_smaller_role() -> None:
    sa, role, binding, cm_role, cm_binding = rbac.render_ipam()
    assert sa["metadata"]["name"] == rbac.IPAM_SERVICE_ACCOUNT
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == rbac.IPAM_CLUSTER_ROLE
    assert cm_binding["kind"] == "RoleBinding" and cm_binding["metadata"]["namespace"] == "kube-system"
    assert cm_binding["roleRef"]["name"] == cm_role["metadata"]["name"] == rbac.IPAM_NAMESPACED_ROLE
    resources = {res for r in rbac.IPAM_RULES for res in r.resources}
    assert resources == {"services", "nodes", "servicecidrs", "events"}
    assert "status" not in str(role["rules"]) and "leases" not in str(role["rules"])


def test_no_wildcards_no_secrets_no_writes_to_endpoints() -> None:
    for r in (*rbac.RULES, *rbac.NAMESPACED_RULES, *rbac.IPAM_RULES, *rbac.IPAM_NAMESPACED_RULES):
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
