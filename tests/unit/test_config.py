"""The agent's configuration: kube-vip names, env over flags, one clear error per bad value."""

from __future__ import annotations

import pytest

from kubevip.cli import main
from kubevip.config import AgentConfig, ListenAddress
from kubevip.errors import ConfigError


def test_defaults_match_kube_vip() -> None:
    cfg = AgentConfig.load({"vip_nodename": "n1"})
    assert cfg.node_name == "n1"
    assert not cfg.services and not cfg.arp and cfg.mode == "none"
    assert cfg.lb_class.name == "kube-vip.io/kube-vip-class"
    assert not cfg.lb_class.only and cfg.lb_class.legacy_handling
    assert cfg.prometheus == ListenAddress("", 2112)
    assert not cfg.use_legacy_endpoints
    assert cfg.namespace == ""
    assert cfg.arp_rate_ms == 3000


def test_env_wins_over_flag() -> None:
    cfg = AgentConfig.load(
        {"vip_nodename": "env", "vip_arp": "true"}, {"vip_nodename": "flag", "svc_enable": "1"}
    )
    assert cfg.node_name == "env"
    assert cfg.arp and cfg.services and cfg.mode == "arp"


def test_node_name_from_downward_api() -> None:
    assert AgentConfig.load({"NODE_NAME": "n7"}).node_name == "n7"


def test_kubeconfig_from_env() -> None:
    assert AgentConfig.load({"vip_nodename": "n", "KUBECONFIG": "/x"}).kubeconfig == "/x"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"svc_enable": "maybe"}, "svc_enable"),
        ({"vip_arp": "true", "bgp_enable": "true"}, "bgp_enable"),
        ({"prometheus_server": "nope"}, "prometheus_server"),
        ({"prometheus_server": ":99999"}, "prometheus_server"),
        ({"vip_leaseduration": "1", "vip_renewdeadline": "1"}, "vip_renewdeadline"),
        ({"vip_retryperiod": "x"}, "vip_retryperiod"),
        ({"health_check_port": "0"}, "health_check_port"),
        ({"vip_arpRate": "-5"}, "vip_arpRate"),
        ({"bgp_enable": "true", "cp_enable": "true", "address": "192.0.2.10", "svc_enable": "true",
          "bgp_peers": "192.0.2.1:65000"}, "svc_enable"),
        ({"bgp_enable": "true", "cp_enable": "true", "address": "192.0.2.10"}, "bgp_peers"),
        ({"svc_leasename": "A/b"}, "svc_leasename"),
        ({"vip_routingtabletype": "42"}, "vip_routingtabletype"),
    ],
)
def test_bad_setting_names_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as e:
        AgentConfig.load({"vip_nodename": "n", **env})
    assert e.value.name == name
    assert name in str(e.value)


def test_small_arp_rate_resets_like_kube_vip() -> None:
    assert AgentConfig.load({"vip_nodename": "n", "vip_arpRate": "100"}).arp_rate_ms == 3000
    assert AgentConfig.load({"vip_nodename": "n", "vip_arpRate": "800"}).arp_rate_ms == 800


def test_prometheus_can_be_disabled_and_bracketed() -> None:
    assert AgentConfig.load({"vip_nodename": "n", "prometheus_server": ""}).prometheus is None
    assert AgentConfig.load(
        {"vip_nodename": "n", "prometheus_server": "[::1]:9"}
    ).prometheus == ListenAddress("::1", 9)


def test_manager_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("vip_nodename", "n1")
    monkeypatch.setenv("svc_enable", "sometimes")
    assert main(["manager", "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "svc_enable" in err[0] and "sometimes" in err[0] and "true or false" in err[0]


def test_manager_flag_is_read(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("svc_namespace", raising=False)
    assert main(["manager", "--check", "--vip_nodename", "nf", "--svc_namespace", "team-a"]) == 0
    out = capsys.readouterr().out
    assert "node=nf" in out and "namespace=team-a" in out


def test_kube_vips_kubeconfig_setting_is_kept() -> None:
    cfg = AgentConfig.load({"vip_nodename": "n", "k8s_config_file": "/etc/kv.conf"})
    assert cfg.k8s_config_file == "/etc/kv.conf" and cfg.kubeconfig == ""


def test_unsupported_kube_vip_settings_one_warn_line_each() -> None:
    from kubevip.config import unsupported_setting_warnings

    lines = unsupported_setting_warnings({"dhcp_backoff_attempts": "5", "enable_node_labeling": "true",
                                          "egress_withnftables": "true", "vip_arp": "true"})
    assert len(lines) == 2
    assert lines[0].startswith("dhcp_backoff_attempts=5:") and "ignored" in lines[0]
    assert lines[1].startswith("enable_node_labeling=true:")
    assert unsupported_setting_warnings({"bgp_peerpass": "s3cret", "vip_arp": "true"}) == []


def test_manager_logs_unsupported_settings_at_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("vip_nodename", "n1")
    monkeypatch.setenv("enable_node_labeling", "true")
    assert main(["manager", "--check"]) == 0
    warns = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warns == [w for w in warns if "enable_node_labeling" in w] and len(warns) == 1


def test_policy_settings() -> None:
    cfg = AgentConfig.load({
        "vip_nodename": "n1", "vip_allowed_cidrs": "192.0.2.0/24, 2001:db8::/64",
        "vip_allowed_interfaces": "eth1,vlan*", "vip_allowed_from_pools": "true",
        "svc_cross_namespace_sharing": "true", "vip_service_cidrs": "10.96.0.0/12",
        "address": "192.0.2.100,cp.example.com",
    })
    p = cfg.policy
    assert [str(n) for n in p.allowed_cidrs] == ["192.0.2.0/24", "2001:db8::/64"]
    assert p.interfaces == ("eth1", "vlan*") and p.from_pools and p.cross_namespace
    assert [str(n) for n in p.service_cidrs] == ["10.96.0.0/12"]
    assert {str(a) for a in p.control_plane} == {"192.0.2.100"}  # a DNS name is the control plane's


def test_policy_defaults_are_closed_where_it_matters() -> None:
    p = AgentConfig.load({"vip_nodename": "n1"}).policy
    assert p.interfaces == () and not p.cross_namespace and p.allowed_cidrs == ()


def test_a_bad_cidr_names_the_setting_and_the_entry() -> None:
    with pytest.raises(ConfigError) as err:
        AgentConfig.load({"vip_nodename": "n1", "vip_allowed_cidrs": "192.0.2.0/24,192.0.2.300/24"})
    assert err.value.name == "vip_allowed_cidrs" and "'192.0.2.300/24'" in str(err.value)


def test_control_plane_vip_over_bgp_is_accepted_alone() -> None:
    cfg = AgentConfig.load({"vip_nodename": "n", "cp_enable": "true", "address": "192.0.2.10,2001:db8::10",
                            "bgp_enable": "true", "bgp_as": "65001", "bgp_peers": "192.0.2.1:65000"})
    assert cfg.bgp and cfg.control_plane is not None and cfg.control_plane.enabled
    assert cfg.bgp_settings is not None and len(cfg.bgp_settings.peers) == 1
    assert not cfg.election.enabled  # ECMP from every healthy node, kube-vip's default (core.cpbgp)
