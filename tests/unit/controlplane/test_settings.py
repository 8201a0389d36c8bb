"""Control-plane settings: defaults, kube-vip names, errors that name the variable."""

from __future__ import annotations

import ipaddress

import pytest

from kubevip.config import SETTINGS, AgentConfig
from kubevip.controlplane.resolve import Entry
from kubevip.controlplane.settings import ControlPlaneSettings, HealthSettings
from kubevip.envparse import Settings
from kubevip.errors import ConfigError


def load(**env: str) -> ControlPlaneSettings:
    return ControlPlaneSettings.from_env(Settings(env))


def test_defaults_match_kube_vip() -> None:
    s = load()
    assert not s.enabled
    assert s.port == 6443
    assert s.dns_mode == "first"
    assert s.apiserver == "local"
    assert s.health == HealthSettings(period=0.5, timeout=0.5, threshold=3, path="/livez")
    assert s.local_url() == "https://127.0.0.1:6443"


def test_dual_stack_pair_and_old_name() -> None:
    s = load(cp_enable="true", vip_address="198.18.1.10, fd00::10", port="8443")
    want = (Entry(ip=ipaddress.ip_address("198.18.1.10")), Entry(ip=ipaddress.ip_address("fd00::10")))
    assert s.entries == want
    assert s.local_url() == "https://127.0.0.1:8443"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"cp_enable": "true"}, "address"),
        ({"address": "10.0.0.1,10.0.0.2"}, "address"),
        ({"vip_address": "not a name!"}, "vip_address"),
        ({"address": "10.0.0.1", "port": "0"}, "port"),
        ({"address": "10.0.0.1", "dns_mode": "both"}, "dns_mode"),
        ({"cp_health_period": "0"}, "cp_health_period"),
        ({"cp_health_timeout": "soon"}, "cp_health_timeout"),
        ({"cp_health_threshold": "0"}, "cp_health_threshold"),
        ({"cp_health_path": "livez"}, "cp_health_path"),
        ({"cp_apiserver": "http://127.0.0.1:6443"}, "cp_apiserver"),
        ({"address": "127.0.0.1"}, "address"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(**env)
    assert err.value.name == name


def test_apiserver_url_and_kubeconfig_modes() -> None:
    assert load(cp_apiserver="https://[::1]:6443/").apiserver == "https://[::1]:6443"
    assert load(cp_apiserver="kubeconfig").apiserver == "kubeconfig"


def test_manager_reads_control_plane_settings_and_registers_flags() -> None:
    names = [n for n, _ in SETTINGS]
    for n in ("address", "port", "dns_mode", "vip_leasename", "cp_health_period", "cp_apiserver"):
        assert names.count(n) == 1
    cfg = AgentConfig.load({"vip_nodename": "n1"}, {"cp_enable": "true", "address": "cp.example.com"})
    assert cfg.control_plane is not None and cfg.control_plane.enabled
    assert cfg.control_plane.entries == (Entry(name="cp.example.com"),)
    assert cfg.election.lease_name == "plndr-cp-lock"
