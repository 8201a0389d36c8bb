"""The DaemonSet an operator applies to run the agent on every node (in-cluster credentials)."""

from __future__ import annotations

from typing import Any

from kubevip.manifests.agent import SERVICE_ACCOUNT, TMP_VOLUME, AgentOptions


def render(opts: AgentOptions) -> dict[str, Any]:
    """A DaemonSet with host networking, bound to the least-privilege `kube-vip` ServiceAccount."""
    labels = {"app.kubernetes.io/name": "kube-vip-ds"}
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": "kube-vip-ds", "namespace": opts.namespace, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": dict(labels)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "hostNetwork": True,
                    "serviceAccountName": SERVICE_ACCOUNT,
                    # Withdraw + release happen at SIGTERM; leave time for both.
                    "terminationGracePeriodSeconds": 10,
                    "tolerations": [{"effect": "NoSchedule", "operator": "Exists"},
                                    {"effect": "NoExecute", "operator": "Exists"}],
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [opts.container()],
                    "volumes": [TMP_VOLUME],
                },
            },
        },
    }
