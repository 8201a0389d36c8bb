"""`kubevip migrate check` on manifests rendered by upstream kube-vip's own `kube-vip manifest` (built by
bench/peers/kube-vip/build.sh), several flag combinations; plus the rules on small inputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevip.cli import main
from kubevip.config import AgentConfig
from tests.fixtures.kube_vip import kube_vip_binary

__all__ = ["kube_vip_binary"]  # the fixture, used by name

COMMON = ["--interface", "eth0"]
# (name, kube-vip manifest arguments, does a swap change behaviour?)
COMBINATIONS: list[tuple[str, list[str], bool]] = [
    ("arp-services-ds", ["daemonset", *COMMON, "--services", "--arp", "--leaderElection", "--inCluster"],
     False),
    ("arp-services-election-ds", ["daemonset", *COMMON, "--services", "--servicesElection", "--arp",
                                  "--leaderElection", "--inCluster", "--taint"], False),
    ("bgp-services-ds", ["daemonset", "--interface", "lo", "--services", "--bgp", "--localAS", "65000",
                         "--bgpRouterID", "192.0.2.1", "--bgppeers",
                         "192.0.2.2:65001::false,[2001:db8::2]:65001::false", "--inCluster"], False),
    ("arp-cp-pod", ["pod", *COMMON, "--address", "192.0.2.10", "--controlplane", "--arp",
                    "--leaderElection"], False),
    ("arp-cp-services-pod", ["pod", *COMMON, "--address", "192.0.2.10", "--controlplane", "--services",
                             "--arp", "--leaderElection"], False),
    ("table-services-ds", ["daemonset", *COMMON, "--services", "--table", "--tableID", "199", "--tableType",
                           "1", "--inCluster"], False),
    ("bgp-cp-pod", ["pod", "--interface", "lo", "--address", "192.0.2.10", "--controlplane", "--bgp",
                    "--localAS", "65000", "--bgpRouterID", "192.0.2.1", "--bgppeers",
                    "192.0.2.2:65001::false"], False),
    ("bgp-cp-services-pod", ["pod", "--interface", "lo", "--address", "192.0.2.10", "--controlplane",
                             "--services", "--bgp", "--localAS", "65000", "--bgpRouterID", "192.0.2.1",
                             "--bgppeers", "192.0.2.2:65001::false"], False),
    ("arp-services-labels-ds", ["daemonset", *COMMON, "--services", "--arp", "--leaderElection",
                                "--inCluster", "--enableNodeLabeling"], True),
]


def _render(binary: Path, args: list[str]) -> str:
    res = subprocess.run([str(binary), "manifest", *args], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    return res.stdout


def _env(manifest: str) -> dict[str, str]:
    obj: dict[str, Any] = yaml.safe_load(manifest)
    spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    env = {e["name"]: str(e.get("value", "")) for e in spec["containers"][0]["env"]}
    env["vip_nodename"] = "node-1"  # the downward API's value
    return env


@pytest.mark.parametrize(("name", "args", "changes"), COMBINATIONS, ids=[c[0] for c in COMBINATIONS])
def test_upstream_manifests(
    name: str, args: list[str], changes: bool, kube_vip_binary: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    manifest = _render(kube_vip_binary, args)
    f = tmp_path / f"{name}.yaml"
    f.write_text(manifest)
    rc = main(["migrate", "check", "-f", str(f), "-o", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == (1 if changes else 0), doc
    assert doc["changes_behaviour"] is changes
    names = {x["name"] for x in doc["findings"]}
    assert "vip_nodename" in names and ("cp_enable" in names or "svc_enable" in names)
    # kube-vip's env needs nothing but the node name: kubevip starts with it (the control plane and the
    # Services in BGP mode too: one shared speaker, as in kube-vip).
    cfg = AgentConfig.load(_env(manifest))
    assert cfg.node_name == "node-1"
    assert cfg.election.services_lease_name == "plndr-svcs-lock"
    if "--enableNodeLabeling" in args:
        flagged = [x["name"] for x in doc["findings"] if x["changes_behaviour"]]
        assert flagged == ["enable_node_labeling"]


def test_text_output_and_a_list_with_services(kube_vip_binary: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    ds = yaml.safe_load(_render(kube_vip_binary, COMBINATIONS[0][1]))
    ann = {"kube-vip.io/loadbalancerIPs": "192.0.2.20", "kube-vip.io/forwardUPNP": "true",
           "kube-vip.io/leaseName": "shared", "kube-vip.io/bgp-communities": "65000:1"}
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "team", "annotations": ann}}
    f = tmp_path / "list.yaml"
    f.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [ds, svc]}))
    assert main(["migrate", "check", "-f", str(f)]) == 1
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "kube-vip.io/forwardUPNP=" in ln)
    assert line.startswith("CHANGES") and "ignored" in line and "Service team/web" in line
    assert any(ln.startswith("ok") and "kube-vip.io/leaseName=shared" in ln for ln in out.splitlines())
    assert "would change behaviour" in out.splitlines()[-1]


def test_values_from_secrets_and_unknown_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kv", "namespace": "kube-system"},
           "spec": {"containers": [{"name": "kube-vip", "env": [
               {"name": "bgp_peerpass", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
               {"name": "zebra_url", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}},
               {"name": "NODE_NAME", "value": "x"}, {"name": "vip_electionmode", "value": "scalable"}]}]}}
    f = tmp_path / "pod.yaml"
    f.write_text("---\n" + yaml.safe_dump(pod) + "---\n")
    assert main(["migrate", "check", "-f", str(f), "-o", "json"]) == 1
    found = {x["name"]: x for x in json.loads(capsys.readouterr().out)["findings"]}
    assert found["bgp_peerpass"]["value"] == "(from secretKeyRef)"
    assert not found["bgp_peerpass"]["changes_behaviour"]
    assert found["zebra_url"]["changes_behaviour"]  # unknown value of an ignored setting: assume it matters
    assert found["NODE_NAME"]["status"] == "not-a-setting"
    assert found["vip_electionmode"]["status"] == "kubevip-only"


def test_bad_input_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("a: [")
    assert main(["migrate", "check", "-f", str(f)]) == 2
    assert str(f) in capsys.readouterr().err
    assert main(["migrate", "check", "-f", str(tmp_path / "missing.yaml")]) == 2


def test_broken_yaml_never_quotes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """PyYAML's own message quotes the offending line: a password on it must not reach the error."""
    f = tmp_path / "pod.yaml"
    f.write_text("kind: Pod\nspec:\n  env:\n  - {name: bgp_peerpass, value: s3cr3t-pw: [\n")
    assert main(["migrate", "check", "-f", str(f)]) == 2
    err = capsys.readouterr().err
    assert str(f) in err and "line 4, column" in err and "s3cr3t" not in err, err


def test_passwords_never_reach_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kv"}, "spec": {"containers": [
        {"name": "kube-vip", "env": [
            {"name": "bgp_peerpass", "value": "s3cret-1"},
            {"name": "bgp_peers", "value": "192.0.2.2:65001:s3cret-2:false,[2001:db8::2]:65001:s3cret-3"}]}]}}
    f = tmp_path / "pod.yaml"
    f.write_text(yaml.safe_dump(pod))
    for fmt in ("text", "json"):
        main(["migrate", "check", "-f", str(f), "-o", fmt])
        out = capsys.readouterr().out
        assert "s3cret" not in out and "(redacted)" in out
        assert "192.0.2.2:65001:(redacted):false" in out and "[2001:db8::2]:65001:(redacted)" in out


def test_control_plane_and_services_over_bgp_with_annotated_peers_is_flagged() -> None:
    from kubevip.migrate import combinations

    env = {"cp_enable": "true", "svc_enable": "true", "bgp_enable": "true", "bgp_peers": "192.0.2.2:65001"}
    assert combinations("pod kv", env) == []  # one shared speaker, as in kube-vip
    flagged = combinations("pod kv", {**env, "annotation": "bgp.example.com"})
    assert [(f.name, f.status, f.changes_behaviour) for f in flagged] == [
        ("cp_enable+bgp_enable+svc_enable+annotation", "refused", True)]
    with pytest.raises(Exception, match="annotation"):
        AgentConfig.load({"vip_nodename": "n", "address": "192.0.2.10", **env,
                          "annotation": "bgp.example.com"})
