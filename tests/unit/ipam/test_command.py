"""`kubevip ipam` settings: env var over flag over default, errors naming the variable."""

from __future__ import annotations

import pytest

from kubevip import cli
from kubevip.commands.ipam import settings_from
from kubevip.errors import ConfigError


def test_defaults_are_kube_vips() -> None:
    args = cli.build_parser().parse_args(["ipam"])
    s = settings_from(args, {})
    assert (s.configmap, s.namespace) == ("kubevip", "kube-system")
    assert s.classes.name == "kube-vip.io/kube-vip-class" and not s.classes.only


def test_env_wins_over_flag() -> None:
    args = cli.build_parser().parse_args(
        ["ipam", "--configmap", "flag", "--namespace", "ns-flag", "--lb-class-only", "true"])
    s = settings_from(args, {"KUBEVIP_CONFIG_MAP": "env", "lb_class_name": "x/y"})
    assert (s.configmap, s.namespace, s.classes.name, s.classes.only) == ("env", "ns-flag", "x/y", True)


def test_bad_boolean_names_the_variable() -> None:
    args = cli.build_parser().parse_args(["ipam"])
    with pytest.raises(ConfigError, match="lb_class_only"):
        settings_from(args, {"lb_class_only": "maybe"})
