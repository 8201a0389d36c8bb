"""The least-privilege RBAC kube-vip needs, as data, and its rendering into Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

# Names kube-vip's own manifests use, so an operator can switch implementations without new RBAC.
CLUSTER_ROLE = "system:kube-vip-role"
CLUSTER_ROLE_BINDING = "system:kube-vip-binding"
SERVICE_ACCOUNT = "kube-vip"
NAMESPACE = "kube-system"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule plus the reason the agent needs it (kept next to the grant so it can be audited)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str


READ = ("get", "list", "watch")

RULES: tuple[Rule, ...] = (
    Rule(("",), ("services",), (*READ, "patch", "update"), "read Services, write kube-vip.io/* annotations"),
    Rule(("",), ("services/status",), ("get", "patch", "update"), "publish status.loadBalancer.ingress"),
    Rule(("discovery.k8s.io",), ("endpointslices",), READ, "endpoints per family (default)"),
    Rule(("",), ("endpoints",), READ, "legacy Endpoints (enable_endpoints=true)"),
    Rule(("",), ("nodes",), (*READ, "patch"), "placement, BGP peers from annotations; kubevip.io/network"),
    Rule(
        ("coordination.k8s.io",),
        ("leases",),
        (*READ, "create", "update", "patch", "delete"),
        "leader election (control plane, all Services, per Service); scalable mode deletes the claim"
        " Leases of deleted Services",
    ),
    Rule(("", "events.k8s.io"), ("events",), ("create", "patch", "update"), "Warning Events on bad input"),
)


def service_account_username(namespace: str = NAMESPACE, name: str = SERVICE_ACCOUNT) -> str:
    """The user name the API server gives the ServiceAccount's tokens (bindings match on it)."""
    return f"system:serviceaccount:{namespace}:{name}"


def render(
    rules: tuple[Rule, ...] = RULES, namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT
) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding objects, in apply order."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_ROLE},
            "rules": [
                {"apiGroups": list(r.api_groups), "resources": list(r.resources), "verbs": list(r.verbs)}
                for r in rules
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CLUSTER_ROLE_BINDING},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": CLUSTER_ROLE},
            "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
        },
    ]


def render_yaml(
    rules: tuple[Rule, ...] = RULES, namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT
) -> str:
    """The objects of `render` as one multi-document YAML stream."""
    return yaml.safe_dump_all(render(rules, namespace, service_account), sort_keys=False)
