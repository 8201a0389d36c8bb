"""Which API server the control-plane agent talks to, and which name it checks the certificate against."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubevip.controlplane.main import api_client
from kubevip.controlplane.settings import ControlPlaneSettings
from kubevip.envparse import Settings
from kubevip.errors import ConfigError


def kubeconfig(tmp_path: Path, server: str) -> str:
    doc = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t0ken"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    }
    path = tmp_path / "admin.conf"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize(
    ("env", "host", "tls_name"),
    [
        ({}, "https://127.0.0.1:6443", "192.0.2.10"),  # local API server, certificate checked as the VIP
        ({"port": "8443"}, "https://127.0.0.1:8443", "192.0.2.10"),
        ({"cp_apiserver": "kubeconfig"}, "https://192.0.2.10:6443", None),
        ({"cp_apiserver": "https://[::1]:6443"}, "https://[::1]:6443", "192.0.2.10"),
    ],
)
async def test_server_and_certificate_name(
    tmp_path: Path, env: dict[str, str], host: str, tls_name: str | None
) -> None:
    s = ControlPlaneSettings.from_env(Settings({"cp_enable": "true", "address": "192.0.2.10", **env}))
    api = await api_client(s, kubeconfig(tmp_path, "https://192.0.2.10:6443"))
    try:
        assert api.server == host
        assert api.access.tls_server_name == (tls_name or "")
        assert api.access.token == "t0ken"
    finally:
        await api.close()


async def test_missing_kubeconfig_names_the_setting(tmp_path: Path) -> None:
    s = ControlPlaneSettings.from_env(Settings({"cp_enable": "true", "address": "192.0.2.10"}))
    with pytest.raises(ConfigError) as err:
        await api_client(s, str(tmp_path / "super-admin.conf"))
    assert err.value.name == "kubeconfig"
