"""`kubevip manifest`: DaemonSet and static Pod carry host networking, NET_ADMIN/NET_RAW and kube-vip env."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kubevip.cli import main
from kubevip.manifests import daemonset, pod, rbac
from kubevip.manifests.agent import AgentOptions


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_daemonset_shape() -> None:
    ds = daemonset.render(AgentOptions(interface="eth1"))
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["serviceAccountName"] == rbac.SERVICE_ACCOUNT
    c = spec["containers"][0]
    assert set(c["securityContext"]["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}
    env = _env(c)
    assert env["svc_enable"] == "true" and env["vip_arp"] == "true" and env["vip_interface"] == "eth1"
    assert env["vip_nodename"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_pod_mounts_kubeconfig() -> None:
    p = pod.render(AgentOptions(), "/etc/kubernetes/super-admin.conf")
    assert p["spec"]["hostNetwork"] is True
    assert p["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"
    assert _env(p["spec"]["containers"][0])["KUBECONFIG"] == "/etc/kubernetes/admin.conf"


@pytest.mark.parametrize("kind", ["daemonset", "pod", "rbac", "ipam-rbac"])
def test_cli_renders_valid_yaml(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", kind, "--env", "vip_arpRate=1000"]) == 0
    docs = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert docs
    kinds = {d["kind"] for d in docs}
    assert (
        kinds
        == {
            "daemonset": {"DaemonSet"},
            "pod": {"Pod"},
            "rbac": {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding"},
            "ipam-rbac": {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "RoleBinding"},
        }[kind]
    )
    if not kind.endswith("rbac"):
        c = (docs[0]["spec"].get("template", {}).get("spec") or docs[0]["spec"])["containers"][0]
        assert _env(c)["vip_arpRate"] == "1000"


def test_bgp_passwords_from_a_secret(capsys: pytest.CaptureFixture[str]) -> None:
    """`--secret-env bgp_peers=kubevip-bgp:bgp_peers`: the manifest names the Secret, holds no password."""
    assert main(["manifest", "daemonset", "--secret-env", "bgp_peers=kubevip-bgp:peers",
                 "--env", "bgp_enable=true"]) == 0
    ds = yaml.safe_load(capsys.readouterr().out)
    env = _env(ds["spec"]["template"]["spec"]["containers"][0])
    assert env["bgp_peers"] == {"secretKeyRef": {"name": "kubevip-bgp", "key": "peers"}}
    assert main(["manifest", "daemonset", "--secret-env", "bgp_peers"]) == 2
    assert "NAME=SECRET:KEY" in capsys.readouterr().err


@pytest.mark.parametrize("render", [lambda: daemonset.render(AgentOptions())["spec"]["template"]["spec"],
                                    lambda: pod.render(AgentOptions())["spec"]])
def test_pods_are_hardened(render: Any) -> None:
    spec = render()
    c = spec["containers"][0]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} == spec["securityContext"]["seccompProfile"]
    assert sc["capabilities"] == {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"])


def test_metrics_bind_to_the_node_address_not_every_vip() -> None:
    """With host networking ":2112" answered on every VIP: the manifest binds to status.hostIP."""
    env = AgentOptions().env()
    names = [e["name"] for e in env]
    assert names.index("KUBEVIP_HOST_IP") < names.index("prometheus_server")  # $(VAR) needs it first
    assert _env({"env": env})["KUBEVIP_HOST_IP"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert _env({"env": env})["prometheus_server"] == "$(KUBEVIP_HOST_IP):2112"
    assert _env({"env": AgentOptions(prometheus_server="127.0.0.1:9000").env()})["prometheus_server"] == (
        "127.0.0.1:9000")
