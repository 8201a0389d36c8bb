"""The Helm chart (charts/kubevip): `helm lint`, `helm template` of every example values file applied with
`kubectl apply --dry-run=server` against the session's real API server, and the rendered objects
compared with what `kubevip manifest daemonset|rbac` renders (the chart must not drift from them).

Helm v4 comes from hack/helm/build.sh (built from its Go module, cached outside the clone).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevip import migrate, yamlout
from kubevip.config import SETTINGS
from kubevip.lab.controlplane import ControlPlane
from kubevip.manifests import daemonset, rbac
from kubevip.manifests.agent import AgentOptions
from tests.fixtures.prereqs import require

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts/kubevip"
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


@pytest.fixture(scope="session")
def helm() -> str:
    """KUBEVIP_HELM, else hack/helm/build.sh's cached build (built now if missing; needs Go)."""
    path = os.environ.get("KUBEVIP_HELM", "")
    if not path:
        res = subprocess.run([str(REPO / "hack/helm/build.sh")], capture_output=True, text=True)
        require(res.returncode == 0, f"hack/helm/build.sh succeeded: {res.stderr[-2000:]}")
        path = res.stdout.strip().splitlines()[-1]
    require(os.access(path, os.X_OK), f"helm binary at {path!r} (hack/helm/build.sh)")
    return path


def template(helm: str, *values: Path, sets: tuple[str, ...] = (), check: bool = True,
             ) -> subprocess.CompletedProcess[str]:
    argv = [helm, "template", "kube-vip", str(CHART), "--namespace", "kube-system"]
    for v in values:
        argv += ["--values", str(v)]
    for s in sets:
        argv += ["--set", s]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check:
        assert res.returncode == 0, f"helm template {values} {sets}: {res.stderr}"
    return res


def findings(objs: list[dict[str, Any]]) -> dict[str, migrate.Finding]:
    """`kubevip migrate check`'s findings about the rendered objects, by setting name."""
    found = migrate.check((("chart", o) for o in objs), frozenset(n for n, _ in SETTINGS))
    return {f.name: f for f in found}


def objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def one(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(ds: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = ds["spec"]["template"]["spec"]["containers"][0]
    return c


def env_of(ds: dict[str, Any]) -> dict[str, Any]:
    """name -> value or valueFrom; the names are unique (asserted)."""
    env = container(ds)["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in env}


def test_helm_lint(helm: str) -> None:
    for values in (None, *EXAMPLES):
        argv = [helm, "lint", "--strict", str(CHART)] + (["--values", str(values)] if values else [])
        res = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, f"helm lint {values}: {res.stdout}{res.stderr}"
        assert "0 chart(s) failed" in res.stdout, res.stdout


def test_examples_cover_kube_vip_styles() -> None:
    """ARP, BGP with a password from a Secret, control plane, and the other keys of kube-vip's chart."""
    assert {p.stem for p in EXAMPLES} >= {"arp", "bgp-secret", "controlplane", "extra"}


@pytest.fixture(scope="module")
def rendered(helm: str) -> dict[str, list[dict[str, Any]]]:
    """Every example (and the defaults, "default") rendered once."""
    out = {"default": objects(template(helm).stdout)}
    out.update({p.stem: objects(template(helm, p).stdout) for p in EXAMPLES})
    return out


@pytest.mark.parametrize("example", ["default", *(p.stem for p in EXAMPLES)])
def test_example_applies_server_side(
    example: str, rendered: dict[str, list[dict[str, Any]]], control_plane: ControlPlane,
) -> None:
    """The real API server accepts every rendered object (schema, defaults, admission) in a dry run."""
    objs = rendered[example]
    out = control_plane.kubectl_run("apply", "--dry-run=server", "-f", "-",
                                    stdin=yamlout.dump_all(objs))
    for o in objs:
        kind = o["kind"].lower()
        assert f"{o['metadata']['name']} " in out and "(server dry run)" in out, (kind, out)
    assert out.count("(server dry run)") == len(objs), out


def test_defaults_render_the_manifest_daemonset(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Same pod as `kubevip manifest daemonset`: hardening, capabilities, env, probe, volumes, RBAC
    identity; only the objects' names and Helm's labels differ."""
    chart = one(rendered["default"], "DaemonSet")
    ours = daemonset.render(AgentOptions())
    cpod, opod = chart["spec"]["template"]["spec"], ours["spec"]["template"]["spec"]
    for key in ("hostNetwork", "serviceAccountName", "terminationGracePeriodSeconds", "tolerations",
                "securityContext", "volumes"):
        assert cpod[key] == opod[key], key
    cc, oc = cpod["containers"][0], opod["containers"][0]
    for key in ("name", "image", "imagePullPolicy", "args", "securityContext", "volumeMounts",
                "livenessProbe", "resources"):
        assert cc[key] == oc[key], key
    assert env_of(chart) == env_of(ours)
    # $(KUBEVIP_HOST_IP) is expanded by the kubelet only from env listed before it.
    names = [e["name"] for e in cc["env"]]
    assert names.index("KUBEVIP_HOST_IP") < names.index("prometheus_server")
    assert chart["spec"]["updateStrategy"] == ours["spec"]["updateStrategy"]


def _rules(objs: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    return list(one(objs, kind, name)["rules"])


def test_rbac_is_the_manifest_rbac(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """Exactly the grants `kubevip manifest rbac` renders and tests/cluster/test_controlplane.py checks
    against the API server; the Lease role bound in the release namespace only (cluster-wide with
    svc_election)."""
    ours = rbac.render()
    objs = rendered["default"]
    assert _rules(objs, "ClusterRole", "kube-vip") == _rules(ours, "ClusterRole", rbac.CLUSTER_ROLE)
    assert (_rules(objs, "ClusterRole", "kube-vip-namespaced")
            == _rules(ours, "ClusterRole", rbac.NAMESPACED_ROLE))
    binding = one(objs, "RoleBinding", "kube-vip-namespaced")
    assert binding["metadata"]["namespace"] == "kube-system"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "kube-vip", "namespace": "kube-system"}]
    assert one(objs, "ServiceAccount")["metadata"]["name"] == "kube-vip"
    assert not [o for o in objs if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"].endswith(
        "-namespaced")]
    # svc_election=true: per-Service Leases live in every Service's namespace.
    bgp = rendered["bgp-secret"]
    one(bgp, "ClusterRoleBinding", "kube-vip-namespaced")
    assert not [o for o in bgp if o["kind"] == "RoleBinding"]


def test_bgp_password_from_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """envValueFrom.bgp_peers.secretKeyRef renders as `kubevip manifest daemonset --secret-env` does;
    no password in the DaemonSet; `kubevip migrate check` accepts it as supported."""
    objs = rendered["bgp-secret"]
    ds = one(objs, "DaemonSet")
    want = AgentOptions(secret_env=(("bgp_peers", "kubevip-bgp", "bgp_peers"),)).env()[-1]
    assert [e for e in container(ds)["env"] if e["name"] == "bgp_peers"] == [want]
    env = env_of(ds)
    assert env["bgp_routerid"] == {"fieldRef": {"fieldPath": "status.hostIP"}}
    assert env["bgp_enable"] == "true" and env["vip_arp"] == "false"
    assert "s3cret" not in yaml.safe_dump(ds)
    found = findings(objs)
    assert found["bgp_peers"].status == "supported", found["bgp_peers"]


def test_kube_vip_values_carry_over(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """A values file written for kube-vip's chart: its settings, scheduling and pod keys arrive; the
    hardening the file does not mention stays; the control-plane VIP comes from config.address."""
    arp = one(rendered["arp"], "DaemonSet")
    env = env_of(arp)
    assert env["vip_interface"] == "eth0" and env["vip_leaseduration"] == "5" and env["lb_enable"] == "true"
    assert env["prometheus_server"] == "$(KUBEVIP_HOST_IP):2112"
    pod = arp["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"example.com/owner": "network-team"}
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane"
    assert container(arp)["image"] == "registry.example/kubevip:0.1.0"
    assert container(arp)["resources"]["requests"]["cpu"] == "50m"
    assert container(arp)["securityContext"]["readOnlyRootFilesystem"] is True
    cp = one(rendered["controlplane"], "DaemonSet")
    env = env_of(cp)
    assert env["vip_address"] == "192.0.2.10" and env["cp_enable"] == "true"
    assert env["k8s_config_file"] == "/etc/kubernetes/admin.conf"
    spec = cp["spec"]["template"]["spec"]
    assert {v["name"] for v in spec["volumes"]} == {"tmp", "kubeconfig"}
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["affinity"]["nodeAffinity"]
    extra = rendered["extra"]
    ds = one(extra, "DaemonSet", "kubevip-svc")
    assert ds["metadata"]["annotations"] == {"example.com/rollout": "canary"}
    assert ds["spec"]["template"]["metadata"]["labels"]["team"] == "network"
    assert ds["spec"]["template"]["spec"]["serviceAccountName"] == "kubevip-agents"
    assert container(ds)["args"] == ["manager", "--vip_leaseduration=4"]
    assert container(ds)["envFrom"] == [{"configMapRef": {"name": "kubevip-settings", "optional": True}}]
    assert one(extra, "ClusterRoleBinding", "kubevip-svc")["subjects"][0]["name"] == "kubevip-agents"


def test_migrate_check_reads_the_rendered_chart(rendered: dict[str, list[dict[str, Any]]]) -> None:
    """`kubevip migrate check` on a rendered kube-vip values file names what kubevip ignores."""
    found = findings(rendered["arp"])
    assert found["lb_enable"].status == "ignored" and found["lb_enable"].changes_behaviour
    assert found["vip_interface"].status == "supported"


@pytest.mark.parametrize(("sets", "message"), [
    (("env.bgp_peers=x", "envValueFrom.bgp_peers.secretKeyRef.name=s",
      "envValueFrom.bgp_peers.secretKeyRef.key=k"), "env.bgp_peers and envValueFrom.bgp_peers"),
    (("env.cp_enable=true",), "config.address (the control-plane VIP) is required"),
])
def test_refused_values(helm: str, sets: tuple[str, ...], message: str) -> None:
    """A password both in plain env and from a Secret, or a control-plane VIP without an address, stops
    `helm template` with a message naming the keys."""
    res = template(helm, sets=sets, check=False)
    assert res.returncode != 0 and message in res.stderr, res.stderr
