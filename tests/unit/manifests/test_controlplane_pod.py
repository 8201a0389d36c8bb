"""`kubevip manifest pod --controlplane`: the static Pod kubeadm runs on control-plane nodes."""

from __future__ import annotations

import pytest
import yaml

from kubevip.cli import build_parser, main
from kubevip.config import AgentConfig
from kubevip.manifests.controlplane import SUPER_ADMIN_CONF


def render(*argv: str) -> dict[str, object]:
    from kubevip.commands.manifest import render as render_args

    doc = yaml.safe_load(render_args(build_parser().parse_args(["manifest", "pod", *argv])))
    assert isinstance(doc, dict)
    return doc


def env_of(doc: dict[str, object]) -> dict[str, str]:
    c = doc["spec"]["containers"][0]  # type: ignore[index]
    return {e["name"]: e.get("value", "<ref>") for e in c["env"]}


def test_static_pod_for_kubeadm_init_mounts_super_admin_conf() -> None:
    doc = render("--controlplane", "--address", "192.0.2.10,2001:db8::10", "--kubeconfig", SUPER_ADMIN_CONF)
    env = env_of(doc)
    assert env["cp_enable"] == "true" and env["svc_enable"] == "false"
    assert env["address"] == "192.0.2.10,2001:db8::10" and env["port"] == "6443"
    assert env["vip_leasename"] == "plndr-cp-lock"
    assert env["KUBECONFIG"] == "/etc/kubernetes/admin.conf"
    spec = doc["spec"]
    assert spec["hostNetwork"] is True  # type: ignore[index]
    assert spec["volumes"][0]["hostPath"]["path"] == SUPER_ADMIN_CONF  # type: ignore[index]
    caps = spec["containers"][0]["securityContext"]["capabilities"]["add"]  # type: ignore[index]
    assert set(caps) == {"NET_ADMIN", "NET_RAW"}


def test_env_of_the_pod_is_a_valid_agent_configuration() -> None:
    doc = render("--controlplane", "--address", "cp.example.com", "--dns-mode", "dual", "--services")
    env = {k: v for k, v in env_of(doc).items() if v != "<ref>"}
    cfg = AgentConfig.load({**env, "vip_nodename": "cp1"})
    assert cfg.services and cfg.control_plane is not None and cfg.control_plane.enabled
    assert cfg.control_plane.dns_mode == "dual"


def test_address_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "pod", "--controlplane"]) == 2
    assert "--address" in capsys.readouterr().err


def test_bgp_static_pod_announces_from_every_node_unless_leader_election_is_asked() -> None:
    base = ("--controlplane", "--address", "192.0.2.10,2001:db8::10", "--interface", "lo", "--bgp",
            "--localAS", "65001", "--bgppeers", "192.0.2.1:65000::false")
    ecmp = env_of(render(*base))
    assert ecmp["bgp_enable"] == "true" and ecmp["vip_leaderelection"] == "false"  # kube-vip's default
    assert ecmp.get("vip_arp", "false") == "false"
    cfg = AgentConfig.load({**ecmp, "vip_nodename": "cp1"})
    assert cfg.bgp and not cfg.election.enabled
    single = env_of(render(*base, "--leaderElection"))
    assert single["vip_leaderelection"] == "true"
