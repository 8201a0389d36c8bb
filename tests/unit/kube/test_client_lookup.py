"""Which kubeconfig the agent uses: kubevip's explicit setting, then kube-vip's order, then in-cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip.errors import ConfigError
from kubevip.kube.client import ADMIN_CONF, IN_CLUSTER, connect_pair, kubeconfig_path

HOME_CONF = "/home/op/.kube/config"
ENV = {"HOME": "/home/op"}


def pick(files: set[str], explicit: str = "", k8s: str = "", env: dict[str, str] | None = None) -> str:
    return kubeconfig_path(explicit, k8s, ENV if env is None else env, files.__contains__)


def test_kube_vips_order() -> None:
    everything = {"/etc/kv.conf", ADMIN_CONF, HOME_CONF}
    assert pick(everything, k8s="/etc/kv.conf") == "/etc/kv.conf"
    assert pick(everything) == ADMIN_CONF  # the static pod's mount, no KUBECONFIG needed
    assert pick({ADMIN_CONF, HOME_CONF}, k8s="/etc/kv.conf") == ADMIN_CONF  # a missing k8s_config_file: next
    assert pick({HOME_CONF}) == HOME_CONF
    assert pick(set()) == IN_CLUSTER
    assert pick({HOME_CONF}, env={}) == IN_CLUSTER  # no HOME, no home kubeconfig


def test_kubevips_explicit_setting_comes_first_and_must_exist() -> None:
    assert pick({"/x", ADMIN_CONF}, explicit="/x") == "/x"
    assert pick({"/y", ADMIN_CONF}, env={"KUBECONFIG": "/y"}) == "/y"
    with pytest.raises(ConfigError) as err:
        pick({ADMIN_CONF}, explicit="/missing")
    assert err.value.name == "kubeconfig" and "/missing" in str(err.value)
    with pytest.raises(ConfigError) as err:
        pick({ADMIN_CONF}, env={"KUBECONFIG": "/missing"})
    assert err.value.name == "KUBECONFIG"


@given(st.sets(st.sampled_from(["/etc/kv.conf", ADMIN_CONF, HOME_CONF])))
def test_never_picks_a_file_that_does_not_exist(files: set[str]) -> None:
    got = pick(files, k8s="/etc/kv.conf")
    assert got == IN_CLUSTER or got in files
    assert (got == IN_CLUSTER) is (not files)


def test_real_files(tmp_path: Path) -> None:
    """The same rule with the real filesystem check the agent uses."""
    import os

    conf = tmp_path / "kv.conf"
    conf.write_text("x")
    assert kubeconfig_path("", str(conf), {}, os.path.isfile) == str(conf)
    # a directory is no kubeconfig
    assert kubeconfig_path("", str(tmp_path), {}, os.path.isfile) in (IN_CLUSTER, ADMIN_CONF)


async def test_the_agents_two_clients_share_one_reading_of_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "config"
    conf.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "clusters: [{name: c, cluster: {server: 'https://192.0.2.1:6443', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: abc}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(conf))
    api, election = await connect_pair()
    try:
        assert api is not election and api.access is election.access  # one parse, one TLS context
        assert api.access.server == "https://192.0.2.1:6443"
    finally:
        await api.close()
        await election.close()
