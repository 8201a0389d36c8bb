"""What every agent manifest shares: the container, its env (kube-vip names) and its capabilities."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubevip import __version__
from kubevip.manifests.rbac import NAMESPACE, SERVICE_ACCOUNT

DEFAULT_IMAGE = f"kubevip:{__version__}"
HOST_IP_ENV = "KUBEVIP_HOST_IP"
# A writable /tmp under readOnlyRootFilesystem (memory-backed, small).
TMP_VOLUME: dict[str, Any] = {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
__all__ = ["DEFAULT_IMAGE", "NAMESPACE", "SERVICE_ACCOUNT", "TMP_VOLUME", "AgentOptions"]


@dataclass(frozen=True)
class AgentOptions:
    """Operator choices that end up as env vars of the agent container."""

    image: str = DEFAULT_IMAGE
    namespace: str = NAMESPACE
    interface: str = ""
    services_interface: str = ""
    arp: bool = True
    leader_election: bool = True
    svc_election: bool = False
    lb_class_only: bool = False
    lb_class_name: str = ""
    enable_endpoints: bool = False
    prometheus_server: str = ":2112"
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # (env name, Secret name, key): values such as bgp_peers (passwords) come from a Secret, never
    # written into the manifest.
    secret_env: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)

    def env(self) -> list[dict[str, Any]]:
        """The container env: node name from the downward API, then kube-vip's variables."""
        out: list[dict[str, Any]] = [
            {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "svc_enable", "value": "true"},
            {"name": "vip_arp", "value": _b(self.arp)},
            {"name": "vip_leaderelection", "value": _b(self.leader_election)},
            {"name": "svc_election", "value": _b(self.svc_election)},
        ]
        listen = self.prometheus_server
        if listen.startswith(":"):
            # With host networking ":2112" would answer on every address of the node, every VIP included:
            # bind to the node's own address (the kubelet expands $(VAR) from the env listed before it).
            out.append({"name": HOST_IP_ENV, "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}})
            listen = f"$({HOST_IP_ENV}){listen}"
        out.append({"name": "prometheus_server", "value": listen})
        if self.interface:
            out.append({"name": "vip_interface", "value": self.interface})
        if self.services_interface:
            out.append({"name": "vip_servicesinterface", "value": self.services_interface})
        if self.lb_class_only:
            out.append({"name": "lb_class_only", "value": "true"})
        if self.lb_class_name:
            out.append({"name": "lb_class_name", "value": self.lb_class_name})
        if self.enable_endpoints:
            out.append({"name": "enable_endpoints", "value": "true"})
        out.extend({"name": k, "value": v} for k, v in self.extra_env)
        out.extend(
            {"name": k, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for k, secret, key in self.secret_env
        )
        return out

    def container(self, args: list[str] | None = None) -> dict[str, Any]:
        """The agent container: NET_ADMIN (addresses, routes, nftables packet rules) and NET_RAW (ARP/NA)."""
        return {
            "name": "kube-vip",
            "image": self.image,
            "imagePullPolicy": "IfNotPresent",
            "args": args or ["manager"],
            "env": self.env(),
            "securityContext": {
                "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            # The only writes: ExaBGP's private runtime directory and PEM files of inline client
            # certificates, both under the temporary directory.
            "volumeMounts": [{"name": TMP_VOLUME["name"], "mountPath": "/tmp"}],
            "livenessProbe": _probe(self.prometheus_server),
            "resources": {"requests": {"cpu": "20m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        }


def _b(v: bool) -> str:
    return "true" if v else "false"


def _probe(listen: str) -> dict[str, Any]:
    port = int(listen.rpartition(":")[2] or 2112)
    return {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 10, "failureThreshold": 3}
