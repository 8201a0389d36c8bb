"""The static Pod for kubeadm control-plane nodes: it reads a kubeconfig from the host."""

from __future__ import annotations

from typing import Any

from kubevip.manifests.agent import TMP_VOLUME, AgentOptions

ADMIN_CONF = "/etc/kubernetes/admin.conf"


def render(opts: AgentOptions, kubeconfig: str = ADMIN_CONF) -> dict[str, Any]:
    """A static Pod; `kubeconfig` is admin.conf, or super-admin.conf during kubeadm init on 1.29+."""
    mount = "/etc/kubernetes/admin.conf"
    container = opts.container()
    container["env"].append({"name": "KUBECONFIG", "value": mount})
    container["volumeMounts"] = [
        *container["volumeMounts"], {"name": "kubeconfig", "mountPath": mount, "readOnly": True},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": opts.namespace},
        "spec": {
            "hostNetwork": True,
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [
                {"name": "kubeconfig", "hostPath": {"path": kubeconfig, "type": "FileOrCreate"}}, TMP_VOLUME,
            ],
        },
    }
