"""lab/podrun: the kubelet's env resolution, the capability set from securityContext, the setpriv argv."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubevip.errors import LabError
from kubevip.lab.podrun import PodSpec, ProjectedToken, lab_manifest, pod_argv, resolve_env, setpriv_argv
from kubevip.manifests import daemonset
from kubevip.manifests.agent import AgentOptions

FIELDS = {"spec.nodeName": "node1", "status.hostIP": "198.18.0.1"}


def no_lookup(kind: str, name: str, key: str) -> str | None:
    raise AssertionError(f"unexpected lookup {kind} {name} {key}")


def test_manifest_env_resolves_like_the_kubelet() -> None:
    obj = daemonset.render(AgentOptions(interface="eth0", secret_env=(("bgp_peers", "bgp", "peers"),)))
    spec = PodSpec.from_manifest(obj)
    env = resolve_env(spec.env, FIELDS, lambda kind, name, key: f"{kind}:{name}:{key}")
    assert env["vip_nodename"] == "node1"
    assert env["prometheus_server"] == "198.18.0.1:2112"  # $(KUBEVIP_HOST_IP) listed before it
    assert env["vip_interface"] == "eth0" and env["bgp_peers"] == "secret:bgp:peers"
    assert spec.capabilities == ("NET_ADMIN", "NET_RAW") and spec.no_new_privs


def test_var_expansion_only_from_earlier_entries() -> None:
    env = resolve_env(({"name": "B", "value": "$(A)-x"}, {"name": "A", "value": "1"},
                       {"name": "C", "value": "$(A)$(Z)"}), FIELDS, no_lookup)
    assert env == {"B": "$(A)-x", "A": "1", "C": "1$(Z)"}


def test_missing_references() -> None:
    with pytest.raises(LabError, match=r"fieldRef status\.podIPs"):
        resolve_env(({"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},), FIELDS,
                    no_lookup)
    ref = {"name": "s", "key": "k"}
    with pytest.raises(LabError, match="env P: secret s has no key 'k'"):
        resolve_env(({"name": "P", "valueFrom": {"secretKeyRef": ref}},), FIELDS, lambda *_: None)
    optional = {"name": "P", "valueFrom": {"secretKeyRef": {**ref, "optional": True}}}
    assert resolve_env((optional,), FIELDS, lambda *_: None) == {}


def test_capabilities_from_security_context() -> None:
    obj = daemonset.render(AgentOptions())
    sc = obj["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    sc["capabilities"]["add"] = ["CAP_NET_ADMIN"]
    sc["allowPrivilegeEscalation"] = True
    spec = PodSpec.from_manifest(obj)
    assert spec.capabilities == ("NET_ADMIN",) and not spec.no_new_privs
    sc["capabilities"]["drop"] = ["NET_RAW"]
    with pytest.raises(LabError, match="drop ALL"):
        PodSpec.from_manifest(obj)


def test_setpriv_keeps_exactly_the_added_set() -> None:
    assert setpriv_argv(("NET_ADMIN", "NET_RAW"), True) == [
        "setpriv", "--bounding-set=-all,+net_admin,+net_raw", "--inh-caps=-all", "--ambient-caps=-all",
        "--no-new-privs", "--",
    ]
    assert setpriv_argv((), False)[1] == "--bounding-set=-all"
    argv = pod_argv(Path("/sa"), PodSpec((), ("NET_RAW",), True), ["python3"])
    script = 'mount --bind "$0" /run/secrets/kubernetes.io/serviceaccount && exec "$@"'
    assert argv[:4] == ["sh", "-c", script, "/sa"]
    assert argv[-1] == "python3" and "--bounding-set=-all,+net_raw" in argv


def test_lab_manifest_renders_each_setting_once() -> None:
    obj = lab_manifest("eth0", {"vip_arp": "false", "bgp_enable": "true", "vip_interface": "lo",
                                "vip_electionmode": "scalable", "prometheus_server": ":2112"})
    env = obj["spec"]["template"]["spec"]["containers"][0]["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), names
    values = {e["name"]: e.get("value") for e in env}
    assert values["vip_arp"] == "false" and values["bgp_enable"] == "true" and values["vip_interface"] == "lo"
    assert values["vip_electionmode"] == "scalable"
    assert values["prometheus_server"] == "$(KUBEVIP_HOST_IP):2112"


class FakeControlPlane:
    """kubectl as the token code uses it: Secrets created and deleted, tokens issued (pure unit fake)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        (state_dir / "pki").mkdir(parents=True)
        (state_dir / "pki" / "apiserver.crt").write_text("CERT\n")
        self.secrets: set[str] = set()
        self.issued = 0
        self.durations: list[str] = []

    def kubectl_run(self, *args: str, stdin: str | None = None) -> str:
        if args[:3] == ("create", "secret", "generic"):
            self.secrets.add(args[3])
        elif args[:2] == ("delete", "secret"):
            self.secrets.remove(args[2])
        elif args[:2] == ("create", "token"):
            bound = next(a for a in args if a.startswith("--bound-object-name=")).split("=", 1)[1]
            assert bound in self.secrets
            self.durations += [a for a in args if a.startswith("--duration=")]
            self.issued += 1
            return f"token-{self.issued}\n"
        return ""


def test_rotation_rewrites_the_file_and_kills_the_previous_secret(tmp_path: Path) -> None:
    cp = FakeControlPlane(tmp_path / "cp")
    token = ProjectedToken(cp, tmp_path / "sa", "node1")  # type: ignore[arg-type]
    token.write_static()
    assert (tmp_path / "sa" / "ca.crt").read_text() == "CERT\n"
    assert (tmp_path / "sa" / "namespace").read_text() == "kube-system"
    assert token.rotate() == ""
    first = token.bound
    assert (tmp_path / "sa" / "token").read_text() == "token-1" and cp.secrets == {first}
    assert token.rotate() == "token-1"
    assert (tmp_path / "sa" / "token").read_text() == "token-2" and cp.secrets == {token.bound} != {first}
    assert oct((tmp_path / "sa" / "token").stat().st_mode & 0o777) == "0o600"
    assert cp.durations == ["--duration=600s"] * 2  # the shortest the API server accepts
    # A rotator process takes over what `lab up` wrote.
    again = ProjectedToken(cp, tmp_path / "sa", "node1")  # type: ignore[arg-type]
    again.resume()
    assert (again.token, again.bound) == ("token-2", token.bound)
    again.stop()
    assert cp.secrets == set()


def test_rotator_rewrites_before_expiry(tmp_path: Path) -> None:
    """At 80% of the lifetime (a 1 s token here: 0.8 s) the file is rewritten, until halted."""
    cp = FakeControlPlane(tmp_path / "cp")
    token = ProjectedToken(cp, tmp_path / "sa", "node1", seconds=1)  # type: ignore[arg-type]
    token.start()
    try:
        deadline = time.monotonic() + 30
        while token.rotations < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert token.rotations >= 3
    finally:
        token.stop()
    assert cp.secrets == set() and (tmp_path / "sa" / "token").read_text() == f"token-{cp.issued}"
