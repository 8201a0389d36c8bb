"""The least-privilege RBAC kube-vip needs, as data, and its rendering into Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubevip import yamlout

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
WATCH = ("list", "watch")

# Cluster-wide: what the agent reads everywhere and the few writes it makes on Services and Events.
# Verbs are exactly the calls the code makes (kube/writers.py, kube/watch.py, kube/clusterfacts.py).
RULES: tuple[Rule, ...] = (
    Rule(("",), ("services",), (*READ, "patch"), "watch Services; merge-patch kube-vip.io/vipHost"),
    Rule(("",), ("services/status",), ("patch",), "publish status.loadBalancer.ingress"),
    Rule(("discovery.k8s.io",), ("endpointslices",), WATCH, "endpoints per family (default)"),
    Rule(("",), ("endpoints",), WATCH, "legacy Endpoints (enable_endpoints=true)"),
    Rule(("",), ("nodes",), WATCH,
         "Nodes' addresses (address policy), labels and cordon (placement), BGP peers from annotations"),
    Rule(("networking.k8s.io",), ("servicecidrs",), WATCH,
         "the address policy refuses ClusterIP ranges as VIPs"),
    Rule(("",), ("events",), ("create",), "Warning and Normal Events about Services"),
)
# Granted only inside the lease namespace (a RoleBinding to this ClusterRole): Lease writes there, and
# the IPAM ConfigMap for vip_allowed_from_pools (by default in the same namespace, kube-system).
NAMESPACED_ROLE = "system:kube-vip-namespaced"
NAMESPACED_BINDING = "system:kube-vip-namespaced"
NAMESPACED_RULES: tuple[Rule, ...] = (
    Rule(
        ("coordination.k8s.io",),
        ("leases",),
        (*READ, "create", "update", "delete"),
        "leader election (control plane, all Services, per Service); scalable mode deletes the claim"
        " Leases of deleted Services",
    ),
    Rule(("",), ("configmaps",), READ, "the IPAM ConfigMap's pools (vip_allowed_from_pools=true)"),
)

# `kubevip ipam`: its own identity, never the agents' (and never system:masters).
IPAM_SERVICE_ACCOUNT = "kube-vip-ipam"
IPAM_CLUSTER_ROLE = "system:kube-vip-ipam-role"
IPAM_CLUSTER_ROLE_BINDING = "system:kube-vip-ipam-binding"
IPAM_NAMESPACED_ROLE = "system:kube-vip-ipam-namespaced"
IPAM_RULES: tuple[Rule, ...] = (
    Rule(("",), ("services",), (*READ, "patch"), "watch Services; write the allocated addresses"),
    Rule(("",), ("nodes",), WATCH, "Nodes' addresses are never allocated"),
    Rule(("networking.k8s.io",), ("servicecidrs",), WATCH, "ClusterIP ranges are never allocated"),
    Rule(("",), ("events",), ("create",), "Warning Events about Services and the ConfigMap"),
)
IPAM_NAMESPACED_RULES: tuple[Rule, ...] = (
    Rule(("",), ("configmaps",), READ, "the pools ConfigMap (KUBEVIP_CONFIG_MAP in KUBEVIP_NAMESPACE)"),
)


def service_account_username(namespace: str = NAMESPACE, name: str = SERVICE_ACCOUNT) -> str:
    """The user name the API server gives the ServiceAccount's tokens (bindings match on it)."""
    return f"system:serviceaccount:{namespace}:{name}"


def _rules(rules: tuple[Rule, ...]) -> list[dict[str, Any]]:
    return [
        {"apiGroups": list(r.api_groups), "resources": list(r.resources), "verbs": list(r.verbs)}
        for r in rules
    ]


def _cluster_role(name: str, rules: tuple[Rule, ...]) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": name},
            "rules": _rules(rules)}


def _binding(kind: str, name: str, role: str, sa_namespace: str, service_account: str,
             namespace: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": sa_namespace}],
    }


def namespaced_binding(
    lease_namespace: str, namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT,
) -> dict[str, Any]:
    """The RoleBinding that lets the agents write Leases (and read the IPAM ConfigMap) in
    `lease_namespace` only; one per namespace the agents elect in (vip_leasenamespace)."""
    return _binding("RoleBinding", NAMESPACED_BINDING, NAMESPACED_ROLE, namespace, service_account,
                    lease_namespace)


def render(
    rules: tuple[Rule, ...] = RULES, namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT,
    lease_namespace: str = "", cluster_wide_leases: bool = False,
) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole + ClusterRoleBinding (cluster-wide reads, Service and Event writes),
    and the namespaced ClusterRole bound in `lease_namespace` (default: `namespace`) only, in apply
    order. `cluster_wide_leases` binds the Lease role everywhere instead: kube-vip's per-Service Leases
    (svc_election=true) live in each Service's namespace."""
    objs = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": service_account, "namespace": namespace}},
        _cluster_role(CLUSTER_ROLE, rules),
        _binding("ClusterRoleBinding", CLUSTER_ROLE_BINDING, CLUSTER_ROLE, namespace, service_account),
        _cluster_role(NAMESPACED_ROLE, NAMESPACED_RULES),
    ]
    if cluster_wide_leases:
        objs.append(_binding("ClusterRoleBinding", NAMESPACED_BINDING, NAMESPACED_ROLE, namespace,
                             service_account))
    else:
        objs.append(namespaced_binding(lease_namespace or namespace, namespace, service_account))
    return objs


def render_ipam(
    namespace: str = NAMESPACE, service_account: str = IPAM_SERVICE_ACCOUNT,
) -> list[dict[str, Any]]:
    """`kubevip ipam`'s own ServiceAccount and roles: cluster-wide Service reads and patches, and the
    pools ConfigMap read in `namespace` only."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": service_account, "namespace": namespace}},
        _cluster_role(IPAM_CLUSTER_ROLE, IPAM_RULES),
        _binding("ClusterRoleBinding", IPAM_CLUSTER_ROLE_BINDING, IPAM_CLUSTER_ROLE, namespace,
                 service_account),
        _cluster_role(IPAM_NAMESPACED_ROLE, IPAM_NAMESPACED_RULES),
        _binding("RoleBinding", IPAM_NAMESPACED_ROLE, IPAM_NAMESPACED_ROLE, namespace, service_account,
                 namespace),
    ]


def render_yaml(
    rules: tuple[Rule, ...] = RULES, namespace: str = NAMESPACE, service_account: str = SERVICE_ACCOUNT,
    lease_namespace: str = "", cluster_wide_leases: bool = False,
) -> str:
    """The objects of `render` as one multi-document YAML stream."""
    return yamlout.dump_all(render(rules, namespace, service_account, lease_namespace, cluster_wide_leases))
