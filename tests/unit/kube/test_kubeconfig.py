"""Kubeconfig and in-cluster loading: data vs file fields, relative paths, token files, IPv6 service
host, and ConfigErrors that name the field for what we do not support."""

from __future__ import annotations

import base64
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevip.errors import ConfigError
from kubevip.kube import rest
from kubevip.kube.kubeconfig import load_incluster, load_kubeconfig
from kubevip.kube.rest import Access, RestClient, query_string


def write(directory: Path, cluster: dict[str, Any], user: dict[str, Any] | None = None) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "https://192.0.2.1:6443", **cluster}}],
        "users": [{"name": "u", "user": user or {}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config"
    path.write_text(yaml.safe_dump(doc))
    return path


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def ca_names(ctx: ssl.SSLContext | None) -> list[Any]:
    assert ctx is not None
    return [c["subject"] for c in ctx.get_ca_certs()]


def test_ca_data_and_ca_file_load_the_same_ca(pki: Path, tmp_path: Path) -> None:
    by_data = load_kubeconfig(write(tmp_path / "a", {"certificate-authority-data": b64(pki / "cert.pem")}))
    by_file = load_kubeconfig(write(tmp_path / "b", {"certificate-authority": str(pki / "cert.pem")}))
    assert ca_names(by_data.ssl) == ca_names(by_file.ssl) == [((("commonName", "kubevip-test"),),)]
    assert by_data.server == "https://192.0.2.1:6443"
    assert by_data.ssl is not None and by_data.ssl.verify_mode == ssl.CERT_REQUIRED


def test_relative_paths_resolve_against_the_kubeconfig(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "conf"
    (d / "pki").mkdir(parents=True)
    for name in ("cert.pem", "key.pem"):
        (d / "pki" / name).write_bytes((pki / name).read_bytes())
    path = write(d, {"certificate-authority": "pki/cert.pem"},
                 {"client-certificate": "pki/cert.pem", "client-key": "pki/key.pem"})
    monkeypatch.chdir(tmp_path)  # not the kubeconfig's directory
    access = load_kubeconfig(path)
    assert ca_names(access.ssl)


def test_client_certificate_data_leaves_no_file_behind(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    user = {"client-certificate-data": b64(pki / "cert.pem"), "client-key-data": b64(pki / "key.pem")}
    load_kubeconfig(write(tmp_path / "k", {"insecure-skip-tls-verify": True}, user))
    assert list(scratch.iterdir()) == []


def test_missing_file_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path, {}, {"client-certificate": "nope.pem", "client-key": "nope.key"}))
    assert err.value.name == "users[u].user.client-certificate"
    assert err.value.value == "nope.pem"


def test_unusable_pem_names_the_field(pki: Path, tmp_path: Path) -> None:
    bad = base64.b64encode(b"not a certificate").decode()
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path / "ca", {"certificate-authority-data": bad}))
    assert (err.value.name, err.value.value) == ("clusters[c].cluster.certificate-authority-data",
                                                 "(inline data)")
    user = {"client-certificate-data": bad, "client-key": str(pki / "key.pem")}
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path / "cert", {"insecure-skip-tls-verify": True}, user))
    assert err.value.name == "users[u].user.client-certificate-data"


def test_insecure_skips_verification(tmp_path: Path) -> None:
    access = load_kubeconfig(write(tmp_path, {"insecure-skip-tls-verify": True, "tls-server-name": "k8s"}))
    assert access.ssl is not None and access.ssl.verify_mode == ssl.CERT_NONE
    assert access.tls_server_name == "k8s"


@pytest.mark.parametrize("value", ["false", "true", "False", "0", 0, 1, "yes"])
def test_insecure_skip_tls_verify_must_be_a_yaml_boolean(tmp_path: Path, value: object) -> None:
    """A quoted "false" used to turn verification off (a non-empty string is truthy)."""
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path, {"insecure-skip-tls-verify": value}))
    assert err.value.name == "clusters[c].cluster.insecure-skip-tls-verify"
    assert "boolean" in str(err.value)


def test_verification_stays_on_with_false(tmp_path: Path) -> None:
    access = load_kubeconfig(write(tmp_path, {"insecure-skip-tls-verify": False}))
    assert access.ssl is not None and access.ssl.verify_mode == ssl.CERT_REQUIRED


def certificates(access: Access) -> int:
    assert access.ssl is not None
    return int(access.ssl.cert_store_stats()["x509"])


def test_without_a_ca_the_system_bundle_is_trusted_unless_nothing_is_verified(
    tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process's bundle: one certificate (OpenSSL reads SSL_CERT_FILE when a context loads it).
    monkeypatch.setenv("SSL_CERT_FILE", str(pki / "cert.pem"))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    assert certificates(load_kubeconfig(write(tmp_path / "verify", {}))) == 1
    # insecure-skip-tls-verify: the bundle would trust nothing, so it is not loaded (issue 21, start-up)
    skipped = load_kubeconfig(write(tmp_path / "skip", {"insecure-skip-tls-verify": True}))
    assert certificates(skipped) == 0
    assert skipped.ssl is not None and skipped.ssl.verify_mode == ssl.CERT_NONE
    assert not skipped.ssl.check_hostname
    # a CA given with it is still read (and must still be a CA)
    given = load_kubeconfig(write(tmp_path / "ca", {"insecure-skip-tls-verify": True,
                                                    "certificate-authority-data": b64(pki / "cert.pem")}))
    assert certificates(given) == 1


@pytest.mark.parametrize("key", ["tls-server-name", "certificate-authority", "server"])
def test_tls_fields_must_be_strings(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path, {key: ["k8s"]}))
    assert err.value.name == f"clusters[c].cluster.{key}"


def test_exec_and_auth_provider_users_are_refused_by_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path / "e", {}, {"exec": {"command": "aws", "apiVersion": "v1"}}))
    assert (err.value.name, err.value.value) == ("users[u].user.exec", "aws")
    assert "not supported" in str(err.value)
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path / "a", {}, {"auth-provider": {"name": "oidc"}}))
    assert (err.value.name, err.value.value) == ("users[u].user.auth-provider", "oidc")


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("clusters: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(path)
    assert (err.value.name, err.value.value) == ("kubeconfig", str(path))
    assert "YAML" in str(err.value)


@pytest.mark.parametrize("loader", ["CSafeLoader", "SafeLoader"])
def test_broken_yaml_never_quotes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    """PyYAML's own message quotes the offending line: a token must not reach the error (or the log)."""
    import yaml

    if loader == "SafeLoader":  # PyYAML without libyaml
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    path = tmp_path / "config"
    path.write_text("users:\n- name: u\n  user:\n    token: s3cr3t-t0ken: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(path)
    message = str(err.value)
    assert "s3cr3t" not in message and "line 4, column" in message, message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_libyaml_and_pure_python_read_the_same_kubeconfig(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    path = write(tmp_path, {"tls-server-name": "api.example"}, {"token": "t0k", "username": "0123"})
    fields = lambda a: (a.server, a.ssl is None, a.tls_server_name, a.token, a.username)  # noqa: E731
    fast = fields(load_kubeconfig(path))
    monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    assert fields(load_kubeconfig(path)) == fast
    assert fast == ("https://192.0.2.1:6443", False, "api.example", "t0k", "0123")


def test_unknown_context_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_kubeconfig(write(tmp_path, {}), context="other")
    assert (err.value.name, err.value.value) == ("contexts", "other")


async def test_token_file_is_reread_as_it_rotates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "k"
    path = write(d, {"insecure-skip-tls-verify": True}, {"tokenFile": "token"})
    (d / "token").write_text("first\n")
    access = load_kubeconfig(path)
    assert access.token_file == str(d / "token")
    now = [1000.0]
    monkeypatch.setattr(rest.time, "monotonic", lambda: now[0])
    api = RestClient(access)
    assert api._auth() == "Bearer first"
    (d / "token").write_text("second\n")
    now[0] += rest.TOKEN_REFRESH - 1
    assert api._auth() == "Bearer first"  # not yet due
    now[0] += 1
    assert api._auth() == "Bearer second"
    (d / "token").unlink()  # being swapped: keep the last token
    now[0] += rest.TOKEN_REFRESH
    assert api._auth() == "Bearer second"


def test_static_token_and_basic_auth(tmp_path: Path) -> None:
    token = load_kubeconfig(write(tmp_path / "t", {"insecure-skip-tls-verify": True}, {"token": "abc"}))
    assert RestClient(token)._auth() == "Bearer abc"
    basic = load_kubeconfig(write(tmp_path / "b", {"insecure-skip-tls-verify": True},
                                  {"username": "admin", "password": "pw"}))
    assert RestClient(basic)._auth() == "Basic " + base64.b64encode(b"admin:pw").decode()


@pytest.mark.parametrize(("host", "server"), [
    ("fd00:10:96::1", "https://[fd00:10:96::1]:443"),
    ("10.96.0.1", "https://10.96.0.1:443"),
])
def test_in_cluster(pki: Path, tmp_path: Path, host: str, server: str) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_bytes((pki / "cert.pem").read_bytes())
    env = {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": "443"}
    access = load_incluster(env, root=tmp_path)
    assert access.server == server
    assert access.token_file == str(tmp_path / "token")
    assert ca_names(access.ssl)
    assert RestClient(access)._auth() == "Bearer sa-token"


def test_in_cluster_without_the_token_names_it(tmp_path: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(ConfigError) as err:
        load_incluster(env, root=tmp_path)
    assert err.value.value == str(tmp_path / "token")


def test_query_strings_spell_booleans_as_the_api_server_does() -> None:
    query = {"watch": True, "x": False, "timeoutSeconds": 5, "labelSelector": None, "rv": ""}
    assert query_string(query) == {"watch": "true", "x": "false", "timeoutSeconds": "5", "rv": ""}
