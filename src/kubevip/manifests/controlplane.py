"""The control-plane static Pod (`kubevip manifest pod --controlplane`) for kubeadm control-plane nodes.

kubeadm init on Kubernetes 1.29+: mount `/etc/kubernetes/super-admin.conf` (admin.conf's RBAC binding
does not exist until init has created it); after init, and on every `kubeadm join --control-plane`
node, mount `/etc/kubernetes/admin.conf`. See docs/controlplane.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubevip.manifests import pod
from kubevip.manifests.agent import AgentOptions

SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
ADMIN_CONF = pod.ADMIN_CONF


@dataclass(frozen=True)
class ControlPlaneOptions:
    """The control-plane part of the static Pod: VIP(s), port and whether Services run in it too."""

    address: str
    port: int = 6443
    dns_mode: str = ""
    services: bool = False
    kubeconfig: str = ADMIN_CONF


def render(opts: AgentOptions, cp: ControlPlaneOptions) -> dict[str, Any]:
    """The static Pod: the shared agent container with cp_enable, the VIP and the host's kubeconfig."""
    obj = pod.render(opts, cp.kubeconfig)
    container = obj["spec"]["containers"][0]
    env = [e for e in container["env"] if e["name"] != "svc_enable"]
    env[1:1] = [
        {"name": "cp_enable", "value": "true"},
        {"name": "address", "value": cp.address},
        {"name": "port", "value": str(cp.port)},
        {"name": "svc_enable", "value": "true" if cp.services else "false"},
        {"name": "vip_leasename", "value": "plndr-cp-lock"},
    ]
    if cp.dns_mode:
        env.insert(3, {"name": "dns_mode", "value": cp.dns_mode})
    container["env"] = env
    # The agent must run even while the API server it guards is down: never evicted, never preempted.
    obj["spec"]["priorityClassName"] = "system-node-critical"
    obj["metadata"]["labels"] = {"app.kubernetes.io/name": "kube-vip", "component": "kube-vip-controlplane"}
    return obj


def render_yaml(args: Any, opts: AgentOptions) -> str:
    """`kubevip manifest pod --controlplane ...` (argparse namespace from commands/manifest.py)."""
    from kubevip import yamlout
    from kubevip.controlplane.resolve import parse_addresses
    from kubevip.errors import ConfigError

    if args.kind != "pod":
        raise ConfigError("--controlplane", args.kind, "the control-plane VIP runs as a static Pod: use "
                          "`kubevip manifest pod --controlplane`")
    if not parse_addresses(args.address, "--address"):
        raise ConfigError("--address", args.address, "the control-plane VIP is required, e.g. "
                          "--address 192.0.2.10,2001:db8::10")
    cp = ControlPlaneOptions(args.address, args.port, args.dns_mode, args.services, args.kubeconfig)
    return yamlout.dump(render(opts, cp))
