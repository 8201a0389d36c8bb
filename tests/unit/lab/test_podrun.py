"""lab/podrun: the kubelet's env resolution, the capability set from securityContext, the setpriv argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubevip.errors import LabError
from kubevip.lab.podrun import PodSpec, pod_argv, resolve_env, setpriv_argv
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
